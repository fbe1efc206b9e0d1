//! Installation and operational qualification (IQ/OQ) of a live installation: what
//! `relay-edge qualify --out DIR` runs.
//!
//! The checks produce evidence a validation team attaches to its IQ/OQ protocol:
//!
//! - **IQ** (installation) inspects the installation as it is: software version, effective
//!   configuration, data directory and secret file permissions, the store's append-only
//!   triggers, the notary's WORM posture, the time posture and the keys.
//! - **OQ** (operation) exercises the functions in a **scratch copy**: a temporary data directory
//!   with fresh local adapters (append, tamper detection, electronic signature, sealed export
//!   with offline verification, notary round trip), then verifies every real trail
//!   **read-only**.
//!
//! Nothing here touches a production trail: the only write to the real installation is one
//! `QUALIFICATION` event in `_relay` carrying the verdict and the SHA-256 of the checks, so
//! the report can be tied to the trail. The report is written as Markdown and JSON, with the UTC
//! date and time in the file names.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use relay_domain::export::{
    ANCHORS_JSON, ExportFilter, GeneratedBy, MANIFEST_FILE, PROOFS_JSONL, PackageInputs,
    RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL, VerifyOptions, verify_package,
};
use relay_domain::ports::{
    Notary, RecordStore, SecretName, SecretProvider, SecretProviderExt, TimeSource, WormPosture,
};
use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, Device, EventDraft, EventKind, Payload, Record,
    Subject, TrailId,
};
use relay_local::LocalAdapters;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::traceability::TraceabilityReport;
use crate::verify::verify_trails;

/// The event kind of the one record a qualification run appends to `_relay`.
pub const QUALIFICATION_KIND: &str = "QUALIFICATION";

/// The report format written in every report.
pub const REPORT_FORMAT: &str = "gims-relay qualification v1";

/// The trail the operational checks use inside their scratch data directory.
const SCRATCH_TRAIL: &str = "oq-scratch";
/// The password of the throw-away scratch accounts (they exist only in the temp directory).
const SCRATCH_PASSWORD: &str = "oq scratch password 7431";

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
    fn as_str(self) -> &'static str {
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
    fn new(id: &'static str, phase: Phase, title: &'static str) -> Self {
        Self {
            id,
            phase,
            title,
            status: CheckStatus::Pass,
            evidence: Vec::new(),
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }

    fn warn(&mut self, line: impl Into<String>) {
        if self.status == CheckStatus::Pass {
            self.status = CheckStatus::Warn;
        }
        self.note(format!("WARNING: {}", line.into()));
    }

    fn fail(&mut self, line: impl Into<String>) {
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

/// Why qualification could not run at all (as opposed to a check failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QualifyError {
    /// The installation's adapters could not be opened.
    #[error("cannot open the data directory {path}: {message}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The clock could not be read.
    #[error("cannot read the clock: {0}")]
    Clock(String),
    /// The trail key could not be loaded, so the run cannot be recorded.
    #[error("cannot load the trail key: {0}")]
    Key(String),
    /// The `QUALIFICATION` event could not be appended; an unrecorded qualification is void.
    #[error("cannot record the QUALIFICATION event in _relay")]
    Journal(#[source] AppendError),
    /// The report could not be serialized.
    #[error("cannot serialize the report")]
    Serialize(#[source] serde_json::Error),
    /// The traceability matrix or the test results given could not be read.
    #[error("cannot build the traceability matrix")]
    Traceability(#[source] crate::traceability::TraceabilityError),
    /// The report could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs every IQ and OQ check on the local installation under `request.data_dir`, records one
/// `QUALIFICATION` event in its `_relay` trail and writes the report files.
///
/// A data directory that was never used is initialized as `relay-edge run` would (store and
/// keys), and the evidence says so.
pub async fn qualify_local(request: &QualifyRequest) -> Result<QualifyOutcome, QualifyError> {
    let open_err = |message: String| QualifyError::Open {
        path: request.data_dir.clone(),
        message,
    };
    // Read first: unreadable test results stop the run before the installation is touched.
    let traceability = traceability_of(request)?;
    let fresh = !request.data_dir.join("relay.db").is_file();
    // Permissions are read before the adapters open (opening creates what is missing).
    let mut checks = vec![
        iq_software(&request.product, request.release_sums.as_deref()),
        iq_config(&request.config),
        iq_data_dir(&request.data_dir, fresh),
    ];
    let adapters = LocalAdapters::open(&request.data_dir)
        .await
        .map_err(|e| open_err(crate::edge::error_chain(&e)))?;
    // A fresh installation gets its trail key as `run` would, before the key storage is
    // inspected (IQ-04 must see the files, or the keyring, that will hold it).
    adapters
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .map_err(|e| QualifyError::Key(crate::edge::error_chain(&e)))?;
    checks.push(iq_secrets_kept(&adapters, &request.data_dir));
    checks.push(iq_store_custody(&StoreCustody::of_local(&adapters).await));
    let installation = Installation {
        records: adapters.record_store.clone(),
        secrets: adapters.secrets.clone(),
        notary: adapters.notary.clone(),
        clock: adapters.clock.clone(),
        notary_round_trip: false,
    };
    let outcome = qualify_installation(request, &installation, checks, traceability).await;
    adapters.record_store.close().await;
    outcome
}

/// What the record store enforces against rewrites, as observed by whoever opened it (the
/// SQLite triggers, or the Postgres runtime role's grants under two-role custody).
#[derive(Debug, Clone, Default)]
pub struct StoreCustody {
    /// Which store, e.g. `sqlite /data/relay.db` or `postgres, role relay_app`.
    pub store: String,
    /// What holds, one fact per line.
    pub holds: Vec<String>,
    /// What is broken, one fact per line; any entry fails IQ-05.
    pub violations: Vec<String>,
}

impl StoreCustody {
    /// The SQLite store's append-only triggers.
    pub async fn of_local(adapters: &LocalAdapters) -> Self {
        Self::of_store(
            format!("sqlite {}", adapters.record_store.path().display()),
            adapters.record_store.as_ref(),
        )
        .await
    }

    /// What `store` reports through [`RecordStore::append_only_enforcement`] (its triggers,
    /// and on Postgres the runtime role's grants): each control present holds, each one
    /// missing is a violation.
    pub async fn of_store(name: String, store: &dyn RecordStore) -> Self {
        let e = crate::append_only::read(store).await;
        StoreCustody {
            store: name,
            holds: e
                .present
                .iter()
                .map(|p| format!("{p} present ({})", e.mechanism))
                .collect(),
            violations: e.missing,
        }
    }
}

/// A server of record's installation to qualify: the ports as `relay-server run` opens them.
#[derive(Debug, Clone)]
pub struct ServerInstallation {
    /// Forwarded trails and the server's `_relay`.
    pub records: Arc<dyn RecordStore>,
    /// Keys and tokens.
    pub secrets: Arc<dyn SecretProvider>,
    /// The configured notary.
    pub notary: Arc<dyn Notary>,
    /// The server clock.
    pub clock: Arc<dyn TimeSource>,
    /// What the record store enforces, observed by the binary that opened it.
    pub custody: StoreCustody,
}

/// Runs every IQ and OQ check on a server of record (`relay-server qualify`): the same protocol
/// as [`qualify_local`], against the configured stores, plus a notary round trip on the
/// installed notary (the `_relay` head is anchored there, which the notary scheduler does
/// anyway). The one write to a trail is the `QUALIFICATION` event in `_relay`.
pub async fn qualify_server(
    request: &QualifyRequest,
    server: &ServerInstallation,
) -> Result<QualifyOutcome, QualifyError> {
    let traceability = traceability_of(request)?;
    let checks = vec![
        iq_software(&request.product, request.release_sums.as_deref()),
        iq_config(&request.config),
        iq_store_custody(&server.custody),
    ];
    let installation = Installation {
        records: server.records.clone(),
        secrets: server.secrets.clone(),
        notary: server.notary.clone(),
        clock: server.clock.clone(),
        notary_round_trip: true,
    };
    qualify_installation(request, &installation, checks, traceability).await
}

/// The traceability matrix with the results of `request.test_results`.
fn traceability_of(request: &QualifyRequest) -> Result<TraceabilityReport, QualifyError> {
    crate::traceability::report_for(request.test_results.as_deref())
        .map_err(QualifyError::Traceability)
}

/// The ports a qualification run checks.
struct Installation {
    records: Arc<dyn RecordStore>,
    secrets: Arc<dyn SecretProvider>,
    notary: Arc<dyn Notary>,
    clock: Arc<dyn TimeSource>,
    /// Also anchor `_relay`'s head on the installed notary and read it back (OQ-07).
    notary_round_trip: bool,
}

/// The checks every installation shares, after the installation-specific IQ `checks`; then the
/// `QUALIFICATION` event and the report files.
async fn qualify_installation(
    request: &QualifyRequest,
    inst: &Installation,
    mut checks: Vec<Check>,
    traceability: TraceabilityReport,
) -> Result<QualifyOutcome, QualifyError> {
    let started = inst
        .clock
        .now()
        .await
        .map_err(|e| QualifyError::Clock(e.to_string()))?;
    let trail_secret = inst
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .map_err(|e| QualifyError::Key(crate::edge::error_chain(&e)))?;
    let trail_key = trail_secret
        .to_trail_key()
        .map_err(|e| QualifyError::Key(e.to_string()))?;

    checks.push(iq_notary(inst.notary.as_ref()).await);
    checks.push(iq_time(inst.clock.as_ref(), &request.config));
    checks.push(iq_keys(inst.secrets.as_ref()).await);

    checks.extend(oq_scratch(&request.device).await);
    checks.push(
        oq_production_trails(
            inst.records.as_ref(),
            inst.secrets.as_ref(),
            inst.notary.as_ref(),
        )
        .await,
    );

    let appender = Arc::new(AppendService::new(
        inst.records.clone(),
        inst.clock.clone(),
        trail_key,
    ));
    let journal = Journal::new(appender, Metrics::new(), request.device.clone());
    if inst.notary_round_trip {
        checks.push(oq_installed_notary(inst, &journal).await);
    }

    let verdict = if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        CheckStatus::Fail
    } else {
        CheckStatus::Pass
    };
    let checks_json = serde_json::to_vec(&checks).map_err(QualifyError::Serialize)?;
    let checks_sha256 = hex::encode(Sha256::digest(&checks_json));

    // The one write to the installation's trails: the run's verdict in `_relay`.
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.id)
        .collect();
    let event = journal
        .record(
            qualification_kind(),
            None,
            serde_json::json!({
                "product": request.product,
                "version": crate::VERSION,
                "verdict": verdict.as_str(),
                "checks": checks.len(),
                "failed": failed,
                "checks_sha256": checks_sha256,
            }),
        )
        .await
        .map_err(QualifyError::Journal)?;

    let report = QualificationReport {
        format: REPORT_FORMAT,
        product: request.product.clone(),
        version: crate::VERSION,
        platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        generated_at: started.at.to_canonical(),
        time_label: started.label.to_label(),
        data_dir: request.data_dir.display().to_string(),
        verdict,
        checks,
        checks_sha256,
        journal_entry: Some(JournalEntry {
            chain_seq: event.chain_seq.get(),
            checksum: event.checksum.to_hex(),
        }),
        traceability,
    };
    let (markdown_path, json_path) = write_report(&report, &request.out_dir, started.at)?;
    Ok(QualifyOutcome {
        report,
        markdown_path,
        json_path,
    })
}

/// OQ-07: anchors `_relay`'s head on the installed notary and reads it back.
async fn oq_installed_notary(inst: &Installation, journal: &Journal) -> Check {
    let mut c = Check::new(
        "OQ-07",
        Phase::Oq,
        "Notary round trip (installed notary, _relay head)",
    );
    let mut scheduler = crate::notary_scheduler::NotaryScheduler::new(
        inst.records.clone(),
        inst.notary.clone(),
        inst.clock.clone(),
        journal.clone(),
    );
    // Only `_relay` is anchored here: forwarded trails are the scheduler's, on its interval.
    let relay = TrailId::relay();
    let head = match inst.records.head(&relay).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            c.warn("_relay has no records yet (the server never ran here): round trip not run");
            return c;
        }
        Err(e) => {
            c.fail(format!("_relay head cannot be read: {e}"));
            return c;
        }
    };
    match scheduler.notarize_trail(&relay).await {
        Ok(Some(anchor)) => c.note(format!(
            "anchored _relay#{} {} on {} (WORM {})",
            anchor.seq,
            anchor.checksum,
            inst.notary.kind(),
            inst.notary.worm_posture()
        )),
        Ok(None) => c.note(format!("_relay#{} was already anchored", head.seq)),
        Err(e) => {
            c.fail(format!("the installed notary refused the anchor: {e}"));
            return c;
        }
    }
    match inst.notary.anchors(&relay).await {
        Ok(anchors) if anchors.iter().any(|a| a.seq >= head.seq) => c.note(format!(
            "{} anchor(s) of _relay read back, the newest covering seq {}",
            anchors.len(),
            head.seq
        )),
        Ok(_) => c.fail("the anchor just written could not be read back"),
        Err(e) => c.fail(format!("anchors cannot be read back: {e}")),
    }
    c
}

/// The `QUALIFICATION` event kind.
fn qualification_kind() -> EventKind {
    // A constant that satisfies the kind syntax; `system()` is the fallback should that ever
    // change, so the run is still recorded.
    EventKind::new(QUALIFICATION_KIND).unwrap_or_else(|_| EventKind::system())
}

/// Writes `qualification-<UTC>.md` and `.json` into `out_dir`.
fn write_report(
    report: &QualificationReport,
    out_dir: &Path,
    at: relay_domain::Timestamp,
) -> Result<(PathBuf, PathBuf), QualifyError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QualifyError::Write { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(write_err(out_dir))?;
    let t = at.to_offset_date_time();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let base = out_dir.join(format!("qualification-{stamp}"));
    let md = base.with_extension("md");
    let json = base.with_extension("json");
    std::fs::write(&md, report.to_markdown()).map_err(write_err(&md))?;
    let mut body = serde_json::to_vec_pretty(report).map_err(QualifyError::Serialize)?;
    body.push(b'\n');
    std::fs::write(&json, body).map_err(write_err(&json))?;
    Ok((md, json))
}

fn iq_software(product: &str, release_sums: Option<&Path>) -> Check {
    let mut c = Check::new("IQ-01", Phase::Iq, "Software identity");
    c.note(format!("product: {product}"));
    c.note(format!("version: {}", crate::VERSION));
    crate::build_info::identify_binary(release_sums, |ok, line| {
        if ok {
            c.note(line);
        } else {
            c.fail(line);
        }
    });
    c.note(format!(
        "platform: {}-{} ({})",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::env::consts::FAMILY
    ));
    c.note(format!(
        "chain format: {}",
        relay_domain::export::EXPORT_FORMAT
    ));
    c
}

fn iq_config(config: &serde_json::Value) -> Check {
    let mut c = Check::new("IQ-02", Phase::Iq, "Effective configuration");
    match config.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                if is_secret_key(k) && !v.is_null() {
                    c.note(format!("{k} = <set, redacted>"));
                } else {
                    c.note(format!("{k} = {v}"));
                }
            }
        }
        _ => c.fail("no configuration was supplied to the qualification run"),
    }
    c
}

/// Whether a configuration key holds a credential (its value never goes into a report).
fn is_secret_key(key: &str) -> bool {
    ["token", "secret", "credential", "dsn", "key"]
        .iter()
        .any(|w| key.contains(w))
}

#[cfg(unix)]
fn mode_of(path: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_of(path: &Path) -> std::io::Result<u32> {
    // No Unix modes here: say so rather than report a mode that was never read.
    std::fs::metadata(path)?;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "file permissions are not checked on this platform yet",
    ))
}

fn iq_data_dir(data_dir: &Path, fresh: bool) -> Check {
    let mut c = Check::new("IQ-03", Phase::Iq, "Data directory and permissions");
    c.note(format!("path: {}", data_dir.display()));
    if fresh {
        c.note("no relay.db before this run: initialized as `relay-edge run` would");
        return c;
    }
    // Owner-only, as the relay creates them and as it requires at start: these hold the trail,
    // the password hashes and the anchors.
    for (what, path, required) in [
        ("data directory", data_dir.to_path_buf(), true),
        ("relay.db", data_dir.join("relay.db"), true),
        ("relay.db-wal", data_dir.join("relay.db-wal"), false),
        ("anchors directory", data_dir.join("anchors"), false),
        ("exports directory", data_dir.join("exports"), false),
    ] {
        if !required && !path.exists() {
            continue;
        }
        match mode_of(&path) {
            Ok(mode) => {
                c.note(format!("{what} mode {mode:04o}"));
                if mode & 0o077 != 0 {
                    c.fail(format!(
                        "{what} is accessible to group or others (mode {mode:04o}); it must be \
                         owner-only: chmod {} {}",
                        if path.is_dir() { "700" } else { "600" },
                        path.display()
                    ));
                }
            }
            Err(e) => c.fail(format!("{what} cannot be read: {e}")),
        }
    }
    c
}

/// IQ-04 for the provider in use: the files' modes, or the OS keyring holding the keys; a
/// keyring that was asked for but could not be used fails the check.
fn iq_secrets_kept(adapters: &LocalAdapters, data_dir: &Path) -> Check {
    if let Some(fallback) = &adapters.secrets_fallback {
        let mut c = iq_secret_files(data_dir);
        c.fail(format!(
            "secret_provider = \"{}\" is configured but the {} provider stands in: {}",
            fallback.wanted, fallback.using, fallback.reason
        ));
        return c;
    }
    let kind = adapters.secrets.kind();
    if kind.starts_with("keyring-") {
        let mut c = Check::new("IQ-04", Phase::Iq, "Secrets are kept privately");
        c.note(format!(
            "secrets are kept in the OS keyring ({kind}), not in files under {}",
            data_dir.join("secrets").display()
        ));
        return c;
    }
    iq_secret_files(data_dir)
}

fn iq_secret_files(data_dir: &Path) -> Check {
    let mut c = Check::new("IQ-04", Phase::Iq, "Secret files are private (0600)");
    let dir = data_dir.join("secrets");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            c.fail(format!("{} cannot be listed: {e}", dir.display()));
            return c;
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.path()),
            Err(e) => c.fail(format!("{} cannot be listed: {e}", dir.display())),
        }
    }
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match mode_of(&path) {
            Ok(mode) if mode & 0o077 == 0 => c.note(format!("{name}: mode {mode:04o}")),
            Ok(mode) => c.fail(format!(
                "{name}: mode {mode:04o} lets group or others read it"
            )),
            Err(e) => c.fail(format!("{name}: {e}")),
        }
    }
    if c.evidence.is_empty() {
        c.fail("no secret files found");
    }
    c
}

fn iq_store_custody(custody: &StoreCustody) -> Check {
    let mut c = Check::new("IQ-05", Phase::Iq, "Record store enforces append-only");
    c.note(format!("record store: {}", custody.store));
    for line in &custody.holds {
        c.note(line.clone());
    }
    for line in &custody.violations {
        c.fail(line.clone());
    }
    c
}

async fn iq_notary(notary: &dyn Notary) -> Check {
    let mut c = Check::new("IQ-06", Phase::Iq, "Notary WORM posture");
    let worm = notary.worm_posture();
    c.note(format!("notary: {}, WORM {worm}", notary.kind()));
    match notary.anchored_trails().await {
        Ok(t) => c.note(format!("{} trail(s) anchored", t.len())),
        Err(e) => c.fail(format!("anchors cannot be listed: {e}")),
    }
    if worm != WormPosture::Enforced {
        c.warn(
            "anchors are not on write-once storage; regulated production needs an Object Lock \
             (COMPLIANCE) or locked-retention notary",
        );
    }
    c
}

fn iq_time(clock: &dyn TimeSource, config: &serde_json::Value) -> Check {
    let mut c = Check::new("IQ-07", Phase::Iq, "Time posture");
    if let Some(kind) = config.get("time_source") {
        c.note(format!("configured time_source: {kind}"));
    }
    let p = clock.posture();
    c.note(format!(
        "time source: {} (label {}): {}",
        p.kind,
        p.label.to_label(),
        p.detail
    ));
    if matches!(p.label, relay_domain::TimeLabel::System) {
        c.warn("timestamps carry the unvalidated system clock label; configure NTP validation");
    }
    c
}

async fn iq_keys(secrets: &dyn SecretProvider) -> Check {
    let mut c = Check::new("IQ-08", Phase::Iq, "Keys present");
    c.note(format!("secret provider: {}", secrets.kind()));
    match secrets.key_ring(&SecretName::trail_hmac()).await {
        Ok(ring) => match ring.current() {
            Some(k) => c.note(format!("trail HMAC key: current {}", k.id())),
            None => c.fail("the trail HMAC key ring has no current key"),
        },
        Err(e) => c.fail(format!("trail HMAC keys cannot be loaded: {e}")),
    }
    match crate::export::load_seal_key(secrets).await {
        Ok(k) => c.note(format!(
            "export seal key: Ed25519, fingerprint {}",
            k.public().fingerprint()
        )),
        Err(e) => c.fail(format!("export seal key cannot be loaded: {e}")),
    }
    c
}

/// A check that could not run because the scratch installation failed to come up.
fn not_run(id: &'static str, title: &'static str, why: &str) -> Check {
    let mut c = Check::new(id, Phase::Oq, title);
    c.fail(format!("not run: {why}"));
    c
}

const OQ_APPEND: (&str, &str) = ("OQ-01", "Append and verify a chain (scratch)");
const OQ_TAMPER: (&str, &str) = ("OQ-02", "Tamper detection (scratch)");
const OQ_SIGN: (&str, &str) = ("OQ-03", "Electronic signature flow (scratch)");
const OQ_NOTARY: (&str, &str) = ("OQ-04", "Notary round trip (scratch)");
const OQ_EXPORT: (&str, &str) = ("OQ-05", "Sealed export and offline verification (scratch)");

/// The scratch checks, each in protocol order.
async fn oq_scratch(device: &Device) -> Vec<Check> {
    let all = [OQ_APPEND, OQ_TAMPER, OQ_SIGN, OQ_NOTARY, OQ_EXPORT];
    let dir = match tempfile::Builder::new().prefix("relay-oq-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            let why = format!("cannot create a scratch directory: {e}");
            return all.iter().map(|(i, t)| not_run(i, t, &why)).collect();
        }
    };
    let scratch = match Scratch::open(dir.path(), device).await {
        Ok(s) => s,
        Err(why) => return all.iter().map(|(i, t)| not_run(i, t, &why)).collect(),
    };
    let mut out = vec![
        scratch.append_check().await,
        scratch.signature_check().await,
        scratch.notary_check().await,
        scratch.export_check(dir.path()).await,
    ];
    // Tampering breaks the scratch store's triggers, so it runs last and is listed second.
    out.insert(1, scratch.tamper_check().await);
    scratch.adapters.record_store.close().await;
    if let Err(e) = dir.close() {
        tracing::warn!(error = %e, "scratch directory not removed");
    }
    out
}

/// A throw-away installation in a temporary directory.
struct Scratch {
    adapters: LocalAdapters,
    appender: Arc<AppendService>,
    journal: Journal,
    device: Device,
}

impl Scratch {
    async fn open(dir: &Path, device: &Device) -> Result<Self, String> {
        let adapters = LocalAdapters::open(dir.join("data"))
            .await
            .map_err(|e| format!("scratch adapters: {}", crate::edge::error_chain(&e)))?;
        let key = adapters
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .map_err(|e| format!("scratch key: {e}"))?
            .to_trail_key()
            .map_err(|e| format!("scratch key: {e}"))?;
        let store: Arc<dyn RecordStore> = adapters.record_store.clone();
        let clock: Arc<dyn TimeSource> = adapters.clock.clone();
        let appender = Arc::new(AppendService::new(store, clock, key));
        let journal = Journal::new(appender.clone(), Metrics::new(), device.clone());
        Ok(Self {
            adapters,
            appender,
            journal,
            device: device.clone(),
        })
    }

    fn trail() -> Result<TrailId, String> {
        TrailId::new(SCRATCH_TRAIL).map_err(|e| e.to_string())
    }

    async fn capture(&self, n: u32) -> Result<Record, String> {
        let payload = Payload::from_value(&serde_json::json!({
            "sha256": hex::encode(Sha256::digest(n.to_be_bytes())),
            "size": n,
        }))
        .map_err(|e| e.to_string())?;
        self.appender
            .append(EventDraft {
                trail_id: Self::trail()?,
                kind: EventKind::file_created(),
                actor: Some(Actor::new("oq-operator").map_err(|e| e.to_string())?),
                actor_source: ActorSource::OsSession,
                occurred_at: None,
                device: self.device.clone(),
                project: None,
                subject: Some(Subject::new(format!("oq/file-{n}.dat")).map_err(|e| e.to_string())?),
                payload,
            })
            .await
            .map_err(|e| crate::edge::error_chain(&e))
    }

    async fn verify(&self) -> Result<Vec<crate::verify::TrailVerdict>, String> {
        verify_trails(
            self.adapters.record_store.as_ref(),
            self.adapters.secrets.as_ref(),
            self.adapters.notary.as_ref(),
            None,
            |_, _| {},
        )
        .await
        .map(|report| report.verdicts)
        .map_err(|e| crate::edge::error_chain(&e))
    }

    async fn append_check(&self) -> Check {
        let mut c = Check::new(OQ_APPEND.0, Phase::Oq, OQ_APPEND.1);
        for n in 1..=3 {
            match self.capture(n).await {
                Ok(r) => c.note(format!(
                    "appended {SCRATCH_TRAIL}#{} {} prev {}",
                    r.chain_seq, r.checksum, r.prev_checksum
                )),
                Err(e) => c.fail(format!("append {n} refused: {e}")),
            }
        }
        match self.verify().await {
            Ok(v) => {
                for t in v {
                    match t.verdict {
                        Ok(s) => c.note(format!(
                            "verify {}: {} records hold (HMAC checked: {})",
                            t.trail_id, s.records, s.hmac_checked
                        )),
                        Err(f) => c.fail(format!("verify {}: {f}", t.trail_id)),
                    }
                }
            }
            Err(e) => c.fail(format!("verify could not run: {e}")),
        }
        c
    }

    async fn tamper_check(&self) -> Check {
        let mut c = Check::new(OQ_TAMPER.0, Phase::Oq, OQ_TAMPER.1);
        let pool = self.adapters.record_store.pool();
        let edit =
            "UPDATE event_log SET subject = 'oq/forged.dat' WHERE trail_id = ?1 AND chain_seq = 2";
        match sqlx::query(edit).bind(SCRATCH_TRAIL).execute(pool).await {
            Err(e) => c.note(format!("UPDATE refused by the store: {e}")),
            Ok(_) => c.fail("the store accepted an UPDATE of a stored record"),
        }
        match sqlx::query("DELETE FROM event_log WHERE trail_id = ?1 AND chain_seq = 3")
            .bind(SCRATCH_TRAIL)
            .execute(pool)
            .await
        {
            Err(e) => c.note(format!("DELETE refused by the store: {e}")),
            Ok(_) => c.fail("the store accepted a DELETE of a stored record"),
        }
        // An attacker with file access drops the triggers and edits record 2.
        for t in ["event_log_no_update", "event_log_no_delete"] {
            if let Err(e) = sqlx::query(&format!("DROP TRIGGER IF EXISTS \"{t}\""))
                .execute(pool)
                .await
            {
                c.fail(format!("cannot simulate the attack (drop {t}): {e}"));
                return c;
            }
        }
        match sqlx::query(edit).bind(SCRATCH_TRAIL).execute(pool).await {
            Ok(done) if done.rows_affected() == 1 => {
                c.note("simulated attack: triggers dropped, subject of record 2 rewritten");
            }
            Ok(_) => {
                c.fail("cannot simulate the attack: record 2 not found");
                return c;
            }
            Err(e) => {
                c.fail(format!("cannot simulate the attack: {e}"));
                return c;
            }
        }
        match self.verify().await {
            Ok(v) => match v.iter().find(|t| t.trail_id.as_str() == SCRATCH_TRAIL) {
                Some(t) => match &t.verdict {
                    Err(f) if f.seq.get() == 2 => {
                        c.note(format!(
                            "verify detected it: first bad chain_seq 2: {}",
                            f.reason
                        ));
                    }
                    Err(f) => c.fail(format!("verify named seq {} instead of 2: {f}", f.seq)),
                    Ok(_) => c.fail("verify did not detect the edited record"),
                },
                None => c.fail("the scratch trail is missing"),
            },
            Err(e) => c.fail(format!("verify could not run: {e}")),
        }
        c
    }

    async fn signature_check(&self) -> Check {
        let mut c = Check::new(OQ_SIGN.0, Phase::Oq, OQ_SIGN.1);
        if let Err(e) = self.signature_flow(&mut c).await {
            c.fail(e);
        }
        c
    }

    async fn signature_flow(&self, c: &mut Check) -> Result<(), String> {
        let store: Arc<dyn RecordStore> = self.adapters.record_store.clone();
        let state = relay_api::ApiState::new(relay_api::ApiParts {
            appender: self.appender.clone(),
            store: store.clone(),
            accounts: self.adapters.accounts.clone(),
            secrets: self.adapters.secrets.clone(),
            notary: self.adapters.notary.clone(),
            metrics: Metrics::new().api_metrics(),
            config: relay_api::ApiConfig::new(self.device.clone()),
        })
        .await
        .map_err(|e| format!("scratch API: {}", crate::edge::error_chain(&e)))?;
        let api = ScratchApi(relay_api::router(state));
        let account = |user: &str, name: &str, role: &str| serde_json::json!({"username": user, "full_name": name, "password": SCRATCH_PASSWORD, "role": role});
        api.expect(
            "POST",
            "/api/v1/auth/register",
            None,
            account("oq-admin", "OQ Admin", "admin"),
        )
        .await?;
        let admin = api.login("oq-admin").await?;
        api.expect(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            account("oq-reviewer", "OQ Reviewer", "reviewer"),
        )
        .await?;
        let reviewer = api.login("oq-reviewer").await?;
        c.note("accounts oq-admin (admin) and oq-reviewer (reviewer) created; both logged in");
        let target = self.capture(100).await?;
        let heads_before = store.trails().await.map_err(|e| e.to_string())?;
        let request = |password: &str| {
            serde_json::json!({
                "trail_id": SCRATCH_TRAIL,
                "target_checksum": target.checksum.to_hex(),
                "meaning": "approved",
                "reason": "operational qualification",
                "password": password,
            })
        };
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/signatures",
                Some(&reviewer),
                request("wrong password"),
            )
            .await?;
        let heads_after = store.trails().await.map_err(|e| e.to_string())?;
        if status.is_success() || heads_before != heads_after {
            return Err(format!(
                "a signature with a wrong password was not refused (HTTP {status})"
            ));
        }
        c.note(format!(
            "signature with a wrong password inside a valid session refused: HTTP {status}, nothing appended"
        ));
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/signatures",
                Some(&admin),
                request(SCRATCH_PASSWORD),
            )
            .await?;
        if status.is_success() {
            return Err("an administrator was allowed to sign a data record".into());
        }
        c.note(format!("administrator signing refused: HTTP {status}"));
        let body = api
            .expect(
                "POST",
                "/api/v1/signatures",
                Some(&reviewer),
                request(SCRATCH_PASSWORD),
            )
            .await?;
        let record = &body["signature_record"];
        let named = record["payload"]["target_checksum"].as_str().unwrap_or("");
        if named != target.checksum.to_hex() {
            return Err(format!(
                "the SIGNATURE record does not name the signed checksum: {record}"
            ));
        }
        c.note(format!(
            "SIGNATURE {SCRATCH_TRAIL}#{} by {} names target_checksum {}; manifestation: {}",
            record["chain_seq"], record["actor"], named, body["manifestation"]
        ));
        let verdicts = self.verify().await?;
        for v in verdicts {
            if let Err(f) = v.verdict {
                return Err(format!("trail broken after signing: {f}"));
            }
        }
        c.note("every scratch trail verifies after signing");
        Ok(())
    }

    async fn notary_check(&self) -> Check {
        let mut c = Check::new(OQ_NOTARY.0, Phase::Oq, OQ_NOTARY.1);
        let store: Arc<dyn RecordStore> = self.adapters.record_store.clone();
        let notary: Arc<dyn Notary> = self.adapters.notary.clone();
        let clock: Arc<dyn TimeSource> = self.adapters.clock.clone();
        let mut scheduler = crate::notary_scheduler::NotaryScheduler::new(
            store,
            notary.clone(),
            clock,
            self.journal.clone(),
        );
        let round = scheduler.notarize_all(0).await;
        for f in &round.failures {
            c.fail(format!("notarization failed: {f}"));
        }
        for a in &round.anchored {
            c.note(format!("anchored {}#{} {}", a.trail_id, a.seq, a.checksum));
        }
        match Self::trail() {
            Ok(trail) => match notary.anchors(&trail).await {
                Ok(anchors) if !anchors.is_empty() => {
                    c.note(format!("{} anchor(s) of {trail} read back", anchors.len()))
                }
                Ok(_) => c.fail("no anchor of the scratch trail could be read back"),
                Err(e) => c.fail(format!("anchors cannot be read back: {e}")),
            },
            Err(e) => c.fail(e),
        }
        c
    }

    async fn export_check(&self, dir: &Path) -> Check {
        let mut c = Check::new(OQ_EXPORT.0, Phase::Oq, OQ_EXPORT.1);
        if let Err(e) = self.export_flow(dir, &mut c).await {
            c.fail(e);
        }
        c
    }

    async fn export_flow(&self, dir: &Path, c: &mut Check) -> Result<(), String> {
        let keys = self
            .adapters
            .secrets
            .key_ring(&SecretName::trail_hmac())
            .await
            .map_err(|e| e.to_string())?;
        // Runs before OQ-02 breaks the scratch trail on purpose.
        let out = dir.join("package");
        let request = crate::export::ExportRequest {
            trail: Self::trail()?,
            from_seq: None,
            to_seq: None,
            filter: ExportFilter::default(),
            format: crate::export::ExportFormat::Both,
            out: out.clone(),
            zip: false,
            generated_by: GeneratedBy {
                actor: Actor::new("oq-operator").map_err(|e| e.to_string())?,
                actor_source: ActorSource::OsSession,
                device: self.device.clone(),
            },
        };
        let services = crate::export::ExportServices {
            store: self.adapters.record_store.as_ref(),
            notary: self.adapters.notary.as_ref(),
            secrets: self.adapters.secrets.as_ref(),
            keys: &keys,
            clock: self.adapters.clock.as_ref(),
            journal: &self.journal,
        };
        let outcome = crate::export::export_package(services, &request)
            .await
            .map_err(|e| format!("export failed: {}", crate::edge::error_chain(&e)))?;
        c.note(format!(
            "sealed package of {} records written (seal key {}, manifest sha256 {})",
            outcome.manifest.records, outcome.fingerprint, outcome.manifest_sha256
        ));
        let report = verify_dir_package(&out, &keys, &outcome.fingerprint)?;
        if !report.holds() {
            return Err(format!(
                "the fresh package does not verify: {:?}",
                report.findings
            ));
        }
        c.note(format!(
            "offline verification holds: {} checks passed, {} records, HMACs recomputed: {}",
            report.passed.len(),
            report.records,
            report.hmac_checked
        ));
        // One altered byte in the human-readable rendering must be caught.
        let csv = out.join(RECORDS_CSV);
        let mut bytes = std::fs::read(&csv).map_err(|e| e.to_string())?;
        if let Some(last) = bytes.iter_mut().rev().find(|b| b.is_ascii_alphanumeric()) {
            *last = if *last == b'0' { b'1' } else { b'0' };
        }
        std::fs::write(&csv, bytes).map_err(|e| e.to_string())?;
        let report = verify_dir_package(&out, &keys, &outcome.fingerprint)?;
        match report.findings.first() {
            Some(f) => c.note(format!("one byte of records.csv altered: detected ({f:?})")),
            None => return Err("an altered records.csv still verified".into()),
        }
        Ok(())
    }
}

/// Verifies an export package directory as `relay-verify` does.
fn verify_dir_package(
    dir: &Path,
    keys: &relay_domain::KeyRing,
    fingerprint: &str,
) -> Result<relay_domain::export::PackageReport, String> {
    let open = |name: &str| -> Result<Option<BufReader<File>>, String> {
        let p = dir.join(name);
        if p.is_file() {
            File::open(&p)
                .map(|f| Some(BufReader::new(f)))
                .map_err(|e| format!("{}: {e}", p.display()))
        } else {
            Ok(None)
        }
    };
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let inputs = PackageInputs {
        manifest: read(MANIFEST_FILE)?,
        anchors: if dir.join(ANCHORS_JSON).is_file() {
            Some(read(ANCHORS_JSON)?)
        } else {
            None
        },
        records_jsonl: open(RECORDS_JSONL)?,
        records_csv: open(RECORDS_CSV)?,
        records_json: open(RECORDS_JSON)?,
        proofs_jsonl: open(PROOFS_JSONL)?,
        receipts_jsonl: None,
        other_entries: Vec::new(),
    };
    verify_package(
        inputs,
        &VerifyOptions {
            keys: Some(keys),
            expect_fingerprint: Some(fingerprint),
        },
    )
    .map_err(|e| format!("package unreadable: {e}"))
}

/// The review API of the scratch installation, called in-process.
struct ScratchApi(axum::Router);

impl ScratchApi {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Result<(axum::http::StatusCode, serde_json::Value), String> {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(axum::body::Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .0
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let (status, value) = self.call(method, uri, token, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {uri}: HTTP {status}: {value}"))
        }
    }

    async fn login(&self, user: &str) -> Result<String, String> {
        let body = self
            .expect(
                "POST",
                "/api/v1/auth/login",
                None,
                serde_json::json!({"username": user, "password": SCRATCH_PASSWORD}),
            )
            .await?;
        body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("login of {user}: no token in {body}"))
    }
}

/// Verifies every real trail read-only (the store is opened, nothing is written).
async fn oq_production_trails(
    records: &dyn RecordStore,
    secrets: &dyn SecretProvider,
    notary: &dyn Notary,
) -> Check {
    let mut c = Check::new(
        "OQ-06",
        Phase::Oq,
        "Installed trails verify (read-only, with anchors)",
    );
    match verify_trails(records, secrets, notary, None, |_, _| {}).await {
        Ok(report) => {
            let verdicts = report.verdicts;
            if verdicts.is_empty() {
                c.note("no trails yet");
            }
            for v in verdicts {
                match v.verdict {
                    Ok(s) => c.note(format!(
                        "{}: {} records hold, {} anchor(s) checked",
                        v.trail_id, s.records, s.anchors_checked
                    )),
                    Err(f) => c.fail(format!(
                        "{}: first bad chain_seq {}: {}",
                        v.trail_id, f.seq, f.reason
                    )),
                }
            }
        }
        Err(e) => c.fail(format!(
            "verification could not run: {}",
            crate::edge::error_chain(&e)
        )),
    }
    c
}
