//! Sealed exports end to end through the real exporter (local adapters on a temp dir) and the
//! domain's package verifier: round trip, tampering with each file, filtered exports with
//! proofs, signatures rendered as manifestations, zip packages, and the scheduler's anchors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use relay_domain::export::{
    ExportFilter, GeneratedBy, PackageInputs, PackageReport, VerifyOptions, verify_package,
};
use relay_domain::ports::{
    Notary, RecordStore, RecordStoreExt, SecretName, SecretProviderExt, TimeSource,
};
use relay_domain::{
    Actor, ActorSource, AppendService, ChainSeq, Device, EventDraft, EventKind, KeyRing, Payload,
    Project, Subject, TrailId,
};
use relay_local::LocalAdapters;
use relay_runtime::export::{ExportFormat, ExportRequest, ExportServices, export_package};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::notary_scheduler::NotaryScheduler;

const TRAIL: &str = "nmr-exp";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    adapters: LocalAdapters,
    appender: Arc<AppendService>,
    journal: Journal,
    keys: KeyRing,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let adapters = LocalAdapters::open(root.join("data")).await.unwrap();
    let secret = adapters
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .unwrap();
    let key = secret.to_trail_key().unwrap();
    let store: Arc<dyn RecordStore> = adapters.record_store.clone();
    let clock: Arc<dyn TimeSource> = adapters.clock.clone();
    let appender = Arc::new(AppendService::new(store, clock, key));
    let journal = Journal::new(
        appender.clone(),
        Metrics::new(),
        Device::new("ws-01").unwrap(),
    );
    let keys = adapters
        .secrets
        .key_ring(&SecretName::trail_hmac())
        .await
        .unwrap();
    Fixture {
        _tmp: tmp,
        root,
        adapters,
        appender,
        journal,
        keys,
    }
}

fn draft(kind: EventKind, project: &str, subject: &str, payload: serde_json::Value) -> EventDraft {
    EventDraft {
        trail_id: TrailId::new(TRAIL).unwrap(),
        kind,
        actor: Some(Actor::new("alice").unwrap()),
        actor_source: ActorSource::OsSession,
        occurred_at: None,
        device: Device::new("ws-01").unwrap(),
        project: Some(Project::new(project).unwrap()),
        subject: Some(Subject::new(subject).unwrap()),
        payload: Payload::from_value(&payload).unwrap(),
    }
}

/// 30 files in two projects, with tricky subjects, and two signatures on record 3.
async fn populate(f: &Fixture) {
    for i in 1..=30u64 {
        let project = if i % 3 == 0 { "PRJ-B" } else { "PRJ-A" };
        let subject = match i {
            5 => "odd, \"quoted\"\nname.fid".to_owned(),
            7 => "=cmd|' /C calc'!A0".to_owned(),
            _ => format!("run/{i}.fid"),
        };
        let r = f
            .appender
            .append(draft(
                EventKind::file_created(),
                project,
                &subject,
                serde_json::json!({"sha256": format!("{i:064x}"), "size": i * 100}),
            ))
            .await
            .unwrap();
        if i == 3 {
            for (meaning, name) in [("reviewed", "Rita Reviewer"), ("approved", "Bob, Approver")] {
                f.appender
                    .append(draft(
                        EventKind::new("SIGNATURE").unwrap(),
                        project,
                        &r.locator(),
                        serde_json::json!({
                            "target_checksum": r.checksum.to_hex(),
                            "meaning": meaning,
                            "reason": "spectrum | matches reference",
                            "printed_name": name,
                        }),
                    ))
                    .await
                    .unwrap();
            }
        }
    }
}

fn request(out: PathBuf) -> ExportRequest {
    ExportRequest {
        trail: TrailId::new(TRAIL).unwrap(),
        from_seq: None,
        to_seq: None,
        filter: ExportFilter::default(),
        format: ExportFormat::Both,
        out,
        zip: false,
        generated_by: GeneratedBy {
            actor: Actor::new("quinn-qa").unwrap(),
            actor_source: ActorSource::OsSession,
            device: Device::new("ws-01").unwrap(),
        },
        access_review: None,
    }
}

async fn export(f: &Fixture, req: &ExportRequest) -> relay_runtime::export::ExportOutcome {
    let services = ExportServices {
        store: f.adapters.record_store.as_ref(),
        notary: f.adapters.notary.as_ref(),
        secrets: f.adapters.secrets.as_ref(),
        keys: &f.keys,
        clock: f.adapters.clock.as_ref(),
        journal: &f.journal,
    };
    export_package(services, req).await.unwrap()
}

fn verify_dir(dir: &Path, keys: Option<&KeyRing>) -> PackageReport {
    verify_dir_on(dir, keys, 2)
}

/// [`verify_dir`] with the per-record work on `threads` threads.
fn verify_dir_on(dir: &Path, keys: Option<&KeyRing>, threads: usize) -> PackageReport {
    let open = |name: &str| -> Option<Box<dyn std::io::BufRead + Send>> {
        let p = dir.join(name);
        p.is_file().then(|| {
            Box::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
                as Box<dyn std::io::BufRead + Send>
        })
    };
    let inputs = PackageInputs {
        manifest: std::fs::read(dir.join("manifest.json")).unwrap(),
        anchors: std::fs::read(dir.join("anchors.json")).ok(),
        records_jsonl: open("records.jsonl"),
        records_csv: open("records.csv"),
        records_json: open("records.json"),
        proofs_jsonl: open("proofs.jsonl"),
        receipts_jsonl: None,
        access_review_json: None,
        other_entries: Vec::new(),
    };
    verify_package(
        inputs,
        &VerifyOptions {
            keys,
            expect_fingerprint: None,
            threads,
        },
    )
    .unwrap()
}

/// A report as comparable text: every finding with its row and seq, then the checks that held.
fn report_text(report: &PackageReport) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| format!("{f} (row {:?}, seq {:?})", f.row, f.seq))
        .chain(
            report
                .passed
                .iter()
                .map(|p| format!("{}: {}", p.check, p.detail)),
        )
        .collect()
}

// REQ: R5.1, R5.3
#[tokio::test]
async fn exports_of_several_pages_verify_whole_filtered_and_ranged_across_page_boundaries() {
    // 9,500 records: the export reads, prepares and writes pages of 4,096 records with three
    // pages in flight (one checked and written, the next prepared, the one after read), so
    // the whole export spans three pages, a ranged one starts and ends inside pages, and
    // SIGNATURE records sit on pages after the records they sign.
    let f = fixture().await;
    let mut signed = Vec::new();
    for i in 0..9_300u64 {
        let project = if i % 4 == 0 { "PRJ-B" } else { "PRJ-A" };
        let r = f
            .appender
            .append(draft(
                EventKind::file_created(),
                project,
                &format!("run-{:02}/f{i:05}, \"q\".fid", i % 40),
                serde_json::json!({"size": i, "sha256": format!("{i:064x}")}),
            ))
            .await
            .unwrap();
        if i % 1_000 == 7 {
            signed.push(r);
        }
    }
    for (n, target) in signed.iter().enumerate() {
        f.appender
            .append(draft(
                EventKind::new("SIGNATURE").unwrap(),
                "PRJ-B",
                &target.locator(),
                serde_json::json!({
                    "target_checksum": target.checksum.to_hex(),
                    "meaning": "reviewed",
                    "reason": format!("batch {n} | ok; \\ fine"),
                    "printed_name": "Rita Reviewer",
                }),
            ))
            .await
            .unwrap();
    }
    let total = 9_300 + signed.len() as u64;

    let whole = request(f.root.join("pages-whole"));
    let outcome = export(&f, &whole).await;
    assert_eq!(outcome.manifest.records, total);
    let report = verify_dir(&whole.out, Some(&f.keys));
    assert!(report.holds(), "{:#?}", report.findings);
    assert_eq!(report.records, total);
    // Every signed record's rows show its signature, wherever the SIGNATURE record sits.
    let csv = std::fs::read_to_string(whole.out.join("records.csv")).unwrap();
    for target in &signed {
        let row = csv
            .lines()
            .find(|l| l.starts_with(&format!("{},", target.chain_seq)))
            .unwrap();
        assert!(row.contains("Rita Reviewer"), "{row}");
    }

    let mut filtered = request(f.root.join("pages-prj-b"));
    filtered.filter.project = Some(Project::new("PRJ-B").unwrap());
    let outcome = export(&f, &filtered).await;
    // Every 4th capture, and the SIGNATURE records (all PRJ-B).
    assert_eq!(outcome.manifest.records, 9_300 / 4 + signed.len() as u64);
    let report = verify_dir(&filtered.out, Some(&f.keys));
    assert!(report.holds(), "{:#?}", report.findings);

    let mut ranged = request(f.root.join("pages-range"));
    ranged.from_seq = Some(ChainSeq::new(4_000).unwrap());
    ranged.to_seq = Some(ChainSeq::new(8_300).unwrap());
    ranged.format = ExportFormat::Json;
    let outcome = export(&f, &ranged).await;
    assert_eq!(outcome.manifest.records, 4_301);
    let report = verify_dir(&ranged.out, None);
    assert!(report.holds(), "{:#?}", report.findings);
    assert_eq!(report.records, 4_301);
}

// REQ: R5.3
#[tokio::test]
async fn packages_larger_than_a_batch_verify_the_same_on_one_thread_and_on_several() {
    // 2,600 records: the walk of records.jsonl reads, prepares and checks them in batches of
    // 1,024 lines, so the faults below sit in the middle of the second batch and at the first
    // line of the third.
    let f = fixture().await;
    let appends: Vec<_> = (0..2_600)
        .map(|i| {
            let appender = f.appender.clone();
            tokio::spawn(async move {
                appender
                    .append(draft(
                        EventKind::file_created(),
                        "PRJ-B",
                        &format!("run-{:02}/f{i:05}.fid", i % 40),
                        serde_json::json!({"size": i, "sha256": format!("{i:064x}")}),
                    ))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for a in appends {
        a.await.unwrap();
    }
    let src = f.root.join("big");
    export(&f, &request(src.clone())).await;
    let one = verify_dir_on(&src, Some(&f.keys), 1);
    assert!(one.holds(), "{:#?}", one.findings);
    assert_eq!(one.records, 2_600);
    for threads in [2, 3, 8] {
        assert_eq!(
            report_text(&verify_dir_on(&src, Some(&f.keys), threads)),
            report_text(&one)
        );
    }
    let lines = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("records.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let edit = |name: &str, row: usize, change: &dyn Fn(&str) -> String| -> PathBuf {
        let dir = f.root.join(name);
        copy_dir(&src, &dir);
        let mut all = lines(&dir);
        all[row - 1] = change(&all[row - 1]);
        std::fs::write(dir.join("records.jsonl"), all.join("\n") + "\n").unwrap();
        dir
    };
    // A record altered in the middle of the second batch (its HMAC no longer holds), a line
    // that does not parse at the first line of the third: the same first bad record, the same
    // report, on any number of threads.
    let altered = edit("altered", 1_500, &|l| {
        l.replacen("\"size\":", "\"size\":1", 1)
    });
    let broken = edit("unparsable", 2_049, &|l| l.replacen('{', "[", 1));
    // A file cut in the middle of line 2,049, the first line of the third batch: nothing
    // after the second batch is a whole line.
    let cut = f.root.join("cut");
    copy_dir(&src, &cut);
    let keep = lines(&cut)[..2_048].join("\n").len() + 1 + 40;
    let bytes = std::fs::read(cut.join("records.jsonl")).unwrap();
    std::fs::write(cut.join("records.jsonl"), &bytes[..keep]).unwrap();
    for (dir, row, check) in [
        (&altered, 1_500, "chain"),
        (&broken, 2_049, "parse"),
        (&cut, 2_049, "parse"),
    ] {
        let one = verify_dir_on(dir, Some(&f.keys), 1);
        let first = one
            .findings
            .iter()
            .find(|x| x.file == "records.jsonl")
            .unwrap_or_else(|| panic!("no records.jsonl finding: {:#?}", one.findings));
        assert_eq!((first.row, first.check), (Some(row), check), "{first}");
        for threads in [2, 3] {
            assert_eq!(
                report_text(&verify_dir_on(dir, Some(&f.keys), threads)),
                report_text(&one),
                "{}",
                dir.display()
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn assert_fails_in(report: &PackageReport, file: &str) {
    assert!(
        !report.holds(),
        "tampered package verified: {:?}",
        report.passed
    );
    assert!(
        report.findings.iter().any(|f| f.file == file),
        "expected a finding in {file}, got {:#?}",
        report.findings
    );
}

// REQ: R4.3, R5.1
#[tokio::test]
async fn whole_trail_export_round_trips_and_renders_signatures() {
    let f = fixture().await;
    populate(&f).await;
    let out = f.root.join("pkg");
    let outcome = export(&f, &request(out.clone())).await;
    assert_eq!(outcome.manifest.records, 32);
    assert!(outcome.anchored_head, "the head had no anchor before");
    assert!(
        !out.join("proofs.jsonl").exists(),
        "whole trail needs no proofs"
    );

    let report = verify_dir(&out, Some(&f.keys));
    assert!(report.holds(), "{:#?}", report.findings);
    assert_eq!(report.records, 32);
    assert!(report.hmac_checked);
    let links_only = verify_dir(&out, None);
    assert!(links_only.holds(), "{:#?}", links_only.findings);

    let csv = std::fs::read_to_string(out.join("records.csv")).unwrap();
    assert!(csv.contains("Rita Reviewer | "), "{csv}");
    assert!(
        csv.contains(" | reviewed | spectrum | matches reference; \"\"Bob, Approver\"\" |")
            || csv.contains("; Bob, Approver | "),
        "{csv}"
    );
    assert!(csv.contains("'=cmd|"), "formula cells are defused: {csv}");
    let json = std::fs::read_to_string(out.join("records.json")).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 32);
    let signed = &rows[2]["signatures"];
    assert_eq!(signed.as_array().unwrap().len(), 2);
    assert_eq!(signed[1]["printed_name"], "Bob, Approver");
    assert_eq!(signed[0]["meaning"], "reviewed");

    // The export is itself an EXPORT event in _relay.
    assert_eq!(outcome.event.kind.as_str(), "EXPORT");
    assert_eq!(outcome.event.trail_id.as_str(), "_relay");
    let p = outcome.event.payload.to_value().unwrap();
    assert_eq!(p["seal_fingerprint"], outcome.fingerprint.as_str());
    assert_eq!(p["records"], 32);

    if let Ok(dest) = std::env::var("RELAY_WRITE_EXPORT_FIXTURE") {
        let dest = PathBuf::from(dest);
        std::fs::create_dir_all(&dest).unwrap();
        for e in std::fs::read_dir(&out).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
        }
        std::fs::copy(
            f.root.join("data/secrets/trail-hmac.json"),
            dest.join("../trail-hmac.json"),
        )
        .unwrap();
    }
}

fn tampered(f: &Fixture, src: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PackageReport {
    let dst = f.root.join(format!("t-{}", rand_name(name)));
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let mut bytes = std::fs::read(dst.join(name)).unwrap();
    edit(&mut bytes);
    std::fs::write(dst.join(name), bytes).unwrap();
    verify_dir(&dst, None)
}

fn rand_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

// REQ: R5.2
#[tokio::test]
async fn every_kind_of_tampering_names_the_file() {
    let f = fixture().await;
    populate(&f).await;
    let out = f.root.join("pkg");
    export(&f, &request(out.clone())).await;

    // One byte of the CSV.
    let r = tampered(&f, &out, "records.csv", |b| {
        let i = b.len() / 2;
        b[i] = if b[i] == b'7' { b'8' } else { b'7' };
    });
    assert_fails_in(&r, "records.csv");
    // A row removed from records.jsonl.
    let r = tampered(&f, &out, "records.jsonl", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 10)
            .map(|(_, l)| l)
            .collect();
        *b = (kept.join("\n") + "\n").into_bytes();
    });
    assert_fails_in(&r, "records.jsonl");
    assert!(
        r.findings
            .iter()
            .any(|x| x.check == "chain" && x.seq == Some(11)),
        "{:#?}",
        r.findings
    );
    // The manifest edited (record count).
    let r = tampered(&f, &out, "manifest.json", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        *b = text
            .replacen("\"records\": 32", "\"records\": 31", 1)
            .into_bytes();
    });
    assert_fails_in(&r, "manifest.json");
    // anchors.json edited.
    let r = tampered(&f, &out, "anchors.json", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        *b = text.replacen("\"seq\": 32", "\"seq\": 31", 1).into_bytes();
    });
    assert_fails_in(&r, "anchors.json");
    // JSON rendering edited consistently with nothing else.
    let r = tampered(&f, &out, "records.json", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        *b = text
            .replacen("Rita Reviewer", "Rita Reviewed", 1)
            .into_bytes();
    });
    assert_fails_in(&r, "records.json");
}

// REQ: R5.1
#[tokio::test]
async fn filtered_and_ranged_exports_carry_proofs_and_verify() {
    let f = fixture().await;
    populate(&f).await;
    let mut req = request(f.root.join("prj-b"));
    req.filter.project = Some(Project::new("PRJ-B").unwrap());
    let outcome = export(&f, &req).await;
    // 10 files of PRJ-B and the two SIGNATURE records on one of them.
    assert_eq!(outcome.manifest.records, 12);
    let report = verify_dir(&req.out, Some(&f.keys));
    assert!(report.holds(), "{:#?}", report.findings);
    assert!(req.out.join("proofs.jsonl").is_file());
    assert!(
        report
            .passed
            .iter()
            .any(|p| p.check == "merkle proofs" && p.detail.starts_with("12 "))
    );

    let mut ranged = request(f.root.join("range"));
    ranged.from_seq = Some(ChainSeq::new(5).unwrap());
    ranged.to_seq = Some(ChainSeq::new(12).unwrap());
    ranged.format = ExportFormat::Csv;
    export(&f, &ranged).await;
    let report = verify_dir(&ranged.out, None);
    assert!(report.holds(), "{:#?}", report.findings);
    assert_eq!(report.records, 8);

    // A proof for another record does not pass.
    let r = tampered(&f, &req.out, "proofs.jsonl", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(0, 1);
        *b = (lines.join("\n") + "\n").into_bytes();
    });
    assert_fails_in(&r, "proofs.jsonl");
}

#[tokio::test]
async fn zip_export_is_one_file_and_an_existing_output_is_refused() {
    let f = fixture().await;
    populate(&f).await;
    let mut req = request(f.root.join("pkg"));
    req.zip = true;
    let outcome = export(&f, &req).await;
    assert_eq!(outcome.path, f.root.join("pkg.zip"));
    assert!(outcome.path.is_file());
    assert!(!f.root.join("pkg").exists());
    let services = ExportServices {
        store: f.adapters.record_store.as_ref(),
        notary: f.adapters.notary.as_ref(),
        secrets: f.adapters.secrets.as_ref(),
        keys: &f.keys,
        clock: f.adapters.clock.as_ref(),
        journal: &f.journal,
    };
    let again = export_package(services, &req).await;
    assert!(
        matches!(
            again,
            Err(relay_runtime::export::ExportError::OutputExists(_))
        ),
        "{again:?}"
    );
}

// REQ: R7.1, R11.3
#[tokio::test]
async fn scheduler_anchors_every_head_with_its_merkle_root_and_only_when_it_moved() {
    let f = fixture().await;
    populate(&f).await;
    let notary: Arc<dyn Notary> = f.adapters.notary.clone();
    let mut scheduler = NotaryScheduler::new(
        f.adapters.record_store.clone(),
        notary.clone(),
        f.adapters.clock.clone(),
        f.journal.clone(),
    );
    let round = scheduler.notarize_all(1).await;
    assert!(round.failures.is_empty(), "{:?}", round.failures);
    let trail = TrailId::new(TRAIL).unwrap();
    let anchors = notary.anchors(&trail).await.unwrap();
    assert_eq!(anchors.len(), 1);
    assert_eq!(anchors[0].seq.get(), 32);
    // The same Merkle root an export computes over 1..=head.
    let outcome = export(&f, &request(f.root.join("pkg"))).await;
    assert!(
        !outcome.anchored_head,
        "the scheduler already anchored the head"
    );
    assert_eq!(
        anchors[0].merkle_root,
        Some(outcome.manifest.head.merkle_root)
    );
    // Nothing moved in the trail: no new anchor for it.
    let round = scheduler.notarize_all(1).await;
    assert!(round.anchored.iter().all(|a| a.trail_id != trail));
    f.appender
        .append(draft(
            EventKind::file_created(),
            "PRJ-A",
            "late.fid",
            serde_json::json!({"size": 1}),
        ))
        .await
        .unwrap();
    let round = scheduler.notarize_all(1).await;
    let new = round.anchored.iter().find(|a| a.trail_id == trail).unwrap();
    assert_eq!(new.seq.get(), 33);
    // A spawned scheduler anchors at shutdown.
    let handle = scheduler.spawn(relay_runtime::notary_scheduler::NotarySchedule::every(
        Duration::from_secs(3600),
    ));
    f.appender
        .append(draft(
            EventKind::file_created(),
            "PRJ-A",
            "later.fid",
            serde_json::json!({"size": 2}),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let last = handle.shutdown().await.unwrap();
    assert!(last.failures.is_empty());
    let anchors = notary.anchors(&trail).await.unwrap();
    assert_eq!(anchors.last().unwrap().seq.get(), 34);

    // A restart: a new scheduler resumes from the newest anchor's frontier and links its
    // first anchor to it; every anchor since the first is linked and signed, and the whole
    // history holds under the seal key (issue 19).
    let seal = Arc::new(relay_domain::export::SealKey::from_seed(&[5; 32]).unwrap());
    let mut restarted = NotaryScheduler::new(
        f.adapters.record_store.clone(),
        notary.clone(),
        f.adapters.clock.clone(),
        f.journal.clone(),
    )
    .with_seal_key(seal.clone());
    f.appender
        .append(draft(
            EventKind::file_created(),
            "PRJ-A",
            "after-restart.fid",
            serde_json::json!({"size": 3}),
        ))
        .await
        .unwrap();
    let round = restarted.notarize_all(1).await;
    assert!(round.failures.is_empty(), "{:?}", round.failures);
    let anchors = notary.anchors(&trail).await.unwrap();
    let newest = anchors.last().unwrap();
    assert_eq!(newest.seq.get(), 35);
    let link = newest
        .consistency
        .as_ref()
        .expect("linked to the anchor before the restart");
    assert_eq!(link.from_seq.get(), 34);
    assert!(newest.checkpoint.is_some());
    for pair in anchors.windows(2) {
        assert_eq!(
            pair[1].consistency.as_ref().map(|l| l.from_seq),
            Some(pair[0].seq),
            "{anchors:?}"
        );
    }
    // The anchors before the restart were signed by no key (this test's first scheduler had
    // none): the whole history holds without the key (links, proofs, frontiers), and the
    // restarted scheduler's anchor holds with it (its signature verified).
    let history = relay_domain::anchor_history::check_anchor_history(&trail, &anchors, None);
    assert!(history.holds(), "{:?}", history.findings);
    assert_eq!(history.proven_prefixes, anchors.len());
    let signed = relay_domain::anchor_history::check_anchor_history(
        &trail,
        &anchors[anchors.len() - 1..],
        Some(&seal.public()),
    );
    assert_eq!(signed.signatures_verified, 1);

    // A restart never resumes from an anchor the stored trail contradicts: with the newest
    // anchor's checksum changed (the record at its seq rewritten, as far as the scheduler can
    // tell), the first round refuses to notarize and names the seq.
    let mut forged = anchors.last().unwrap().clone();
    forged.checksum = relay_domain::Checksum([0x5a; 32]);
    let other_notary = Arc::new(relay_domain::memory::InMemoryNotary::new());
    other_notary.anchor(&forged).await.unwrap();
    let mut misled = NotaryScheduler::new(
        f.adapters.record_store.clone(),
        other_notary.clone(),
        f.adapters.clock.clone(),
        f.journal.clone(),
    );
    match misled.notarize_trail(&trail).await {
        Err(relay_runtime::notary_scheduler::NotarizeError::Broken { seq, .. }) => {
            assert_eq!(seq, forged.seq.get())
        }
        other => panic!("expected Broken at the forged anchor's seq, got {other:?}"),
    }
    assert_eq!(other_notary.anchors(&trail).await.unwrap(), vec![forged]);
}

/// A notary that is unavailable for its first `failures` anchors, then writes to `inner`.
#[derive(Debug)]
struct FlakyNotary {
    inner: relay_local::FsNotary,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl Notary for FlakyNotary {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    fn worm_posture(&self) -> relay_domain::ports::WormPosture {
        self.inner.worm_posture()
    }
    async fn anchor(
        &self,
        anchor: &relay_domain::ports::Anchor,
    ) -> Result<relay_domain::ports::AnchorReceipt, relay_domain::ports::NotaryError> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(relay_domain::ports::NotaryError::Unavailable {
                message: "notary endpoint down".into(),
                source: None,
            });
        }
        self.inner.anchor(anchor).await
    }
    async fn anchors(
        &self,
        trail: &TrailId,
    ) -> Result<Vec<relay_domain::ports::Anchor>, relay_domain::ports::NotaryError> {
        self.inner.anchors(trail).await
    }
    async fn anchored_trails(&self) -> Result<Vec<TrailId>, relay_domain::ports::NotaryError> {
        self.inner.anchored_trails().await
    }
}

// REQ: R1.6, R7.1, R11.2
#[tokio::test]
async fn notary_failures_are_journaled_counted_and_retried_with_backoff() {
    let f = fixture().await;
    populate(&f).await;
    let notary: Arc<dyn Notary> = Arc::new(FlakyNotary {
        inner: relay_local::FsNotary::open(f.root.join("flaky-anchors")).unwrap(),
        failures: std::sync::atomic::AtomicU32::new(3),
    });
    let handle = NotaryScheduler::new(
        f.adapters.record_store.clone(),
        notary.clone(),
        f.adapters.clock.clone(),
        f.journal.clone(),
    )
    .spawn(relay_runtime::notary_scheduler::NotarySchedule {
        interval: Duration::from_secs(3600),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
    });
    let trail = TrailId::new(TRAIL).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while notary.anchors(&trail).await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "never retried to success"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = handle.shutdown().await.unwrap();
    assert!(last.failures.is_empty(), "{:?}", last.failures);
    assert!(
        f.journal
            .metrics()
            .render()
            .contains("relay_notary_failures_total 3")
    );
    let mut failed = Vec::new();
    f.adapters
        .record_store
        .for_each_record(&TrailId::relay(), 100, |r| {
            if r.kind.as_str() == "NOTARY_FAILED" {
                failed.push(r);
            }
            true
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 3, "one NOTARY_FAILED event per failure");
    let p = failed[0].payload.to_value().unwrap();
    assert!(
        p["error"]
            .as_str()
            .unwrap()
            .contains("notary endpoint down"),
        "{p}"
    );
    assert_eq!(failed[1].payload.to_value().unwrap()["attempt"], 2);
    // Every trail head (including _relay's NOTARY_FAILED records) ends up anchored.
    let relay_anchors = notary.anchors(&TrailId::relay()).await.unwrap();
    assert!(!relay_anchors.is_empty());
}

#[tokio::test]
async fn api_exporter_writes_a_sealed_zip_serves_it_and_refuses_path_tricks() {
    use relay_api::{SealedExportError, SealedExportJob, SealedExporter};
    let f = fixture().await;
    populate(&f).await;
    let dir = f.root.join("exports");
    let exporter = relay_runtime::export::DirExporter::new(
        dir.clone(),
        f.adapters.record_store.clone(),
        f.adapters.notary.clone(),
        f.adapters.secrets.clone(),
        f.adapters.clock.clone(),
        f.journal.clone(),
        Device::new("ws-01").unwrap(),
    );
    let job = |format: &str| SealedExportJob {
        trail: TrailId::new(TRAIL).unwrap(),
        format: format.to_owned(),
        from_seq: None,
        to_seq: None,
        requested_by: Actor::new("rita").unwrap(),
        access_review: None,
    };
    let view = exporter.export(job("csv")).await.unwrap();
    let head = f
        .adapters
        .record_store
        .head(&TrailId::new(TRAIL).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.head_seq, head.seq.get());
    assert_eq!(view.head_checksum, head.checksum.to_hex());
    assert!(
        view.package.ends_with(".zip") && !view.package.contains('/'),
        "{}",
        view.package
    );
    let opened = exporter.open(&view.package).await.unwrap();
    assert!(opened.bytes.starts_with(b"PK"), "a zip file");
    assert_eq!(
        opened.bytes,
        std::fs::read(dir.join(&view.package)).unwrap()
    );
    assert_eq!(
        (opened.trail.as_str(), opened.requested_by.as_str()),
        (TRAIL, "rita"),
        "trail and requester come from the sealed manifest"
    );

    // The export is an EXPORT event whose actor is the API caller (not the relay).
    let mut exported_by = Vec::new();
    f.adapters
        .record_store
        .for_each_record(&TrailId::relay(), 1000, |r| {
            if r.kind.as_str() == "EXPORT" {
                exported_by.push((
                    r.actor.as_str().to_owned(),
                    r.actor_source,
                    r.payload.to_value().unwrap()["requested_by"]["actor"].clone(),
                ));
            }
            true
        })
        .await
        .unwrap();
    assert_eq!(
        exported_by,
        vec![(
            "rita".to_owned(),
            relay_domain::ActorSource::Token,
            serde_json::json!("rita")
        )]
    );

    for trick in [
        "../data/relay.db",
        "/etc/passwd",
        ".hidden.zip",
        "missing.zip",
    ] {
        assert!(
            matches!(exporter.open(trick).await, Err(SealedExportError::NotFound)),
            "{trick} must not be served"
        );
    }
    assert!(matches!(
        exporter.export(job("pdf")).await,
        Err(SealedExportError::Invalid(_))
    ));
    let mut bad_range = job("csv");
    bad_range.from_seq = Some(ChainSeq::new(head.seq.get() + 5).unwrap());
    assert!(matches!(
        exporter.export(bad_range).await,
        Err(SealedExportError::Invalid(_))
    ));
}

/// A store whose filtered read of SIGNATURE records hides one of them (a buggy or hostile
/// index); everything else is the real store.
#[derive(Debug)]
struct HidesASignature(Arc<dyn RecordStore>);

#[async_trait::async_trait]
impl RecordStore for HidesASignature {
    fn capabilities(&self) -> relay_domain::ports::RecordStoreCapabilities {
        self.0.capabilities()
    }
    async fn append_only_enforcement(
        &self,
    ) -> Result<relay_domain::ports::AppendOnlyEnforcement, relay_domain::ports::RecordStoreError>
    {
        self.0.append_only_enforcement().await
    }
    async fn append(
        &self,
        records: &[relay_domain::Record],
    ) -> Result<relay_domain::ports::AppendReceipt, relay_domain::ports::RecordStoreError> {
        self.0.append(records).await
    }
    async fn head(
        &self,
        trail: &TrailId,
    ) -> Result<Option<relay_domain::ports::Head>, relay_domain::ports::RecordStoreError> {
        self.0.head(trail).await
    }
    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<relay_domain::Record>, relay_domain::ports::RecordStoreError> {
        self.0.read(trail, after, limit).await
    }
    async fn trails(
        &self,
    ) -> Result<Vec<(TrailId, relay_domain::ports::Head)>, relay_domain::ports::RecordStoreError>
    {
        self.0.trails().await
    }
    async fn read_kind(
        &self,
        trail: &TrailId,
        kind: &EventKind,
        after: u64,
        limit: usize,
    ) -> Result<Vec<relay_domain::Record>, relay_domain::ports::RecordStoreError> {
        let mut page = self.0.read_kind(trail, kind, after, limit).await?;
        if after == 0 && !page.is_empty() {
            page.remove(0);
        }
        Ok(page)
    }
}

#[tokio::test]
async fn export_refuses_when_the_signature_read_disagrees_with_the_trail() {
    let f = fixture().await;
    populate(&f).await;
    let lying = HidesASignature(f.adapters.record_store.clone());
    let services = ExportServices {
        store: &lying,
        notary: f.adapters.notary.as_ref(),
        secrets: f.adapters.secrets.as_ref(),
        keys: &f.keys,
        clock: f.adapters.clock.as_ref(),
        journal: &f.journal,
    };
    let out = f.root.join("pkg-lying");
    let err = export_package(services, &request(out.clone()))
        .await
        .expect_err("an export rendered without one of the signatures must be refused");
    assert!(
        err.to_string().contains("SIGNATURE") || format!("{err:?}").contains("SIGNATURE"),
        "{err:?}"
    );
    assert!(!out.exists(), "no partial package is left behind");
}

/// Re-seals the package in `dir` after an edit, with the relay's own seal key (an insider who
/// holds the seal key but not the trail key): every digest recomputed, the manifest re-signed.
async fn reseal_with_relay_key(f: &Fixture, dir: &Path) {
    use sha2::Digest as _;
    let key = relay_runtime::export::load_seal_key(f.adapters.secrets.as_ref())
        .await
        .unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("seal");
    let mut digests = serde_json::Map::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name != "manifest.json" {
            let bytes = std::fs::read(e.path()).unwrap();
            let sha = relay_domain::Checksum(sha2::Sha256::digest(&bytes).into());
            digests.insert(
                name,
                serde_json::json!({"sha256": sha, "bytes": bytes.len()}),
            );
        }
    }
    manifest["rendered_sha256"] = serde_json::Value::Object(digests);
    let parsed: relay_domain::export::ExportManifest = serde_json::from_value(manifest).unwrap();
    let (bytes, _) = relay_domain::export::sealed_manifest_json(&parsed, &key).unwrap();
    std::fs::write(dir.join("manifest.json"), bytes).unwrap();
}

#[tokio::test]
async fn partial_csv_only_exports_prove_every_rendered_signature() {
    let f = fixture().await;
    populate(&f).await;
    // FILE_CREATED only, CSV only: the SIGNATURE records on record 3 are not exported, so they
    // travel as evidence lines after the proofs.
    let mut req = request(f.root.join("files-csv"));
    req.filter.kind = Some(EventKind::file_created());
    req.format = ExportFormat::Csv;
    let outcome = export(&f, &req).await;
    assert_eq!(outcome.manifest.records, 30);
    let proofs = std::fs::read_to_string(req.out.join("proofs.jsonl")).unwrap();
    let evidence: Vec<&str> = proofs
        .lines()
        .filter(|l| l.contains("\"record\":"))
        .collect();
    assert_eq!(evidence.len(), 2, "{proofs}");
    assert!(
        evidence[0].starts_with("{\"seq\":4,\"proof\":["),
        "{}",
        evidence[0]
    );
    let report = verify_dir(&req.out, Some(&f.keys));
    assert!(report.holds(), "{:#?}", report.findings);

    let copy = |name: &str| {
        let dst = f.root.join(rand_name(name));
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&req.out).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        dst
    };
    // A forged signature cell, re-sealed with the relay's real seal key.
    let forged = copy("forged");
    let csv = std::fs::read_to_string(forged.join("records.csv")).unwrap();
    std::fs::write(
        forged.join("records.csv"),
        csv.replacen("Rita Reviewer", "Rita Approver", 1),
    )
    .unwrap();
    reseal_with_relay_key(&f, &forged).await;
    let r = verify_dir(&forged, Some(&f.keys));
    assert!(
        r.findings
            .iter()
            .any(|x| x.file == "records.csv" && x.check == "signature" && x.seq == Some(3)),
        "{:#?}",
        r.findings
    );
    assert!(
        !r.findings
            .iter()
            .any(|x| x.check == "sha256" || x.check == "seal"),
        "the re-seal is genuine: {:#?}",
        r.findings
    );
    // The evidence dropped (signatures then rendered without proof), re-sealed.
    let dropped = copy("dropped");
    let kept: String = proofs
        .lines()
        .filter(|l| !l.contains("\"record\":"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dropped.join("proofs.jsonl"), kept).unwrap();
    reseal_with_relay_key(&f, &dropped).await;
    let r = verify_dir(&dropped, Some(&f.keys));
    assert!(
        r.findings
            .iter()
            .any(|x| x.file == "records.csv" && x.check == "signature"),
        "{:#?}",
        r.findings
    );
}
