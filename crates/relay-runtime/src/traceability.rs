//! Requirement traceability (21 CFR 11.10(a), EU GMP Annex 11 §4.4): requirement -> Part 11 /
//! Annex 11 clause -> where it is enforced -> the tests that prove it -> their last result.
//!
//! The matrix is `docs/traceability.md`. It is **generated**, never written by hand:
//! `crates/relay-runtime/tests/traceability.rs` renders it from the project's requirement list
//! (`docs/requirements.md`: id, clauses, code paths) and from the `// REQ: R1.2` tags written
//! directly above the tests in the tree, and fails when the committed file is stale, when a
//! requirement has no test, or when a tag or a code path points at nothing. The file is compiled
//! into this crate ([`MATRIX`]) so `qualify` can put it in its report wherever the binary is
//! installed, with each test's last result read from a JUnit file of the test run
//! ([`TestResults`], written by `cargo nextest run`: `.config/nextest.toml`), or "not run" when
//! no results are given. Results are never assumed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The generated matrix (docs/traceability.md) as compiled into this build.
pub const MATRIX: &str = include_str!("../../../docs/traceability.md");

/// The heading of the requirement table in the generated matrix.
const REQUIREMENTS_HEADER: &str = "| Requirement | Part 11 / Annex 11 | Enforced in | Tests |";
/// The heading of the test index in the generated matrix.
const INDEX_HEADER: &str = "| Test | JUnit id (nextest) | Requirements |";

/// One requirement of docs/requirements.md with the tests tagged for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The id of the product brief, e.g. `R1.2`.
    pub id: String,
    /// The requirement in one line, in the project's words.
    pub title: String,
    /// The Part 11 and Annex 11 clauses it serves, e.g. `§11.10(e); Annex 11 §9`.
    pub clauses: String,
    /// Files (or directories) that enforce it, relative to the workspace root.
    pub enforced_in: Vec<String>,
    /// The tests that prove it.
    pub tests: Vec<TestRef>,
}

/// A test named in the matrix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TestRef {
    /// `path/to/file.rs::test_fn`, or a whole file for evidence run outside the Rust test suite
    /// (e.g. `e2e/browser/review.test.mjs`).
    pub name: String,
    /// How the JUnit report of `cargo nextest run` names it (`<binary id> <test name>`); `None`
    /// for evidence run outside nextest.
    pub junit_id: Option<String>,
}

/// Why a matrix or a results file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceabilityError {
    /// The matrix text is not in the generated format.
    #[error("the traceability matrix is malformed at line {line}: {message}")]
    Matrix {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The JUnit file is not well-formed XML.
    #[error("the test results are not JUnit XML: {0}")]
    Junit(String),
    /// The results file could not be read.
    #[error("cannot read the test results {path}")]
    Read {
        /// The file given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The results file holds no test case, so it cannot be the run of this suite.
    #[error("the test results {path} hold no test case")]
    Empty {
        /// The file given.
        path: PathBuf,
    },
}

/// The compiled matrix ([`MATRIX`]) with the last results from the JUnit file `results`, or
/// every test "not run" when no file is given. A file that cannot be read or parsed is an
/// error, never an empty result.
pub fn report_for(results: Option<&Path>) -> Result<TraceabilityReport, TraceabilityError> {
    let requirements = parse(MATRIX)?;
    let Some(path) = results else {
        return Ok(TraceabilityReport::new(
            &requirements,
            None,
            "no test results given (--test-results FILE), so every test is reported as not run",
        ));
    };
    let xml = std::fs::read_to_string(path).map_err(|source| TraceabilityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let results = TestResults::from_junit(&xml)?;
    if results.is_empty() {
        return Err(TraceabilityError::Empty {
            path: path.to_path_buf(),
        });
    }
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| {
            relay_domain::Timestamp::from_unix_micros(d.as_micros().try_into().ok()?).ok()
        })
        .map_or_else(|| "unknown".to_owned(), |t| t.to_canonical());
    Ok(TraceabilityReport::new(
        &requirements,
        Some(&results),
        format!(
            "JUnit file {} ({} test cases, written {modified})",
            path.display(),
            results.len()
        ),
    ))
}

/// Renders the matrix document (docs/traceability.md) for `requirements`, in order.
pub fn render(requirements: &[Requirement]) -> String {
    let mut md = String::new();
    md.push_str(
        "# Requirement traceability matrix\n\n\
         <!-- generated by crates/relay-runtime/tests/traceability.rs from docs/requirements.md and \
         the `// REQ:` tags on the tests; do not edit by hand. Regenerate with \
         `UPDATE_TRACEABILITY=1 cargo test -p relay-runtime --test traceability`. -->\n\n\
         Every requirement of [requirements.md](requirements.md) (the ids of the product brief), the \
         Part 11 / Annex 11 clauses it serves, where the code enforces it and the tests that prove \
         it. A test is listed here because a `// REQ:` tag sits on it in the source, so the list \
         cannot name a test that does not exist. `relay-edge qualify --test-results FILE` and \
         `relay-server qualify --test-results FILE` print this matrix with each test's last \
         result from the JUnit file of the test run (`cargo nextest run` writes \
         `target/nextest/default/junit.xml`).\n\n",
    );
    let tests: usize = requirements.iter().map(|r| r.tests.len()).sum();
    let _ = writeln!(
        md,
        "{} requirements, {} test references.\n",
        requirements.len(),
        tests
    );
    md.push_str(REQUIREMENTS_HEADER);
    md.push_str("\n|---|---|---|---|\n");
    for r in requirements {
        let code: Vec<String> = r.enforced_in.iter().map(|p| format!("`{p}`")).collect();
        let tests: Vec<String> = r.tests.iter().map(|t| format!("`{}`", t.name)).collect();
        let _ = writeln!(
            md,
            "| {} {} | {} | {} | {} |",
            r.id,
            r.title,
            r.clauses,
            code.join("<br>"),
            tests.join("<br>")
        );
    }
    md.push_str("\n## Test index\n\nEach test once, with the requirements it proves.\n\n");
    md.push_str(INDEX_HEADER);
    md.push_str("\n|---|---|---|\n");
    let mut index: BTreeMap<&TestRef, Vec<&str>> = BTreeMap::new();
    for r in requirements {
        for t in &r.tests {
            index.entry(t).or_default().push(&r.id);
        }
    }
    for (t, ids) in index {
        let junit = t
            .junit_id
            .as_deref()
            .map_or("(outside nextest)".to_owned(), |j| format!("`{j}`"));
        let _ = writeln!(md, "| `{}` | {} | {} |", t.name, junit, ids.join(", "));
    }
    md
}

/// Reads a matrix rendered by [`render`] back into its requirements.
pub fn parse(matrix: &str) -> Result<Vec<Requirement>, TraceabilityError> {
    let mut junit: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    let mut table = None;
    for (i, line) in matrix.lines().enumerate() {
        let line = line.trim();
        if line == REQUIREMENTS_HEADER || line == INDEX_HEADER {
            table = Some(line);
            continue;
        }
        let Some(header) = table else { continue };
        if !line.starts_with('|') {
            table = None;
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect();
        let bad = |message: String| TraceabilityError::Matrix {
            line: i + 1,
            message,
        };
        if header == INDEX_HEADER {
            let [test, id, _] = cells.as_slice() else {
                return Err(bad(format!("{} cells, expected 3", cells.len())));
            };
            let id = id
                .strip_prefix('`')
                .and_then(|j| j.strip_suffix('`'))
                .map(str::to_owned);
            junit.insert(unquote(test), id);
        } else {
            if cells.len() != 4 {
                return Err(bad(format!("{} cells, expected 4", cells.len())));
            }
            rows.push((i + 1, cells));
        }
    }
    let mut out = Vec::new();
    for (line, cells) in rows {
        let (id, title) = cells[0]
            .split_once(' ')
            .ok_or_else(|| TraceabilityError::Matrix {
                line,
                message: "requirement cell without id and title".into(),
            })?;
        let list = |cell: &str| -> Vec<String> {
            cell.split("<br>")
                .map(unquote)
                .filter(|s| !s.is_empty())
                .collect()
        };
        let tests = list(&cells[3])
            .into_iter()
            .map(|name| TestRef {
                junit_id: junit.get(&name).cloned().flatten(),
                name,
            })
            .collect();
        out.push(Requirement {
            id: id.to_owned(),
            title: title.to_owned(),
            clauses: cells[1].clone(),
            enforced_in: list(&cells[2]),
            tests,
        });
    }
    if out.is_empty() {
        return Err(TraceabilityError::Matrix {
            line: 1,
            message: "no requirement table".into(),
        });
    }
    Ok(out)
}

fn unquote(cell: &str) -> String {
    cell.trim().trim_matches('`').to_owned()
}

/// The last result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestOutcome {
    /// It ran and passed (after retries, if any).
    Passed,
    /// It ran and failed.
    Failed,
    /// The run listed it as skipped.
    Skipped,
    /// The results do not contain it, or no results were given.
    NotRun,
}

impl TestOutcome {
    /// The word shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Passed => "passed",
            TestOutcome::Failed => "FAILED",
            TestOutcome::Skipped => "skipped",
            TestOutcome::NotRun => "not run",
        }
    }
}

/// Test results read from a JUnit XML file (`cargo nextest run`'s `junit.xml`).
#[derive(Debug, Clone, Default)]
pub struct TestResults {
    /// `<classname> <name>` -> outcome.
    outcomes: BTreeMap<String, TestOutcome>,
}

impl TestResults {
    /// Parses JUnit XML: every `<testcase>`, failed when it holds `<failure>` or `<error>`,
    /// skipped when it holds `<skipped>`, passed otherwise.
    pub fn from_junit(xml: &str) -> Result<Self, TraceabilityError> {
        use quick_xml::events::{BytesStart, Event};
        let attr = |e: &BytesStart<'_>, key: &[u8]| -> Result<String, TraceabilityError> {
            for a in e.attributes() {
                let a = a.map_err(|err| TraceabilityError::Junit(err.to_string()))?;
                if a.key.as_ref() == key {
                    return a
                        .normalized_value(quick_xml::XmlVersion::default())
                        .map(|v| v.into_owned())
                        .map_err(|err| TraceabilityError::Junit(err.to_string()));
                }
            }
            Ok(String::new())
        };
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut outcomes = BTreeMap::new();
        let mut current: Option<(String, TestOutcome)> = None;
        let mut saw_suite = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| TraceabilityError::Junit(e.to_string()))?;
            match event {
                Event::Start(e) | Event::Empty(e)
                    if matches!(e.name().as_ref(), b"testsuites" | b"testsuite") =>
                {
                    saw_suite = true;
                }
                Event::Start(e) if e.name().as_ref() == b"testcase" => {
                    let id = format!("{} {}", attr(&e, b"classname")?, attr(&e, b"name")?);
                    current = Some((id, TestOutcome::Passed));
                }
                Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                    let id = format!("{} {}", attr(&e, b"classname")?, attr(&e, b"name")?);
                    outcomes.insert(id, TestOutcome::Passed);
                }
                Event::Start(e) | Event::Empty(e) => {
                    if let Some((_, outcome)) = current.as_mut() {
                        match e.name().as_ref() {
                            b"failure" | b"error" => *outcome = TestOutcome::Failed,
                            b"skipped" if *outcome == TestOutcome::Passed => {
                                *outcome = TestOutcome::Skipped
                            }
                            _ => {}
                        }
                    }
                }
                Event::End(e) if e.name().as_ref() == b"testcase" => {
                    if let Some((id, outcome)) = current.take() {
                        outcomes.insert(id, outcome);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !saw_suite {
            return Err(TraceabilityError::Junit(
                "no <testsuites> or <testsuite> element".into(),
            ));
        }
        Ok(Self { outcomes })
    }

    /// The outcome of `test` in these results.
    pub fn outcome(&self, test: &TestRef) -> TestOutcome {
        test.junit_id
            .as_ref()
            .and_then(|id| self.outcomes.get(id))
            .copied()
            .unwrap_or(TestOutcome::NotRun)
    }

    /// How many test cases the file holds.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the file holds no test case.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

/// A test of the matrix with its last result.
#[derive(Debug, Clone, Serialize)]
pub struct TracedTest {
    /// `path/to/file.rs::test_fn`.
    pub test: String,
    /// Its JUnit id, when it runs under nextest.
    pub junit_id: Option<String>,
    /// Its last result.
    pub result: TestOutcome,
}

/// A requirement with the last results of its tests.
#[derive(Debug, Clone, Serialize)]
pub struct TracedRequirement {
    /// E.g. `R1.2`.
    pub id: String,
    /// The requirement in one line.
    pub title: String,
    /// Part 11 / Annex 11 clauses.
    pub clauses: String,
    /// Where the code enforces it.
    pub enforced_in: Vec<String>,
    /// Its tests and their results.
    pub tests: Vec<TracedTest>,
}

/// The matrix with each test's last result, as `qualify` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceabilityReport {
    /// Where the results come from (the JUnit file), or why there are none.
    pub results_source: String,
    /// Every requirement, in order.
    pub requirements: Vec<TracedRequirement>,
    /// Test references whose last result is passed.
    pub passed: usize,
    /// Test references whose last result is failed.
    pub failed: usize,
    /// Test references skipped or not run.
    pub not_run: usize,
}

impl TraceabilityReport {
    /// Joins `requirements` with `results`; without results every test is "not run".
    pub fn new(
        requirements: &[Requirement],
        results: Option<&TestResults>,
        results_source: impl Into<String>,
    ) -> Self {
        let (mut passed, mut failed, mut not_run) = (0, 0, 0);
        let requirements = requirements
            .iter()
            .map(|r| TracedRequirement {
                id: r.id.clone(),
                title: r.title.clone(),
                clauses: r.clauses.clone(),
                enforced_in: r.enforced_in.clone(),
                tests: r
                    .tests
                    .iter()
                    .map(|t| {
                        let result = results.map_or(TestOutcome::NotRun, |res| res.outcome(t));
                        match result {
                            TestOutcome::Passed => passed += 1,
                            TestOutcome::Failed => failed += 1,
                            TestOutcome::Skipped | TestOutcome::NotRun => not_run += 1,
                        }
                        TracedTest {
                            test: t.name.clone(),
                            junit_id: t.junit_id.clone(),
                            result,
                        }
                    })
                    .collect(),
            })
            .collect();
        Self {
            results_source: results_source.into(),
            requirements,
            passed,
            failed,
            not_run,
        }
    }

    /// The matrix section of a qualification report (Markdown).
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("\n## Requirement traceability (§11.10(a))\n\n");
        let _ = writeln!(
            md,
            "Requirement -> Part 11 / Annex 11 clause -> enforced in -> tests with their last \
             result. Results: {}. {} passed, {} failed, {} not run.\n",
            self.results_source, self.passed, self.failed, self.not_run
        );
        md.push_str("| Requirement | Part 11 / Annex 11 | Enforced in | Tests (last result) |\n");
        md.push_str("|---|---|---|---|\n");
        for r in &self.requirements {
            let code: Vec<String> = r.enforced_in.iter().map(|p| format!("`{p}`")).collect();
            let tests: Vec<String> = r
                .tests
                .iter()
                .map(|t| format!("`{}`: {}", t.test, t.result.as_str()))
                .collect();
            let _ = writeln!(
                md,
                "| {} {} | {} | {} | {} |",
                r.id,
                r.title,
                r.clauses,
                code.join("<br>"),
                tests.join("<br>")
            );
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Requirement> {
        vec![
            Requirement {
                id: "R1.1".into(),
                title: "One append-only trail".into(),
                clauses: "§11.10(e); Annex 11 §9".into(),
                enforced_in: vec!["crates/relay-domain/src/record.rs".into()],
                tests: vec![
                    TestRef {
                        name: "crates/relay-domain/tests/chain.rs::intact_chain_verifies".into(),
                        junit_id: Some("relay-domain::chain intact_chain_verifies".into()),
                    },
                    TestRef {
                        name: "e2e/browser/review.test.mjs".into(),
                        junit_id: None,
                    },
                ],
            },
            Requirement {
                id: "R1.2".into(),
                title: "Chained".into(),
                clauses: "§11.10(a)".into(),
                enforced_in: vec!["a.rs".into(), "b.rs".into()],
                tests: vec![TestRef {
                    name: "crates/relay-domain/src/ids.rs::chain_seq_refuses_zero".into(),
                    junit_id: Some("relay-domain ids::tests::chain_seq_refuses_zero".into()),
                }],
            },
        ]
    }

    // REQ: R11.5
    #[test]
    fn the_rendered_matrix_parses_back_to_the_same_requirements() {
        let reqs = sample();
        assert_eq!(parse(&render(&reqs)).unwrap(), reqs);
    }

    #[test]
    fn junit_outcomes_are_read_and_missing_tests_are_not_run() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0">
  <testsuite name="relay-domain::chain" tests="1">
    <testcase name="intact_chain_verifies" classname="relay-domain::chain" time="0.1"></testcase>
  </testsuite>
  <testsuite name="relay-domain" tests="2">
    <testcase name="ids::tests::chain_seq_refuses_zero" classname="relay-domain" time="0.1">
      <failure type="test failure">assertion &amp; more</failure>
    </testcase>
    <testcase name="other" classname="relay-domain"/>
  </testsuite>
</testsuites>"#;
        let results = TestResults::from_junit(xml).unwrap();
        assert_eq!(results.len(), 3);
        let report = TraceabilityReport::new(&sample(), Some(&results), "junit.xml");
        let outcomes: Vec<TestOutcome> = report
            .requirements
            .iter()
            .flat_map(|r| r.tests.iter().map(|t| t.result))
            .collect();
        assert_eq!(
            outcomes,
            [
                TestOutcome::Passed,
                TestOutcome::NotRun,
                TestOutcome::Failed
            ]
        );
        assert_eq!((report.passed, report.failed, report.not_run), (1, 1, 1));
        let md = report.to_markdown();
        assert!(md.contains("`crates/relay-domain/src/ids.rs::chain_seq_refuses_zero`: FAILED"));

        let none = TraceabilityReport::new(&sample(), None, "no test results given");
        assert_eq!((none.passed, none.failed, none.not_run), (0, 0, 3));
    }

    #[test]
    fn malformed_results_are_errors_not_guesses() {
        assert!(TestResults::from_junit("<testsuites><testcase name=\"a\"").is_err());
        assert!(TestResults::from_junit("not xml at all").is_err());
        assert!(TestResults::from_junit("<html></html>").is_err());
    }

    #[test]
    fn the_compiled_matrix_parses() {
        let reqs = parse(MATRIX).unwrap();
        assert!(reqs.iter().all(|r| !r.tests.is_empty()));
    }
}
