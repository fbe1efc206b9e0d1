//! `relay-edge` as a process: the notary scheduler anchors trail heads, and `verify` catches an
//! attacker who holds the HMAC key and re-chains a rewritten trail, or truncates it; `export`
//! writes a sealed package that verifies and is recorded as an EXPORT event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use relay_domain::chain::checksum_of;
use relay_domain::ports::{RecordStoreExt, SecretName, SecretProviderExt};
use relay_domain::{Record, Subject, TrailId};
use relay_local::{FileSecretProvider, SqliteRecordStore};

const BIN: &str = env!("CARGO_BIN_EXE_relay-edge");
const TRAIL: &str = "nmr-notary";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(data: &Path, watch: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(watch)
        .args([
            "--device",
            TRAIL,
            "--project",
            "PRJ-N",
            "--settle-ms",
            "200",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .env("RELAY_LOG", "warn")
        .env("RELAY_NOTARY_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn relay-edge")
}

fn stop(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "relay-edge did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
}

fn records(data: &Path, trail: &str) -> Vec<Record> {
    rt().block_on(async {
        let store =
            SqliteRecordStore::open_file(&data.join("relay.db"), Duration::from_secs(10), 1)
                .await
                .unwrap();
        let mut out = Vec::new();
        store
            .for_each_record(&TrailId::new(trail).unwrap(), 1000, |r| {
                out.push(r);
                true
            })
            .await
            .unwrap();
        store.close().await;
        out
    })
}

fn run_cli(args: &[&str], data: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap()
}

/// Captures `n` files with a 1 s notary interval, lets the scheduler run, stops.
fn captured(n: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, watch) = (tmp.path().join("data"), tmp.path().join("in"));
    std::fs::create_dir_all(&watch).unwrap();
    let child = start(&data, &watch);
    for i in 0..n {
        std::fs::write(watch.join(format!("f{i}.fid")), format!("content {i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("relay.db").exists() || records(&data, TRAIL).len() < n {
        assert!(Instant::now() < deadline, "capture timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);
    (tmp, data)
}

fn anchored_seqs(data: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(data.join(format!("anchors/{TRAIL}.jsonl"))).unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// As an attacker with file access: drop the append-only triggers and run `statements`.
fn attack(data: &Path, statements: Vec<(String, Vec<String>)>) {
    rt().block_on(async {
        let url = format!("sqlite://{}", data.join("relay.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for t in triggers {
            sqlx::query(&format!("DROP TRIGGER \"{t}\""))
                .execute(&pool)
                .await
                .unwrap();
        }
        for (sql, binds) in statements {
            let mut q = sqlx::query(&sql);
            for b in binds {
                q = q.bind(b);
            }
            assert_eq!(q.execute(&pool).await.unwrap().rows_affected(), 1, "{sql}");
        }
        pool.close().await;
    });
}

// REQ: R7.2
#[test]
fn rechaining_a_rewritten_trail_with_the_real_key_is_caught_by_the_anchors() {
    let (_tmp, data) = captured(8);
    let anchors = anchored_seqs(&data);
    let head = records(&data, TRAIL).len() as u64;
    assert_eq!(
        *anchors.iter().max().unwrap(),
        head,
        "the head is anchored: {anchors:?}"
    );
    assert_eq!(run_cli(&["verify"], &data).status.code(), Some(0));

    // The attacker reads the real key and rewrites record 3, re-chaining everything after it.
    let key = rt().block_on(async {
        let secrets = FileSecretProvider::open(data.join("secrets")).unwrap();
        let ring = secrets.key_ring(&SecretName::trail_hmac()).await.unwrap();
        ring.current().unwrap().clone()
    });
    let mut all = records(&data, TRAIL);
    let mut statements = Vec::new();
    let mut prev = all[1].checksum;
    for r in all.iter_mut().skip(2) {
        if r.chain_seq.get() == 3 {
            r.subject = Some(Subject::new("forged.fid").unwrap());
        }
        r.prev_checksum = prev;
        r.checksum = checksum_of(r, &key);
        prev = r.checksum;
        statements.push((
            "UPDATE event_log SET subject = ?, prev_checksum = ?, checksum = ? \
             WHERE trail_id = ? AND chain_seq = ?"
                .to_owned(),
            vec![
                r.subject.as_ref().unwrap().as_str().to_owned(),
                r.prev_checksum.to_hex(),
                r.checksum.to_hex(),
                TRAIL.to_owned(),
                r.chain_seq.get().to_string(),
            ],
        ));
    }
    attack(&data, statements);
    // HMACs and links all hold again; only the anchors can tell.
    let first_anchor_at_or_after_3 = *anchors.iter().filter(|s| **s >= 3).min().unwrap();
    let out = run_cli(&["verify"], &data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "BROKEN  {TRAIL}: first bad chain_seq {first_anchor_at_or_after_3}: differs from the notarized anchor"
        )),
        "{stdout}"
    );
}

// REQ: R7.2
#[test]
fn truncating_below_an_anchored_head_is_caught() {
    let (_tmp, data) = captured(5);
    let head = records(&data, TRAIL).len() as u64;
    assert!(anchored_seqs(&data).contains(&head));
    attack(
        &data,
        (head - 1..=head)
            .map(|seq| {
                (
                    "DELETE FROM event_log WHERE trail_id = ? AND chain_seq = ?".to_owned(),
                    vec![TRAIL.to_owned(), seq.to_string()],
                )
            })
            .collect(),
    );
    let out = run_cli(&["verify"], &data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("first bad chain_seq {head}: trail truncated")),
        "{stdout}"
    );
}

// REQ: R1.6, R5.2
#[test]
fn export_writes_a_sealed_package_recorded_in_relay_with_the_startup_fingerprint() {
    let (tmp, data) = captured(4);
    let out_dir = tmp.path().join("package");
    let out = Command::new(BIN)
        .args(["export", "--trail", TRAIL, "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out_dir)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exported 4 records"), "{stdout}");

    let open = |name: &str| -> Option<Box<dyn std::io::BufRead + Send>> {
        let p = out_dir.join(name);
        p.is_file().then(|| {
            Box::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
                as Box<dyn std::io::BufRead + Send>
        })
    };
    let report = relay_domain::export::verify_package(
        relay_domain::export::PackageInputs {
            manifest: std::fs::read(out_dir.join("manifest.json")).unwrap(),
            anchors: std::fs::read(out_dir.join("anchors.json")).ok(),
            records_jsonl: open("records.jsonl"),
            records_csv: open("records.csv"),
            records_json: open("records.json"),
            proofs_jsonl: open("proofs.jsonl"),
            receipts_jsonl: None,
            access_review_json: None,
            other_entries: Vec::new(),
        },
        &relay_domain::export::VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.holds(), "{:#?}", report.findings);

    let relay = records(&data, "_relay");
    let startup = relay.iter().find(|r| r.kind.as_str() == "STARTUP").unwrap();
    let posture = startup.payload.to_value().unwrap();
    assert_eq!(
        posture["export_seal"]["fingerprint"].as_str().unwrap(),
        report.fingerprint,
        "the package is sealed by the key announced at start-up"
    );
    let export = relay.iter().find(|r| r.kind.as_str() == "EXPORT").unwrap();
    assert_eq!(export.subject.as_ref().unwrap().as_str(), TRAIL);
    assert_eq!(export.payload.to_value().unwrap()["records"], 4);
    // The trail still verifies after the export (the EXPORT event chained onto _relay).
    assert_eq!(run_cli(&["verify"], &data).status.code(), Some(0));
    // A second export to the same place is refused.
    let again = Command::new(BIN)
        .args(["export", "--trail", TRAIL, "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out_dir)
        .env("RELAY_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}
