-- The edge forwarder's progress per trail (R8.2, R8.4). Mutable state, like accounts: the row moves
-- forward as the server acknowledges batches, and holds the dead letter when a batch was refused
-- for good. The records themselves stay in event_log; this is only how far they were forwarded.
CREATE TABLE forward_cursor (
    trail_id        TEXT    NOT NULL PRIMARY KEY,
    acked_seq       INTEGER NOT NULL DEFAULT 0 CHECK (acked_seq >= 0),
    poisoned        INTEGER NOT NULL DEFAULT 0 CHECK (poisoned IN (0, 1)),
    dead_first_seq  INTEGER,
    dead_last_seq   INTEGER,
    dead_status     INTEGER,
    dead_reason     TEXT,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
