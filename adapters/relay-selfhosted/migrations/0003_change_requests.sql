-- Four-eyes configuration changes (ChangeRequest) and the last approved configuration, on the
-- server of record. Mutable state, like accounts: the chained CHANGE_PROPOSED / CHANGE_APPROVED /
-- CHANGE_REJECTED events in _relay are the record of what happened; these rows are the current
-- state they produced. The runtime role gets SELECT, INSERT, UPDATE (never DELETE or TRUNCATE):
-- a decided request cannot be made to disappear through the relay's own credentials.
CREATE TABLE change_requests (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id     text   COLLATE "C" NOT NULL UNIQUE,
    state  text   NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    body   text   NOT NULL
);

-- The only allowed update is a decision: pending -> approved | rejected, once, leaving what was
-- proposed (setting, value, proposer, reason, times) exactly as it was. This stops even the owner
-- (P0001), like event_log's triggers: a proposal cannot be edited between proposal and approval.
CREATE FUNCTION change_requests_decide_once() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    decision_keys text[] := ARRAY['state', 'decided_by', 'decided_at', 'decision_reason'];
BEGIN
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'change request % is already %: decided requests are immutable', OLD.id, OLD.state
            USING ERRCODE = 'P0001';
    END IF;
    IF NEW.state NOT IN ('approved', 'rejected') OR NEW.id <> OLD.id OR NEW.seq <> OLD.seq
       OR (NEW.body::jsonb ->> 'state') IS DISTINCT FROM NEW.state
       OR (NEW.body::jsonb - decision_keys) IS DISTINCT FROM (OLD.body::jsonb - decision_keys) THEN
        RAISE EXCEPTION 'change request %: only a decision may be recorded; the proposal itself is immutable', OLD.id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER change_requests_decide_once
    BEFORE UPDATE ON change_requests
    FOR EACH ROW EXECUTE FUNCTION change_requests_decide_once();

CREATE FUNCTION change_requests_no_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'change_requests rows are never deleted' USING ERRCODE = 'P0001';
END;
$$;

CREATE TRIGGER change_requests_no_delete
    BEFORE DELETE ON change_requests
    FOR EACH ROW EXECUTE FUNCTION change_requests_no_delete();

CREATE TRIGGER change_requests_no_truncate
    BEFORE TRUNCATE ON change_requests
    FOR EACH STATEMENT EXECUTE FUNCTION change_requests_no_delete();

CREATE TABLE config_baseline (
    id              integer NOT NULL PRIMARY KEY CHECK (id = 1),
    canonical_json  text    NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
