-- Four-eyes configuration changes (ChangeRequest) and the last approved configuration. Mutable
-- state, like accounts: the chained CHANGE_PROPOSED / CHANGE_APPROVED / CHANGE_REJECTED events in
-- _relay are the record of what happened; these rows are the current state they produced.
CREATE TABLE change_requests (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    body        TEXT    NOT NULL
);

CREATE TABLE config_baseline (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    canonical_json  TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
