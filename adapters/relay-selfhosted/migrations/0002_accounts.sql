-- Relay accounts (R3) for the review API on the server of record. Mutable state, unlike
-- event_log: rows are updated in place (role, status, password, lockout counters), with an
-- optimistic version. Every change is also a chained event in _relay, so the trail stays the
-- record of what happened. The runtime role gets SELECT, INSERT, UPDATE here (never DELETE).
CREATE TABLE accounts (
    username             text    COLLATE "C" NOT NULL PRIMARY KEY,
    full_name            text    NOT NULL,
    role                 text    NOT NULL CHECK (role IN ('operator', 'reviewer', 'admin', 'auditor')),
    password_hash        text    NOT NULL,
    totp_secret          text,
    disabled             boolean NOT NULL DEFAULT false,
    password_changed_at  text,
    failed_attempts      bigint  NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    failure_window_start text,
    locked_until         text,
    created_at           text    NOT NULL,
    version              bigint  NOT NULL DEFAULT 0 CHECK (version >= 0)
);
