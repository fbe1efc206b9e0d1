-- The fleet of a server of record (issue 24, FleetStore): one-time enrollment codes, the edges
-- allowed to forward, and the last health each edge reported per trail. Mutable state, like
-- accounts: codes are marked used, edges enrolled and revoked, reports replaced in place. Every
-- enrollment and revocation is also a chained event, so the trail stays the record of what
-- happened.

-- Codes are kept as the SHA-256 digest of their text only; used_at is set once, by the single
-- redemption that wins (an expired code is never marked used).
CREATE TABLE enrollment_codes (
    digest      BLOB NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    edge        TEXT NOT NULL,
    issued_by   TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- trails is a JSON array of trail ids; revoked_at and revoked_by are set while revoked only.
CREATE TABLE fleet_edges (
    edge         TEXT NOT NULL PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('enrolled', 'revoked')),
    trails       TEXT NOT NULL DEFAULT '[]',
    enrolled_at  TEXT NOT NULL,
    enrolled_by  TEXT NOT NULL,
    revoked_at   TEXT,
    revoked_by   TEXT,
    CHECK ((state = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- The newest report per (edge, trail), replaced by the next.
CREATE TABLE edge_reports (
    edge             TEXT    NOT NULL,
    trail_id         TEXT    NOT NULL,
    seen_at          TEXT    NOT NULL,
    last_batch_at    TEXT,
    local_head_seq   INTEGER CHECK (local_head_seq >= 0),
    local_head_at    TEXT,
    stored_head_seq  INTEGER NOT NULL CHECK (stored_head_seq >= 0),
    stored_head_at   TEXT,
    skew_ms          INTEGER,
    version          TEXT,
    refused          TEXT,
    PRIMARY KEY (edge, trail_id)
);
