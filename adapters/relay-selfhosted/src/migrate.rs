//! Schema migrations and the runtime role's grants, run only through the admin DSN (R1.4).

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use thiserror::Error;

use crate::config::{MigrateConfig, redact_dsn};

/// The schema, one entry per version (version = index + 1). Applied in order, each once.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "event_log with append-only triggers",
        include_str!("../migrations/0001_event_log.sql"),
    ),
    (
        "accounts (review API on the server of record)",
        include_str!("../migrations/0002_accounts.sql"),
    ),
    (
        "change_requests and config_baseline (four-eyes changes on the server of record)",
        include_str!("../migrations/0003_change_requests.sql"),
    ),
    (
        "receipts (time of receipt of forwarded records on the server of record)",
        include_str!("../migrations/0004_receipts.sql"),
    ),
    (
        "accounts: password history and last login (Part 11 identity controls)",
        include_str!("../migrations/0005_account_history.sql"),
    ),
    (
        "enrollment_codes, fleet_edges and edge_reports (the fleet of the server of record)",
        include_str!("../migrations/0006_fleet.sql"),
    ),
];

/// The advisory lock namespace of this adapter (`'RELA'`), so its locks never meet another
/// application's. Key 0 is the migration lock; trails use `hashtext(trail_id)`.
pub(crate) const LOCK_NAMESPACE: i32 = 0x5245_4C41;

/// Why `migrate` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The admin DSN does not parse (the DSN itself is not repeated: it may hold a password).
    #[error("the admin DSN is invalid")]
    InvalidDsn(#[source] sqlx::Error),
    /// The role name is not a plain lower-case identifier.
    #[error(
        "runtime role name {0:?} is refused: use 1-63 lower-case letters, digits and '_', \
         starting with a letter or '_'"
    )]
    InvalidRoleName(String),
    /// The admin and runtime roles are the same, or the runtime role is privileged.
    #[error("two-role custody refused: {0}")]
    Custody(String),
    /// The database holds a schema from a newer relay.
    #[error("database schema version {found} is newer than this relay knows ({known})")]
    NewerSchema {
        /// The stored version.
        found: i32,
        /// The newest version this build knows.
        known: usize,
    },
    /// A statement failed.
    #[error("postgres ({target}): {op} failed")]
    Sql {
        /// The redacted DSN.
        target: String,
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Versions applied by this run, in order (empty when the schema was current).
    pub applied: Vec<i32>,
    /// The schema version now.
    pub schema_version: i32,
    /// The runtime role that was granted SELECT, INSERT.
    pub app_role: String,
    /// Whether the role was created by this run.
    pub role_created: bool,
}

/// Validates a role name we are about to interpolate (quoted) into DDL.
fn check_role_name(role: &str) -> Result<(), MigrateError> {
    let mut chars = role.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok_first && ok_rest && role.len() <= 63 && !role.starts_with("pg_") {
        Ok(())
    } else {
        Err(MigrateError::InvalidRoleName(role.to_owned()))
    }
}

/// A double-quoted identifier (names are validated first; quoting is belt and braces).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Brings the schema up to date and (re)grants the runtime role, in one transaction, through
/// the admin DSN:
///
/// 1. applies missing migrations (an advisory lock serializes concurrent runs);
/// 2. creates the runtime role (LOGIN, no other attributes; set its password or certificate
///    mapping out of band) if it does not exist, and refuses a superuser or BYPASSRLS role;
/// 3. grants it `SELECT, INSERT` on `event_log` and `receipts`; `SELECT, INSERT, UPDATE` (never `DELETE`) on
///    the mutable state next to it (`accounts`, `change_requests`, `config_baseline`,
///    `enrollment_codes`, `fleet_edges`, `edge_reports`); `SELECT`
///    on the version table, `EXECUTE` on the append lock function, `USAGE` on the schema and
///    `CONNECT` on the database, after revoking anything else it held on the tables.
///
/// The admin role owns the tables; the runtime role can never UPDATE, DELETE or TRUNCATE them
/// (SQLSTATE 42501), and even the owner is stopped by the triggers (P0001).
pub async fn migrate(config: &MigrateConfig) -> Result<MigrateReport, MigrateError> {
    let role = config.app_role_value();
    check_role_name(role)?;
    let target = redact_dsn(config.admin_dsn());
    let sql = |op: &'static str| {
        let target = target.clone();
        move |source| MigrateError::Sql { target, op, source }
    };
    let options = PgConnectOptions::from_str(config.admin_dsn())
        .map_err(MigrateError::InvalidDsn)?
        .application_name("gims-relay-migrate");
    let mut conn: PgConnection = options
        .connect()
        .await
        .map_err(sql("connect with the admin DSN"))?;
    let admin: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .map_err(sql("read the admin role"))?;
    if admin == role {
        return Err(MigrateError::Custody(format!(
            "the admin DSN connects as {role:?}, the runtime role itself; migrate with a \
             separate owner role"
        )));
    }

    let mut tx = conn.begin().await.map_err(sql("begin migration"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_NAMESPACE)
        .execute(&mut *tx)
        .await
        .map_err(sql("take the migration lock"))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS relay_schema_migrations ( \
             version     integer PRIMARY KEY, \
             description text NOT NULL, \
             applied_at  timestamptz NOT NULL DEFAULT now()); \
         REVOKE ALL ON relay_schema_migrations FROM PUBLIC;",
    )
    .execute(&mut *tx)
    .await
    .map_err(sql("create the version table"))?;
    let found: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(version), 0) FROM relay_schema_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("read the schema version"))?;
    let known = MIGRATIONS.len();
    if usize::try_from(found).unwrap_or(usize::MAX) > known {
        return Err(MigrateError::NewerSchema { found, known });
    }
    let mut applied = Vec::new();
    for (version, (description, text)) in (1i32..)
        .zip(MIGRATIONS.iter())
        .skip_while(|(v, _)| *v <= found)
    {
        sqlx::raw_sql(text)
            .execute(&mut *tx)
            .await
            .map_err(sql("apply a migration"))?;
        sqlx::query("INSERT INTO relay_schema_migrations (version, description) VALUES ($1, $2)")
            .bind(version)
            .bind(*description)
            .execute(&mut *tx)
            .await
            .map_err(sql("record the schema version"))?;
        tracing::info!(version, description, "applied migration");
        applied.push(version);
    }

    let existing: Option<(bool, bool)> =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("look up the runtime role"))?;
    let role_created = match existing {
        Some((true, _)) | Some((_, true)) => {
            return Err(MigrateError::Custody(format!(
                "runtime role {role:?} is a superuser or bypasses row security; it would \
                 ignore every grant"
            )));
        }
        Some(_) => false,
        None => {
            sqlx::raw_sql(&format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
                 NOBYPASSRLS",
                ident(role)
            ))
            .execute(&mut *tx)
            .await
            .map_err(sql("create the runtime role"))?;
            true
        }
    };
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("read the database name"))?;
    let schema: String = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = 'event_log'::regclass",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(sql("find the schema of event_log"))?;
    let r = ident(role);
    sqlx::raw_sql(&format!(
        "REVOKE ALL ON event_log, relay_schema_migrations, accounts, change_requests, \
             config_baseline, receipts, enrollment_codes, fleet_edges, edge_reports FROM {r}; \
         GRANT SELECT, INSERT ON event_log, receipts TO {r}; \
         GRANT SELECT, INSERT, UPDATE ON accounts, change_requests, config_baseline, \
             enrollment_codes, fleet_edges, edge_reports TO {r}; \
         GRANT SELECT ON relay_schema_migrations TO {r}; \
         GRANT EXECUTE ON FUNCTION event_log_lock_head(integer, text) TO {r}; \
         GRANT USAGE ON SCHEMA {schema} TO {r}; \
         GRANT CONNECT ON DATABASE {db} TO {r};",
        schema = ident(&schema),
        db = ident(&database),
    ))
    .execute(&mut *tx)
    .await
    .map_err(sql("grant the runtime role"))?;
    tx.commit().await.map_err(sql("commit migration"))?;
    conn.close()
        .await
        .map_err(sql("close the admin connection"))?;
    tracing::info!(target = %target, app_role = role, role_created, "schema migrated and runtime role granted");
    let schema_version = i32::try_from(known).unwrap_or(i32::MAX);
    Ok(MigrateReport {
        applied,
        schema_version,
        app_role: role.to_owned(),
        role_created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        for good in ["relay_app", "_r", "app2"] {
            assert!(check_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Relay",
            "a-b",
            "a\"; DROP TABLE x; --",
            "pg_monitor",
            "1a",
            &"a".repeat(64),
        ] {
            assert!(check_role_name(bad).is_err(), "{bad}");
        }
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
