//! Property-based fuzzing of the package parser and verifier (no nightly `cargo fuzz` here):
//! arbitrary bytes as any package file, and random mutations of a valid package. The verifier
//! must never panic, and any change to a sealed package must be caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::Path;

use proptest::prelude::*;
use relay_domain::export::{PackageInputs, VerifyOptions, parse_sealed_manifest, verify_package};

const FILES: [&str; 5] = [
    "manifest.json",
    "anchors.json",
    "records.jsonl",
    "records.csv",
    "records.json",
];

fn package() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/package");
    FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

fn run(files: &[Vec<u8>]) -> Option<bool> {
    report(files, 1).map(|r| r.holds())
}

/// The whole report (every finding and passed check, in order) with the per-record work on
/// `threads` threads; `None`: the package is unusable.
fn report(files: &[Vec<u8>], threads: usize) -> Option<relay_domain::export::PackageReport> {
    let r = |i: usize| Some(Cursor::new(files[i].clone()));
    let inputs = PackageInputs {
        manifest: files[0].clone(),
        anchors: Some(files[1].clone()),
        records_jsonl: r(2),
        records_csv: r(3),
        records_json: r(4),
        proofs_jsonl: None,
        receipts_jsonl: None,
        access_review_json: None,
        other_entries: Vec::new(),
    };
    let options = VerifyOptions {
        threads,
        ..VerifyOptions::default()
    };
    verify_package(inputs, &options).ok()
}

/// A report as comparable text: the findings (file, row, seq, check, detail), then the checks
/// that held.
fn report_text(report: &relay_domain::export::PackageReport) -> Vec<String> {
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

/// Whether two `manifest.json` texts carry the same signed canonical bytes and the same seal.
fn signs_the_same(original: &[u8], mutated: &[u8]) -> bool {
    let (Ok(a), Ok(b)) = (
        parse_sealed_manifest(original),
        parse_sealed_manifest(mutated),
    ) else {
        return false;
    };
    a.signing_bytes == b.signing_bytes && same_seal(&a.seal, &b.seal)
}

/// Whether two seals say the same thing: the same algorithm and fingerprint, and the same key
/// and signature bytes (hex is read in either case, so `AB` and `ab` are one byte; a proptest
/// case changed one letter's case in `public_key` and the package rightly still verified).
fn same_seal(a: &relay_domain::export::Seal, b: &relay_domain::export::Seal) -> bool {
    let bytes = |h: &str| hex::decode(h).ok();
    a.algorithm == b.algorithm
        && a.fingerprint == b.fingerprint
        && bytes(&a.public_key).is_some()
        && bytes(&a.public_key) == bytes(&b.public_key)
        && bytes(&a.signature).is_some()
        && bytes(&a.signature) == bytes(&b.signature)
}

#[test]
fn a_whitespace_only_manifest_edit_signs_the_same_bytes() {
    let original = package().remove(0);
    let mut spaced = original.clone();
    spaced.insert(1, b' ');
    assert!(signs_the_same(&original, &spaced));
    let mut files = package();
    files[0] = spaced;
    assert_eq!(run(&files), Some(true), "whitespace is not signed");
    // A change inside a signed value is not whitespace: it changes the signed bytes.
    let text = String::from_utf8(original.clone()).unwrap();
    let edited = text
        .replacen("\"trail_id\": \"", "\"trail_id\": \"x", 1)
        .into_bytes();
    assert_ne!(edited, original, "the fixture names its trail");
    assert!(!signs_the_same(&original, &edited));
}

#[test]
fn a_hex_letter_of_the_seal_key_in_upper_case_is_the_same_key() {
    let original = package().remove(0);
    let text = String::from_utf8(original.clone()).unwrap();
    let upper = text
        .replacen("\"public_key\": \"ae", "\"public_key\": \"AE", 1)
        .into_bytes();
    assert_ne!(upper, original, "the fixture's seal key starts with ae");
    assert!(signs_the_same(&original, &upper));
    let mut files = package();
    files[0] = upper;
    assert_eq!(
        run(&files),
        Some(true),
        "the same key, written in upper case"
    );
    // Another key is not the same seal.
    let other = text
        .replacen("\"public_key\": \"ae", "\"public_key\": \"af", 1)
        .into_bytes();
    assert!(!signs_the_same(&original, &other));
}

#[test]
fn the_unmodified_package_holds() {
    assert_eq!(run(&package()), Some(true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_manifest_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _outcome = parse_sealed_manifest(&bytes);
        let mut files = package();
        files[0] = bytes;
        prop_assert_ne!(run(&files), Some(true));
    }

    #[test]
    fn arbitrary_data_files_never_panic_and_never_verify(
        which in 1usize..5,
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut files = package();
        prop_assume!(files[which] != bytes);
        files[which] = bytes;
        prop_assert_eq!(run(&files), Some(false));
    }

    // REQ: R5.3
    #[test]
    fn any_mutation_of_a_sealed_package_is_caught(
        which in 0usize..5,
        at in any::<prop::sample::Index>(),
        op in 0u8..4,
        byte in any::<u8>(),
    ) {
        let mut files = package();
        let original = files[which].clone();
        let f = &mut files[which];
        let i = at.index(f.len());
        match op {
            0 => f[i] = byte,
            1 => { f.remove(i); }
            2 => f.insert(i, byte),
            _ => f.truncate(i),
        }
        prop_assume!(files[which] != original);
        // The seal covers the canonical (RFC 8785) form of manifest.json, not its bytes: a
        // mutation that leaves the signed bytes and the seal itself unchanged (whitespace
        // added, removed or changed between tokens, whatever the op) is the same manifest.
        if which == 0 && signs_the_same(&original, &files[0]) {
            return Ok(());
        }
        let outcome = run(&files);
        prop_assert_ne!(outcome, Some(true), "mutation op {} at {} of {} went unnoticed", op, i, FILES[which]);
    }

    // Issue 23: the records are checked on several threads with the same verdict, the same
    // first bad record and the same report, whatever the tampering.
    #[test]
    fn several_threads_give_the_same_report_as_one(
        which in 0usize..5,
        at in any::<prop::sample::Index>(),
        op in 0u8..5,
        byte in any::<u8>(),
        threads in 2usize..5,
    ) {
        let mut files = package();
        let f = &mut files[which];
        let i = at.index(f.len());
        match op {
            0 => f[i] = byte,
            1 => { f.remove(i); }
            2 => f.insert(i, byte),
            3 => f.truncate(i),
            _ => {}
        }
        let one = report(&files, 1);
        let many = report(&files, threads);
        prop_assert_eq!(one.is_some(), many.is_some());
        if let (Some(one), Some(many)) = (one, many) {
            prop_assert_eq!(report_text(&one), report_text(&many));
            prop_assert_eq!(one.holds(), many.holds());
        }
    }
}
