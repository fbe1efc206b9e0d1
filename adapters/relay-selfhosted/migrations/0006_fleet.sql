-- The fleet of a server of record (issue 24, FleetStore): one-time enrollment codes, the edges
-- allowed to forward, and the last health each edge reported per trail. Mutable state, like
-- accounts: the runtime role gets SELECT, INSERT, UPDATE here (never DELETE). Every replica on
-- this database sees an enrollment or a revocation at once. Every enrollment and revocation is
-- also a chained event, so the trail stays the record of what happened.

-- Codes are kept as the SHA-256 digest of their text only; used_at is set once, by the single
-- redemption that wins (SELECT ... FOR UPDATE; an expired code is never marked used).
CREATE TABLE enrollment_codes (
    digest      bytea NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    edge        text  COLLATE "C" NOT NULL,
    issued_by   text  NOT NULL,
    issued_at   text  NOT NULL,
    expires_at  text  NOT NULL,
    used_at     text
);

-- trails is a JSON array of trail ids; revoked_at and revoked_by are set while revoked only.
CREATE TABLE fleet_edges (
    edge         text COLLATE "C" NOT NULL PRIMARY KEY,
    state        text NOT NULL CHECK (state IN ('enrolled', 'revoked')),
    trails       text NOT NULL DEFAULT '[]',
    enrolled_at  text NOT NULL,
    enrolled_by  text NOT NULL,
    revoked_at   text,
    revoked_by   text,
    CHECK ((state = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- The newest report per (edge, trail), replaced by the next.
CREATE TABLE edge_reports (
    edge             text   COLLATE "C" NOT NULL,
    trail_id         text   COLLATE "C" NOT NULL,
    seen_at          text   NOT NULL,
    last_batch_at    text,
    local_head_seq   bigint CHECK (local_head_seq >= 0),
    local_head_at    text,
    stored_head_seq  bigint NOT NULL CHECK (stored_head_seq >= 0),
    stored_head_at   text,
    skew_ms          bigint,
    version          text,
    refused          text,
    PRIMARY KEY (edge, trail_id)
);
