//! The edge run loop: start-up posture, capture, HTTP, graceful shutdown, over the ports the
//! binary's composition root opened ([`EdgePorts`]; `relay-node` opens the local provider).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The `attribution` setting's values ([`EdgeSettings::attribution`]).
pub use relay_capture::AttributionPolicy;
use relay_capture::{Capture, CaptureConfig, CaptureHandle, CaptureStats};
use relay_domain::error_chain;
use relay_domain::ports::{
    AccountStore, ChangeRequestStore, ForwardCursorStore, Notary, RecordStore, SecretError,
    SecretName, SecretProvider, SecretProviderExt, SecretsFallback, TimeSource, WormPosture,
};
use relay_domain::{AppendService, Device, EventKind, Project, TrailId};
use tokio::sync::watch;

use crate::http::{HttpServer, HttpState, router};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::notary_scheduler::{NotarySchedule, NotaryScheduler};

/// What the edge needs to run; built by the binary from its configuration.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The data directory (the local stores, the default inbox, `exports/`).
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
    /// Re-hash audit interval of captured files; `None`: off.
    pub rehash: Option<Duration>,
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
    /// HTTPS for the listener (`tls_cert`, `tls_key`); `None`: plain HTTP.
    pub tls: Option<crate::server::TlsFiles>,
    /// Plain HTTP on a non-loopback address is refused unless this is set ([`crate::listen`]).
    pub allow_plain_http_on_network: bool,
    /// Who capture events are attributed to (`attribution`; default `auto`).
    pub attribution: relay_capture::AttributionPolicy,
}

/// The ports an edge runs on, opened by the binary's composition root (which provider, which
/// files): `relay-node` opens them on the local provider (SQLite + files) under the data
/// directory. The runtime never opens a store itself.
#[derive(Debug, Clone)]
pub struct EdgePorts {
    /// The provider's name, written into the posture (`mode`), e.g. `local`.
    pub provider: &'static str,
    /// The record store's kind, written into the posture (`record_store`), e.g. `sqlite`.
    pub record_store_kind: &'static str,
    /// Where the record store is (a file, a database), named in error messages.
    pub location: PathBuf,
    /// Every trail's records.
    pub records: Arc<dyn RecordStore>,
    /// Review accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// Four-eyes configuration changes.
    pub changes: Arc<dyn ChangeRequestStore>,
    /// How far each trail has been forwarded.
    pub forward_cursors: Arc<dyn ForwardCursorStore>,
    /// Keys and tokens.
    pub secrets: Arc<dyn SecretProvider>,
    /// Set when the configured secret provider could not be used and another stands in.
    pub secrets_fallback: Option<SecretsFallback>,
    /// Where trail heads are anchored.
    pub notary: Arc<dyn Notary>,
    /// The provider's clock (used unless [`EdgeSettings::clock`] names another).
    pub clock: Arc<dyn TimeSource>,
}

/// Why the edge could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The stores could not be opened.
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
    /// The record store is damaged (a corrupt page, a truncated file); it is left as it is
    /// and the relay does not run on it.
    #[error("refusing to start: {message}")]
    Damaged {
        /// The damaged store (its database file).
        path: PathBuf,
        /// What the store found.
        message: String,
    },
    /// The key that signed the newest `_relay` record is not in the secret provider: starting
    /// would mint a new key and leave the earlier records unverifiable.
    #[error(
        "the trail key {key_id} that signed record {seq} of _relay is not in the {provider} \
         secret provider{}; refusing to start with a new key (restore the key, or fix \
         secret_provider)",
        .fallback.as_ref().map(|r| format!(" (the OS keyring was asked for but cannot be used: {r})")).unwrap_or_default()
    )]
    KeyMissing {
        /// The key id of the newest `_relay` record.
        key_id: String,
        /// Its seq.
        seq: u64,
        /// The provider in use.
        provider: &'static str,
        /// Why the keyring was not used, when the file provider stands in for it.
        fallback: Option<String>,
    },
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
    /// Plain HTTP on a network address without `allow_plain_http_on_network`.
    #[error(transparent)]
    PlainHttp(#[from] crate::listen::PlainHttpRefused),
    /// The TLS certificate or key could not be used.
    #[error("tls_cert / tls_key")]
    Tls(#[source] crate::tls::TlsError),
}

/// A running edge relay.
#[derive(Debug)]
pub struct EdgeRuntime {
    signals: Option<StopSignals>,
    ports: EdgePorts,
    journal: Journal,
    capture: CaptureHandle,
    http_addr: SocketAddr,
    running: crate::running::Running,
    forwarder: Option<crate::forwarder::ForwarderHandle>,
}

impl EdgeRuntime {
    /// Opens the stores through `open` (the composition root's opener, called once the
    /// listener's transport posture is accepted, so a refused posture touches no store),
    /// records the start-up posture, starts capture and the HTTP listener.
    pub async fn start<F, Fut>(mut settings: EdgeSettings, open: F) -> Result<Self, EdgeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<EdgePorts, EdgeError>>,
    {
        let signals = StopSignals::register()?;
        // Transport first: a refused posture records nothing and touches no store.
        let listener = crate::listen::listener_posture(
            settings.listen,
            settings.tls.as_ref(),
            settings.allow_plain_http_on_network,
        )?;
        let tls_acceptor = settings
            .tls
            .as_ref()
            .map(|t| crate::tls::acceptor(&t.cert, &t.key))
            .transpose()
            .map_err(EdgeError::Tls)?;
        let ports = open().await?;
        if let Some(fallback) = &ports.secrets_fallback {
            tracing::error!(
                wanted = fallback.wanted, using = fallback.using, reason = %fallback.reason,
                "SECRET PROVIDER FALLBACK: secret_provider = \"keyring\" is configured but the OS \
                 keyring cannot be used; this relay keeps its keys in owner-only FILES under the data \
                 directory. Recorded as a SYSTEM event in _relay."
            );
        }
        ensure_key_continuity(&ports).await?;
        let applied_changes = apply_approved_changes(ports.changes.as_ref(), &mut settings)
            .await
            .map_err(|e| EdgeError::Config(error_chain(&e)))?;
        let secret = ports
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .map_err(EdgeError::Key)?;
        let key = secret
            .to_trail_key()
            .map_err(|e| EdgeError::BadKey(e.to_string()))?;
        let key_id = key.id().clone();
        let store: Arc<dyn RecordStore> = ports.records.clone();
        let clock: Arc<dyn TimeSource> = match &settings.clock {
            Some(c) => c.clone(),
            None => ports.clock.clone(),
        };
        // Every instant passes the step-back watch, seeded with the newest stored record so a
        // clock that went back while the relay was down is noticed on the first append.
        let (clock_watch, clock_steps) =
            crate::clock_watch::ClockWatch::new(clock, crate::clock_watch::DEFAULT_STEP_TOLERANCE);
        let trails: Vec<TrailId> = store
            .trails()
            .await
            .map_err(|e| EdgeError::Open {
                path: ports.location.clone(),
                message: error_chain(&e),
            })?
            .into_iter()
            .map(|(trail, _)| trail)
            .collect();
        clock_watch
            .seed_from_store(store.as_ref(), &trails)
            .await
            .map_err(|e| EdgeError::Open {
                path: ports.location.clone(),
                message: error_chain(&e),
            })?;
        let clock: Arc<dyn TimeSource> = clock_watch;
        let appender = Arc::new(AppendService::new(store.clone(), clock.clone(), key));
        let metrics = Metrics::new();
        let journal = Journal::new(appender.clone(), metrics.clone(), settings.device.clone());
        crate::clock_watch::spawn_step_reporter(clock_steps, journal.clone());
        crate::clock_watch::spawn_time_event_reporter(clock.clone(), journal.clone());

        let seal_key = crate::export::load_seal_key(ports.secrets.as_ref())
            .await
            .map_err(EdgeError::SealKey)?;
        let notary_worm = ports.notary.worm_posture();
        if notary_worm != WormPosture::Enforced {
            tracing::warn!(
                notary = ports.notary.kind(),
                worm = %notary_worm,
                "the notary is NOT write-once storage: anyone with access to the data directory could rewrite \
                 anchors; use an Object Lock / immutable-blob notary for regulated production"
            );
        }

        let attribution = match attribution_of(settings.attribution).await {
            Ok(attribution) => attribution,
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
                crate::config_guard::assess_config(ports.changes.as_ref(), config)
                    .await
                    .map_err(|e| EdgeError::Config(error_chain(&e)))?,
            ),
            None => None,
        };

        let previous_run = crate::run_history::PreviousRun::read(store.as_ref(), &settings.device)
            .await
            .map_err(|e| EdgeError::Open {
                path: ports.location.clone(),
                message: error_chain(&e),
            })?;
        previous_run
            .record(&journal)
            .await
            .map_err(EdgeError::Posture)?;
        let append_only = crate::append_only::read(store.as_ref()).await;
        let account_rows = crate::account_rows::read(ports.accounts.as_ref(), store.as_ref()).await;
        // The server of record as the store's witness: a restored older copy or a removed tail
        // is said at start-up, not only by the next `verify`.
        // The notary too: a restored older copy of the store is behind the (write-once)
        // notary's newest anchors.
        let witness = Some(
            crate::witness::at_start(
                store.as_ref(),
                ports.notary.as_ref(),
                ports.secrets.as_ref(),
                settings.forward.as_ref(),
            )
            .await,
        );
        let time = clock.posture();
        let posture = serde_json::json!({
            "version": crate::VERSION,
            "build": crate::build_info::BuildInfo::current().to_json(),
            "binary": crate::build_info::RunningBinary::posture(),
            "previous_run": previous_run.posture(),
            "listener": listener,
            "mode": ports.provider,
            "device": settings.device.as_str(),
            "trail": settings.trail.as_str(),
            "project": settings.project.as_ref().map(Project::as_str),
            "actor": attribution.0.process_actor().as_str(),
            "attribution": attribution.1.as_ref().map(relay_capture::AttributionOutlook::to_json),
            "time_source": { "kind": time.kind, "label": time.label.to_label(), "detail": time.detail },
            "key_id": key_id.as_str(),
            "secret_provider": ports.secrets.kind(),
            "secret_provider_fallback": ports.secrets_fallback.as_ref().map(|f| serde_json::json!({
                "wanted": f.wanted, "using": f.using, "reason": f.reason,
            })),
            "notary": { "kind": ports.notary.kind(), "worm": notary_worm },
            "export_seal": crate::export::seal_posture(&seal_key.public()),
            "record_store": ports.record_store_kind,
            "append_only": crate::append_only::posture(&append_only),
            "account_rows": crate::account_rows::posture(&account_rows),
            "witness": witness.as_ref().map(crate::witness::posture),
            "watch": settings.watch.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "settle_ms": u64::try_from(settings.settle.as_millis()).unwrap_or(u64::MAX),
            "rehash_interval_secs": settings.rehash.map(|d| d.as_secs()),
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
        crate::append_only::report(&append_only, &journal)
            .await
            .map_err(EdgeError::Posture)?;
        crate::account_rows::report(&account_rows, &journal)
            .await
            .map_err(EdgeError::Posture)?;
        if let Some(witness) = &witness {
            crate::witness::report_at_start(witness, &journal)
                .await
                .map_err(EdgeError::Posture)?;
        }
        if let Some(fallback) = &ports.secrets_fallback {
            journal
                .system(
                    "SECRET_PROVIDER_FALLBACK",
                    serde_json::json!({
                        "wanted": fallback.wanted,
                        "using": fallback.using,
                        "reason": fallback.reason,
                        "secrets_dir": settings.data_dir.join("secrets").display().to_string(),
                    }),
                )
                .await
                .map_err(EdgeError::Posture)?;
        }
        if let Some(assessment) = config_assessment {
            assessment
                .record(ports.changes.as_ref(), &journal)
                .await
                .map_err(|e| EdgeError::Config(error_chain(&e)))?;
        }

        let notary: Arc<dyn Notary> = ports.notary.clone();
        let notary_scheduler =
            NotaryScheduler::new(store.clone(), notary, clock.clone(), journal.clone())
                .with_seal_key(Arc::new(seal_key))
                .spawn(NotarySchedule::every(settings.notary_interval));

        if let Some(outlook) = &attribution.1 {
            for warning in &outlook.warnings {
                tracing::warn!(policy = %outlook.policy, "ATTRIBUTION: {warning}");
            }
        }
        let capture_config = capture_config(&settings, attribution.0);
        let capture = Capture::start(capture_config, appender.clone())
            .await
            .map_err(|e| EdgeError::Capture(error_chain(&e)))?;
        tokio::spawn(mirror_capture_stats(
            capture.subscribe(),
            metrics.clone(),
            journal.clone(),
            settings.trail.clone(),
        ));

        let services = Services {
            appender: appender.clone(),
            store: store.clone(),
            clock: clock.clone(),
            journal: journal.clone(),
            metrics: metrics.clone(),
        };
        let (http_addr, http_task, stop_http) =
            serve(&settings, &ports, &services, applied_changes, tls_acceptor).await?;
        let forwarder = start_forwarder(&settings, &ports, &store, &journal).await?;
        tracing::info!(
            trail = %settings.trail, device = %settings.device, key_id = %key_id, http = %http_addr,
            roots = settings.watch.len(), "relay-edge running"
        );
        Ok(Self {
            signals: Some(signals),
            ports,
            journal,
            capture,
            http_addr,
            running: crate::running::Running {
                http_task,
                stop_http,
                notary_scheduler,
            },
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
    pub async fn run_until_signal(mut self) -> Result<(), EdgeError> {
        let signals = match self.signals.take() {
            Some(signals) => signals,
            None => StopSignals::register()?,
        };
        wait_for_signal(signals).await?;
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
        self.running.stop().await;
        self.ports.records.close().await;
        tracing::info!("relay-edge stopped");
        Ok(())
    }
}

/// The application services one edge start builds over its ports.
struct Services {
    appender: Arc<AppendService>,
    store: Arc<dyn RecordStore>,
    clock: Arc<dyn TimeSource>,
    journal: Journal,
    metrics: Arc<Metrics>,
}

/// The attribution of capture events by `policy` over the OS's accounts and sessions, and what
/// it foresees (asked off the executor: account lookups and `loginctl` may block).
async fn attribution_of(
    policy: relay_capture::AttributionPolicy,
) -> Result<
    (
        relay_capture::Attribution,
        Option<relay_capture::AttributionOutlook>,
    ),
    relay_capture::ActorError,
> {
    let resolve = move || {
        let accounts = Arc::new(relay_capture::SystemAccounts::from_login_defs());
        let attribution = relay_capture::Attribution::new(policy, accounts)?;
        let outlook = attribution.outlook();
        Ok((attribution, outlook))
    };
    match tokio::task::spawn_blocking(resolve).await {
        Ok(result) => result,
        Err(e) => Err(relay_capture::ActorError::Lookup(std::io::Error::other(
            format!("attribution lookup task failed: {e}"),
        ))),
    }
}

/// The capture configuration of `settings`, attributed by `attribution`.
fn capture_config(
    settings: &EdgeSettings,
    attribution: relay_capture::Attribution,
) -> CaptureConfig {
    let mut config = CaptureConfig::new(
        settings.trail.clone(),
        settings.device.clone(),
        attribution.process_actor().clone(),
    )
    .with_attribution(attribution)
    .with_settle(settings.settle)
    .with_rescan_interval(settings.rescan)
    .with_rehash_interval(settings.rehash);
    for root in &settings.watch {
        config = config.with_root(root.clone());
    }
    if let Some(project) = settings.project.clone() {
        config = config.with_project(project);
    }
    config
}

/// Binds the listener and serves the health/metrics routes, the review API and UI (with
/// four-eyes changes and sealed exports under `<data_dir>/exports`) until the stop switch flips.
async fn serve(
    settings: &EdgeSettings,
    ports: &EdgePorts,
    services: &Services,
    applied_changes: Vec<String>,
    tls_acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Result<
    (
        SocketAddr,
        tokio::task::JoinHandle<std::io::Result<()>>,
        watch::Sender<bool>,
    ),
    EdgeError,
> {
    let Services {
        appender,
        store,
        clock,
        journal,
        metrics,
    } = services;
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
    let (stop_http, stop_signal) = crate::running::http_stop_switch();
    let mut api_config = settings.api.clone();
    api_config.device = settings.device.clone();
    let export_retention = api_config.export_retention;
    let api = relay_api::ApiState::new(relay_api::ApiParts {
        appender: appender.clone(),
        store: store.clone(),
        accounts: ports.accounts.clone(),
        secrets: ports.secrets.clone(),
        notary: ports.notary.clone(),
        metrics: metrics.api_metrics(),
        config: api_config,
    })
    .await
    .map_err(EdgeError::Api)?;
    api.warm_review_index();
    api.enable_changes(ports.changes.clone());
    api.set_change_targets(
        edge_change_targets(applied_changes)
            .current(
                relay_domain::ports::ChangeSetting::WatchRoots,
                serde_json::json!(
                    settings
                        .watch
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                ),
            )
            .current(
                relay_domain::ports::ChangeSetting::SettleMs,
                serde_json::json!(u64::try_from(settings.settle.as_millis()).unwrap_or(u64::MAX)),
            )
            .current(
                relay_domain::ports::ChangeSetting::NotaryIntervalSecs,
                serde_json::json!(settings.notary_interval.as_secs()),
            ),
    );
    api.enable_sealed_exports(std::sync::Arc::new(
        crate::export::DirExporter::new(
            settings.data_dir.join("exports"),
            store.clone(),
            ports.notary.clone(),
            ports.secrets.clone(),
            clock.clone(),
            journal.clone(),
            settings.device.clone(),
        )
        .with_retention(export_retention),
    ));
    let app = router(HttpState {
        metrics: metrics.clone(),
        store: store.clone(),
        mode: ports.provider,
    })
    .merge(relay_api::router(api));
    let http_task = tokio::spawn(server.serve(app, tls_acceptor, stop_signal));
    Ok((http_addr, http_task, stop_http))
}

/// Starts forwarding to the server of record when configured (the ingest token from the
/// settings, or the secret provider's).
async fn start_forwarder(
    settings: &EdgeSettings,
    ports: &EdgePorts,
    store: &Arc<dyn RecordStore>,
    journal: &Journal,
) -> Result<Option<crate::forwarder::ForwarderHandle>, EdgeError> {
    let forwarder = match settings.forward.clone() {
        Some(mut forward) => Some(
            crate::forwarder::Forwarder::new(
                {
                    if forward.token.is_empty() {
                        forward.token =
                            crate::forwarder::load_forward_token(ports.secrets.as_ref())
                                .await
                                .map_err(EdgeError::Forward)?;
                    }
                    forward
                },
                store.clone(),
                ports.forward_cursors.clone(),
                journal.clone(),
            )
            .map_err(EdgeError::Forward)?
            .with_key_registration(ports.secrets.clone())
            .spawn(),
        ),
        None => None,
    };
    Ok(forwarder)
}

/// How the edge applies each four-eyes setting once approved: its capture, notary interval and
/// registration settings at the next start ([`apply_approved_changes`]), roles at once; the
/// settings it does not own are refused at proposal, never approved and silently ignored.
fn edge_change_targets(applied_at_start: Vec<String>) -> relay_api::ChangeTargets {
    use relay_api::Applies;
    use relay_domain::ports::ChangeSetting;
    relay_api::ChangeTargets::default()
        .set(
            ChangeSetting::NotaryTarget,
            Applies::NotHere(
                "the edge anchors trail heads in its own data directory (anchors/); the \
                 WORM notary target is configured on the server of record"
                    .into(),
            ),
        )
        .set(
            ChangeSetting::RetentionDays,
            Applies::NotHere(
                "the edge keeps every record and has no retention lock; retention is the \
                 Object Lock period of the server of record's notary"
                    .into(),
            ),
        )
        .applied_at_start(applied_at_start)
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
            ChangeSetting::SigningWorkflow => relay_domain::workflow::WorkflowPolicy::from_value(v)
                .map(|p| settings.api.signing_workflow = p)
                .is_ok(),
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

/// Refuses to start when the newest `_relay` record was signed under a key the secret provider
/// does not hold (a keyring that lost its items, a fallback to files that lack the key, a
/// deleted key file): `current_or_create` would otherwise mint a new key silently.
async fn ensure_key_continuity(ports: &EdgePorts) -> Result<(), EdgeError> {
    let relay = TrailId::relay();
    let store: &dyn RecordStore = ports.records.as_ref();
    let Some(head) = store
        .head(&relay)
        .await
        .map_err(|e| EdgeError::Config(error_chain(&e)))?
    else {
        return Ok(());
    };
    let newest = store
        .read(&relay, head.seq.get().saturating_sub(1), 1)
        .await
        .map_err(|e| EdgeError::Config(error_chain(&e)))?;
    let Some(record) = newest.first() else {
        return Ok(());
    };
    let held = match ports.secrets.versions(&SecretName::trail_hmac()).await {
        Ok(ids) => ids,
        Err(SecretError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(EdgeError::Key(e)),
    };
    if held.contains(&record.key_id) {
        return Ok(());
    }
    Err(EdgeError::KeyMissing {
        key_id: record.key_id.to_string(),
        seq: record.chain_seq.get(),
        provider: ports.secrets.kind(),
        fallback: ports.secrets_fallback.as_ref().map(|f| f.reason.clone()),
    })
}

/// Mirrors capture progress into the metrics until capture stops, and records outages of the
/// store: while appends fail (a full disk, a locked or damaged database) nothing can be written
/// to any trail, so the files concerned stay pending and the failures are only counted; once
/// appends succeed again, one `SYSTEM` event `audit_write_outage` in `_relay` records how many
/// failed and when.
async fn mirror_capture_stats(
    mut stats: watch::Receiver<CaptureStats>,
    metrics: Arc<Metrics>,
    journal: Journal,
    trail: TrailId,
) {
    let mut seen = CaptureStats::default();
    let mut outage: Option<StoreOutage> = None;
    loop {
        let now = *stats.borrow_and_update();
        let recorded = now.recorded().saturating_sub(seen.recorded());
        let failed_appends = now.append_errors.saturating_sub(seen.append_errors);
        metrics.records_appended.inc_by(recorded);
        metrics
            .capture_failures
            .inc_by(now.failed.saturating_sub(seen.failed));
        metrics
            .capture_unattributed
            .inc_by(now.unattributed.saturating_sub(seen.unattributed));
        metrics.audit_write_failures.inc_by(failed_appends);
        metrics
            .capture_pending
            .set(i64::try_from(now.pending).unwrap_or(i64::MAX));
        seen = now;
        if failed_appends > 0 {
            match outage.as_mut() {
                Some(o) => o.failed_appends += failed_appends,
                None => outage = Some(StoreOutage::begin(&journal, failed_appends).await),
            }
        } else if recorded > 0
            && let Some(o) = outage.take()
            && let Err(o) = o.end(&journal, &trail, now.pending).await
        {
            // Not recorded yet (the journal logged and counted why): try again on the next
            // successful capture.
            outage = Some(o);
        }
        if stats.changed().await.is_err() {
            return;
        }
    }
}

/// The time for an outage bound; `None` (recorded as null) when the clock fails too.
async fn outage_time(journal: &Journal) -> Option<relay_domain::Timestamp> {
    match journal.appender().clock().now().await {
        Ok(t) => Some(t.at),
        Err(e) => {
            tracing::warn!(error = %e, "no time for the store outage record");
            None
        }
    }
}

/// Appends failing since `since`.
#[derive(Debug)]
struct StoreOutage {
    since: Option<relay_domain::Timestamp>,
    failed_appends: u64,
}

impl StoreOutage {
    async fn begin(journal: &Journal, failed_appends: u64) -> Self {
        tracing::error!(
            failed_appends,
            "appends to the record store are failing; files stay pending and are retried"
        );
        Self {
            since: outage_time(journal).await,
            failed_appends,
        }
    }

    async fn end(self, journal: &Journal, trail: &TrailId, pending: usize) -> Result<(), Self> {
        let until = outage_time(journal).await;
        let payload = serde_json::json!({
            "trail": trail.as_str(),
            "failed_appends": self.failed_appends,
            "first_failure": self.since.map(|t| t.to_canonical()),
            "recovered": until.map(|t| t.to_canonical()),
            "still_pending": pending,
            "detail": "appends to the record store failed (for example the data directory was full); \
                       the files concerned stayed pending, none was marked captured without its \
                       record, and they are captured now that appends succeed again",
        });
        match journal.system("audit_write_outage", payload).await {
            Ok(r) => {
                tracing::warn!(seq = %r.chain_seq, failed_appends = self.failed_appends,
                    "record store outage over; recorded as audit_write_outage");
                Ok(())
            }
            Err(_) => Err(self),
        }
    }
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

/// SIGTERM and SIGINT, registered when the edge starts: a signal that arrives while it is still
/// starting waits for the start to finish and then stops it gracefully (a `SHUTDOWN` record),
/// instead of killing the process half-way.
#[derive(Debug)]
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> Result<Self, EdgeError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(EdgeError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(EdgeError::Signals)?,
        })
    }
}

async fn wait_for_signal(signals: StopSignals) -> Result<(), EdgeError> {
    let StopSignals { mut term, mut int } = signals;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
