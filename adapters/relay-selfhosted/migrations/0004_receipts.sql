-- Time of receipt on the server of record (issue 21): when the server stored each run of
-- forwarded records, outside the chained bytes (ReceiptStore). Append-only like event_log: the
-- runtime role gets SELECT, INSERT only, and triggers refuse UPDATE, DELETE and TRUNCATE even to
-- the owner (P0001). The first receipt of a seq stays: an overlapping insert is refused, under a
-- per-trail advisory lock (namespace 'RECR') so concurrent inserts cannot both pass the check.
CREATE TABLE receipts (
    trail_id     text   COLLATE "C" NOT NULL,
    first_seq    bigint NOT NULL CHECK (first_seq >= 1),
    last_seq     bigint NOT NULL CHECK (last_seq >= first_seq),
    received_at  text   NOT NULL,
    edge         text   NOT NULL CHECK (edge <> ''),
    PRIMARY KEY (trail_id, first_seq)
);

CREATE FUNCTION receipts_no_overlap() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1380270930, hashtext(NEW.trail_id));
    IF EXISTS (SELECT 1 FROM receipts WHERE trail_id = NEW.trail_id
               AND first_seq <= NEW.last_seq AND last_seq >= NEW.first_seq) THEN
        RAISE EXCEPTION 'receipts: seqs %..% of trail % already have a receipt',
            NEW.first_seq, NEW.last_seq, NEW.trail_id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER receipts_no_overlap
    BEFORE INSERT ON receipts
    FOR EACH ROW EXECUTE FUNCTION receipts_no_overlap();

CREATE FUNCTION receipts_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'receipts are append-only' USING ERRCODE = 'P0001';
END;
$$;

CREATE TRIGGER receipts_no_update
    BEFORE UPDATE OR DELETE ON receipts
    FOR EACH ROW EXECUTE FUNCTION receipts_append_only();

CREATE TRIGGER receipts_no_truncate
    BEFORE TRUNCATE ON receipts
    FOR EACH STATEMENT EXECUTE FUNCTION receipts_append_only();
