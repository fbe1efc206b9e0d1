//! Property-based fuzzing of the verdict paths added for issue 22 (the cargo-fuzz targets need
//! nightly, these run everywhere): zip entry handling at the process level (any multiset and
//! order of entries, duplicates, extra names) and trust file parsing (arbitrary bytes, and every
//! well-formed file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use relay_domain::export::{SealKey, TRUST_FILE_FORMAT, parse_trust_file};

const BIN: &str = env!("CARGO_BIN_EXE_relay-verify");

const FILES: [&str; 5] = [
    "manifest.json",
    "anchors.json",
    "records.jsonl",
    "records.csv",
    "records.json",
];

const EXTRA: [&str; 5] = [
    "notes.txt",
    "Records.csv",
    "records.csv ",
    "sub/records.csv",
    "./manifest.json",
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/package")
            .join(name),
    )
    .unwrap()
}

fn exit_code(path: &Path) -> i32 {
    Command::new(BIN)
        .arg(path)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A zip verifies as intact (exit 3, unpinned) only when it holds each package file exactly
    /// once and nothing else, whatever the order; duplicates (a tampered copy first) and extra
    /// names are refused (exit 1); a zip with no manifest or two is unusable (exit 2).
    #[test]
    fn a_zip_is_intact_only_with_each_file_exactly_once(
        copies in proptest::collection::vec(0usize..3, FILES.len()),
        extra in proptest::collection::vec(0usize..EXTRA.len(), 0..2),
        order in any::<prop::sample::Index>(),
        tamper_first in any::<bool>(),
    ) {
        let mut entries: Vec<(String, String, Vec<u8>)> = Vec::new();
        for (file, n) in FILES.iter().zip(&copies) {
            for i in 0..*n {
                let mut bytes = fixture(file);
                if tamper_first && i == 0 && *n > 1 {
                    let at = bytes.len() / 2;
                    bytes[at] ^= 1;
                }
                entries.push((file.to_string(), file.to_string(), bytes));
            }
        }
        for e in &extra {
            entries.push((EXTRA[*e].to_owned(), EXTRA[*e].to_owned(), b"x".to_vec()));
        }
        if !entries.is_empty() {
            let k = order.index(entries.len());
            entries.rotate_left(k);
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.zip");
        std::fs::write(&path, common::raw_zip(&entries)).unwrap();
        let code = exit_code(&path);
        let exact = copies.iter().all(|n| *n == 1) && extra.is_empty();
        if exact {
            prop_assert_eq!(code, 3);
        } else if copies[0] != 1 {
            // No manifest, or two: nothing to verify against (a verifier must not pick a copy).
            prop_assert_eq!(code, 2);
        } else {
            prop_assert_eq!(code, 1, "entries {:?}", entries.iter().map(|e| &e.0).collect::<Vec<_>>());
        }
    }

    /// Any extra name in a package directory is refused.
    #[test]
    fn a_directory_with_any_extra_entry_is_refused(extra in 0usize..3) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pkg");
        std::fs::create_dir_all(&dir).unwrap();
        for f in FILES {
            std::fs::write(dir.join(f), fixture(f)).unwrap();
        }
        prop_assert_eq!(exit_code(&dir), 3);
        match extra {
            0 => std::fs::write(dir.join(".DS_Store"), b"x").unwrap(),
            1 => std::fs::create_dir(dir.join("sub")).unwrap(),
            _ => std::fs::write(dir.join("Records.csv"), fixture("records.csv")).unwrap(),
        }
        prop_assert_eq!(exit_code(&dir), 1);
    }

    /// The trust file parser never panics, and whatever it accepts is a list of well-formed pins.
    #[test]
    fn arbitrary_trust_file_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        with_header in any::<bool>(),
    ) {
        let mut input = Vec::new();
        if with_header {
            input.extend_from_slice(TRUST_FILE_FORMAT.as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(&bytes);
        if let Ok(keys) = parse_trust_file(&input) {
            prop_assert!(!keys.is_empty());
            for k in keys {
                prop_assert_eq!(k.fingerprint.len(), 32);
                prop_assert!(k.fingerprint.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
    }

    /// Every well-formed trust file (fingerprints or public keys, labels, comments, blank lines,
    /// any case) parses to exactly the keys it lists.
    #[test]
    fn well_formed_trust_files_list_their_keys(
        seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..5),
        as_public in proptest::collection::vec(any::<bool>(), 5),
        upper in any::<bool>(),
        label in "[ -~]{0,30}",
    ) {
        let mut text = format!("{TRUST_FILE_FORMAT}\n# organisation seal keys\n\n");
        let mut expected = Vec::new();
        for (i, seed) in seeds.iter().enumerate() {
            let public = SealKey::from_seed(seed).unwrap().public();
            let key = if as_public[i] { public.to_hex() } else { public.fingerprint() };
            let key = if upper { key.to_ascii_uppercase() } else { key };
            text.push_str(&format!("{key}  {label}\n"));
            expected.push(public.fingerprint());
        }
        let keys = parse_trust_file(text.as_bytes()).unwrap();
        prop_assert_eq!(keys.iter().map(|k| k.fingerprint.clone()).collect::<Vec<_>>(), expected);
        prop_assert!(keys.iter().all(|k| k.label == label.trim()));
    }
}
