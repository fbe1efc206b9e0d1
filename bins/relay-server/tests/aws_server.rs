#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `relay-server run` with `[storage] provider = "aws"`, end to end: records in Postgres (as on
//! RDS, migrated by `relay-server migrate`), secrets in Secrets Manager, anchors in an S3 bucket
//! with Object Lock, and a real `relay-edge` forwarding its trail. The edge's key file is
//! imported into Secrets Manager as is (the documented procedure), the ingest token is created
//! by `relay-server ingest-token` in Secrets Manager. At the end the Postgres replica equals the
//! edge's trail, the server's own `_relay` records are signed with its key from Secrets Manager,
//! the edge trail's head is anchored under Object Lock, and `relay-server verify` passes.
//!
//! Needs Postgres (`RELAY_TEST_PG_ADMIN_DSN`), S3 with Object Lock (`RELAY_TEST_S3_ENDPOINT`)
//! and Secrets Manager (`RELAY_TEST_AWS_ENDPOINT`), both defaulting to moto on 127.0.0.1:5000:
//! skipped with a printed reason when one is absent, a failure under `RELAY_REQUIRE_SERVICES=1`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay_aws::{AwsConfig, SecretsManagerProvider};
use relay_domain::ports::{Notary, RecordStore, RecordStoreExt, SecretName, SecretProvider};
use relay_domain::{Record, TrailId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

mod common;

use common::{edge_bin, reserve_port, server_bin};

const EDGE: &str = "ws-aws";

fn skip_or_fail(reason: String) {
    common::skip_or_fail(
        "relay-server run on AWS (Postgres + S3 Object Lock + Secrets Manager)",
        &reason,
    );
}

/// The `RELAY_AWS_*` variables the server gets, pointing at the test services.
struct AwsEnv {
    vars: Vec<(String, String)>,
}

impl AwsEnv {
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let mut vars = vec![
            (
                "RELAY_AWS_REGION".to_owned(),
                var("RELAY_TEST_S3_REGION", "us-east-1"),
            ),
            (
                "RELAY_AWS_S3_ENDPOINT".to_owned(),
                var("RELAY_TEST_S3_ENDPOINT", "http://127.0.0.1:5000"),
            ),
            (
                "RELAY_AWS_SECRETS_ENDPOINT".to_owned(),
                var("RELAY_TEST_AWS_ENDPOINT", "http://127.0.0.1:5000"),
            ),
            (
                "RELAY_AWS_ACCESS_KEY".to_owned(),
                var("RELAY_TEST_S3_ACCESS_KEY", "test"),
            ),
            (
                "RELAY_AWS_SECRET_KEY".to_owned(),
                var("RELAY_TEST_S3_SECRET", "test"),
            ),
            // Test buckets on a real service can be emptied a day later.
            ("RELAY_AWS_ANCHOR_RETENTION_DAYS".to_owned(), "1".to_owned()),
            ("RELAY_AWS_OBJECT_RETENTION_DAYS".to_owned(), "1".to_owned()),
        ];
        // Empty endpoints mean AWS itself.
        vars.retain(|(_, v)| !v.is_empty());
        Self { vars }
    }

    fn apply(&self, cmd: &mut Command) {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }

    /// The adapter settings the server builds from the same variables.
    fn config(&self, bucket: &str, secrets_prefix: &str) -> AwsConfig {
        AwsConfig::from_vars("RELAY_AWS_", |k| match k {
            "RELAY_AWS_BUCKET" => Some(bucket.to_owned()),
            "RELAY_AWS_SECRETS_PREFIX" => Some(secrets_prefix.to_owned()),
            _ => self
                .vars
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone()),
        })
        .unwrap()
    }
}

fn spawn(bin: &Path, args: &[&str], log: &Path, aws: Option<&AwsEnv>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RELAY_LOG", "info")
        .env_remove("RELAY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(aws) = aws {
        aws.apply(&mut cmd);
    }
    cmd.spawn().unwrap()
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "process did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn edge_records(data_dir: &Path) -> Vec<Record> {
    let adapters = relay_local::LocalAdapters::open(data_dir).await.unwrap();
    let mut out = Vec::new();
    adapters
        .record_store
        .for_each_record(&TrailId::new(EDGE).unwrap(), 1000, |r| {
            out.push(r);
            true
        })
        .await
        .unwrap();
    adapters.record_store.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_aws_keeps_secrets_in_secrets_manager_and_anchors_under_object_lock() {
    let admin_dsn = std::env::var("RELAY_TEST_PG_ADMIN_DSN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin_options = PgConnectOptions::from_str(&admin_dsn).unwrap();
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect()).await {
            Ok(Ok(c)) => c,
            other => return skip_or_fail(format!("Postgres unreachable: {other:?}")),
        };
    let suffix = format!(
        "{}{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    );
    let env = AwsEnv::from_env();
    let bucket = format!("relay-srv-aws-{suffix}");
    let secrets_prefix = format!("relay-test/srv-{suffix}/");
    let config = env.config(&bucket, &secrets_prefix);
    let client = relay_aws::S3Client::new(&config.s3_config()).await;
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .sdk()
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send(),
    )
    .await;
    match created {
        Ok(Ok(_)) => {}
        other => {
            return skip_or_fail(format!(
                "S3 endpoint {:?} unusable: {other:?}",
                config.s3_endpoint_value()
            ));
        }
    }
    let secrets = SecretsManagerProvider::connect(&config).await.unwrap();
    if let Err(e) = tokio::time::timeout(
        Duration::from_secs(10),
        secrets.client().list_secrets().max_results(1).send(),
    )
    .await
    {
        return skip_or_fail(format!(
            "Secrets Manager at {:?} unusable: {e:?}",
            config.secrets_endpoint_value()
        ));
    }

    let db = format!("relay_srv_aws_{suffix}");
    let role = format!("relay_app_aws_{suffix}");
    let app_dsn = common::migrated_database(&mut admin, &admin_options, &db, &role).await;

    let root = tempfile::TempDir::new().unwrap();
    let (server_dir, edge_dir, inbox, logs) = (
        root.path().join("server"),
        root.path().join("edge"),
        root.path().join("inbox"),
        root.path().join("logs"),
    );
    for d in [&server_dir, &edge_dir, &inbox, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let server_port = reserve_port();
    let server_conf = root.path().join("server.toml");
    std::fs::write(
        &server_conf,
        format!(
            "data_dir = {server_dir:?}\ndevice = \"server-aws\"\nlisten = \"127.0.0.1:{server_port}\"\n\
             ingest_edges = [\"{EDGE}\"]\nnotary_interval_secs = 1\n[storage]\nprovider = \"aws\"\n\
             pg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\naws_secrets_prefix = \"{secrets_prefix}\"\n"
        ),
    )
    .unwrap();

    // The ingest token is created in Secrets Manager.
    let token_out = {
        let mut cmd = Command::new(server_bin());
        cmd.args([
            "ingest-token",
            "--config",
            server_conf.to_str().unwrap(),
            "--edge",
            EDGE,
        ]);
        env.apply(&mut cmd);
        cmd.output().unwrap()
    };
    assert!(
        token_out.status.success(),
        "{}",
        String::from_utf8_lossy(&token_out.stderr)
    );
    let token = String::from_utf8(token_out.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let stored_token = secrets
        .current(&SecretName::new(format!("ingest-token.{EDGE}")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        relay_api::token_text(&stored_token),
        token,
        "the ingest token lives in Secrets Manager"
    );

    let edge_conf = root.path().join("edge.toml");
    std::fs::write(
        &edge_conf,
        format!(
            "data_dir = {edge_dir:?}\nwatch = [{inbox:?}]\ndevice = \"{EDGE}\"\nlisten = \"127.0.0.1:0\"\n\
             settle_ms = 150\nrescan_secs = 1\nforward_url = \"http://127.0.0.1:{server_port}\"\n\
             forward_token = \"{token}\"\nforward_batch = 3\n"
        ),
    )
    .unwrap();
    let mut edge = spawn(
        &edge_bin(),
        &["run", "--config", edge_conf.to_str().unwrap()],
        &logs.join("edge.log"),
        None,
    );
    let key = edge_dir.join("secrets/trail-hmac.json");
    let start = Instant::now();
    while !key.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "edge key never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Import the edge's key file into Secrets Manager as is.
    let edge_key_name = SecretName::new(format!("trail-hmac.{EDGE}")).unwrap();
    secrets
        .client()
        .create_secret()
        .name(secrets.secret_id(&edge_key_name))
        .secret_string(std::fs::read_to_string(&key).unwrap())
        .send()
        .await
        .unwrap();

    let mut server = spawn(
        &server_bin(),
        &["run", "--config", server_conf.to_str().unwrap()],
        &logs.join("server.log"),
        Some(&env),
    );
    for i in 0..5 {
        std::fs::write(inbox.join(format!("s-{i:02}.fid")), format!("spectrum {i}")).unwrap();
    }

    let replica_store =
        relay_aws::PgRecordStore::connect(&relay_aws::PgConfig::new(app_dsn.clone()))
            .await
            .unwrap();
    let trail = TrailId::new(EDGE).unwrap();
    let notary = relay_aws::open(&config).await.unwrap().notary;
    let start = Instant::now();
    loop {
        let edge_trail = edge_records(&edge_dir).await;
        let captured = edge_trail
            .iter()
            .filter(|r| r.kind.as_str() == "FILE_CREATED")
            .count();
        let replica_head = replica_store
            .head(&trail)
            .await
            .unwrap()
            .map_or(0, |h| h.seq.get());
        let anchored = notary
            .anchors(&trail)
            .await
            .unwrap()
            .iter()
            .any(|a| a.seq.get() == replica_head);
        if captured == 5 && replica_head == edge_trail.len() as u64 && anchored {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no catch-up: captured {captured}/5, replica head {replica_head}, edge head {}, \
             head anchored: {anchored}; logs in {}",
            edge_trail.len(),
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop(&mut edge);
    stop(&mut server);

    let edge_trail = edge_records(&edge_dir).await;
    let mut replica = Vec::new();
    replica_store
        .for_each_record(&trail, 1000, |r| {
            replica.push(r);
            true
        })
        .await
        .unwrap();
    assert_eq!(
        replica, edge_trail,
        "the Postgres replica must equal the edge trail record for record"
    );

    // The server's own journal is signed with its key from Secrets Manager, and anchored.
    let server_key = secrets.current(&SecretName::trail_hmac()).await.unwrap();
    let relay_trail = TrailId::new("_relay").unwrap();
    let mut journal = Vec::new();
    replica_store
        .for_each_record(&relay_trail, 1000, |r| {
            journal.push(r);
            true
        })
        .await
        .unwrap();
    assert!(!journal.is_empty(), "the server appends its own events");
    assert!(
        journal.iter().all(|r| &r.key_id == server_key.id()),
        "every _relay record is signed with the server key from Secrets Manager"
    );
    assert!(
        !notary.anchors(&relay_trail).await.unwrap().is_empty(),
        "the server's journal is anchored too"
    );
    assert!(notary.anchored_trails().await.unwrap().contains(&trail));

    let verify = {
        let mut cmd = Command::new(server_bin());
        cmd.args(["verify", "--config", server_conf.to_str().unwrap()])
            .env("RELAY_LOG", "error");
        env.apply(&mut cmd);
        cmd.output().unwrap()
    };
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "relay-server verify: {stdout} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.contains(&format!("OK      {EDGE}")), "{stdout}");
    assert!(stdout.contains("OK      _relay"), "{stdout}");

    replica_store.close().await;
    admin
        .execute(format!("DROP DATABASE \"{db}\" WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
        .await
        .unwrap();
}
