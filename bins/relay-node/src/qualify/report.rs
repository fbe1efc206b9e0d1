//! The qualification report: checks, their evidence, the Markdown and JSON renderings.

use super::*;

/// Which protocol a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Installation qualification.
    #[serde(rename = "IQ")]
    Iq,
    /// Operational qualification.
    #[serde(rename = "OQ")]
    Oq,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    /// The check holds.
    Pass,
    /// The check holds but shows a posture unfit for regulated production (e.g. a non-WORM
    /// notary); it does not fail the run, and the evidence says why.
    Warn,
    /// The check does not hold; the run fails.
    Fail,
}

impl CheckStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "PASS",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One check with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable id, e.g. `IQ-05` (validation protocols cite it).
    pub id: &'static str,
    /// IQ or OQ.
    pub phase: Phase,
    /// What is checked.
    pub title: &'static str,
    /// The verdict.
    pub status: CheckStatus,
    /// What was observed, one fact per line.
    pub evidence: Vec<String>,
}

impl Check {
    pub(super) fn new(id: &'static str, phase: Phase, title: &'static str) -> Self {
        Self {
            id,
            phase,
            title,
            status: CheckStatus::Pass,
            evidence: Vec::new(),
        }
    }

    pub(super) fn note(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }

    pub(super) fn warn(&mut self, line: impl Into<String>) {
        if self.status == CheckStatus::Pass {
            self.status = CheckStatus::Warn;
        }
        self.note(format!("WARNING: {}", line.into()));
    }

    pub(super) fn fail(&mut self, line: impl Into<String>) {
        self.status = CheckStatus::Fail;
        self.note(format!("FAILED: {}", line.into()));
    }
}

/// What to qualify; built by the binary from its configuration.
#[derive(Debug, Clone)]
pub struct QualifyRequest {
    /// The binary being qualified (`relay-edge`).
    pub product: String,
    /// The data directory of the installation.
    pub data_dir: PathBuf,
    /// Where the report files go (created if missing).
    pub out_dir: PathBuf,
    /// The workstation id recorded on the `QUALIFICATION` event.
    pub device: Device,
    /// The effective configuration (no secrets), shown as IQ evidence.
    pub config: serde_json::Value,
    /// A release's `SHA256SUMS` file: IQ-01 fails unless the running binary's SHA-256 is in it.
    pub release_sums: Option<PathBuf>,
    /// JUnit XML of the test run whose results the traceability matrix shows
    /// (`--test-results`); `None`: every test is reported as not run.
    pub test_results: Option<PathBuf>,
}

/// The `_relay` record that ties a report to the trail.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// Its `chain_seq` in `_relay`.
    pub chain_seq: u64,
    /// Its checksum.
    pub checksum: String,
}

/// A qualification report (serialized as `report.json`; rendered as Markdown).
#[derive(Debug, Clone, Serialize)]
pub struct QualificationReport {
    /// [`REPORT_FORMAT`].
    pub format: &'static str,
    /// The binary qualified.
    pub product: String,
    /// Its version.
    pub version: &'static str,
    /// Operating system and architecture it was built for.
    pub platform: String,
    /// When the run started (UTC, RFC 3339 with microseconds).
    pub generated_at: String,
    /// The time label of `generated_at` (`system` or `ntp:<offset>us`).
    pub time_label: String,
    /// The data directory qualified.
    pub data_dir: String,
    /// `PASS` when no check failed, else `FAIL`.
    pub verdict: CheckStatus,
    /// Every check, in protocol order.
    pub checks: Vec<Check>,
    /// SHA-256 of the JSON of `checks` (what the `QUALIFICATION` event records).
    pub checks_sha256: String,
    /// The `QUALIFICATION` event appended to `_relay`.
    pub journal_entry: Option<JournalEntry>,
    /// Requirement -> clause -> code -> tests with their last result (§11.10(a)).
    pub traceability: TraceabilityReport,
}

impl QualificationReport {
    /// Whether no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.verdict != CheckStatus::Fail
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Fail)
    }

    /// The report as Markdown, for a validation binder.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str(&format!(
            "# Qualification report: {} {}\n\n",
            self.product, self.version
        ));
        md.push_str(&format!("- Verdict: **{}**\n", self.verdict.as_str()));
        md.push_str(&format!(
            "- Generated: {} (time source: {})\n",
            self.generated_at, self.time_label
        ));
        md.push_str(&format!("- Platform: {}\n", self.platform));
        md.push_str(&format!("- Data directory: `{}`\n", self.data_dir));
        md.push_str(&format!("- Checks SHA-256: `{}`\n", self.checks_sha256));
        match &self.journal_entry {
            Some(e) => md.push_str(&format!(
                "- Recorded as `{QUALIFICATION_KIND}` event `_relay#{}` (checksum `{}`)\n",
                e.chain_seq, e.checksum
            )),
            None => md.push_str("- Not recorded in `_relay`\n"),
        }
        md.push_str(
            "\nOQ checks ran in a scratch data directory; production trails were only read.\n",
        );
        md.push_str("\n## Summary\n\n| id | phase | check | result |\n|---|---|---|---|\n");
        for c in &self.checks {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                c.id,
                match c.phase {
                    Phase::Iq => "IQ",
                    Phase::Oq => "OQ",
                },
                c.title,
                c.status.as_str()
            ));
        }
        md.push_str("\n## Evidence\n");
        for c in &self.checks {
            md.push_str(&format!(
                "\n### {} {}: {}\n\n",
                c.id,
                c.title,
                c.status.as_str()
            ));
            for line in &c.evidence {
                md.push_str(&format!("- {}\n", line.replace('\n', " ")));
            }
        }
        md.push_str(&self.traceability.to_markdown());
        md.push_str(
            "\n## Signatures\n\nExecuted by: ____________________  Date: __________\n\n\
             Reviewed by: ____________________  Date: __________\n",
        );
        md
    }
}

/// What a qualification run produced.
#[derive(Debug)]
pub struct QualifyOutcome {
    /// The report.
    pub report: QualificationReport,
    /// The Markdown file written.
    pub markdown_path: PathBuf,
    /// The JSON file written.
    pub json_path: PathBuf,
}

impl QualifyOutcome {
    /// The console summary both binaries print: one line per check, where the report files
    /// are, the `QUALIFICATION` event when one was recorded, and the verdict.
    pub fn summary(&self) -> String {
        let report = &self.report;
        let mut out = String::new();
        for c in &report.checks {
            let status = format!("{:?}", c.status).to_uppercase();
            out.push_str(&format!("{status:<5} {}  {}\n", c.id, c.title));
        }
        for path in [&self.markdown_path, &self.json_path] {
            out.push_str(&format!("report: {}\n", path.display()));
        }
        if let Some(e) = &report.journal_entry {
            out.push_str(&format!(
                "recorded as QUALIFICATION event _relay#{}\n",
                e.chain_seq
            ));
        }
        let t = &report.traceability;
        out.push_str(&format!(
            "traceability: {} requirements, test results: {} passed, {} failed, {} not run ({})\n",
            t.requirements.len(),
            t.passed,
            t.failed,
            t.not_run,
            t.results_source
        ));
        if report.passed() {
            out.push_str("qualification PASSED");
        } else {
            let failed: Vec<&str> = report.failures().map(|c| c.id).collect();
            out.push_str(&format!("qualification FAILED: {}", failed.join(", ")));
        }
        out
    }
}
