-- Time of receipt on the server of record (issue 21): when the server stored each run of
-- forwarded records, outside the chained bytes (ReceiptStore). Append-only like event_log: a
-- receipt is evidence of custody, so it is never updated or deleted, and the first receipt of a
-- seq stays (an overlapping receipt is refused).
CREATE TABLE receipts (
    trail_id     TEXT    NOT NULL,
    first_seq    INTEGER NOT NULL CHECK (first_seq >= 1),
    last_seq     INTEGER NOT NULL CHECK (last_seq >= first_seq),
    received_at  TEXT    NOT NULL,
    edge         TEXT    NOT NULL CHECK (edge <> ''),
    PRIMARY KEY (trail_id, first_seq)
);

CREATE TRIGGER receipts_no_update
BEFORE UPDATE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'receipts are append-only');
END;

CREATE TRIGGER receipts_no_delete
BEFORE DELETE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'receipts are append-only');
END;

CREATE TRIGGER receipts_no_overlap
BEFORE INSERT ON receipts
WHEN EXISTS (SELECT 1 FROM receipts WHERE trail_id = NEW.trail_id
             AND first_seq <= NEW.last_seq AND last_seq >= NEW.first_seq)
BEGIN
    SELECT RAISE(ABORT, 'receipts: the range overlaps a stored receipt');
END;
