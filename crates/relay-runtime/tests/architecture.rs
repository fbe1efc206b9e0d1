//! Architecture invariants of docs/ARCHITECTURE.md, checked with `cargo metadata` and the
//! sources (like rust-analyzer's tidy tests). A failure here means the shape of the workspace
//! drifted from its map: fix the code, or change the map and this test together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn metadata() -> serde_json::Value {
    metadata_with(&[])
}

/// `cargo metadata` with extra arguments (`--all-features`, `--features ...`): the resolve graph
/// then holds the optional dependencies those features turn on.
fn metadata_with(extra: &[&str]) -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package names reachable from `root` through normal (non-dev, non-build) dependencies.
fn normal_closure(meta: &serde_json::Value, root: &str) -> BTreeSet<String> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = names
        .iter()
        .find(|(_, n)| **n == root)
        .map(|(id, _)| *id)
        .expect("package in workspace");
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.into_iter().map(|id| names[id].to_owned()).collect()
}

const RUNTIME_AND_IO: &[&str] = &[
    "tokio",
    "sqlx",
    "sqlx-core",
    "hyper",
    "reqwest",
    "notify",
    "mio",
    "axum",
];

fn cloud_sdk(name: &str) -> bool {
    name.starts_with("aws-")
        || name.starts_with("azure_")
        || name.starts_with("google-cloud")
        || name.starts_with("gcloud")
}

// REQ: R10.1
#[test]
fn domain_crate_knows_nothing_of_tokio_sqlx_or_any_cloud_sdk() {
    let closure = normal_closure(&metadata(), "relay-domain");
    let bad: Vec<_> = closure
        .iter()
        .filter(|n| RUNTIME_AND_IO.contains(&n.as_str()) || cloud_sdk(n))
        .collect();
    assert!(bad.is_empty(), "relay-domain depends on {bad:?}");
}

#[test]
fn offline_verifier_has_no_database_runtime_or_provider_dependencies() {
    let closure = normal_closure(&metadata(), "relay-verify");
    let bad: Vec<_> = closure
        .iter()
        .filter(|n| {
            RUNTIME_AND_IO.contains(&n.as_str()) || cloud_sdk(n) || n.starts_with("relay-local")
        })
        .collect();
    assert!(bad.is_empty(), "relay-verify depends on {bad:?}");
}

#[test]
fn default_edge_build_pulls_in_no_cloud_sdk() {
    let closure = normal_closure(&metadata(), "relay-edge");
    let bad: Vec<_> = closure.iter().filter(|n| cloud_sdk(n)).collect();
    assert!(
        bad.is_empty(),
        "relay-edge (default features) depends on {bad:?}"
    );
}

#[test]
fn default_server_build_pulls_in_no_cloud_sdk_and_no_provider_adapter() {
    let closure = normal_closure(&metadata(), "relay-server");
    let bad: Vec<_> = closure
        .iter()
        .filter(|n| {
            cloud_sdk(n)
                || matches!(
                    n.as_str(),
                    "relay-selfhosted" | "relay-aws" | "relay-azure" | "relay-gcp"
                )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "relay-server (default features) depends on {bad:?}; providers belong behind features"
    );
    // The check is not vacuous: the provider features do pull the SDKs in.
    let aws = normal_closure(
        &metadata_with(&["--features", "relay-server/aws"]),
        "relay-server",
    );
    for expected in [
        "relay-aws",
        "relay-selfhosted",
        "aws-sdk-secretsmanager",
        "aws-sdk-s3",
    ] {
        assert!(
            aws.contains(expected),
            "relay-server --features aws lacks {expected}"
        );
    }
}

/// Non-test Rust sources under `dir`: whole files, skipping `tests/` folders, every
/// `#[cfg(test)]` item (a test module in the middle of a file hides none of the production code
/// after it) and comment lines (a doc comment may name what the code must not use).
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = without_test_items(&text)
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push((p, code));
            }
        }
    }
    out
}

/// `text` without its `#[cfg(test)]` items: from the attribute to the end of the item that
/// follows it (its closing brace at the same nesting depth, or its `;`).
fn without_test_items(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn test_items_are_skipped_but_code_after_them_is_scanned() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests { fn t() { let _ = format!(\"{}\", 1); } }\n\
                fn after() { std::fs::read(\"x\"); }\n#[cfg(test)]\nuse foo::bar;\nfn last() {}";
    let code = without_test_items(text);
    assert!(!code.contains("fn t()"), "{code}");
    assert!(!code.contains("foo::bar"), "{code}");
    assert!(code.contains("fn after() { std::fs::read"), "{code}");
    assert!(code.contains("fn last()"), "{code}");
}

/// The workspace's packages whose manifest is under `folder` (`crates`, `adapters`, ...).
fn packages_under(meta: &serde_json::Value, folder: &str) -> BTreeSet<String> {
    let root = workspace_root().join(folder);
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| Path::new(p["manifest_path"].as_str().unwrap()).starts_with(&root))
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

// REQ: R10.1
#[test]
fn no_crate_under_crates_depends_on_an_adapter_a_database_driver_or_a_cloud_sdk() {
    let meta = metadata_with(&["--all-features"]);
    let adapters = packages_under(&meta, "adapters");
    let crates = packages_under(&meta, "crates");
    assert!(
        adapters.contains("relay-local") && adapters.contains("relay-selfhosted"),
        "adapters found: {adapters:?}"
    );
    assert!(
        crates.contains("relay-runtime") && crates.contains("relay-domain"),
        "crates found: {crates:?}"
    );
    for krate in &crates {
        let bad: Vec<_> = normal_closure(&meta, krate)
            .into_iter()
            .filter(|n| adapters.contains(n) || n.starts_with("sqlx") || cloud_sdk(n))
            .collect();
        assert!(
            bad.is_empty(),
            "{krate} (under crates/) depends on {bad:?}: the application layer is provider-free; \
             the composition roots that open adapters live in bins/ (relay-node)"
        );
    }
    // The check is not vacuous: the composition root does reach an adapter and its driver.
    let node = normal_closure(&meta, "relay-node");
    assert!(node.contains("relay-local") && node.contains("sqlx-core"));
}

/// SQL statements in string literals: what only an adapter may hold.
const SQL_MARKERS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "DELETE FROM",
    "DROP TRIGGER",
    "CREATE TRIGGER",
    "CREATE TABLE",
    "ALTER TABLE",
    "CREATE DATABASE",
    "PRAGMA ",
    " SET subject",
];

/// The first SQL statement in a string literal of `code`, if any.
fn sql_in(code: &str) -> Option<String> {
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .find(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .any(|lit| SQL_MARKERS.iter().any(|m| lit.contains(m)))
        })
        .map(|l| l.trim().to_owned())
}

#[test]
fn sql_text_lives_only_in_adapters() {
    assert!(sql_in("let q = \"DELETE FROM event_log WHERE x\";").is_some());
    assert!(sql_in("/// refuses UPDATE and DELETE\nfn f() {}").is_none());
    let root = workspace_root();
    // relay-bench is the one exception: it measures raw-SQL baselines (a plain insert, COPY)
    // that the adapters' append paths are compared against in docs/performance.md.
    for folder in ["crates", "bins", "conformance/src", "examples"] {
        for (path, code) in sources(&root.join(folder)) {
            if path.starts_with(root.join("bins/relay-bench")) {
                continue;
            }
            if let Some(line) = sql_in(&code) {
                panic!(
                    "{} holds SQL ({line}); SQL belongs in adapters/ behind a port \
                     (e.g. TamperProbe, RecordStore::append_only_enforcement)",
                    path.display()
                );
            }
        }
    }
}

// REQ: R10.1
#[test]
fn domain_crate_does_no_io_and_reads_no_clock_or_randomness() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::process",
        "SystemTime",
        "Instant::now",
        "std::env",
        "rand::",
        "getrandom",
    ];
    for (path, code) in sources(&workspace_root().join("crates/relay-domain/src")) {
        for f in forbidden {
            assert!(
                !code.contains(f),
                "{} uses {f}: the domain crate does no I/O",
                path.display()
            );
        }
    }
}

#[test]
fn only_binaries_read_environment_variables() {
    let root = workspace_root();
    for lib in [
        "crates/relay-domain/src",
        "crates/relay-capture/src",
        "crates/relay-runtime/src",
    ] {
        for (path, code) in sources(&root.join(lib)) {
            for f in ["env::var", "env::vars", "std::env::args"] {
                assert!(
                    !code.contains(f),
                    "{} reads the environment ({f}); only bins/ may",
                    path.display()
                );
            }
        }
    }
}

// REQ: R10.2
#[test]
fn every_adapter_crate_runs_the_conformance_suites() {
    let root = workspace_root();
    for entry in std::fs::read_dir(root.join("adapters")).unwrap() {
        let dir = entry.unwrap().path();
        let suite = dir.join("tests/conformance.rs");
        assert!(
            suite.is_file(),
            "{} has no tests/conformance.rs",
            dir.display()
        );
        let text = std::fs::read_to_string(&suite).unwrap();
        assert!(
            text.contains("relay_conformance"),
            "{} does not call the conformance suites",
            suite.display()
        );
    }
}
