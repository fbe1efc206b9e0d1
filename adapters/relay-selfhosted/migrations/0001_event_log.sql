-- The unified append-only trail log (R1.1) on Postgres. One row per record, one column per
-- field; text columns hold the exact canonical forms the chain was computed over, so a read
-- returns the record byte for byte. trail_id sorts bytewise (COLLATE "C") so `trails()` orders
-- like the domain's TrailId.
CREATE TABLE event_log (
    trail_id      text COLLATE "C" NOT NULL,
    chain_seq     bigint NOT NULL CHECK (chain_seq >= 1),
    prev_checksum text   NOT NULL,
    checksum      text   NOT NULL,
    kind          text   NOT NULL,
    actor         text   NOT NULL,
    actor_source  text   NOT NULL,
    occurred_at   text   NOT NULL,
    recorded_at   text   NOT NULL,
    time_source   text   NOT NULL,
    device        text   NOT NULL,
    project       text,
    subject       text,
    payload       text   NOT NULL,
    key_id        text   NOT NULL,
    -- Two writers can never both store a seq, even one that skips the advisory lock.
    PRIMARY KEY (trail_id, chain_seq)
);

-- The store enforces append-only itself (R1.4), for every role including the table owner:
-- statement-level triggers fire even when no row matches, and also for
-- INSERT .. ON CONFLICT DO UPDATE. The runtime role never gets that far: it holds only
-- SELECT, INSERT, so the grant check refuses first (SQLSTATE 42501).
CREATE FUNCTION event_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_log is append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
$$;

CREATE TRIGGER event_log_no_update BEFORE UPDATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
CREATE TRIGGER event_log_no_delete BEFORE DELETE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();

-- Serializes appends to one trail and returns its head, in one round trip. The advisory lock is
-- held to the end of the caller's transaction; the head query runs after it was granted and, as
-- a new statement of a VOLATILE function, under a new snapshot (READ COMMITTED), so it sees every
-- append committed before. An advisory lock rather than a heads row keeps the runtime role's
-- custody of the log to SELECT, INSERT (docs/adr/0002-postgres-custody.md).
CREATE FUNCTION event_log_lock_head(lock_namespace integer, trail text)
RETURNS TABLE (head_seq bigint, head_checksum text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_namespace, hashtext(trail));
    RETURN QUERY
        SELECT e.chain_seq, e.checksum FROM event_log e
        WHERE e.trail_id = trail ORDER BY e.chain_seq DESC LIMIT 1;
END
$$;

REVOKE ALL ON event_log FROM PUBLIC;
REVOKE ALL ON FUNCTION event_log_lock_head(integer, text) FROM PUBLIC;
