//! scripts/split-debuginfo.sh, which packages the release binaries (release.yml): the shipped
//! copy has no symbols or debug info left, still runs, and links to a separate `.debug` file
//! that holds them. Run here on this test's own executable, built with debug info.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/split-debuginfo.sh")
}

/// The section names of an ELF file (`readelf -S`, binutils, like objcopy).
fn sections(file: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(file)
        .output()
        .expect("readelf (binutils) on PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(']')?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .collect()
}

#[test]
fn shipped_binaries_are_stripped_and_their_debug_info_is_kept_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("relay-test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &original).unwrap();
    let before = sections(&original);
    assert!(
        before.iter().any(|s| s == ".debug_info") && before.iter().any(|s| s == ".symtab"),
        "the test binary should carry debug info and symbols: {before:?}"
    );

    let dist = tmp.path().join("dist");
    let out = Command::new("bash")
        .arg(script())
        .arg(&dist)
        .arg(&original)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let shipped = dist.join("relay-test-binary");
    let symbols = dist.join("relay-test-binary.debug");
    let stripped = sections(&shipped);
    for gone in [
        ".symtab",
        ".strtab",
        ".debug_info",
        ".debug_line",
        ".debug_str",
    ] {
        assert!(
            !stripped.iter().any(|s| s == gone),
            "{gone} left in {stripped:?}"
        );
    }
    assert!(stripped.iter().any(|s| s == ".gnu_debuglink"));
    let kept = sections(&symbols);
    for s in [".symtab", ".debug_info", ".debug_line"] {
        assert!(
            kept.iter().any(|k| k == s),
            "{s} missing from the .debug file: {kept:?}"
        );
    }
    let link = Command::new("readelf")
        .args(["--string-dump=.gnu_debuglink"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&link.stdout).contains("relay-test-binary.debug"));

    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&shipped) * 2 < size(&original),
        "stripping should at least halve the size: {} -> {}",
        size(&original),
        size(&shipped)
    );

    // The stripped copy still runs: it lists this very test.
    let listed = Command::new(&shipped).args(["--list"]).output().unwrap();
    assert!(listed.status.success());
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .contains("shipped_binaries_are_stripped_and_their_debug_info_is_kept_apart")
    );
}

#[test]
fn a_missing_binary_is_refused_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg(tmp.path().join("dist"))
        .arg(tmp.path().join("no-such-binary"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-binary is not a file"));
    let out = Command::new("bash").arg(script()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
