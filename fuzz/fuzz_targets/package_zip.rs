//! `relay-verify`'s package reader on a zip file (`bins/relay-verify/src/package.rs`, compiled in
//! unchanged): the zip's central directory, entry names, duplicates, compression and sizes are all
//! the sender's. Opening, reading the known entries and verifying must never panic or hang; the
//! `proof` command's reader (`prove_one`) must not either.
//!
//! The input is the zip file's bytes. Seeds are real packages zipped by `relay-edge export --zip`.
#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../bins/relay-verify/src/package.rs"]
mod package;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use relay_domain::export::{PackageReport, PinnedKey, Verdict, VerifyOptions, verify_package};
use relay_fuzz::seed_ring;

fn zip_path() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("relay-fuzz-package-{}.zip", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = zip_path();
    std::fs::write(path, data).expect("the fuzz scratch file can be written");
    let Ok(pkg) = package::Package::open(path) else {
        return;
    };
    if let Ok(inputs) = pkg.inputs() {
        let options = VerifyOptions {
            keys: Some(seed_ring()),
            expect_fingerprint: None,
            threads: 2,
        };
        // Err is "unusable package" (exit 2), a normal answer to garbage.
        if let Ok(report) = verify_package(inputs, &options) {
            check_verdicts(report);
        }
    }
    for seq in [1, 2, u64::MAX] {
        let _outcome = package::prove_one(&pkg, seq);
    }
});

/// The pinned verdicts (exit 0 / 3 / 1): a pin of another key never verifies; a pin of the
/// package's own key verifies exactly when every check held; no pin is never "verified".
fn check_verdicts(report: PackageReport) {
    let holds = report.holds();
    let unpinned = report.verdict();
    assert_ne!(unpinned, Verdict::Verified, "no pin, yet verified");
    assert_eq!(unpinned == Verdict::IntactUnpinned, holds);

    let foreign = PinnedKey::parse("00112233445566778899aabbccddeeff", "foreign")
        .expect("a well-formed fingerprint pin");
    if report.fingerprint != foreign.fingerprint {
        let mut pinned_elsewhere = report.clone();
        pinned_elsewhere.pin(std::slice::from_ref(&foreign));
        assert_eq!(
            pinned_elsewhere.verdict(),
            Verdict::NotVerified,
            "a foreign pin verified"
        );
    }

    if let Ok(own) = PinnedKey::parse(&report.fingerprint, "own") {
        let mut pinned = report;
        pinned.pin(&[own]);
        let expected = if holds {
            Verdict::Verified
        } else {
            Verdict::NotVerified
        };
        assert_eq!(pinned.verdict(), expected);
    }
}
