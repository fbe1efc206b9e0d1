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
use relay_domain::export::{VerifyOptions, verify_package};
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
        };
        // Err is "unusable package" (exit 2), a normal answer to garbage.
        let _verdict = verify_package(inputs, &options);
    }
    for seq in [1, 2, u64::MAX] {
        let _outcome = package::prove_one(&pkg, seq);
    }
});
