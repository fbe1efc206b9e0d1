//! docs/part11.md cannot rot: every test it names as evidence must exist.
//!
//! The map's **Tests** columns hold backticked `path/to/file.rs::test_name` references. This
//! test extracts all of them and fails, listing each, when a file is gone or no longer defines
//! `fn test_name`. A renamed or deleted test therefore breaks the build until the map follows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One test reference found in the map.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestRef {
    file: String,
    name: String,
    line: usize,
}

/// Every `` `path.rs::name` `` in the **Tests** column of the map's tables.
fn test_refs(map: &str) -> Vec<TestRef> {
    let mut out = Vec::new();
    let mut tests_col: Option<usize> = None;
    for (i, line) in map.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            tests_col = None;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        match tests_col {
            None => tests_col = cells.iter().position(|c| *c == "Tests"),
            Some(col) => {
                let Some(cell) = cells.get(col) else { continue };
                for quoted in cell.split('`').skip(1).step_by(2) {
                    let (file, name) = quoted.rsplit_once("::").unwrap_or_else(|| {
                        panic!("line {}: `{quoted}` is not path.rs::test_name", i + 1)
                    });
                    out.push(TestRef {
                        file: file.to_owned(),
                        name: name.to_owned(),
                        line: i + 1,
                    });
                }
            }
        }
    }
    out
}

/// Whether `source` defines `fn name` (sync or async, any visibility).
fn defines_fn(source: &str, name: &str) -> bool {
    source.match_indices("fn ").any(|(at, _)| {
        let rest = &source[at + 3..];
        rest.strip_prefix(name)
            .is_some_and(|after| after.starts_with('(') || after.starts_with('<'))
            && source[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// The references whose file or function is missing, with why.
fn missing(refs: &[TestRef], read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut cache: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for r in refs {
        let source = cache.entry(&r.file).or_insert_with(|| read(&r.file));
        match source {
            None => out.push(format!(
                "docs/part11.md:{}: {} does not exist (named for {})",
                r.line, r.file, r.name
            )),
            Some(s) if !defines_fn(s, &r.name) => out.push(format!(
                "docs/part11.md:{}: {} has no `fn {}`",
                r.line, r.file, r.name
            )),
            Some(_) => {}
        }
    }
    out
}

// REQ: R11.5
#[test]
fn every_test_named_in_the_part11_map_exists() {
    let root = workspace_root();
    let map = std::fs::read_to_string(root.join("docs/part11.md")).unwrap();
    let refs = test_refs(&map);
    assert!(
        refs.len() >= 40,
        "the map names suspiciously few tests ({}): did the table format change?",
        refs.len()
    );
    for section in [
        "§11.10(a)",
        "§11.10(b)",
        "§11.10(c)",
        "§11.10(d)",
        "§11.10(e)",
        "§11.10(f)",
        "§11.10(g)",
        "§11.10(h)",
        "§11.10(i)",
        "§11.10(j)",
        "§11.10(k)",
        "§11.30",
        "§11.50",
        "§11.70",
        "§11.100",
        "§11.200",
        "§11.300",
    ] {
        assert!(
            map.contains(&format!("| {section}")),
            "no row for {section}"
        );
    }
    let gone = missing(&refs, |file| std::fs::read_to_string(root.join(file)).ok());
    assert!(
        gone.is_empty(),
        "docs/part11.md names tests that do not exist:\n{}",
        gone.join("\n")
    );
}

#[test]
fn a_renamed_test_is_reported_as_missing() {
    let map = "\
| Control | Tests | Customer |
|---|---|---|
| §11.10(e) | `a/tests/chain.rs::edited_field_is_named`, `a/tests/gone.rs::x` | SOPs |

| Control | How | Tests |
|---|---|---|
| §11.70 | linked | `a/tests/chain.rs::signature_links` |
";
    let refs = test_refs(map);
    assert_eq!(
        refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["edited_field_is_named", "x", "signature_links"]
    );
    let source = |renamed: bool| {
        move |file: &str| {
            (file == "a/tests/chain.rs").then(|| {
                if renamed {
                    "#[test]\nfn edited_field_is_named_by_seq() {}\nasync fn signature_links() {}"
                        .to_owned()
                } else {
                    "#[test]\nfn edited_field_is_named() {}\nasync fn signature_links() {}"
                        .to_owned()
                }
            })
        }
    };
    assert_eq!(
        missing(&refs, source(false)),
        ["docs/part11.md:3: a/tests/gone.rs does not exist (named for x)"]
    );
    // Renaming the test (even to a longer name with the old one as prefix) is caught.
    assert_eq!(
        missing(&refs, source(true)),
        [
            "docs/part11.md:3: a/tests/chain.rs has no `fn edited_field_is_named`",
            "docs/part11.md:3: a/tests/gone.rs does not exist (named for x)",
        ]
    );
}
