//! The signing workflow of issue 20, attacked from outside a real `relay-edge` process (local
//! provider) as a script against its API would: every bypass seen live (approval without
//! review, review and approval by one person, approval twice, rejection after approval,
//! approval of a superseded capture, signing a record whose stored bytes were altered with
//! sqlite3, two approvals raced in parallel) is refused with a 409 naming the rule and leaves a
//! `SIGNATURE_REFUSED` event; the review status and the signers' queues list the right records.
//!
//! Before issue 20 every one of these signatures answered 201.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PASSWORD: &str = "workflow process password";
const TEMPORARY: &str = "temporary harbour violet 17";
const TRAIL: &str = "ws-sign";

fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    http_json(port, method, path, token, body.as_ref())
}

fn login(port: u16, user: &str) -> String {
    common::login(port, user, PASSWORD)
}

/// The bootstrap admin (ada), a second admin (bob, the one administrator the bootstrap lets
/// ada create alone) and three reviewers; the tokens of ada and the reviewers. Reviewers sign,
/// so each is created by a four-eyes `account_create` change ada proposes and bob approves
/// (issue 18).
fn accounts(port: u16) -> (String, String, String, String) {
    common::register_admin(port, "ada", "Ada Admin", PASSWORD);
    let admin = login(port, "ada");
    let (s, v) = call(
        port,
        "POST",
        "/api/v1/accounts",
        Some(&admin),
        Some(
            json!({"username": "bob", "full_name": "Bob Second Admin", "password": TEMPORARY, "role": "admin", "reason": "four-eyes"}),
        ),
    );
    assert_eq!(s, 201, "{v}");
    first_password_change(port, "bob", TEMPORARY);
    let bob = login(port, "bob");
    for (user, name) in [
        ("rita", "Rita Reviewer"),
        ("ali", "Ali Approver"),
        ("bo", "Bo Second"),
    ] {
        create_with_four_eyes(
            port, &admin, &bob, PASSWORD, user, name, "reviewer", PASSWORD,
        );
    }
    (
        admin,
        login(port, "rita"),
        login(port, "ali"),
        login(port, "bo"),
    )
}

/// `user` replaces the temporary password an administrator gave them with [`PASSWORD`].
fn first_password_change(port: u16, user: &str, temporary: &str) {
    let (s, v) = call(
        port,
        "POST",
        "/api/v1/auth/password",
        None,
        Some(json!({"username": user, "old_password": temporary, "new_password": PASSWORD})),
    );
    assert_eq!(s, 204, "{v}");
}

/// Every record of the trail as the API shows it, with optional extra query text.
fn events(port: u16, token: &str, extra: &str) -> Vec<Value> {
    let (s, v) = call(
        port,
        "GET",
        &format!("/api/v1/events?trail={TRAIL}&limit=500{extra}"),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

/// Waits until the trail holds `n` records of `kind` for `subject`.
fn wait_for(port: u16, token: &str, kind: &str, subject: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found: Vec<Value> = events(port, token, &format!("&kind={kind}"))
            .into_iter()
            .filter(|e| e["subject"] == subject)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {kind} of {subject} after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sign(port: u16, token: &str, record: &Value, meaning: &str) -> (u16, Value) {
    call(
        port,
        "POST",
        "/api/v1/signatures",
        Some(token),
        Some(json!({
            "trail_id": TRAIL,
            "target_checksum": record["checksum"],
            "meaning": meaning,
            "reason": format!("{meaning} in the workflow test"),
            "password": PASSWORD,
        })),
    )
}

fn refused(answer: (u16, Value), code: &str) {
    assert_eq!(answer.0, 409, "expected 409 {code}: {}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(rule: "),
        "the refusal names its rule: {}",
        answer.1
    );
}

fn signed(answer: (u16, Value)) {
    assert_eq!(answer.0, 201, "{}", answer.1);
}

fn status_of(port: u16, token: &str, record: &Value) -> String {
    let (s, v) = call(
        port,
        "GET",
        &format!("/api/v1/events/{TRAIL}/{}", record["chain_seq"]),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["review_status"].as_str().unwrap().to_owned()
}

/// The seqs of `list`, ascending.
fn seqs(list: &[Value]) -> Vec<u64> {
    let mut out: Vec<u64> = list
        .iter()
        .map(|e| e["chain_seq"].as_u64().unwrap())
        .collect();
    out.sort_unstable();
    out
}

/// Starts `relay-edge` on `root`'s `data` and `inbox` (created if missing), logging to
/// `log_name`; the process and its API port.
fn start_edge(root: &Path, log_name: &str) -> (Proc, u16) {
    let data = root.join("data");
    let inbox = root.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let log = root.join(log_name);
    let mut edge = Proc::new(
        "relay-edge",
        edge_bin(),
        &[
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--watch",
            inbox.to_str().unwrap(),
            "--device",
            TRAIL,
            "--settle-ms",
            "100",
            "--listen",
            "127.0.0.1:0",
        ],
        &log,
    );
    edge.start();
    let port = edge_port(&mut edge, &log);
    (edge, port)
}

// REQ: R4.2
#[test]
fn every_bypass_of_the_signing_workflow_is_refused_from_outside_and_the_queues_are_right() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let inbox = root.path().join("inbox");
    let (mut edge, port) = start_edge(root.path(), "edge.log");
    let (admin, rita, ali, bo) = accounts(port);
    for name in ["a.fid", "b.fid", "c.fid", "d.fid"] {
        std::fs::write(inbox.join(name), format!("spectrum {name}")).unwrap();
    }
    let a = wait_for(port, &admin, "FILE_CREATED", "a.fid", 1).remove(0);
    let b = wait_for(port, &admin, "FILE_CREATED", "b.fid", 1).remove(0);
    let c = wait_for(port, &admin, "FILE_CREATED", "c.fid", 1).remove(0);
    let d = wait_for(port, &admin, "FILE_CREATED", "d.fid", 1).remove(0);
    assert_eq!(status_of(port, &rita, &a), "pending");

    // Approval without review; review and approval by one person; a meaning twice.
    refused(sign(port, &rita, &a, "approved"), "review_required");
    signed(sign(port, &rita, &a, "reviewed"));
    assert_eq!(status_of(port, &ali, &a), "reviewed");
    refused(sign(port, &rita, &a, "approved"), "approver_is_reviewer");
    refused(sign(port, &rita, &a, "reviewed"), "already_signed");
    // The approver's queue holds `a`; the reviewer's does not (she cannot approve it).
    assert!(seqs(&events(port, &ali, "&queue=true")).contains(&a["chain_seq"].as_u64().unwrap()));
    assert!(!seqs(&events(port, &rita, "&queue=true")).contains(&a["chain_seq"].as_u64().unwrap()));
    signed(sign(port, &ali, &a, "approved"));
    // Approved twice; rejected after approval; reviewed after approval.
    refused(sign(port, &bo, &a, "approved"), "already_approved");
    refused(sign(port, &bo, &a, "rejected"), "already_approved");
    refused(sign(port, &bo, &a, "reviewed"), "already_approved");
    assert_eq!(status_of(port, &bo, &a), "approved");

    // A capture superseded by a later FILE_MODIFIED cannot be approved, names the newer
    // record, and can still be reviewed and rejected.
    signed(sign(port, &rita, &b, "reviewed"));
    std::fs::write(inbox.join("b.fid"), "spectrum b.fid, reprocessed").unwrap();
    let newer = wait_for(port, &admin, "FILE_MODIFIED", "b.fid", 1).remove(0);
    assert_eq!(status_of(port, &ali, &b), "superseded");
    let answer = sign(port, &ali, &b, "approved");
    let newer_seq = newer["chain_seq"].as_u64().unwrap();
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("#{newer_seq}")),
        "the refusal names the newer record: {}",
        answer.1
    );
    refused(answer, "superseded");
    signed(sign(port, &ali, &b, "rejected"));
    assert_eq!(status_of(port, &ali, &b), "rejected");
    refused(sign(port, &bo, &b, "approved"), "rejected_final");

    // Two approvals raced in parallel: exactly one lands, whatever the timing.
    signed(sign(port, &rita, &c, "reviewed"));
    let racers: Vec<_> = [ali.clone(), bo.clone()]
        .into_iter()
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || sign(port, &t, &c, "approved"))
        })
        .collect();
    let answers: Vec<(u16, Value)> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        answers.iter().filter(|a| a.0 == 201).count(),
        1,
        "exactly one parallel approval lands: {answers:?}"
    );
    let loser = answers.into_iter().find(|a| a.0 != 201).unwrap();
    refused(loser, "already_approved");
    let approvals = events(port, &admin, "&kind=SIGNATURE")
        .into_iter()
        .filter(|s| {
            s["payload"]["target_checksum"] == c["checksum"]
                && s["payload"]["meaning"] == "approved"
        })
        .count();
    assert_eq!(approvals, 1, "one approval of c is chained");

    // Status filter and queues.
    let pending = seqs(&events(port, &rita, "&status=pending"));
    assert_eq!(pending, vec![d["chain_seq"].as_u64().unwrap(), newer_seq]);
    let approved = seqs(&events(port, &rita, "&status=APPROVED,rejected"));
    assert_eq!(
        approved,
        seqs(&[a.clone(), b.clone(), c.clone()]),
        "approved and rejected records"
    );
    assert_eq!(
        seqs(&events(port, &bo, "&queue=true")),
        vec![d["chain_seq"].as_u64().unwrap(), newer_seq],
        "bo's queue: the pending records to review"
    );
    let (s, v) = call(
        port,
        "GET",
        &format!("/api/v1/events?trail={TRAIL}&queue=true"),
        Some(&admin),
        None,
    );
    assert_eq!(s, 403, "an administrator has no signing queue: {v}");
    let (s, v) = call(
        port,
        "GET",
        &format!("/api/v1/events?trail={TRAIL}&status=done"),
        Some(&rita),
        None,
    );
    assert_eq!(s, 400, "an unknown status is refused: {v}");

    // Every refusal above is a chained SIGNATURE_REFUSED naming the rule.
    let (s, v) = call(
        port,
        "GET",
        "/api/v1/events?trail=_relay&kind=SIGNATURE_REFUSED&limit=500",
        Some(&admin),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let codes: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "review_required",
            "approver_is_reviewer",
            "already_signed",
            "already_approved",
            "already_approved",
            "already_approved",
            "superseded",
            "rejected_final",
            "already_approved",
        ],
        "one SIGNATURE_REFUSED per refusal, in order"
    );

    // A record whose stored bytes were altered (sqlite3 on the live database, the append-only
    // triggers dropped first) is never signed.
    tamper_payload(&data, d["chain_seq"].as_u64().unwrap());
    refused(sign(port, &rita, &d, "reviewed"), "target_not_intact");
    edge.stop();
}

/// Rewrites the payload of record `seq` in the live `relay.db`, as an attacker with a shell
/// and sqlite3 would (dropping the append-only triggers first).
fn tamper_payload(data: &Path, seq: u64) {
    let db = data.join("relay.db");
    let triggers = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log';")
        .output();
    let Ok(out) = triggers else {
        // No sqlite3 CLI: do the same through sqlx.
        tamper_with_sqlx(&db, seq);
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sql = String::from("PRAGMA busy_timeout = 10000;");
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        sql.push_str(&format!("DROP TRIGGER \"{name}\";"));
    }
    sql.push_str(&format!(
        "UPDATE event_log SET payload = replace(payload, '\"size\":', '\"size\":9') WHERE trail_id = '{TRAIL}' AND chain_seq = {seq};"
    ));
    let done = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

fn tamper_with_sqlx(db: &Path, seq: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for n in names {
            sqlx::query(&format!("DROP TRIGGER \"{n}\""))
                .execute(&pool)
                .await
                .unwrap();
        }
        let done = sqlx::query(
            "UPDATE event_log SET payload = replace(payload, '\"size\":', '\"size\":9') \
             WHERE trail_id = ? AND chain_seq = ?",
        )
        .bind(TRAIL)
        .bind(seq as i64)
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
        pool.close().await;
    });
}

// REQ: R4.2
#[test]
fn the_workflow_changes_only_through_an_approved_four_eyes_change_at_the_next_start() {
    let root = tempfile::tempdir().unwrap();
    let (mut edge, port) = start_edge(root.path(), "edge-1.log");
    let (ada, rita, _, _) = accounts(port);
    // The second administrator `accounts` made approves the change.
    let bob = login(port, "bob");
    std::fs::write(root.path().join("inbox").join("x.fid"), "spectrum x").unwrap();
    let x = wait_for(port, &ada, "FILE_CREATED", "x.fid", 1).remove(0);

    // A value that is not a policy is refused at proposal.
    let (s, v) = call(
        port,
        "POST",
        "/api/v1/changes",
        Some(&ada),
        Some(json!({"setting": "signing_workflow", "value": "lenient", "reason": "typo"})),
    );
    assert_eq!(s, 422, "{v}");
    let (s, v) = call(
        port,
        "POST",
        "/api/v1/changes",
        Some(&ada),
        Some(json!({"setting": "signing_workflow", "value": "relaxed", "reason": "pilot lab"})),
    );
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // Proposed only: still strict.
    refused(sign(port, &rita, &x, "approved"), "review_required");
    let (s, v) = call(
        port,
        "POST",
        &format!("/api/v1/changes/{id}/approve"),
        Some(&bob),
        Some(json!({"password": PASSWORD, "reason": "agreed with QA"})),
    );
    assert!(s == 200 || s == 201, "{s} {v}");
    // Approved, but applied at the next start only.
    refused(sign(port, &rita, &x, "approved"), "review_required");
    edge.stop();

    let (mut edge, port) = start_edge(root.path(), "edge-2.log");
    let rita = login(port, "rita");
    signed(sign(port, &rita, &x, "approved"));
    // Finality holds whatever the policy.
    refused(sign(port, &rita, &x, "rejected"), "already_approved");
    edge.stop();
}
