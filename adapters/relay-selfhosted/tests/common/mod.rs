//! Test services: a fresh Postgres database and role per test, and a fresh S3 bucket with
//! Object Lock, found through environment variables. A missing service skips the whole test
//! with a printed `SKIP` line, or fails it under `RELAY_REQUIRE_SERVICES=1`.
//!
//! | variable                        | default                                         |
//! |---------------------------------|-------------------------------------------------|
//! | `RELAY_TEST_PG_ADMIN_DSN`       | `postgres://postgres@127.0.0.1:5432/postgres`   |
//! | `RELAY_TEST_PG_APP_PASSWORD`    | none (trust auth); set to give the role a password |
//! | `RELAY_TEST_S3_ENDPOINT`        | `http://127.0.0.1:5000` (empty: AWS default)    |
//! | `RELAY_TEST_S3_ACCESS_KEY`/`_SECRET` | `test` / `test` (both empty: default chain) |
//! | `RELAY_TEST_S3_REGION`          | `us-east-1`                                     |

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use relay_conformance::TamperOutcome;
use relay_conformance::notary::AnchorTamperProbe;
use relay_domain::TrailId;
use relay_domain::error::BoxError;
use relay_selfhosted::{
    MigrateConfig, PgConfig, PgRecordStore, S3Client, S3Config, S3Credentials, S3Notary, migrate,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Executor};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{n}", std::process::id(), nanos % 1_000_000_000_000)
}

fn required() -> bool {
    std::env::var("RELAY_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, when services are required, fails.
fn unavailable(suite: &str, reason: String) {
    if required() {
        panic!("{suite}: required service unavailable (RELAY_REQUIRE_SERVICES=1): {reason}");
    }
    eprintln!("SKIP {suite}: {reason}");
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The SQLSTATE of a driver error, if the server sent one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A migrated database of its own, a runtime role of its own, and the owner's connection.
/// Both are dropped when the harness is.
pub struct PgHarness {
    /// The admin DSN of the server.
    pub admin_dsn: String,
    /// The test database.
    pub database: String,
    /// The runtime role created by `migrate`.
    pub app_role: String,
    /// DSN of the test database as the admin (owner).
    pub owner_dsn: String,
    /// DSN of the test database as the runtime role.
    pub app_dsn: String,
    /// A pool on the test database as the admin (owner of event_log).
    pub owner: PgPool,
}

impl PgHarness {
    /// A fresh database migrated through the admin DSN, or `None` (skipped) when Postgres is
    /// unreachable.
    pub async fn start(suite: &str) -> Option<Self> {
        let admin_dsn = var_or(
            "RELAY_TEST_PG_ADMIN_DSN",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let admin_options = PgConnectOptions::from_str(&admin_dsn).expect("admin DSN parses");
        let mut admin =
            match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect())
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    unavailable(suite, format!("Postgres at {}: {e}", redact(&admin_dsn)));
                    return None;
                }
                Err(_) => {
                    unavailable(
                        suite,
                        format!("Postgres at {}: connect timed out", redact(&admin_dsn)),
                    );
                    return None;
                }
            };
        let suffix = unique_suffix();
        let database = format!("relay_test_{suffix}");
        let app_role = format!("relay_app_{suffix}");
        admin
            .execute(format!("CREATE DATABASE \"{database}\"").as_str())
            .await
            .expect("create test database");
        let host = admin_options.get_host().to_owned();
        let port = admin_options.get_port();
        let owner_options = admin_options.clone().database(&database);
        let owner_dsn = owner_options.to_url_lossy().to_string();
        let report = migrate(&MigrateConfig::new(owner_dsn.clone()).app_role(app_role.clone()))
            .await
            .expect("migrate the test database");
        assert!(report.role_created);
        let app_dsn = match std::env::var("RELAY_TEST_PG_APP_PASSWORD") {
            Ok(password) => {
                admin
                    .execute(
                        format!(
                            "ALTER ROLE \"{app_role}\" PASSWORD '{}'",
                            password.replace('\'', "''")
                        )
                        .as_str(),
                    )
                    .await
                    .expect("set the app role's password");
                format!("postgres://{app_role}:{password}@{host}:{port}/{database}")
            }
            Err(_) => format!("postgres://{app_role}@{host}:{port}/{database}"),
        };
        let owner = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(owner_options)
            .await
            .expect("owner pool");
        Some(Self {
            admin_dsn,
            database,
            app_role,
            owner_dsn,
            app_dsn,
            owner,
        })
    }

    /// The runtime store, connected as the runtime role.
    pub async fn store(&self) -> PgRecordStore {
        PgRecordStore::connect(&self.app_config())
            .await
            .expect("connect the runtime store")
    }

    /// Runtime settings for this database.
    pub fn app_config(&self) -> PgConfig {
        PgConfig::new(self.app_dsn.clone()).lock_timeout(Duration::from_secs(30))
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let admin_dsn = self.admin_dsn.clone();
        let database = self.database.clone();
        let role = self.app_role.clone();
        // Drop runs inside the test's runtime: clean up from a thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let mut admin = PgConnectOptions::from_str(&admin_dsn)?.connect().await?;
                admin
                    .execute(
                        format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)").as_str(),
                    )
                    .await?;
                admin
                    .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
                    .await?;
                Ok::<_, sqlx::Error>(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.database),
            Err(_) => eprintln!("cleanup of test database {} panicked", self.database),
        }
    }
}

fn redact(dsn: &str) -> String {
    relay_selfhosted::redact_dsn(dsn)
}

/// A fresh bucket on the S3-compatible endpoint.
pub struct S3Harness {
    /// The client, built as production builds it.
    pub client: S3Client,
    /// A bucket created for this test, with Object Lock when asked.
    pub bucket: String,
}

/// The S3 settings of the test endpoint.
pub fn s3_config() -> S3Config {
    let endpoint = var_or("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000");
    let access = var_or("RELAY_TEST_S3_ACCESS_KEY", "test");
    let secret = var_or("RELAY_TEST_S3_SECRET", "test");
    let mut config = S3Config::new(var_or("RELAY_TEST_S3_REGION", "us-east-1"))
        .timeouts(
            Duration::from_secs(3),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .max_attempts(3);
    if !endpoint.is_empty() {
        config = config.endpoint(endpoint).force_path_style(true);
    }
    if !access.is_empty() && !secret.is_empty() {
        config = config.credentials(S3Credentials::Static {
            access_key_id: access,
            secret_access_key: secret,
        });
    }
    config
}

impl S3Harness {
    /// A new bucket (Object Lock enabled when `object_lock`), or `None` (skipped) when the
    /// endpoint is unreachable.
    pub async fn start(suite: &str, object_lock: bool) -> Option<Self> {
        let config = s3_config();
        let client = S3Client::new(&config).await;
        let bucket = format!("relay-test-{}", unique_suffix().replace('_', "-"));
        let mut req = client
            .sdk()
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(object_lock);
        if config.region_value() != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(config.region_value()))
                    .build(),
            );
        }
        if let Err(e) = req.send().await {
            let reason = format!(
                "S3 endpoint {}: create bucket failed: {}",
                config.endpoint_value().unwrap_or("aws"),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
            if matches!(
                e,
                aws_sdk_s3::error::SdkError::DispatchFailure(_)
                    | aws_sdk_s3::error::SdkError::TimeoutError(_)
            ) {
                unavailable(suite, reason);
                return None;
            }
            panic!("{reason}");
        }
        Some(Self { client, bucket })
    }
}

/// Tries to remove or unlock stored anchors with the notary's own credentials.
pub struct AnchorTamper<'a> {
    /// The notary under test (for its bucket and key layout).
    pub notary: &'a S3Notary,
    /// The client.
    pub client: S3Client,
}

#[async_trait]
impl AnchorTamperProbe for AnchorTamper<'_> {
    async fn try_rewrite(&self, trail: &TrailId) -> Result<TamperOutcome, BoxError> {
        let listed = self
            .client
            .sdk()
            .list_object_versions()
            .bucket(self.notary.bucket())
            .prefix(self.notary.trail_prefix(trail))
            .send()
            .await?;
        let mut refusals = Vec::new();
        for v in listed.versions() {
            let (key, version) = (
                v.key().unwrap_or_default(),
                v.version_id().unwrap_or_default(),
            );
            for bypass in [false, true] {
                match self
                    .client
                    .sdk()
                    .delete_object()
                    .bucket(self.notary.bucket())
                    .key(key)
                    .version_id(version)
                    .bypass_governance_retention(bypass)
                    .send()
                    .await
                {
                    Ok(_) => return Ok(TamperOutcome::Applied),
                    Err(e) => refusals.push(format!(
                        "delete of the locked version (bypass governance: {bypass}): HTTP {:?} {:?}",
                        e.raw_response().map(|r| r.status().as_u16()),
                        e.code()
                    )),
                }
            }
        }
        if refusals.is_empty() {
            return Err("no anchor versions to tamper with".into());
        }
        Ok(TamperOutcome::Refused(refusals.join("; ")))
    }
}
