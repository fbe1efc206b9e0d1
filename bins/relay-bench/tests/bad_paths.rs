//! `relay-bench` as a process, given paths it cannot use: every one is a one-line error and exit
//! code 2, never a panic; a report document that does not exist yet is created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_relay-bench");

/// One row as `relay-bench --json` writes it.
const ROW: &str = r#"{"path":"chain verify, in memory (records/s)","ours":"1.00 M rec/s","baseline":"1.10 M rec/s raw HMAC-SHA256 of the same canonical bytes","ratio":"91%","target":">= 50% of baseline","met":true,"note":"91% vs >= 50%"}"#;

fn bench(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `relay-bench report --from ROWS --write DOC`, as scripts/bench.sh runs it with BENCH_DOC.
fn report(rows: &Path, doc: &Path) -> Output {
    bench(
        &[
            "report",
            "--from",
            rows.to_str().unwrap(),
            "--write",
            doc.to_str().unwrap(),
        ],
        &[],
    )
}

/// Exit code 2, one clear line naming `needle`, and no panic.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(stderr.starts_with("relay-bench: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

fn rows_file(dir: &Path) -> std::path::PathBuf {
    let rows = dir.join("rows.jsonl");
    std::fs::write(&rows, format!("{ROW}\n")).unwrap();
    rows
}

#[test]
fn a_report_document_that_does_not_exist_yet_is_created_with_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows_file(tmp.path());
    let doc = tmp.path().join("performance.md");
    let out = report(&rows, &doc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(text.contains("<!-- bench-report:begin -->"));
    assert!(text.contains("<!-- bench-report:end -->"));
    assert!(text.contains("| chain verify, in memory (records/s) | 1.00 M rec/s |"));

    // A second run replaces the section instead of appending another.
    std::fs::write(
        &doc,
        format!(
            "# Mine\n\nkept\n\n{}",
            text.trim_start_matches("# Performance report\n\n")
        ),
    )
    .unwrap();
    let out = report(&rows, &doc);
    assert!(out.status.success());
    let again = std::fs::read_to_string(&doc).unwrap();
    assert!(again.starts_with("# Mine\n\nkept\n\n"));
    assert_eq!(again.matches("bench-report:begin").count(), 1);
}

#[test]
fn a_report_document_in_a_missing_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows_file(tmp.path());
    let doc = tmp.path().join("no-such-dir/performance.md");
    let out = report(&rows, &doc);
    assert_usage_error(&out, "cannot create the report document in");
    assert_usage_error(&out, "no-such-dir");
    assert!(!doc.exists());
}

#[test]
fn unreadable_report_documents_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = rows_file(tmp.path());

    // A directory where the document should be.
    let out = report(&rows, tmp.path());
    assert_usage_error(&out, "is a directory");

    // A path below a regular file: unreadable for every user, root included.
    let out = report(&rows, &rows.join("performance.md"));
    assert_usage_error(&out, "cannot open the report document");
    assert_usage_error(&out, "Not a directory");

    // An existing document without the report markers is left as it is.
    let doc = tmp.path().join("README.md");
    std::fs::write(&doc, "# Someone else's file\n").unwrap();
    let out = report(&rows, &doc);
    assert_usage_error(&out, "has no `<!-- bench-report:begin -->`");
    assert_eq!(
        std::fs::read_to_string(&doc).unwrap(),
        "# Someone else's file\n"
    );
}

#[test]
fn missing_or_malformed_row_files_and_a_bad_json_path_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("performance.md");

    let out = report(&tmp.path().join("absent.jsonl"), &doc);
    assert_usage_error(&out, "cannot read the rows file");
    assert_usage_error(&out, "absent.jsonl");

    let garbage = tmp.path().join("garbage.jsonl");
    std::fs::write(&garbage, format!("{ROW}\n{{not json\n")).unwrap();
    let out = report(&garbage, &doc);
    assert_usage_error(
        &out,
        "garbage.jsonl:2: not a row written by `relay-bench --json`",
    );
    assert!(!doc.exists(), "nothing is written from a bad rows file");

    let rows = rows_file(tmp.path());
    let json = tmp.path().join("missing-dir/rows.jsonl");
    let out = bench(
        &[
            "--json",
            json.to_str().unwrap(),
            "report",
            "--from",
            rows.to_str().unwrap(),
        ],
        &[],
    );
    assert_usage_error(&out, "cannot open the --json file");
}

#[test]
fn a_bench_directory_that_does_not_exist_stops_before_measuring() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-such-bench-dir");
    let out = bench(
        &["--dir", dir.to_str().unwrap(), "export", "--records", "10"],
        &[],
    );
    assert_usage_error(&out, "cannot create a scratch directory in --dir");
}

#[test]
fn bad_arguments_and_missing_tools_are_clear_errors() {
    let out = bench(&["export", "--format", "xml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'xml'"));

    let out = bench(&["pg", "--admin-dsn", "not a dsn"], &[]);
    assert_usage_error(&out, "the admin DSN");

    // The default run needs openssl for its large-file baseline; without it on PATH it says so.
    let empty = tempfile::tempdir().unwrap();
    let out = bench(
        &["--records", "10"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_usage_error(&out, "`openssl` is not on PATH");
}
