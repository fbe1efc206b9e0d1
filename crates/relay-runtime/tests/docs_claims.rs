//! The documents do not lag the code: every `relay-edge <sub>`, `relay-server <sub>`,
//! `relay-verify <sub>` and `relay-bench <sub>` they show exists in the binary's clap definition,
//! and no document says that an existing subcommand is pending or not wired, or that an existing
//! crate or provider adapter does not exist.
//!
//! Subcommands are read from the clap derive definitions in `bins/<bin>/src/main.rs` (the
//! `#[derive(Subcommand)]` enums reached from the `#[command(subcommand)]` field of the parser),
//! crates from the workspace `Cargo.toml`. A mention inside a "Pending" section, or in a sentence
//! saying "pending", "not wired yet", "does not exist yet" and the like, is a claim that the
//! thing is missing: it must then really be missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The binaries whose subcommands documents show.
const BINARIES: [&str; 4] = ["relay-edge", "relay-server", "relay-verify", "relay-bench"];

/// Phrases that say something is not there (yet); lower case.
const PENDING: [&str; 14] = [
    "pending",
    "not wired",
    "not yet wired",
    "not exist",
    "n't exist",
    "not yet exist",
    "not implemented",
    "not yet implemented",
    "not available yet",
    "not yet available",
    "not built yet",
    "coming soon",
    "to be written",
    "is planned",
];

/// Phrases that say a crate or an adapter does not exist; lower case.
const ABSENT: [&str; 4] = ["not exist", "n't exist", "not yet exist", "no such crate"];

/// Words in documents that name a provider adapter crate when "adapter" is in the sentence.
const PROVIDERS: [(&str, &str); 5] = [
    ("AWS", "relay-aws"),
    ("Azure", "relay-azure"),
    ("GCP", "relay-gcp"),
    ("self-hosted", "relay-selfhosted"),
    ("NTP", "relay-ntp"),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A binary's subcommands: first level -> its own subcommands (empty when it has none).
type Commands = BTreeMap<String, BTreeSet<String>>;

fn kebab(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The body lines of `enum name {` / `struct name {` in `src` (rustfmt layout).
fn item_body<'a>(src: &'a str, keyword: &str, name: &str) -> Option<Vec<&'a str>> {
    let head = format!("{keyword} {name} {{");
    let mut lines = src.lines().skip_while(|l| {
        let t = l.trim_start();
        t.strip_prefix("pub ").unwrap_or(t) != head
    });
    let first = lines.next()?;
    let base = first.len() - first.trim_start().len();
    Some(
        lines
            .take_while(|l| !(l.trim_start() == "}" && l.len() - l.trim_start().len() == base))
            .collect(),
    )
}

/// The type of the field marked `#[command(subcommand)]` in `lines`.
fn subcommand_field(lines: &[&str]) -> Option<String> {
    let at = lines
        .iter()
        .position(|l| l.trim() == "#[command(subcommand)]")?;
    let field = lines[at + 1..]
        .iter()
        .find(|l| !l.trim().starts_with("#["))?;
    let ty = field.split(':').nth(1)?.trim().trim_end_matches(',');
    Some(
        ty.trim_start_matches("Option<")
            .trim_end_matches('>')
            .to_owned(),
    )
}

/// The variants of a `#[derive(Subcommand)]` enum with their kebab-case command names and, when
/// a variant carries its own subcommands, their names.
fn subcommands_of(src: &str, enum_name: &str) -> Commands {
    let mut out = Commands::new();
    let Some(body) = item_body(src, "enum", enum_name) else {
        return out;
    };
    let indent = body
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or(4, |l| l.len() - l.trim_start().len());
    let mut renamed: Option<String> = None;
    for (i, line) in body.iter().enumerate() {
        if line.len() - line.trim_start().len() != indent {
            continue;
        }
        let t = line.trim();
        if let Some(name) = t
            .strip_prefix("#[command(name = \"")
            .and_then(|r| r.split('"').next())
        {
            renamed = Some(name.to_owned());
            continue;
        }
        if !t.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let ident: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
        let name = renamed.take().unwrap_or_else(|| kebab(&ident));
        let rest = &t[ident.len()..];
        // Nested subcommands: a tuple variant's Args struct, or a struct variant's own field.
        let nested_enum = if let Some(ty) = rest.strip_prefix('(') {
            let ty = ty.trim_end_matches([')', ',']).trim();
            item_body(src, "struct", ty).and_then(|b| subcommand_field(&b))
        } else if rest.trim_start().starts_with('{') {
            let inner: Vec<&str> = body[i + 1..]
                .iter()
                .take_while(|l| l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            subcommand_field(&inner)
        } else {
            None
        };
        let nested = nested_enum
            .map(|e| subcommands_of(src, &e).into_keys().collect())
            .unwrap_or_default();
        out.insert(name, nested);
    }
    out
}

/// The subcommands of `bins/<bin>/src/main.rs`.
fn binary_commands(root: &Path, bin: &str) -> Commands {
    let src = std::fs::read_to_string(root.join("bins").join(bin).join("src/main.rs")).unwrap();
    // The parser struct is the one deriving `Parser`; its subcommand field names the enum.
    let parser = src
        .split("#[derive(")
        .skip(1)
        .find(|chunk| chunk.split(')').next().unwrap_or("").contains("Parser"))
        .and_then(|chunk| {
            chunk
                .lines()
                .find_map(|l| l.trim().strip_prefix("struct ")?.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("{bin}: no #[derive(Parser)] struct"));
    let enum_name = item_body(&src, "struct", parser)
        .and_then(|b| subcommand_field(&b))
        .unwrap_or_else(|| panic!("{bin}: {parser} has no #[command(subcommand)] field"));
    subcommands_of(&src, &enum_name)
}

/// The workspace's package names (directory name, or `name =` of the member's Cargo.toml).
fn workspace_crates(root: &Path) -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .unwrap();
    members
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|dir| {
            let m = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).unwrap();
            m.lines()
                .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// One sentence of a document with where it is and whether its section is a "Pending" one.
#[derive(Debug)]
struct Sentence {
    file: String,
    line: usize,
    text: String,
    code: bool,
    pending_section: bool,
}

/// Splits Markdown into sentences (prose) and lines (fenced code), remembering the heading.
fn sentences(file: &str, md: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut pending_section = false;
    let mut fenced = false;
    let mut block = String::new();
    let mut block_line = 0;
    let flush = |block: &mut String, line: usize, pending: bool, out: &mut Vec<Sentence>| {
        let text = std::mem::take(block);
        let mut start = 0;
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let end_of_sentence = matches!(b, b'.' | b'!' | b'?')
                && bytes.get(i + 1) == Some(&b' ')
                && bytes
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_uppercase() || *c == b'`' || *c == b'(');
            if end_of_sentence {
                out.push(Sentence {
                    file: file.to_owned(),
                    line,
                    text: text[start..=i].trim().to_owned(),
                    code: false,
                    pending_section: pending,
                });
                start = i + 1;
            }
        }
        if !text[start..].trim().is_empty() {
            out.push(Sentence {
                file: file.to_owned(),
                line,
                text: text[start..].trim().to_owned(),
                code: false,
                pending_section: pending,
            });
        }
    };
    for (i, line) in md.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            flush(&mut block, block_line, pending_section, &mut out);
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(Sentence {
                file: file.to_owned(),
                line: i + 1,
                text: t.to_owned(),
                code: true,
                pending_section,
            });
            continue;
        }
        let new_item = t.is_empty()
            || t.starts_with('#')
            || t.starts_with("- ")
            || t.starts_with("* ")
            || t.starts_with('|')
            || t.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if new_item {
            flush(&mut block, block_line, pending_section, &mut out);
        }
        if let Some(heading) = t.strip_prefix('#') {
            pending_section = heading.to_lowercase().contains("pending");
            continue;
        }
        if t.starts_with('|') {
            // A table row is one statement per row.
            out.push(Sentence {
                file: file.to_owned(),
                line: i + 1,
                text: t.to_owned(),
                code: false,
                pending_section,
            });
            continue;
        }
        if block.is_empty() {
            block_line = i + 1;
        }
        block.push(' ');
        block.push_str(t);
    }
    flush(&mut block, block_line, pending_section, &mut out);
    out
}

/// `(binary, [subcommand, nested subcommand?])` for each command shown in `s`: inline code spans
/// of prose, whole lines of fenced code.
fn command_mentions(s: &Sentence) -> Vec<(String, Vec<String>)> {
    let spans: Vec<&str> = if s.code {
        vec![s.text.as_str()]
    } else {
        s.text.split('`').skip(1).step_by(2).collect()
    };
    let mut out = Vec::new();
    for span in spans {
        let words: Vec<&str> = span.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            // The binary itself, or a path to a built one (`./target/release/relay-edge`), not
            // a source directory (`bins/relay-edge`).
            let path_to_binary = w.starts_with("./") || w.starts_with('/') || w.contains("target/");
            let name = if path_to_binary {
                w.rsplit('/').next().unwrap_or(w)
            } else {
                w
            };
            let Some(bin) = BINARIES.iter().find(|b| **b == name) else {
                continue;
            };
            // Only a command line: the binary first, or after `$`, env assignments, `sudo`,
            // `exec`, or cargo's `--`.
            let leading_ok = words[..i].iter().all(|p| {
                p.contains('=') || matches!(*p, "$" | "sudo" | "exec" | "--" | "-u" | "relay")
            }) || words.get(i.wrapping_sub(1)) == Some(&"--");
            if !leading_ok {
                continue;
            }
            let subs: Vec<String> = words[i + 1..]
                .iter()
                .take(2)
                .take_while(|a| {
                    a.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                        && !a.starts_with('-')
                        && !a.is_empty()
                })
                .map(|a| (*a).to_owned())
                .collect();
            if !subs.is_empty() {
                out.push(((*bin).to_owned(), subs));
            }
        }
    }
    out
}

/// Whether `subs` names an existing command of `commands` (a second word counts only when the
/// first has subcommands of its own; otherwise it is an argument).
fn exists(commands: &Commands, subs: &[String]) -> bool {
    match commands.get(&subs[0]) {
        None => false,
        Some(nested) if nested.is_empty() => true,
        Some(nested) => subs.get(1).is_none_or(|s| nested.contains(s)),
    }
}

/// Every false claim in `docs` about commands and crates.
fn false_claims(
    docs: &[(String, String)],
    commands: &BTreeMap<String, Commands>,
    crates: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (file, md) in docs {
        for s in sentences(file, md) {
            let lower = s.text.to_lowercase();
            let says_pending =
                s.pending_section || (!s.code && PENDING.iter().any(|p| lower.contains(p)));
            for (bin, subs) in command_mentions(&s) {
                let shown = format!("{bin} {}", subs.join(" "));
                let there = commands.get(&bin).is_some_and(|c| exists(c, &subs));
                if says_pending && there {
                    out.push(format!(
                        "{}:{}: says `{shown}` is pending or missing, but it exists: {}",
                        s.file, s.line, s.text
                    ));
                } else if !says_pending && !there {
                    out.push(format!(
                        "{}:{}: shows `{shown}`, which {bin} does not have",
                        s.file, s.line
                    ));
                }
            }
            if s.code || !ABSENT.iter().any(|p| lower.contains(p)) {
                continue;
            }
            // Paths in code spans name files, not crates.
            let prose: String = s
                .text
                .split('`')
                .enumerate()
                .filter(|(i, span)| i % 2 == 0 || !span.contains('/'))
                .map(|(_, span)| span)
                .collect::<Vec<_>>()
                .join(" ");
            let words: BTreeSet<&str> = prose
                .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .collect();
            let mut named: Vec<&str> = crates
                .iter()
                .filter(|c| words.contains(c.as_str()))
                .map(String::as_str)
                .collect();
            if lower.contains("adapter") {
                named.extend(
                    PROVIDERS
                        .iter()
                        .filter(|(word, krate)| words.contains(word) && crates.contains(*krate))
                        .map(|(_, krate)| *krate),
                );
            }
            for krate in named {
                out.push(format!(
                    "{}:{}: says {krate} does not exist, but it is a workspace crate: {}",
                    s.file, s.line, s.text
                ));
            }
        }
    }
    out
}

fn markdown_files(root: &Path) -> Vec<(String, String)> {
    let mut files = vec!["README.md".to_owned(), "terraform/README.md".to_owned()];
    let mut stack = vec![PathBuf::from("docs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(root.join(&dir)).unwrap() {
            let e = e.unwrap();
            let rel = dir.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(rel);
            } else if rel.extension().is_some_and(|x| x == "md") {
                files.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(root.join(&f)).ok()?;
            Some((f, text))
        })
        .collect()
}

fn all_commands(root: &Path) -> BTreeMap<String, Commands> {
    BINARIES
        .iter()
        .map(|b| ((*b).to_owned(), binary_commands(root, b)))
        .collect()
}

// REQ: R11.5
#[test]
fn docs_show_only_existing_commands_and_call_nothing_existing_pending() {
    let root = workspace_root();
    let commands = all_commands(&root);
    let claims = false_claims(&markdown_files(&root), &commands, &workspace_crates(&root));
    assert!(
        claims.is_empty(),
        "documents disagree with the code:\n{}",
        claims.join("\n")
    );
}

#[test]
fn the_clap_definitions_are_read_with_their_nested_subcommands() {
    let commands = all_commands(&workspace_root());
    let edge = &commands["relay-edge"];
    for sub in ["run", "verify", "export", "keys", "qualify", "forward"] {
        assert!(
            edge.contains_key(sub),
            "relay-edge {sub} not found in {edge:?}"
        );
    }
    assert!(edge["keys"].contains("rotate") && edge["keys"].contains("list"));
    assert!(edge["forward"].contains("status"));
    let server = &commands["relay-server"];
    for sub in ["run", "verify", "qualify", "migrate"] {
        assert!(
            server.contains_key(sub),
            "relay-server {sub} not found in {server:?}"
        );
    }
    assert!(commands["relay-verify"].contains_key("proof"));
    assert!(commands["relay-bench"].contains_key("report"));
    let crates = workspace_crates(&workspace_root());
    for c in ["relay-aws", "relay-azure", "relay-gcp", "relay-conformance"] {
        assert!(crates.contains(c), "{c} not in {crates:?}");
    }
}

#[test]
fn stale_pending_claims_and_unknown_commands_are_flagged() {
    let root = workspace_root();
    let commands = all_commands(&root);
    let crates = workspace_crates(&root);
    let doc = |text: &str| vec![("doc.md".to_owned(), text.to_owned())];
    let flagged = |text: &str| false_claims(&doc(text), &commands, &crates);

    // What the part11.md and operations.md "Pending" sections said before issue 26.
    let stale = flagged(
        "# Map\n\n## Pending\n\n- Cloud adapters for AWS (RDS, S3 Object Lock, Secrets Manager), \
         Azure (immutable Blob, Key Vault) and GCP (GCS retention, Secret Manager) do not exist yet \
         (R10.2).\n- `relay-server qualify` (the same checks against the Postgres + S3 store) is not \
         wired yet.\n",
    );
    assert_eq!(stale.len(), 4, "{stale:#?}");
    assert!(
        stale
            .iter()
            .any(|c| c.contains("`relay-server qualify` is pending or missing, but it exists"))
    );
    for krate in ["relay-aws", "relay-azure", "relay-gcp"] {
        assert!(
            stale
                .iter()
                .any(|c| c.contains(&format!("says {krate} does not exist")))
        );
    }
    assert_eq!(
        flagged("Run `relay-server qualify --out DIR`; `relay-server qualify` is pending.").len(),
        2
    );
    assert_eq!(
        flagged("The `relay-aws` crate does not exist yet.").len(),
        1
    );

    // A command the binary does not have, shown as if it existed, in prose and in code.
    let unknown =
        flagged("Run `relay-edge frobnicate --now`.\n\n```sh\nrelay-server launch\n```\n");
    assert_eq!(unknown.len(), 2, "{unknown:#?}");
    assert!(unknown[0].contains("`relay-edge frobnicate`, which relay-edge does not have"));
    assert!(flagged("`relay-edge keys shred` wipes keys.")[0].contains("relay-edge keys shred"));

    // True statements pass: existing commands, and a missing one honestly called pending.
    assert!(
        flagged(
            "Run `relay-edge keys rotate --data-dir D`, then `relay-edge qualify --out DIR`.\n\n\
             ## Pending\n\n- A `relay-edge forward replay` command to re-send an acknowledged range.\n"
        )
        .is_empty()
    );
    assert!(flagged("Metric `relay_capture_pending` counts files.").is_empty());
}
