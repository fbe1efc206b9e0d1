//! The edge run loop: local adapters, start-up posture, capture, HTTP, graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use relay_capture::{Capture, CaptureConfig, CaptureHandle, CaptureStats};
use relay_domain::ports::{
    Notary, RecordStore, SecretError, SecretName, SecretProvider, SecretProviderExt, TimeSource,
    WormPosture,
};
use relay_domain::{AppendService, Device, EventKind, Project, TrailId};
use relay_local::LocalAdapters;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{HttpServer, HttpState, router};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::notary_scheduler::{NotarySchedule, NotaryScheduler, NotarySchedulerHandle};
use crate::verify::{TrailVerdict, VerifyRunError, verify_trails};

/// What the edge needs to run; built by the binary from its configuration.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Data directory of the local adapters.
    pub data_dir: PathBuf,
    /// Folders to watch.
    pub watch: Vec<PathBuf>,
    /// Workstation id.
    pub device: Device,
    /// Trail captured files go to.
    pub trail: TrailId,
    /// Project of captured files.
    pub project: Option<Project>,
    /// HTTP listener address.
    pub listen: SocketAddr,
    /// Settle window.
    pub settle: Duration,
    /// Safety-net rescan interval.
    pub rescan: Duration,
    /// How often every trail head is notarized (R7.1; also once at shutdown).
    pub notary_interval: Duration,
    /// The review API and UI served on the listener (its `device` is set to [`Self::device`]).
    pub api: relay_api::ApiConfig,
    /// The effective configuration as JSON, for start-up drift detection against the last
    /// approved one ([`crate::config_guard`]); `None` skips the check.
    pub config: Option<serde_json::Value>,
    /// Forwarding to a server of record (R8); `None`: the edge keeps its trails to itself.
    pub forward: Option<crate::forwarder::ForwardSettings>,
    /// The time source (R9); `None`: the host clock.
    pub clock: Option<Arc<dyn TimeSource>>,
}

/// Why the edge could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The local adapters could not be opened.
    #[error("cannot open the data directory {path}: {message}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The trail key could not be loaded or created.
    #[error("cannot load the trail key")]
    Key(#[source] SecretError),
    /// The trail key is unusable.
    #[error("the trail key is unusable: {0}")]
    BadKey(String),
    /// The export seal key could not be loaded or created.
    #[error("cannot load the export seal key")]
    SealKey(#[source] crate::export::ExportError),
    /// The OS user running the relay could not be resolved (R2.2: no anonymous capture).
    #[error(
        "cannot resolve the OS user running the relay; refusing to capture without attribution: {0}"
    )]
    NoActor(String),
    /// A watched folder is unusable.
    #[error("watch folder {path}: {message}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The posture event could not be recorded; the relay does not run unrecorded.
    #[error("cannot record the start-up posture event")]
    Posture(#[source] relay_domain::AppendError),
    /// Capture could not start or stop.
    #[error("capture failed: {0}")]
    Capture(String),
    /// The HTTP listener could not be bound or failed.
    #[error("HTTP listener on {addr}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for signals failed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The review API could not be prepared (token key, hashing).
    #[error("cannot start the review API")]
    Api(#[source] relay_api::ApiStartError),
    /// Approved changes or the configuration baseline could not be read or recorded.
    #[error("configuration governance failed: {0}")]
    Config(String),
    /// The forwarder could not be configured.
    #[error("cannot start forwarding")]
    Forward(#[source] crate::forwarder::ForwardStartError),
}

/// A running edge relay.
#[derive(Debug)]
pub struct EdgeRuntime {
    adapters: LocalAdapters,
    journal: Journal,
    capture: CaptureHandle,
    http_addr: SocketAddr,
    http_task: JoinHandle<std::io::Result<()>>,
    stop_http: watch::Sender<bool>,
    notary_scheduler: NotarySchedulerHandle,
    forwarder: Option<crate::forwarder::ForwarderHandle>,
}

impl EdgeRuntime {
    /// Opens the stores, records the start-up posture, starts capture and the HTTP listener.
    pub async fn start(mut settings: EdgeSettings) -> Result<Self, EdgeError> {
        let adapters = open_adapters(&settings.data_dir).await?;
        let applied_changes = apply_approved_changes(adapters.changes.as_ref(), &mut settings)
            .await
            .map_err(|e| EdgeError::Config(error_chain(&e)))?;
        let secret = adapters
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .map_err(EdgeError::Key)?;
        let key = secret
            .to_trail_key()
            .map_err(|e| EdgeError::BadKey(e.to_string()))?;
        let key_id = key.id().clone();
        let store: Arc<dyn RecordStore> = adapters.record_store.clone();
        let clock: Arc<dyn TimeSource> = match &settings.clock {
            Some(c) => c.clone(),
            None => adapters.clock.clone(),
        };
        let appender = Arc::new(AppendService::new(store.clone(), clock.clone(), key));
        let metrics = Metrics::new();
        let journal = Journal::new(appender.clone(), metrics.clone(), settings.device.clone());

        let seal_key = crate::export::load_seal_key(adapters.secrets.as_ref())
            .await
            .map_err(EdgeError::SealKey)?;
        let notary_worm = adapters.notary.worm_posture();
        if notary_worm != WormPosture::Enforced {
            tracing::warn!(
                notary = adapters.notary.kind(),
                worm = %notary_worm,
                "the notary is NOT write-once storage: anyone with access to the data directory could rewrite \
                 anchors; use an Object Lock / immutable-blob notary for regulated production"
            );
        }

        let actor = match relay_capture::resolve_os_actor() {
            Ok(actor) => actor,
            Err(e) => {
                let detail = e.to_string();
                if let Err(journal_err) = journal
                    .system(
                        "actor_unresolved",
                        serde_json::json!({ "detail": detail.clone() }),
                    )
                    .await
                {
                    tracing::error!(error = %journal_err, "could not record the unresolved-actor event");
                }
                return Err(EdgeError::NoActor(detail));
            }
        };

        for root in &settings.watch {
            prepare_watch_root(root, &settings.data_dir)?;
        }

        let config_assessment = match &settings.config {
            Some(config) => Some(
                crate::config_guard::assess_config(adapters.changes.as_ref(), config)
                    .await
                    .map_err(|e| EdgeError::Config(error_chain(&e)))?,
            ),
            None => None,
        };

        let time = clock.posture();
        let posture = serde_json::json!({
            "version": crate::VERSION,
            "mode": "local",
            "device": settings.device.as_str(),
            "trail": settings.trail.as_str(),
            "project": settings.project.as_ref().map(Project::as_str),
            "actor": actor.as_str(),
            "actor_source": "os_session",
            "time_source": { "kind": time.kind, "label": time.label.to_label(), "detail": time.detail },
            "key_id": key_id.as_str(),
            "secret_provider": adapters.secrets.kind(),
            "notary": { "kind": adapters.notary.kind(), "worm": notary_worm },
            "export_seal": crate::export::seal_posture(&seal_key.public()),
            "record_store": "sqlite",
            "watch": settings.watch.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "settle_ms": u64::try_from(settings.settle.as_millis()).unwrap_or(u64::MAX),
            "config": config_assessment.as_ref().map(|a| a.posture.to_json()),
            "approved_changes_applied": applied_changes,
            "forward": settings.forward.as_ref().map(|f| serde_json::json!({
                "url": f.url, "edge_id": f.edge_id, "batch": f.batch,
                "extra_ca": f.ca_file.as_ref().map(|p| p.display().to_string()),
            })),
        });
        journal
            .record(EventKind::startup(), None, posture)
            .await
            .map_err(EdgeError::Posture)?;
        if let Some(assessment) = config_assessment {
            assessment
                .record(adapters.changes.as_ref(), &journal)
                .await
                .map_err(|e| EdgeError::Config(error_chain(&e)))?;
        }

        let notary: Arc<dyn Notary> = adapters.notary.clone();
        let notary_scheduler =
            NotaryScheduler::new(store.clone(), notary, clock.clone(), journal.clone())
                .spawn(NotarySchedule::every(settings.notary_interval));

        let mut capture_config =
            CaptureConfig::new(settings.trail.clone(), settings.device.clone(), actor)
                .with_settle(settings.settle)
                .with_rescan_interval(settings.rescan);
        for root in &settings.watch {
            capture_config = capture_config.with_root(root.clone());
        }
        if let Some(project) = settings.project.clone() {
            capture_config = capture_config.with_project(project);
        }
        let capture = Capture::start(capture_config, appender.clone())
            .await
            .map_err(|e| EdgeError::Capture(error_chain(&e)))?;
        tokio::spawn(mirror_capture_stats(capture.subscribe(), metrics.clone()));

        let server = HttpServer::bind(settings.listen)
            .await
            .map_err(|source| EdgeError::Http {
                addr: settings.listen,
                source,
            })?;
        let http_addr = server.local_addr().map_err(|source| EdgeError::Http {
            addr: settings.listen,
            source,
        })?;
        let (stop_http, mut stopped) = watch::channel(false);
        let mut api_config = settings.api.clone();
        api_config.device = settings.device.clone();
        let api = relay_api::ApiState::new(relay_api::ApiParts {
            appender: appender.clone(),
            store: store.clone(),
            accounts: adapters.accounts.clone(),
            secrets: adapters.secrets.clone(),
            notary: adapters.notary.clone(),
            metrics: metrics.api_metrics(),
            config: api_config,
        })
        .await
        .map_err(EdgeError::Api)?;
        api.enable_changes(adapters.changes.clone());
        api.enable_sealed_exports(std::sync::Arc::new(crate::export::DirExporter::new(
            settings.data_dir.join("exports"),
            store.clone(),
            adapters.notary.clone(),
            adapters.secrets.clone(),
            clock.clone(),
            journal.clone(),
            settings.device.clone(),
        )));
        let app = router(HttpState {
            metrics: metrics.clone(),
            store: store.clone(),
            mode: "local",
        })
        .merge(relay_api::router(api));
        let http_task = tokio::spawn(server.serve(app, async move {
            // Resolves when the runtime asks the listener to stop (or the sender is gone).
            while !*stopped.borrow_and_update() {
                if stopped.changed().await.is_err() {
                    break;
                }
            }
        }));
        let forwarder = match settings.forward.clone() {
            Some(mut forward) => Some(
                crate::forwarder::Forwarder::new(
                    {
                        if forward.token.is_empty() {
                            forward.token =
                                crate::forwarder::load_forward_token(adapters.secrets.as_ref())
                                    .await
                                    .map_err(EdgeError::Forward)?;
                        }
                        forward
                    },
                    store.clone(),
                    adapters.forward_cursors.clone(),
                    journal.clone(),
                )
                .map_err(EdgeError::Forward)?
                .spawn(),
            ),
            None => None,
        };
        tracing::info!(
            trail = %settings.trail, device = %settings.device, key_id = %key_id, http = %http_addr,
            roots = settings.watch.len(), "relay-edge running"
        );
        Ok(Self {
            adapters,
            journal,
            capture,
            http_addr,
            http_task,
            stop_http,
            notary_scheduler,
            forwarder,
        })
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The journal of `_relay` events.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<(), EdgeError> {
        wait_for_signal().await?;
        tracing::info!("signal received, shutting down");
        self.shutdown().await
    }

    /// Stops capture (finishing captures in flight), records the shutdown, stops HTTP, closes
    /// the store.
    pub async fn shutdown(self) -> Result<(), EdgeError> {
        if let Some(forwarder) = self.forwarder {
            forwarder.shutdown().await;
        }
        let stats = self
            .capture
            .shutdown()
            .await
            .map_err(|e| EdgeError::Capture(error_chain(&e)))?;
        let payload = serde_json::json!({
            "captured": stats.captured,
            "modified": stats.modified,
            "deleted": stats.deleted,
            "capture_failed": stats.failed,
            "append_errors": stats.append_errors,
            "pending_at_shutdown": stats.pending,
        });
        if let Err(e) = self
            .journal
            .record(EventKind::shutdown(), None, payload)
            .await
        {
            // The journal logged and counted it; shutdown goes on so the store closes cleanly.
            tracing::error!(error = %e, "shutdown event not recorded");
        }
        // Final notarization of every head (the SHUTDOWN record included) before the store
        // closes; failures were journaled, counted and logged by the scheduler.
        match self.notary_scheduler.shutdown().await {
            Ok(round) if round.failures.is_empty() => {
                tracing::info!(anchored = round.anchored.len(), "final notarization done");
            }
            Ok(round) => tracing::error!(
                failed = round.failures.len(),
                "final notarization incomplete; see NOTARY_FAILED events"
            ),
            Err(e) => tracing::error!(error = %e, "notary scheduler task failed"),
        }
        if self.stop_http.send(true).is_err() {
            tracing::debug!("HTTP listener already stopped");
        }
        match self.http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP listener ended with an error"),
            Err(e) => tracing::warn!(error = %e, "HTTP listener task failed"),
        }
        self.adapters.record_store.close().await;
        tracing::info!("relay-edge stopped");
        Ok(())
    }
}

/// Applies approved four-eyes changes the edge knows over `settings`; returns the ids applied.
async fn apply_approved_changes(
    changes: &dyn relay_domain::ports::ChangeRequestStore,
    settings: &mut EdgeSettings,
) -> Result<Vec<String>, relay_domain::ports::ChangeStoreError> {
    use relay_domain::ports::ChangeSetting;
    let mut applied = Vec::new();
    for change in crate::config_guard::approved_changes(changes).await? {
        let v = &change.value;
        let done = match change.setting {
            ChangeSetting::SettleMs => v
                .as_u64()
                .map(|ms| settings.settle = Duration::from_millis(ms))
                .is_some(),
            ChangeSetting::NotaryIntervalSecs => v
                .as_u64()
                .map(|s| settings.notary_interval = Duration::from_secs(s))
                .is_some(),
            ChangeSetting::RegistrationClosed => v
                .as_bool()
                .map(|b| settings.api.registration_closed = b)
                .is_some(),
            ChangeSetting::WatchRoots => v
                .as_array()
                .map(|roots| {
                    settings.watch = roots
                        .iter()
                        .filter_map(|r| r.as_str().map(PathBuf::from))
                        .collect();
                })
                .is_some(),
            // Not edge settings (server-side, account or baseline changes): nothing to apply here.
            _ => false,
        };
        if done {
            tracing::info!(change = %change.id, setting = %change.setting, "approved change applied");
            applied.push(change.id.clone());
        }
    }
    Ok(applied)
}

/// Mirrors capture progress into the metrics until capture stops.
async fn mirror_capture_stats(mut stats: watch::Receiver<CaptureStats>, metrics: Arc<Metrics>) {
    let mut seen = CaptureStats::default();
    loop {
        let now = *stats.borrow_and_update();
        metrics
            .records_appended
            .inc_by(now.recorded().saturating_sub(seen.recorded()));
        metrics
            .capture_failures
            .inc_by(now.failed.saturating_sub(seen.failed));
        metrics
            .audit_write_failures
            .inc_by(now.append_errors.saturating_sub(seen.append_errors));
        metrics
            .capture_pending
            .set(i64::try_from(now.pending).unwrap_or(i64::MAX));
        seen = now;
        if stats.changed().await.is_err() {
            return;
        }
    }
}

async fn open_adapters(data_dir: &Path) -> Result<LocalAdapters, EdgeError> {
    LocalAdapters::open(data_dir)
        .await
        .map_err(|e| EdgeError::Open {
            path: data_dir.to_path_buf(),
            message: error_chain(&e),
        })
}

/// The message of `e` and all its causes, joined.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    msg
}

/// Creates the default inbox under the data directory; any other root must already exist.
fn prepare_watch_root(root: &Path, data_dir: &Path) -> Result<(), EdgeError> {
    let err = |message: String| EdgeError::Watch {
        path: root.to_path_buf(),
        message,
    };
    if root.starts_with(data_dir) && !root.exists() {
        std::fs::create_dir_all(root).map_err(|e| err(format!("cannot create it: {e}")))?;
    }
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err("is not a directory".into())),
        Err(e) => Err(err(format!("cannot be read: {e}"))),
    }
}

async fn wait_for_signal() -> Result<(), EdgeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(EdgeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(EdgeError::Signals)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Verifies every trail (or `only`) of the data directory; one verdict per trail.
pub async fn verify_data_dir(
    data_dir: &Path,
    only: Option<&TrailId>,
) -> Result<Vec<TrailVerdict>, EdgeVerifyError> {
    if !data_dir.join("relay.db").is_file() {
        return Err(EdgeVerifyError::NoData(data_dir.to_path_buf()));
    }
    let adapters = open_adapters(data_dir)
        .await
        .map_err(EdgeVerifyError::Open)?;
    let secrets: &dyn SecretProvider = adapters.secrets.as_ref();
    let notary: &dyn Notary = adapters.notary.as_ref();
    let verdicts = verify_trails(
        adapters.record_store.as_ref(),
        secrets,
        notary,
        only,
        |trail, n| {
            const EVERY: u64 = 256 * 1024;
            if n >= EVERY && n % EVERY < relay_domain::verify::VERIFY_PAGE as u64 {
                tracing::info!(trail = %trail, records = n, "verifying");
            }
        },
    )
    .await?;
    adapters.record_store.close().await;
    Ok(verdicts)
}

/// Why `verify` could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeVerifyError {
    /// There is no relay database in the data directory.
    #[error("no relay data in {0} (relay.db not found); check --data-dir")]
    NoData(PathBuf),
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(EdgeError),
    /// Verification could not run.
    #[error(transparent)]
    Run(#[from] VerifyRunError),
}

/// The forwarding state of every capture trail of the data directory (`forward status`).
pub async fn forward_status_of_data_dir(
    data_dir: &Path,
) -> Result<Vec<crate::forwarder::ForwardStatus>, crate::forwarder::ForwardStatusError> {
    let adapters = LocalAdapters::open(data_dir)
        .await
        .map_err(|e| crate::forwarder::ForwardStatusError::Open(error_chain(&e)))?;
    let rows = crate::forwarder::forward_status(
        adapters.record_store.as_ref(),
        adapters.forward_cursors.as_ref(),
    )
    .await;
    adapters.record_store.close().await;
    rows
}
