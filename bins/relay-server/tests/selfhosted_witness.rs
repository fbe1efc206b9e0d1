#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Witnessed heads (issue 19) on the self-hosted provider, attacked as someone holding the
//! Postgres owner role and the S3 credentials of the notary bucket would, against a real
//! `relay-server run` process: records in a fresh Postgres database migrated by
//! `relay-server migrate` (runtime on the SELECT/INSERT-only app role), anchors as Object Lock
//! (COMPLIANCE) objects in an S3 bucket, the seal key and trail key as files in the server's
//! `data_dir/secrets`. No edge: the server's own `_relay` trail (STARTUP, ACCESS, ANCHORED...)
//! is the victim. The server runs twice with `notary_interval_secs = 1` and is stopped with
//! SIGTERM (a final notarization happens at shutdown). Each run's first anchor of `_relay` is an
//! object of its own; the second run logs in again after it, so its later anchors are in round
//! objects (`anchors/~rounds/`, one object per round for every trail that moved), and the
//! newest anchor every attack below works against is one in a round. `relay-server verify`
//! passes on what it leaves, then:
//!
//! 1. **Tail deletion as the owner.** The owner's DELETE is refused by the trigger; the owner
//!    disables `event_log_no_delete`, deletes `_relay`'s records from the newest anchored seq
//!    on, and enables the trigger again. The chain left is a valid shorter chain and every
//!    append-only control is back in place, but `verify` exits 1: `_relay` is BROKEN, truncated
//!    under a notary anchor that covers a missing seq. A trigger dropped and left dropped is a
//!    `MISSING append-only enforcement` line naming it.
//! 2. **Deleting an anchor through S3.** Deleting a round object, or the newest anchor object's
//!    locked version (with and without the governance bypass), is refused by Object Lock COMPLIANCE (`AccessDenied`); the
//!    version is still there and `verify` still exits 0.
//! 3. **A forged anchor that shrinks the tree.** Object Lock allows new names, so the attacker
//!    writes a new, locked anchor object (correct name, COMPLIANCE retention as the notary
//!    writes them) saying `_relay` went back to 3 records: record 3's true checksum, the true
//!    RFC 9162 root and frontier over records 1..=3 (read from Postgres), a checkpoint signed
//!    with the server's real seal key (read from its secrets), "linked" to the newest anchor
//!    with an empty proof. Every field checks against the records, so only the consistency
//!    check can refuse it: `verify` exits 1 naming the link that does not hold.
//!
//! Needs Postgres (`RELAY_TEST_PG_ADMIN_DSN`) and an S3 endpoint with Object Lock
//! (`RELAY_TEST_S3_ENDPOINT`, default moto on 127.0.0.1:5000): skipped with a printed reason
//! when either is absent, a failure under `RELAY_REQUIRE_SERVICES=1`.

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use relay_domain::ports::{Anchor, Notary, SecretName, SecretProvider};
use relay_domain::{Record, TrailId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

mod common;

use common::{Proc, S3Env, reserve_port, server_bin, wait_healthy};

const PASSWORD: &str = "correct horse battery";
/// The nonce of the forged anchor's object name (any 16 hex digits make a valid name).
const FORGED_NONCE: u64 = 0x00f0_26ed_5eed_0001;
/// The seq the forged anchor claims `_relay` shrank to.
const FORGED_SEQ: u64 = 3;

/// A `relay-server` on a migrated Postgres database and an Object Lock bucket, run twice and
/// stopped; everything an attack needs to reach the stores behind its back.
struct Deployment {
    root: tempfile::TempDir,
    server_dir: PathBuf,
    server_conf: PathBuf,
    s3: S3Env,
    client: relay_selfhosted::S3Client,
    bucket: String,
    notary: relay_selfhosted::S3Notary,
    app_dsn: String,
    admin: sqlx::PgConnection,
    admin_options: PgConnectOptions,
    db: String,
    role: String,
}

impl Deployment {
    /// Sets the stores up and runs the server twice (`None`: a service is absent, skipped).
    async fn run(test: &str) -> Option<Self> {
        let admin_dsn = std::env::var("RELAY_TEST_PG_ADMIN_DSN")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin_options = PgConnectOptions::from_str(&admin_dsn).unwrap();
        let mut admin =
            match tokio::time::timeout(Duration::from_secs(5), admin_options.clone().connect())
                .await
            {
                Ok(Ok(c)) => c,
                other => {
                    common::skip_or_fail(test, &format!("Postgres unreachable: {other:?}"));
                    return None;
                }
            };
        let s3 = S3Env::from_env();
        let suffix = common::unique_suffix();
        let bucket = format!("relay-wit-{suffix}");
        if let Err(why) = s3.create_locked_bucket(&bucket).await {
            common::skip_or_fail(test, &why);
            return None;
        }
        let vars = s3.vars();
        let client = relay_selfhosted::S3Client::new(&relay_selfhosted::S3Config::from_vars(
            "RELAY_S3_",
            |k| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.clone())
            },
        ))
        .await;
        // The notary as the server opens it (same bucket, prefix and retention), for reading.
        let notary = relay_selfhosted::S3Notary::open(
            &client,
            relay_selfhosted::S3NotaryOptions::new(bucket.clone()),
        )
        .await
        .unwrap();

        let db = format!("relay_wit_{suffix}");
        let role = format!("relay_app_wit_{suffix}");
        let app_dsn = common::migrated_database(&mut admin, &admin_options, &db, &role).await;

        let root = tempfile::TempDir::new().unwrap();
        let server_dir = root.path().join("server");
        std::fs::create_dir_all(&server_dir).unwrap();
        let port = reserve_port();
        let server_conf = root.path().join("server.toml");
        std::fs::write(
            &server_conf,
            format!(
                "data_dir = {server_dir:?}\ndevice = \"server-wit\"\nlisten = \"127.0.0.1:{port}\"\n\
                 notary_interval_secs = 1\n[storage]\nprovider = \"selfhosted\"\n\
                 pg_dsn = \"{app_dsn}\"\ns3_bucket = \"{bucket}\"\n"
            ),
        )
        .unwrap();
        let deployment = Self {
            root,
            server_dir,
            server_conf,
            s3,
            client,
            bucket,
            notary,
            app_dsn,
            admin,
            admin_options,
            db,
            role,
        };
        deployment.run_twice(port).await;
        Some(deployment)
    }

    /// Two runs of the server, each writing `_relay` events (start, an account, logins) and
    /// waiting until the notary holds an anchor of `_relay` past what the previous run left,
    /// then stopped with SIGTERM.
    async fn run_twice(&self, port: u16) {
        let mut server = Proc::new(
            "relay-server",
            server_bin(),
            &["run", "--config", self.server_conf.to_str().unwrap()],
            &self.root.path().join("server.log"),
        );
        for (k, v) in self.s3.vars() {
            server = server.env(k, &v);
        }
        let mut anchored = 0;
        for round in 0..2 {
            server.start();
            wait_healthy(port, &mut server);
            if round == 0 {
                common::register_admin(port, "ada", "Ada Admin", PASSWORD);
            }
            // A login appends to `_relay`, which the notary then has to anchor (the session
            // itself is not needed).
            common::login(port, "ada", PASSWORD);
            let start = Instant::now();
            while self.newest_anchored_seq().await <= anchored {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no anchor of _relay past seq {anchored} in round {round}: {}",
                    server.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if round == 1 {
                // `_relay` moves again after this run's first anchor (stored alone): the anchor
                // that covers it is made by a later round of the same scheduler, so it goes into
                // a round object (`anchors/~rounds/`).
                let seen = self.newest_anchored_seq().await;
                common::login(port, "ada", PASSWORD);
                let start = Instant::now();
                while self.newest_anchored_seq().await <= seen {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "no anchor of _relay past seq {seen} after the second login: {}",
                        server.log_tail()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            server.stop();
            anchored = self.newest_anchored_seq().await;
        }
    }

    /// The highest seq the notary holds an anchor of `_relay` at (0: none).
    async fn newest_anchored_seq(&self) -> u64 {
        self.relay_anchors()
            .await
            .iter()
            .map(|a| a.seq.get())
            .max()
            .unwrap_or(0)
    }

    /// The anchors of `_relay` in the bucket, read back through the notary with its checks.
    async fn relay_anchors(&self) -> Vec<Anchor> {
        self.notary.anchors(&TrailId::relay()).await.unwrap()
    }

    /// Every record of `_relay` in Postgres, read as the runtime role.
    async fn relay_records(&self) -> Vec<Record> {
        let store = relay_selfhosted::PgRecordStore::connect(&relay_selfhosted::PgConfig::new(
            self.app_dsn.clone(),
        ))
        .await
        .unwrap();
        let records = common::all_records(&store, "_relay").await;
        store.close().await;
        records
    }

    /// A connection to the database as its owner (the role that ran `migrate`).
    async fn owner(&self) -> sqlx::PgConnection {
        self.admin_options
            .clone()
            .database(&self.db)
            .connect()
            .await
            .unwrap()
    }

    /// `relay-server verify`: exit code, stdout, stderr.
    fn verify(&self) -> (Option<i32>, String, String) {
        let out = Command::new(server_bin())
            .args(["verify", "--config", self.server_conf.to_str().unwrap()])
            .envs(self.s3.vars())
            .env("RELAY_LOG", "error")
            .env_remove("RELAY_DATA_DIR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Every version under `_relay`'s anchor prefix, as (key, version id), and how many delete
    /// markers there are.
    async fn relay_anchor_versions(&self) -> (Vec<(String, String)>, usize) {
        let listed = self
            .client
            .sdk()
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(self.notary.trail_prefix(&TrailId::relay()))
            .send()
            .await
            .unwrap();
        assert_ne!(listed.is_truncated(), Some(true), "one page is enough here");
        let mut versions: Vec<(String, String)> = listed
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                )
            })
            .collect();
        versions.sort();
        (versions, listed.delete_markers().len())
    }

    /// Every round object (key, version id) and how many anchors of `_relay` they hold.
    async fn round_versions(&self) -> (Vec<(String, String)>, usize) {
        let listed = self
            .client
            .sdk()
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(self.notary.rounds_prefix())
            .send()
            .await
            .unwrap();
        assert_ne!(listed.is_truncated(), Some(true), "one page is enough here");
        let mut versions = Vec::new();
        let mut relay_anchors = 0;
        for v in listed.versions() {
            let (key, id) = (v.key().unwrap(), v.version_id().unwrap());
            let body = self
                .client
                .sdk()
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let round: relay_domain::ports::AnchorRound = serde_json::from_slice(&body).unwrap();
            relay_anchors += round
                .anchors
                .iter()
                .filter(|a| a.trail_id.is_relay())
                .count();
            versions.push((key.to_owned(), id.to_owned()));
        }
        versions.sort();
        (versions, relay_anchors)
    }

    async fn drop_database(mut self) {
        self.admin
            .execute(format!("DROP DATABASE \"{}\" WITH (FORCE)", self.db).as_str())
            .await
            .unwrap();
        self.admin
            .execute(format!("DROP ROLE IF EXISTS \"{}\"", self.role).as_str())
            .await
            .unwrap();
    }
}

/// The verify line of `_relay` (panics with the whole report when there is none).
fn relay_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.get(8..).is_some_and(|rest| rest.starts_with("_relay:")))
        .unwrap_or_else(|| panic!("no line for _relay: {stdout}"))
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_deleted_by_the_postgres_owner_is_truncated_under_the_s3_anchors() {
    let Some(d) = Deployment::run("witnessed heads on Postgres: tail deletion").await else {
        return;
    };
    let records = d.relay_records().await;
    let head = records.len() as u64;
    let anchors = d.relay_anchors().await;
    let newest = d.newest_anchored_seq().await;
    assert!(anchors.len() >= 2, "{anchors:?}");
    assert!(
        newest >= 2 && newest <= head,
        "newest {newest}, head {head}"
    );
    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(
        relay_line(&stdout).starts_with("OK      _relay:"),
        "{stdout}"
    );

    // The owner's DELETE is refused while the trigger is in place...
    let keep = newest - 1;
    let delete = format!(
        "DELETE FROM event_log WHERE trail_id = '_relay' AND chain_seq > {}",
        i64::try_from(keep).unwrap()
    );
    let mut owner = d.owner().await;
    let refused = owner.execute(delete.as_str()).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("event_log is append-only: DELETE refused"),
        "{refused}"
    );
    assert_eq!(d.relay_records().await.len() as u64, head);
    // ...so the owner switches it off, deletes the tail from the newest anchored seq on, and
    // switches it back on.
    owner
        .execute("ALTER TABLE event_log DISABLE TRIGGER event_log_no_delete")
        .await
        .unwrap();
    let deleted = owner
        .execute(delete.as_str())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, head - keep);
    owner
        .execute("ALTER TABLE event_log ENABLE TRIGGER event_log_no_delete")
        .await
        .unwrap();
    let left = d.relay_records().await;
    assert_eq!(left.as_slice(), &records[..usize::try_from(keep).unwrap()]);

    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    // Every control is back in place, so only the notary's anchor tells.
    assert!(
        stdout.contains("OK      append-only enforcement"),
        "{stdout}"
    );
    assert_eq!(
        relay_line(&stdout),
        format!(
            "BROKEN  _relay: first bad chain_seq {newest}: trail truncated: a notary anchor \
             covers chain_seq {newest}, which is missing"
        ),
        "{stdout}"
    );

    // A trigger dropped and left dropped is named by verify.
    owner
        .execute("DROP TRIGGER event_log_no_delete ON event_log")
        .await
        .unwrap();
    drop(owner);
    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("MISSING append-only enforcement"))
        .collect();
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(missing[0].contains("event_log_no_delete"), "{stdout}");
    assert!(
        !stdout.contains("OK      append-only enforcement"),
        "{stdout}"
    );
    assert!(
        relay_line(&stdout).starts_with("BROKEN  _relay: first bad chain_seq"),
        "{stdout}"
    );

    d.drop_database().await;
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_resist_deletion_and_a_forged_anchor_that_shrinks_the_tree_fails() {
    let Some(d) = Deployment::run("witnessed heads on S3 Object Lock: anchor attacks").await else {
        return;
    };
    let relay = TrailId::relay();
    let records = d.relay_records().await;
    let anchors = d.relay_anchors().await;
    let newest = anchors.last().unwrap().clone();
    assert!(anchors.len() >= 2, "{anchors:?}");
    assert!(
        newest.seq.get() > FORGED_SEQ && newest.seq.get() <= records.len() as u64,
        "newest anchor {}, head {}",
        newest.seq,
        records.len()
    );
    for a in &anchors {
        assert_eq!(a.version, 2, "{a:?}");
        assert!(a.checkpoint.is_some(), "{a:?}");
    }
    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(
        relay_line(&stdout).starts_with("OK      _relay:"),
        "{stdout}"
    );

    // Each anchor is an object of its own (the first of each run) or in a round object (the
    // later ones of a run): one object per round, however many trails it holds.
    let (versions, markers) = d.relay_anchor_versions().await;
    let (rounds, in_rounds) = d.round_versions().await;
    assert!(
        !rounds.is_empty(),
        "the second run's later anchors are in rounds"
    );
    assert_eq!(
        versions.len() + in_rounds,
        anchors.len(),
        "{versions:?} {rounds:?}"
    );
    assert_eq!(markers, 0);
    // Deleting a round object is refused by COMPLIANCE retention like any anchor.
    let sdk = d.client.sdk();
    for (key, version) in &rounds {
        let refused = sdk
            .delete_object()
            .bucket(&d.bucket)
            .key(key)
            .version_id(version)
            .bypass_governance_retention(true)
            .send()
            .await
            .expect_err("deleting a locked round must be refused");
        assert_eq!(
            refused.as_service_error().and_then(|e| e.meta().code()),
            Some("AccessDenied"),
            "{refused:?}"
        );
    }
    assert_eq!(d.round_versions().await.0, rounds);
    // Deleting the newest anchor stored alone is refused the same way.
    let newest_alone = d
        .relay_anchors()
        .await
        .into_iter()
        .rfind(|a| {
            versions.iter().any(|(k, _)| {
                k.contains(&format!(
                    "{:020}-{:020}-",
                    a.seq.get(),
                    a.anchored_at.unix_micros()
                ))
            })
        })
        .unwrap();
    let (key, version) = versions.last().unwrap().clone();
    assert!(
        key.starts_with(&format!(
            "{}{:020}-{:020}-",
            d.notary.trail_prefix(&relay),
            newest_alone.seq.get(),
            newest_alone.anchored_at.unix_micros()
        )),
        "the newest name is the newest anchor's: {key}"
    );
    let locked = sdk
        .head_object()
        .bucket(&d.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        locked.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    for bypass in [false, true] {
        let err = sdk
            .delete_object()
            .bucket(&d.bucket)
            .key(&key)
            .version_id(&version)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .expect_err("deleting a locked anchor version must be refused");
        let code = err
            .as_service_error()
            .and_then(|e| e.meta().code())
            .map(str::to_owned);
        assert_eq!(
            code.as_deref(),
            Some("AccessDenied"),
            "bypass {bypass}: {err:?}"
        );
    }
    assert_eq!(d.relay_anchor_versions().await, (versions.clone(), 0));
    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(
        relay_line(&stdout).starts_with("OK      _relay:"),
        "{stdout}"
    );

    // The forgery: record 3's true checksum and tree head, signed with the real seal key.
    let shrunk = usize::try_from(FORGED_SEQ).unwrap();
    let mut acc = relay_domain::merkle::MerkleAccumulator::new();
    let mut buf = Vec::new();
    for r in &records[..shrunk] {
        acc.push_leaf_hash(relay_domain::merkle::record_leaf_hash(r, &mut buf));
    }
    let secrets = relay_local::FileSecretProvider::open(d.server_dir.join("secrets")).unwrap();
    let seed = secrets.current(&SecretName::export_seal()).await.unwrap();
    let seal = relay_domain::export::SealKey::from_seed(seed.expose()).unwrap();
    let mut forged = newest.clone();
    forged.seq = records[shrunk - 1].chain_seq;
    forged.checksum = records[shrunk - 1].checksum;
    forged.merkle_root = Some(acc.root());
    forged.frontier = acc.frontier().to_vec();
    forged.anchored_at =
        relay_domain::Timestamp::from_unix_micros(newest.anchored_at.unix_micros() + 1_000_000)
            .unwrap();
    forged.consistency = Some(relay_domain::ports::ConsistencyLink {
        from_seq: newest.seq,
        from_root: newest.merkle_root.unwrap(),
        proof: Vec::new(),
    });
    forged.checkpoint =
        Some(relay_domain::anchor_history::expected_checkpoint(&forged).sign(&seal));
    // A new name under the trail's prefix, locked as the notary locks its anchors.
    let forged_key = format!(
        "{}{:020}-{:020}-{FORGED_NONCE:016x}.json",
        d.notary.trail_prefix(&relay),
        forged.seq.get(),
        forged.anchored_at.unix_micros()
    );
    sdk.put_object()
        .bucket(&d.bucket)
        .key(&forged_key)
        .content_type("application/json")
        .if_none_match("*")
        // S3 wants an integrity header on a put with Object Lock (the notary sends Content-MD5).
        .checksum_algorithm("CRC32".into())
        .set_object_lock_mode(locked.object_lock_mode().cloned())
        .set_object_lock_retain_until_date(locked.object_lock_retain_until_date().cloned())
        .body(serde_json::to_vec(&forged).unwrap().into())
        .send()
        .await
        .unwrap();
    // It reads back through the notary's own checks (one version, COMPLIANCE, this trail).
    let after = d.relay_anchors().await;
    assert_eq!(after.len(), anchors.len() + 1);
    assert!(after.contains(&forged), "{after:?}");

    let (code, stdout, stderr) = d.verify();
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    let line = relay_line(&stdout);
    assert!(
        line.starts_with(&format!(
            "BROKEN  _relay: first bad chain_seq {FORGED_SEQ}: 1 notary anchor(s) contradict the \
             trail's anchor history: anchor at chain_seq {FORGED_SEQ}"
        )) && line.contains(&format!(
            "the consistency proof from the anchor at chain_seq {} does not hold: the tree \
             shrank or was rewritten",
            newest.seq
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("OK      append-only enforcement"),
        "{stdout}"
    );

    d.drop_database().await;
}
