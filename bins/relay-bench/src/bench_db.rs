//! A throw-away Postgres database for the Postgres benches (`pg`, `ingest`): created and
//! migrated as the admin, with a runtime role holding SELECT, INSERT only (two-role custody, as
//! in production), plus the baselines' `plain_log` and `plain_copy` tables (the same columns as `event_log`, no
//! triggers, no chain). [`BenchDb::drop_all`] removes database and role.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Executor};

use crate::error::BenchError;

/// The bench database, its owner pool and the runtime role's DSN.
pub(crate) struct BenchDb {
    admin: PgConnection,
    db: String,
    role: String,
    /// The owner (admin) on the bench database: baseline inserts and size queries.
    pub(crate) owner: PgPool,
    /// DSN of the runtime role on the bench database.
    pub(crate) app_dsn: String,
}

impl BenchDb {
    /// Creates `relay_bench_<tag>_<pid>`, migrates it and creates `plain_log`.
    /// A DSN that does not parse, a server that cannot be reached or a role that may not create
    /// databases is an error naming the DSN without its password.
    pub(crate) async fn create(admin_dsn: &str, tag: &str) -> Result<Self, BenchError> {
        let admin_options = PgConnectOptions::from_str(admin_dsn).map_err(|e| {
            BenchError::Usage(format!(
                "the admin DSN (--admin-dsn / RELAY_BENCH_PG_ADMIN_DSN) does not parse: {e}"
            ))
        })?;
        let pg_err = |message: String| BenchError::Postgres {
            dsn: format!(
                "{}:{}, user {}",
                admin_options.get_host(),
                admin_options.get_port(),
                admin_options.get_username()
            ),
            message,
        };
        let mut admin = admin_options
            .clone()
            .connect()
            .await
            .map_err(|e| pg_err(format!("cannot connect: {e}")))?;
        let db = format!("relay_bench_{tag}{}", std::process::id());
        let role = format!("relay_bench_{tag}app_{}", std::process::id());
        admin
            .execute(format!("CREATE DATABASE \"{db}\"").as_str())
            .await
            .map_err(|e| pg_err(format!("cannot create the bench database: {e}")))?;
        let owner_options = admin_options.clone().database(&db);
        relay_selfhosted::migrate(
            &relay_selfhosted::MigrateConfig::new(owner_options.to_url_lossy().to_string())
                .app_role(role.clone()),
        )
        .await
        .unwrap();
        let owner = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(owner_options)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE plain_log (trail_id text COLLATE \"C\" NOT NULL, chain_seq bigint NOT NULL, \
             prev_checksum text NOT NULL, checksum text NOT NULL, kind text NOT NULL, \
             actor text NOT NULL, actor_source text NOT NULL, occurred_at text NOT NULL, \
             recorded_at text NOT NULL, time_source text NOT NULL, device text NOT NULL, \
             project text, subject text, payload text NOT NULL, key_id text NOT NULL, \
             PRIMARY KEY (trail_id, chain_seq)); \
             CREATE TABLE plain_copy (LIKE plain_log INCLUDING ALL)",
        )
        .execute(&owner)
        .await
        .unwrap();
        let app_dsn = format!(
            "postgres://{role}@{}:{}/{db}",
            admin_options.get_host(),
            admin_options.get_port()
        );
        Ok(Self {
            admin,
            db,
            role,
            owner,
            app_dsn,
        })
    }

    /// Closes the owner pool and drops the database and the role.
    pub(crate) async fn drop_all(mut self) {
        self.owner.close().await;
        self.admin
            .execute(format!("DROP DATABASE \"{}\" WITH (FORCE)", self.db).as_str())
            .await
            .unwrap();
        self.admin
            .execute(format!("DROP ROLE \"{}\"", self.role).as_str())
            .await
            .unwrap();
    }
}
