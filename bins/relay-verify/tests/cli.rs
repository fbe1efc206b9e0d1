//! `relay-verify` as a process: the round trip on a package written by the real exporter
//! (`fixtures/package`, produced by `crates/relay-runtime/tests/export.rs` with
//! `RELAY_WRITE_EXPORT_FIXTURE`), each tampering named with exit 1, unusable input with exit 2,
//! single-record proofs, zips, and the committed corpus of hostile packages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_relay-verify");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn verify(pkg: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec![pkg.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A copy of the fixture package in a temp dir, with `edit` applied to `file`.
fn copy_with(
    tmp: &tempfile::TempDir,
    file: Option<&str>,
    edit: impl FnOnce(&mut Vec<u8>),
) -> PathBuf {
    let dst = tmp.path().join("pkg");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixtures().join("package")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    if let Some(file) = file {
        let mut b = std::fs::read(dst.join(file)).unwrap();
        edit(&mut b);
        std::fs::write(dst.join(file), b).unwrap();
    }
    dst
}

fn assert_fails_naming(pkg: &Path, file: &str) -> String {
    let (code, text) = verify(pkg, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("FAIL  {file}")),
        "should name {file}: {text}"
    );
    assert!(text.contains("VERDICT: NOT VERIFIED"), "{text}");
    text
}

/// The fixture's seal key fingerprint (what the relay publishes in its STARTUP event).
const FIXTURE_FP: &str = "fb2d2806624a743c59cdab96ff833207";

// REQ: R5.3
#[test]
fn the_exported_package_verifies_with_and_without_the_trail_key() {
    let pkg = fixtures().join("package");
    let (code, text) = verify(&pkg, &["--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("VERDICT: VERIFIED. 32 records"), "{text}");
    assert!(
        text.contains("links only") || text.contains("not checked"),
        "{text}"
    );
    let key = fixtures().join("trail-hmac.json");
    let (code, text) = verify(
        &pkg,
        &[
            "--key-file",
            key.to_str().unwrap(),
            "--expect-fingerprint",
            FIXTURE_FP,
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("HMACs recomputed"), "{text}");
    let (code, text) = verify(&pkg, &["--json", "--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["records"], 32);
}

#[test]
fn any_thread_count_gives_the_same_report_and_a_bad_one_is_unusable_input() {
    let pkg = fixtures().join("package");
    let (one_code, one) = verify(&pkg, &["--threads", "1", "--json"]);
    for n in ["2", "7"] {
        assert_eq!(
            verify(&pkg, &["--threads", n, "--json"]),
            (one_code, one.clone())
        );
    }
    for bad in ["0", "257", "-1", "many"] {
        let (code, text) = verify(&pkg, &[&format!("--threads={bad}")]);
        assert_eq!(code, Some(2), "--threads {bad}: {text}");
        assert!(text.contains("--threads"), "{text}");
    }
}

// REQ: R5.3
#[test]
fn an_intact_package_without_a_pin_exits_3_not_0() {
    let pkg = fixtures().join("package");
    let (code, text) = verify(&pkg, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("VERDICT: INTACT, ORIGIN NOT PINNED"),
        "{text}"
    );
    assert!(!text.contains("VERDICT: VERIFIED"), "{text}");
    // --key-file authenticates the records, not the seal: still not pinned.
    let key = fixtures().join("trail-hmac.json");
    let (code, _) = verify(&pkg, &["--key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    let (code, text) = verify(&pkg, &["--json"]);
    assert_eq!(code, Some(3));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["intact"], true);
    assert_eq!(v["verdict"], "intact_origin_not_pinned");
}

// REQ: R5.2
#[test]
fn a_package_resealed_with_an_attackers_own_key_is_not_verified() {
    // The whole package re-sealed by the attacker's key (who could have edited anything before
    // re-sealing): every check holds, so without a pin it is only "intact" (exit 3, formerly
    // VERIFIED with exit 0); with the relay's pin it is refused (exit 1).
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("manifest.json"), |b| resign(b, [9u8; 32], true));
    let (code, text) = verify(&pkg, &[]);
    assert_eq!(code, Some(3), "{text}");
    let (code, text) = verify(&pkg, &["--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "VERDICT: NOT VERIFIED. 1 check(s) failed; the first: manifest.json: seal key"
        ),
        "{text}"
    );
    // The same through a trust file listing the organisation's keys.
    let trust = tmp.path().join("trust.txt");
    std::fs::write(
        &trust,
        format!(
            "gims-relay-trust-v1\n# ACME\n{FIXTURE_FP}  edge ws-01\n00112233445566778899aabbccddeeff old\n"
        ),
    )
    .unwrap();
    let (code, text) = verify(&pkg, &["--trust-file", trust.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = verify(
        &fixtures().join("package"),
        &["--trust-file", trust.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("sealed by the pinned key fb2d2806624a743c59cdab96ff833207 (edge ws-01)"),
        "{text}"
    );
}

#[test]
fn a_pin_by_public_key_must_match_the_whole_key() {
    let pkg = fixtures().join("package");
    let (_, text) = verify(&pkg, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let public = v["seal_public_key"].as_str().unwrap().to_ascii_uppercase();
    assert_eq!(verify(&pkg, &["--expect-fingerprint", &public]).0, Some(0));
    let other = relay_domain::export::SealKey::from_seed(&[3u8; 32])
        .unwrap()
        .public()
        .to_hex();
    assert_eq!(verify(&pkg, &["--expect-fingerprint", &other]).0, Some(1));
}

#[test]
fn malformed_pins_and_trust_files_are_unusable_input() {
    let pkg = fixtures().join("package");
    let (code, text) = verify(&pkg, &["--expect-fingerprint", "fb2d"]);
    assert_eq!(code, Some(2), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    for (body, expect) in [
        ("fb2d2806624a743c59cdab96ff833207\n", "first line"),
        ("gims-relay-trust-v1\n# none\n", "no seal key"),
        ("gims-relay-trust-v1\nnot-a-key label\n", "line 2"),
    ] {
        let trust = tmp.path().join("t");
        std::fs::write(&trust, body).unwrap();
        let (code, text) = verify(&pkg, &["--trust-file", trust.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains(expect), "{expect}: {text}");
    }
    let (code, _) = verify(&pkg, &["--trust-file", "/nonexistent/trust"]);
    assert_eq!(code, Some(2));
}

// REQ: R5.3
#[test]
fn a_zip_holding_records_csv_twice_is_refused_whichever_copy_a_reader_shows() {
    // The tampered copy first (what unzip shows), the genuine one last (what a zip library that
    // keeps the last entry reads): the package must not verify either way.
    let dir = fixtures().join("package");
    let mut entries: Vec<(String, String, Vec<u8>)> = Vec::new();
    for name in [
        "manifest.json",
        "anchors.json",
        "records.jsonl",
        "records.json",
    ] {
        entries.push((
            name.into(),
            name.into(),
            std::fs::read(dir.join(name)).unwrap(),
        ));
    }
    let genuine = std::fs::read(dir.join("records.csv")).unwrap();
    let forged = String::from_utf8(genuine.clone())
        .unwrap()
        .replace("Rita Reviewer", "Rita Approver")
        .into_bytes();
    let tmp = tempfile::tempdir().unwrap();
    for (first, last) in [
        (&forged, &genuine),
        (&genuine, &forged),
        (&genuine, &genuine),
    ] {
        let mut all = entries.clone();
        all.push(("records.csv".into(), "records.csv".into(), first.clone()));
        all.push(("records.csv".into(), "records.csv".into(), last.clone()));
        let zip = tmp.path().join("dup.zip");
        std::fs::write(&zip, common::raw_zip(&all)).unwrap();
        let (code, text) = verify(&zip, &["--expect-fingerprint", FIXTURE_FP]);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("FAIL  records.csv (duplicate entry"),
            "{text}"
        );
    }
    // A local header naming another file than the central directory.
    let mut all = entries.clone();
    all.push(("records.csv".into(), "records.cs_".into(), genuine.clone()));
    let zip = tmp.path().join("local.zip");
    std::fs::write(&zip, common::raw_zip(&all)).unwrap();
    let (code, text) = verify(&zip, &["--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("its local header names \"records.cs_\""),
        "{text}"
    );
    // The same entries once each verify.
    let mut all = entries;
    all.push(("records.csv".into(), "records.csv".into(), genuine));
    let zip = tmp.path().join("ok.zip");
    std::fs::write(&zip, common::raw_zip(&all)).unwrap();
    let (code, text) = verify(&zip, &["--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn expected_fingerprint_is_enforced() {
    let pkg = fixtures().join("package");
    let (_, text) = verify(&pkg, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fp = v["seal_fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(verify(&pkg, &["--expect-fingerprint", &fp]).0, Some(0));
    let (code, text) = verify(
        &pkg,
        &["--expect-fingerprint", "00112233445566778899aabbccddeeff"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  manifest.json: seal key"), "{text}");
}

// REQ: R5.3
#[test]
fn one_changed_byte_of_the_csv_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("records.csv"), |b| {
        let i = b.len() / 2;
        b[i] ^= 0x01;
    });
    let text = assert_fails_naming(&pkg, "records.csv");
    assert!(text.contains("sha256"), "{text}");
}

#[test]
fn a_row_removed_from_records_jsonl_is_named_with_its_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("records.jsonl"), |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 9)
            .map(|(_, l)| l)
            .collect();
        *b = (kept.join("\n") + "\n").into_bytes();
    });
    let text = assert_fails_naming(&pkg, "records.jsonl");
    assert!(
        text.contains("row 10 (chain_seq 10): chain check failed"),
        "{text}"
    );
}

// REQ: R5.2
#[test]
fn an_edited_manifest_breaks_the_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("manifest.json"), |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        *b = text
            .replacen("\"actor\": \"quinn-qa\"", "\"actor\": \"mallory\"", 1)
            .into_bytes();
    });
    let text = assert_fails_naming(&pkg, "manifest.json");
    assert!(text.contains("seal check failed"), "{text}");
}

/// Replaces the seal's signature with `signer`'s signature over the same manifest bytes.
fn resign(b: &mut Vec<u8>, seed: [u8; 32], also_key: bool) {
    use ed25519_dalek::{Signer, SigningKey};
    let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
    let mut seal = v.as_object_mut().unwrap().remove("seal").unwrap();
    let signing = relay_domain::export::manifest_signing_bytes(&v).unwrap();
    let key = SigningKey::from_bytes(&seed);
    seal["signature"] = hex::encode(key.sign(&signing).to_bytes()).into();
    if also_key {
        let public = relay_domain::export::SealKey::from_seed(&seed)
            .unwrap()
            .public();
        seal["public_key"] = public.to_hex().into();
        seal["fingerprint"] = public.fingerprint().into();
    }
    v.as_object_mut().unwrap().insert("seal".into(), seal);
    *b = serde_json::to_vec_pretty(&v).unwrap();
}

#[test]
fn a_signature_from_another_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("manifest.json"), |b| resign(b, [9u8; 32], false));
    let text = assert_fails_naming(&pkg, "manifest.json");
    assert!(text.contains("signed by another key"), "{text}");

    // A complete re-seal by another key is self-consistent, so pin the fingerprint.
    let tmp2 = tempfile::tempdir().unwrap();
    let pkg2 = copy_with(&tmp2, Some("manifest.json"), |b| resign(b, [9u8; 32], true));
    let (_, text) = verify(&fixtures().join("package"), &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let genuine = v["seal_fingerprint"].as_str().unwrap().to_owned();
    let (code, text) = verify(&pkg2, &["--expect-fingerprint", &genuine]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  manifest.json: seal key"), "{text}");
}

// REQ: R5.3, R7.2
#[test]
fn edited_anchors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("anchors.json"), |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        let i = text.find("\"checksum\": \"").unwrap() + 13;
        let mut t = text.into_bytes();
        t[i] = if t[i] == b'0' { b'1' } else { b'0' };
        *b = t;
    });
    let text = assert_fails_naming(&pkg, "anchors.json");
    assert!(
        text.contains("anchor check failed") || text.contains("sha256"),
        "{text}"
    );
}

#[test]
fn a_zipped_package_verifies_and_a_stray_entry_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("pkg.zip");
    let write = |path: &Path, extra: Option<&str>| {
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for e in std::fs::read_dir(fixtures().join("package")).unwrap() {
            let e = e.unwrap();
            z.start_file(e.file_name().to_str().unwrap(), opts).unwrap();
            std::io::Write::write_all(&mut z, &std::fs::read(e.path()).unwrap()).unwrap();
        }
        if let Some(name) = extra {
            z.start_file(name, opts).unwrap();
            std::io::Write::write_all(&mut z, b"x").unwrap();
        }
        z.finish().unwrap();
    };
    write(&zip_path, None);
    let (code, text) = verify(&zip_path, &["--expect-fingerprint", FIXTURE_FP]);
    assert_eq!(code, Some(0), "{text}");
    let bad = tmp.path().join("bad.zip");
    write(&bad, Some("../outside.txt"));
    let (code, text) = verify(&bad, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("../outside.txt"), "{text}");
    assert!(!tmp.path().join("../outside.txt").exists());
}

#[test]
fn proof_of_one_record() {
    let pkg = fixtures().join("package");
    let out = run(&[
        "proof".as_ref(),
        "--package".as_ref(),
        pkg.as_os_str(),
        "--seq".as_ref(),
        "3".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("INCLUDED: chain_seq 3"), "{text}");
    let out = run(&[
        "proof".as_ref(),
        "--package".as_ref(),
        pkg.as_os_str(),
        "--seq".as_ref(),
        "99".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

// REQ: R5.3
#[test]
fn unusable_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(verify(&tmp.path().join("missing"), &[]).0, Some(2));
    let (code, text) = verify(tmp.path(), &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no manifest.json"), "{text}");
    // A manifest with a huge field is refused by size, not parsed.
    std::fs::write(
        tmp.path().join("manifest.json"),
        format!("{{\"format\":\"{}\"}}", "A".repeat(2 * 1024 * 1024)),
    )
    .unwrap();
    let (code, text) = verify(tmp.path(), &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("larger than"), "{text}");
}

#[test]
fn a_symlinked_file_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, None, |_| {});
    std::fs::remove_file(pkg.join("records.csv")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", pkg.join("records.csv")).unwrap();
    let (code, text) = verify(&pkg, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("records.csv (not a regular file)"), "{text}");
}

#[test]
fn a_huge_line_is_refused_without_reading_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = copy_with(&tmp, Some("records.jsonl"), |b| {
        b.extend(std::iter::repeat_n(b'x', 17 * 1024 * 1024));
    });
    let (code, text) = verify(&pkg, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("records.jsonl"), "{text}");
}

/// Every committed hostile package fails with the exit code its name says, never a panic.
#[test]
fn hostile_corpus_gets_clear_errors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for e in std::fs::read_dir(&corpus).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let expected: i32 = name[4..5].parse().unwrap();
        let target = if dir.join("package.zip").exists() {
            dir.join("package.zip")
        } else {
            dir.clone()
        };
        let (code, text) = verify(&target, &[]);
        assert_eq!(code, Some(expected), "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
        if expected == 1 {
            assert!(text.contains("FAIL  "), "{name}: {text}");
        } else {
            assert!(text.contains("relay-verify: error: "), "{name}: {text}");
        }
        seen += 1;
    }
    assert!(seen >= 10, "corpus has {seen} packages");
}
