//! The traceability matrix (docs/traceability.md) is generated from the code, never by hand.
//!
//! Sources of truth, both next to what they describe:
//! - `docs/requirements.md`: each requirement (the product brief's id, in the project's words),
//!   its Part 11 / Annex 11 clauses and the paths that enforce it;
//! - `// REQ: R1.2` tags directly above the tests that prove a requirement (`# REQ:` or
//!   `// REQ:` at the top of a non-Rust file for evidence run outside the Rust suite).
//!
//! The tests below fail when a requirement has no test, a tag is not on a test or names an
//! unknown requirement, a code path does not exist, a test named in the committed matrix is not
//! in the tree, or the committed matrix differs from what these sources render. Regenerate with
//! `UPDATE_TRACEABILITY=1 cargo test -p relay-runtime --test traceability`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use relay_runtime::traceability::{self, Requirement, TestRef};

/// The requirement ids of the product brief (shared/design/PRODUCT.md), R1.1 ... R11.5.
const PRODUCT_IDS: [&str; 39] = [
    "R1.1", "R1.2", "R1.3", "R1.4", "R1.5", "R1.6", "R2.1", "R2.2", "R3.1", "R3.2", "R3.3", "R3.4",
    "R4.1", "R4.2", "R4.3", "R5.1", "R5.2", "R5.3", "R6.1", "R6.2", "R6.3", "R6.4", "R6.5", "R7.1",
    "R7.2", "R8.1", "R8.2", "R8.3", "R8.4", "R8.5", "R9.1", "R10.1", "R10.2", "R10.3", "R11.1",
    "R11.2", "R11.3", "R11.4", "R11.5",
];

/// Where Rust tests live.
const RUST_DIRS: [&str; 5] = ["crates", "adapters", "bins", "conformance", "examples"];
/// Where evidence run outside the Rust suite lives (file-level tags).
const OTHER_EVIDENCE_DIRS: [&str; 2] = ["e2e", ".ci"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A requirement as docs/requirements.md states it (no tests yet).
#[derive(Debug, Clone)]
struct Stated {
    id: String,
    title: String,
    clauses: String,
    enforced_in: Vec<String>,
    line: usize,
}

/// Reads docs/requirements.md: `## <id> <title>`, `- Clauses: ...`, `- Enforced in: ...`.
fn parse_requirements(md: &str) -> Result<Vec<Stated>, Vec<String>> {
    let mut out: Vec<Stated> = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in md.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("## R") {
            let (id, title) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push(Stated {
                id: format!("R{id}"),
                title: title.trim().to_owned(),
                clauses: String::new(),
                enforced_in: Vec::new(),
                line: i + 1,
            });
        } else if let Some(c) = line.strip_prefix("- Clauses:") {
            match out.last_mut() {
                Some(r) => r.clauses = c.trim().to_owned(),
                None => errors.push(format!("line {}: Clauses before any requirement", i + 1)),
            }
        } else if let Some(paths) = line.strip_prefix("- Enforced in:") {
            match out.last_mut() {
                Some(r) => {
                    r.enforced_in = paths
                        .split('`')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect()
                }
                None => errors.push(format!(
                    "line {}: Enforced in before any requirement",
                    i + 1
                )),
            }
        }
    }
    for r in &out {
        let at = format!("docs/requirements.md:{} {}", r.line, r.id);
        if r.title.is_empty() || r.title.contains('|') {
            errors.push(format!("{at}: a title is required and may not contain `|`"));
        }
        if r.clauses.is_empty() || r.clauses.contains('|') {
            errors.push(format!("{at}: no `- Clauses:` line (or it contains `|`)"));
        }
        if r.enforced_in.is_empty() {
            errors.push(format!(
                "{at}: no backticked path on its `- Enforced in:` line"
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A `REQ:` tag found in the tree, resolved to the test it sits on.
#[derive(Debug, Clone)]
struct Tag {
    ids: Vec<String>,
    test: TestRef,
    at: String,
}

/// The requirement ids of a tag line (`// REQ: R1.2, R8.1 (optional note)`).
fn tag_ids(line: &str) -> Option<Vec<String>> {
    let t = line.trim_start();
    let rest = t
        .strip_prefix("// REQ:")
        .or_else(|| t.strip_prefix("# REQ:"))?;
    let rest = rest.split('(').next().unwrap_or("");
    Some(
        rest.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The modules enclosing line `at` inside one file, outermost first (rustfmt indentation).
fn enclosing_modules(lines: &[&str], at: usize) -> Vec<String> {
    let mut mods = Vec::new();
    let mut threshold = indent(lines[at]);
    for line in lines[..at].iter().rev() {
        if threshold == 0 {
            break;
        }
        if line.trim().is_empty() || indent(line) >= threshold {
            continue;
        }
        threshold = indent(line);
        let t = line.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        if let Some(name) = t.strip_prefix("mod ").and_then(|m| m.strip_suffix(" {")) {
            mods.push(name.trim().to_owned());
        }
    }
    mods.reverse();
    mods
}

/// Where a Rust file's tests run: the nextest binary id and the module path inside it, from the
/// crate's `Cargo.toml` (package name) and the file's place in the crate.
fn test_binary(root: &Path, file: &str) -> Result<(String, Vec<String>), String> {
    let path = Path::new(file);
    let crate_dir = path
        .ancestors()
        .skip(1)
        .find(|d| root.join(d).join("Cargo.toml").is_file())
        .ok_or_else(|| format!("{file}: no Cargo.toml above it"))?;
    let manifest = std::fs::read_to_string(root.join(crate_dir).join("Cargo.toml"))
        .map_err(|e| format!("{file}: {e}"))?;
    let package = manifest
        .lines()
        .find_map(|l| {
            l.strip_prefix("name = \"")
                .and_then(|n| n.strip_suffix('"'))
        })
        .ok_or_else(|| format!("{}: no package name", crate_dir.display()))?
        .to_owned();
    let inner = path.strip_prefix(crate_dir).unwrap();
    let parts: Vec<String> = inner
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.first().map(String::as_str) {
        Some("tests") if parts.len() == 2 => {
            let stem = parts[1].trim_end_matches(".rs");
            Ok((format!("{package}::{stem}"), Vec::new()))
        }
        Some("tests") if parts.len() == 3 && parts[2] == "main.rs" => {
            Ok((format!("{package}::{}", parts[1]), Vec::new()))
        }
        Some("src") => {
            let lib = root.join(crate_dir).join("src/lib.rs").is_file();
            let binary = if lib {
                package.clone()
            } else {
                format!("{package}::bin/{package}")
            };
            let mut mods: Vec<String> = parts[1..]
                .iter()
                .map(|p| p.trim_end_matches(".rs").to_owned())
                .collect();
            if matches!(
                mods.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                mods.pop();
            }
            Ok((binary, mods))
        }
        _ => Err(format!(
            "{file}: not a test target (tests/<name>.rs, tests/<name>/main.rs or src/)"
        )),
    }
}

/// The tags of one Rust source file; a tag must sit directly above a test's attributes.
fn scan_rust(
    file: &str,
    text: &str,
    binary: impl Fn() -> Result<(String, Vec<String>), String>,
) -> (Vec<Tag>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let (mut tags, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let Some(ids) = tag_ids(line) else { continue };
        let at = format!("{file}:{}", i + 1);
        let mut is_test = false;
        let mut found = None;
        for (j, next) in lines.iter().enumerate().skip(i + 1) {
            let t = next.trim_start();
            if t.starts_with("#[") {
                is_test |= t.starts_with("#[test]")
                    || t.starts_with("#[tokio::test")
                    || t.starts_with("#[sqlx::test");
                continue;
            }
            if t.starts_with("//") {
                continue;
            }
            let name = t
                .split_once("fn ")
                .filter(|(before, _)| {
                    before
                        .split_whitespace()
                        .all(|w| matches!(w, "pub" | "async" | "pub(crate)"))
                })
                .map(|(_, after)| {
                    after
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                        .to_owned()
                });
            found = name.map(|n| (j, n));
            break;
        }
        match found {
            Some((j, name)) if is_test && !name.is_empty() => match binary() {
                Ok((binary, mut path)) => {
                    path.extend(enclosing_modules(&lines, j));
                    path.push(name.clone());
                    tags.push(Tag {
                        ids,
                        test: TestRef {
                            name: format!("{file}::{name}"),
                            junit_id: Some(format!("{binary} {}", path.join("::"))),
                        },
                        at,
                    });
                }
                Err(e) => errors.push(format!("{at}: {e}")),
            },
            Some((_, name)) => errors.push(format!(
                "{at}: the tag sits on `fn {name}`, which is not a test (#[test] / #[tokio::test])"
            )),
            None => errors.push(format!("{at}: the tag is not followed by a test function")),
        }
    }
    (tags, errors)
}

/// A file-level tag in evidence run outside the Rust suite (first 10 lines).
fn scan_other(file: &str, text: &str) -> Vec<Tag> {
    text.lines()
        .take(10)
        .enumerate()
        .filter_map(|(i, l)| {
            tag_ids(l).map(|ids| Tag {
                ids,
                test: TestRef {
                    name: file.to_owned(),
                    junit_id: None,
                },
                at: format!("{file}:{}", i + 1),
            })
        })
        .collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = dir.join(&name);
        if e.file_type().unwrap().is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                walk(root, &rel, out);
            }
        } else {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// Every tag in the tree, and every tag that points at nothing.
fn scan_tree(root: &Path) -> (Vec<Tag>, Vec<String>) {
    let (mut tags, mut errors) = (Vec::new(), Vec::new());
    let mut files = Vec::new();
    for d in RUST_DIRS.iter().chain(&OTHER_EVIDENCE_DIRS) {
        walk(root, Path::new(d), &mut files);
    }
    for file in files {
        let rust = file.ends_with(".rs");
        if !(rust || file.ends_with(".sh") || file.ends_with(".mjs") || file.ends_with(".js")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        if !text.contains("REQ:") {
            continue;
        }
        if rust {
            let (t, e) = scan_rust(&file, &text, || test_binary(root, &file));
            tags.extend(t);
            errors.extend(e);
        } else {
            tags.extend(scan_other(&file, &text));
        }
    }
    (tags, errors)
}

/// Joins the stated requirements with the tags; reports tags naming unknown requirements.
fn link(stated: &[Stated], tags: &[Tag]) -> (Vec<Requirement>, Vec<String>) {
    let known: BTreeSet<&str> = stated.iter().map(|r| r.id.as_str()).collect();
    let mut by_id: BTreeMap<&str, Vec<TestRef>> = BTreeMap::new();
    let mut errors = Vec::new();
    for tag in tags {
        if tag.ids.is_empty() {
            errors.push(format!("{}: a REQ tag without a requirement id", tag.at));
        }
        for id in &tag.ids {
            match known.get(id.as_str()) {
                Some(k) => by_id.entry(k).or_default().push(tag.test.clone()),
                None => errors.push(format!(
                    "{}: {id} is not a requirement of docs/requirements.md",
                    tag.at
                )),
            }
        }
    }
    let requirements = stated
        .iter()
        .map(|s| {
            let mut tests = by_id.remove(s.id.as_str()).unwrap_or_default();
            tests.sort();
            tests.dedup();
            Requirement {
                id: s.id.clone(),
                title: s.title.clone(),
                clauses: s.clauses.clone(),
                enforced_in: s.enforced_in.clone(),
                tests,
            }
        })
        .collect();
    (requirements, errors)
}

/// Requirements that no test proves.
fn untested(requirements: &[Requirement]) -> Vec<String> {
    requirements
        .iter()
        .filter(|r| r.tests.is_empty())
        .map(|r| {
            format!(
                "{} ({}) has no test: tag one with `// REQ: {}`",
                r.id, r.title, r.id
            )
        })
        .collect()
}

/// Code paths that do not exist.
fn missing_paths(requirements: &[Requirement], exists: impl Fn(&str) -> bool) -> Vec<String> {
    requirements
        .iter()
        .flat_map(|r| {
            r.enforced_in
                .iter()
                .filter(|p| !exists(p))
                .map(move |p| format!("{}: enforced in `{p}`, which does not exist", r.id))
        })
        .collect()
}

/// Whether `source` defines `fn name` (sync or async, any visibility).
fn defines_fn(source: &str, name: &str) -> bool {
    source.match_indices("fn ").any(|(at, _)| {
        source[at + 3..]
            .strip_prefix(name)
            .is_some_and(|after| after.starts_with('(') || after.starts_with('<'))
            && source[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// Tests named in a (committed) matrix that are not in the tree.
fn missing_tests(
    requirements: &[Requirement],
    read: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in requirements {
        for t in &r.tests {
            let (file, name) = t
                .name
                .rsplit_once("::")
                .map_or((t.name.as_str(), None), |(f, n)| (f, Some(n)));
            match (read(file), name) {
                (None, _) => out.push(format!("{}: {} does not exist", r.id, t.name)),
                (Some(src), Some(name)) if !defines_fn(&src, name) => {
                    out.push(format!("{}: {file} has no `fn {name}`", r.id))
                }
                _ => {}
            }
        }
    }
    out
}

/// The first line where the committed matrix and the rendered one differ.
fn stale(committed: &str, rendered: &str) -> Option<String> {
    if committed == rendered {
        return None;
    }
    let (c, r): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), rendered.lines().collect());
    let at = c
        .iter()
        .zip(&r)
        .position(|(a, b)| a != b)
        .unwrap_or(c.len().min(r.len()));
    Some(format!(
        "docs/traceability.md is stale from line {}:\n  committed: {}\n  generated: {}\n\
         regenerate with `UPDATE_TRACEABILITY=1 cargo test -p relay-runtime --test traceability`",
        at + 1,
        c.get(at).unwrap_or(&"(end of file)"),
        r.get(at).unwrap_or(&"(end of file)")
    ))
}

/// The model of the tree: requirements with their tests, and every problem found on the way.
fn model() -> (Vec<Requirement>, Vec<String>) {
    let root = workspace_root();
    let md = std::fs::read_to_string(root.join("docs/requirements.md")).unwrap();
    let stated = match parse_requirements(&md) {
        Ok(s) => s,
        Err(errors) => panic!("docs/requirements.md:\n{}", errors.join("\n")),
    };
    let (tags, mut errors) = scan_tree(&root);
    let (requirements, link_errors) = link(&stated, &tags);
    errors.extend(link_errors);
    (requirements, errors)
}

fn fail_on(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

#[test]
fn every_tag_names_a_requirement_and_sits_on_a_test() {
    let (_, errors) = model();
    fail_on("REQ tags that point at nothing", &errors);
}

// REQ: R11.5
#[test]
fn every_requirement_has_a_test() {
    let (requirements, _) = model();
    fail_on("requirements without a test", &untested(&requirements));
}

#[test]
fn every_code_path_named_in_the_requirements_exists() {
    let root = workspace_root();
    let (requirements, _) = model();
    fail_on(
        "code paths that do not exist",
        &missing_paths(&requirements, |p| root.join(p).exists()),
    );
}

#[test]
fn the_requirement_ids_are_those_of_the_product_brief() {
    let (requirements, _) = model();
    let ids: Vec<&str> = requirements.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids, PRODUCT_IDS,
        "docs/requirements.md must keep the brief's ids, in order"
    );
    // CI checks out the brief next to the repository; locally it may be absent.
    let brief = workspace_root().join("../shared/design/PRODUCT.md");
    match std::fs::read_to_string(&brief) {
        Ok(text) => {
            let in_brief: BTreeSet<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("- R"))
                .filter_map(|l| l.split_whitespace().next())
                .map(|id| format!("R{id}"))
                .collect();
            let ours: BTreeSet<String> = PRODUCT_IDS.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(ours, in_brief, "the brief's requirement ids changed");
        }
        Err(_) => eprintln!(
            "{} not found: ids checked against the copy in this test only",
            brief.display()
        ),
    }
}

// REQ: R11.5
#[test]
fn every_test_in_the_committed_matrix_exists_in_the_tree() {
    let root = workspace_root();
    let committed = std::fs::read_to_string(root.join("docs/traceability.md")).unwrap();
    let requirements = traceability::parse(&committed).unwrap();
    fail_on(
        "tests named in docs/traceability.md that are not in the tree",
        &missing_tests(&requirements, |f| {
            std::fs::read_to_string(root.join(f)).ok()
        }),
    );
}

// REQ: R11.5
#[test]
fn the_committed_matrix_is_generated_from_the_requirements_and_the_tags() {
    let root = workspace_root();
    let (requirements, _) = model();
    let rendered = traceability::render(&requirements);
    let path = root.join("docs/traceability.md");
    if std::env::var_os("UPDATE_TRACEABILITY").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(why) = stale(&committed, &rendered) {
        panic!("{why}");
    }
    // What qualify embeds is what was committed at build time.
    assert_eq!(traceability::MATRIX, committed);
}

// The checks above, each shown failing on a crafted input.

#[test]
fn a_tag_on_a_helper_or_on_nothing_is_reported() {
    let src = "// REQ: R1.1\nfn helper() {}\n\n// REQ: R1.2\nstruct S;\n\n// REQ: R1.3\n#[test]\nfn real() {}\n";
    let bin = || Ok(("pkg::t".to_owned(), Vec::new()));
    let (tags, errors) = scan_rust("x/tests/t.rs", src, bin);
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].test.name, "x/tests/t.rs::real");
    assert_eq!(tags[0].test.junit_id.as_deref(), Some("pkg::t real"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("`fn helper`, which is not a test"));
    assert!(errors[1].contains("not followed by a test function"));
}

#[test]
fn unit_tests_get_their_module_path_in_the_junit_id() {
    let src = "fn a() {}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    // REQ: R1.1\n    #[tokio::test]\n    async fn works() {}\n}\n";
    let bin = || {
        Ok((
            "relay-domain".to_owned(),
            vec!["export".into(), "seal".into()],
        ))
    };
    let (tags, errors) = scan_rust("crates/relay-domain/src/export/seal.rs", src, bin);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        tags[0].test.junit_id.as_deref(),
        Some("relay-domain export::seal::tests::works")
    );
    let root = workspace_root();
    assert_eq!(
        test_binary(&root, "bins/relay-server/src/config.rs").unwrap(),
        (
            "relay-server::bin/relay-server".to_owned(),
            vec!["config".to_owned()]
        )
    );
    assert_eq!(
        test_binary(&root, "conformance/tests/in_memory.rs")
            .unwrap()
            .0,
        "relay-conformance::in_memory"
    );
}

#[test]
fn a_requirement_without_a_test_and_an_unknown_id_are_reported() {
    let stated = parse_requirements(
        "## R1.1 First\n- Clauses: §11.10(e)\n- Enforced in: `a.rs`\n\n## R1.2 Second\n- Clauses: §11.10(a)\n- Enforced in: `b.rs`\n",
    )
    .unwrap();
    let tag = |ids: &[&str]| Tag {
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        test: TestRef {
            name: "t.rs::x".into(),
            junit_id: None,
        },
        at: "t.rs:1".into(),
    };
    let (reqs, errors) = link(&stated, &[tag(&["R1.1", "R9.9"])]);
    assert_eq!(
        errors,
        ["t.rs:1: R9.9 is not a requirement of docs/requirements.md"]
    );
    let untested = untested(&reqs);
    assert_eq!(untested.len(), 1);
    assert!(untested[0].starts_with("R1.2 (Second) has no test"));
    assert!(parse_requirements("## R1.1 No clauses\n").is_err());
}

#[test]
fn a_missing_code_path_a_missing_test_and_a_stale_matrix_are_reported() {
    let reqs = vec![Requirement {
        id: "R1.1".into(),
        title: "T".into(),
        clauses: "§11.10(e)".into(),
        enforced_in: vec!["here.rs".into(), "gone.rs".into()],
        tests: vec![
            TestRef {
                name: "t.rs::present".into(),
                junit_id: None,
            },
            TestRef {
                name: "t.rs::renamed_away".into(),
                junit_id: None,
            },
            TestRef {
                name: "gone.rs::x".into(),
                junit_id: None,
            },
        ],
    }];
    assert_eq!(
        missing_paths(&reqs, |p| p == "here.rs"),
        ["R1.1: enforced in `gone.rs`, which does not exist"]
    );
    let read = |f: &str| (f == "t.rs").then(|| "#[test]\nfn present() {}\n".to_owned());
    assert_eq!(
        missing_tests(&reqs, read),
        [
            "R1.1: t.rs has no `fn renamed_away`",
            "R1.1: gone.rs::x does not exist"
        ]
    );
    let rendered = traceability::render(&reqs);
    let edited = rendered.replace("present", "presnt");
    assert!(
        stale(&edited, &rendered)
            .unwrap()
            .contains("stale from line")
    );
    assert!(stale(&rendered, &rendered).is_none());
}
