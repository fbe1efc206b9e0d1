//! The export package verifier (`relay_domain::export::verify_package`, what `relay-verify`
//! runs): a package comes from anyone, so every file is hostile. The input is the package's
//! files joined by `relay_fuzz::FILE_SEPARATOR`, in the order manifest.json, anchors.json,
//! records.jsonl, records.csv, records.json, proofs.jsonl; a missing part, or a part that is
//! exactly `!`, is a file absent from the package.
//!
//! Properties: no panic; the verdict is deterministic and the same on one thread and on three; at most one finding per (file, check);
//! a package that holds has a valid seal over its manifest and as many records as the manifest
//! says; and one that holds with the trail keys also holds links-only (HMACs only add checks).
#![no_main]

use std::collections::HashSet;
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use relay_domain::export::{
    PackageInputs, PackageReport, VerifyOptions, parse_sealed_manifest, verify_package,
};
use relay_fuzz::{debug, seed_ring, split_files};

fn file(parts: &[&[u8]], i: usize) -> Option<Vec<u8>> {
    parts.get(i).filter(|p| **p != b"!").map(|p| p.to_vec())
}

fn inputs(parts: &[&[u8]]) -> PackageInputs<Cursor<Vec<u8>>> {
    PackageInputs {
        manifest: file(parts, 0).unwrap_or_default(),
        anchors: file(parts, 1),
        records_jsonl: file(parts, 2).map(Cursor::new),
        records_csv: file(parts, 3).map(Cursor::new),
        records_json: file(parts, 4).map(Cursor::new),
        proofs_jsonl: file(parts, 5).map(Cursor::new),
        receipts_jsonl: None,
        access_review_json: None,
        other_entries: parts
            .iter()
            .skip(6)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    }
}

fn verdict(report: &PackageReport) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| f.to_string())
        .chain(
            report
                .passed
                .iter()
                .map(|p| format!("{}: {}", p.check, p.detail)),
        )
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let parts = split_files(data);
    let with_keys = VerifyOptions {
        keys: Some(seed_ring()),
        expect_fingerprint: None,
        threads: 1,
    };
    let report = match verify_package(inputs(&parts), &with_keys) {
        Ok(report) => report,
        Err(e) => {
            if debug() {
                eprintln!("export_package: unusable: {e}");
            }
            return;
        }
    };
    if debug() {
        eprintln!(
            "export_package: holds {} {:#?}",
            report.holds(),
            report.findings
        );
    }
    // Deterministic, and the same with the per-record work on several threads.
    let threaded = VerifyOptions {
        threads: 3,
        ..with_keys
    };
    let again = verify_package(inputs(&parts), &threaded).expect("the same input verifies again");
    assert_eq!(verdict(&report), verdict(&again));
    // One finding per (file, check): a hostile package cannot make the report as large as itself.
    let mut seen = HashSet::new();
    for f in &report.findings {
        assert!(
            seen.insert((f.file.clone(), f.check)),
            "duplicate finding {f}"
        );
    }
    if report.holds() {
        let manifest = parts[0];
        let parsed = parse_sealed_manifest(manifest).expect("a package that holds has a manifest");
        assert!(
            parsed.seal.verify(&parsed.signing_bytes).is_ok(),
            "holds without a valid seal"
        );
        assert_eq!(report.records, parsed.manifest.records);
        assert!(report.hmac_checked);
        let links_only =
            verify_package(inputs(&parts), &VerifyOptions::default()).expect("verifies links-only");
        assert!(
            links_only.holds(),
            "holds with keys but not links-only: {:?}",
            links_only.findings
        );
    }
});
