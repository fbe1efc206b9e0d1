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

use relay_domain::error_chain;
use relay_domain::export::{
    ANCHORS_JSON, ExportFilter, GeneratedBy, MANIFEST_FILE, PROOFS_JSONL, PackageInputs,
    RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL, VerifyOptions, verify_package,
};
use relay_domain::ports::{
    Notary, RecordStore, SecretName, SecretProvider, SecretProviderExt, TamperAttempt, TamperProbe,
    TimeSource, WormPosture,
};
use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, Device, EventDraft, EventKind, Payload, Record,
    Subject, TrailId,
};
use relay_local::LocalAdapters;
use serde::Serialize;
use sha2::{Digest, Sha256};

use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::traceability::TraceabilityReport;
use relay_runtime::verify::verify_trails;

mod iq;
mod oq;
mod report;

use iq::*;
use oq::*;
pub use report::{
    Check, CheckStatus, JournalEntry, Phase, QualificationReport, QualifyOutcome, QualifyRequest,
};

/// The event kind of the one record a qualification run appends to `_relay`.
pub const QUALIFICATION_KIND: &str = "QUALIFICATION";

/// The report format written in every report.
pub const REPORT_FORMAT: &str = "gims-relay qualification v1";

/// The trail the operational checks use inside their scratch data directory.
const SCRATCH_TRAIL: &str = "oq-scratch";
/// The subject the OQ tamper check writes over a scratch record.
const FORGED_SUBJECT: &str = "oq/forged.dat";
/// The password of the throw-away scratch accounts (they exist only in the temp directory).
const SCRATCH_PASSWORD: &str = "oq scratch password 7431";
/// The temporary password the scratch administrator gives the scratch reviewer, who replaces it
/// with [`SCRATCH_PASSWORD`] at the first login (administrator-set passwords are temporary).
const SCRATCH_TEMPORARY_PASSWORD: &str = "oq temporary harbour 2958";

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
    Traceability(#[source] relay_runtime::traceability::TraceabilityError),
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
    // Account lookups and the console session query may block.
    let config = request.config.clone();
    checks.push(
        tokio::task::spawn_blocking(move || iq_attribution(&config))
            .await
            .map_err(|e| open_err(format!("the attribution check did not finish: {e}")))?,
    );
    let adapters = LocalAdapters::open(&request.data_dir)
        .await
        .map_err(|e| open_err(error_chain(&e)))?;
    // A fresh installation gets its trail key as `run` would, before the key storage is
    // inspected (IQ-04 must see the files, or the keyring, that will hold it).
    adapters
        .secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .map_err(|e| QualifyError::Key(error_chain(&e)))?;
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
        let e = relay_runtime::append_only::read(store).await;
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
    relay_runtime::traceability::report_for(request.test_results.as_deref())
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
        .map_err(|e| QualifyError::Key(error_chain(&e)))?;
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

    // In protocol order (IQ-01.., then OQ-01..), whichever installation added which check.
    checks.sort_by_key(|c| c.id);
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
                "version": relay_runtime::VERSION,
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
        version: relay_runtime::VERSION,
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
    let mut scheduler = relay_runtime::notary_scheduler::NotaryScheduler::new(
        inst.records.clone(),
        inst.notary.clone(),
        inst.clock.clone(),
        journal.clone(),
    );
    match relay_runtime::export::load_seal_key(inst.secrets.as_ref()).await {
        Ok(key) => scheduler = scheduler.with_seal_key(Arc::new(key)),
        Err(e) => c.fail(format!(
            "the seal key that signs checkpoints cannot be loaded: {e}"
        )),
    }
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
