-- Relay accounts (R3). Mutable state: unlike event_log, rows are updated in place (role, status,
-- password, lockout counters). Every change is also written to the chain as an event by the API,
-- so the trail stays the record of what happened; this table is only the current state.
CREATE TABLE accounts (
    username             TEXT    NOT NULL PRIMARY KEY,
    full_name            TEXT    NOT NULL,
    role                 TEXT    NOT NULL CHECK (role IN ('operator', 'reviewer', 'admin', 'auditor')),
    password_hash        TEXT    NOT NULL,
    totp_secret          TEXT,
    disabled             INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    password_changed_at  TEXT,
    failed_attempts      INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    failure_window_start TEXT,
    locked_until         TEXT,
    created_at           TEXT    NOT NULL,
    version              INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0)
);
