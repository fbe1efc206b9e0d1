-- The unified append-only trail log (R1.1). One row per record, one column per field.
-- Text columns hold the exact canonical forms the chain was computed over, so a read returns
-- the record byte for byte.
CREATE TABLE event_log (
    trail_id      TEXT    NOT NULL,
    chain_seq     INTEGER NOT NULL CHECK (chain_seq >= 1),
    prev_checksum TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    actor_source  TEXT    NOT NULL,
    occurred_at   TEXT    NOT NULL,
    recorded_at   TEXT    NOT NULL,
    time_source   TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    project       TEXT,
    subject       TEXT,
    payload       TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    PRIMARY KEY (trail_id, chain_seq)
);

-- The store enforces append-only itself (R1.4). With recursive_triggers on (set on every
-- connection), INSERT OR REPLACE fires the DELETE trigger too.
CREATE TRIGGER event_log_no_update
BEFORE UPDATE ON event_log
BEGIN
    SELECT RAISE(ABORT, 'event_log is append-only');
END;

CREATE TRIGGER event_log_no_delete
BEFORE DELETE ON event_log
BEGIN
    SELECT RAISE(ABORT, 'event_log is append-only');
END;

-- The store also enforces chain continuity itself: a row must carry the next seq of its trail
-- and link to the current head's checksum (genesis for seq 1). Besides refusing forks and gaps
-- from any writer, this lets a single-statement INSERT be the whole append (one durable commit,
-- no read round trip); the adapter falls back to a checked transaction when it is refused.
CREATE TRIGGER event_log_continues_chain
BEFORE INSERT ON event_log
WHEN NEW.chain_seq <> COALESCE((SELECT MAX(chain_seq) FROM event_log WHERE trail_id = NEW.trail_id), 0) + 1
  OR NEW.prev_checksum <> COALESCE(
       (SELECT checksum FROM event_log WHERE trail_id = NEW.trail_id ORDER BY chain_seq DESC LIMIT 1),
       '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'event_log: record does not continue its trail''s chain');
END;
