//! The server of record (R8, `RELAY_MODE=server`): the same review API and UI as the edge, plus
//! verified ingest of forwarded trails (`POST /api/v1/ingest`), its own `_relay` journal, the
//! notary scheduler, and HTTPS through rustls when a certificate is configured.
//!
//! The stores are passed in as ports ([`ServerStores`]), so the same wiring serves the local
//! adapter (one box: SQLite + files) and the self-hosted one (Postgres + S3), which the binary
//! builds behind its own dependency.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relay_domain::ports::{
    AccountStore, ChangeRequestStore, Notary, ReceiptStore, RecordStore, SecretError, SecretName,
    SecretProvider, SecretProviderExt, TimeSource, WormPosture,
};
use relay_domain::{AppendService, Device, EventKind, TrailId};

use crate::http::{HttpState, router};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::notary_scheduler::{NotarySchedule, NotaryScheduler};
use relay_domain::error_chain;

/// The ports the server runs on, built by the binary from its `[storage]` configuration.
#[derive(Debug, Clone)]
pub struct ServerStores {
    /// `local` or `selfhosted`, written into the posture.
    pub provider: &'static str,
    /// Forwarded trails and the server's `_relay`.
    pub records: Arc<dyn RecordStore>,
    /// Review accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// Trail keys of edges, ingest tokens, the server's own keys.
    pub secrets: Arc<dyn SecretProvider>,
    /// Where trail heads are anchored.
    pub notary: Arc<dyn Notary>,
    /// The server clock (system or NTP).
    pub clock: Arc<dyn TimeSource>,
    /// Four-eyes configuration change requests (`None`: `/api/v1/changes` answers 503).
    pub changes: Option<Arc<dyn ChangeRequestStore>>,
    /// When each forwarded record was received (`None`: no time of receipt is kept, every
    /// record shows `received_at: null`, and the start-up posture says so).
    pub receipts: Option<Arc<dyn ReceiptStore>>,
    /// Enrolled edges, enrollment codes and edge health, shared by every replica (`None`: no
    /// enrollment; only `ingest_edges` may ingest, and the fleet view answers 503).
    pub fleet: Option<Arc<dyn relay_domain::ports::FleetStore>>,
}

impl ServerStores {
    /// Closes the stores' connections ([`RecordStore::close`]); called once, by whoever opened
    /// them, when the server or a command is done with them.
    pub async fn close(&self) {
        self.records.close().await;
    }
}

/// HTTPS material: a PEM certificate chain and its PEM private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (leaf first).
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What the server needs to run; built by the binary from its configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The server's id, written on its own events.
    pub device: Device,
    /// Listener address.
    pub listen: SocketAddr,
    /// HTTPS when set; plain HTTP otherwise (loopback or behind a TLS proxy).
    pub tls: Option<TlsFiles>,
    /// Ingest settings (allowed edges, clock skew threshold, lateness threshold).
    pub ingest: relay_api::IngestConfig,
    /// The review API.
    pub api: relay_api::ApiConfig,
    /// How often every trail head is notarized.
    pub notary_interval: Duration,
    /// Where sealed export packages requested through `POST /api/v1/exports` are written
    /// (created on first use), e.g. `<data_dir>/exports`.
    pub exports_dir: std::path::PathBuf,
    /// The effective configuration as JSON, compared at start-up with the last approved one
    /// ([`crate::config_guard`]: `CONFIG_BASELINE` on first start, `CONFIG_DRIFT` when edited
    /// behind the server's back); `None`, or no change store, skips the check.
    pub config: Option<serde_json::Value>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The stores could not be opened.
    #[error("cannot open the stores: {0}")]
    Open(String),
    /// The server's own trail key could not be loaded or created.
    #[error("cannot load the server's trail key")]
    Key(#[source] SecretError),
    /// The server's own trail key is unusable.
    #[error("the server's trail key is unusable: {0}")]
    BadKey(String),
    /// The posture event could not be recorded; the server does not run unrecorded.
    #[error("cannot record the start-up posture event")]
    Posture(#[source] relay_domain::AppendError),
    /// The review API could not be prepared.
    #[error("cannot start the review API")]
    Api(#[source] relay_api::ApiStartError),
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listener could not be bound.
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
}

/// A running server of record.
#[derive(Debug)]
pub struct ServerRuntime {
    stores: ServerStores,
    journal: Journal,
    http_addr: SocketAddr,
    running: crate::running::Running,
    fleet_refresh: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl ServerRuntime {
    /// Records the posture, starts the notary scheduler and serves API, UI and ingest, with
    /// four-eyes changes on `stores.changes` (`None`: `/api/v1/changes` answers 503). Approved
    /// `notary_interval_secs` and `registration_closed` changes are applied over `settings` at
    /// start; approved ingest token revocations are replayed, so a revoked edge stays refused
    /// after a restart; role and ingest token changes approved while running take effect at once.
    pub async fn start(
        stores: ServerStores,
        mut settings: ServerSettings,
    ) -> Result<Self, ServerError> {
        let changes = stores.changes.clone();
        let approved = match &changes {
            Some(store) => crate::config_guard::approved_changes(store.as_ref())
                .await
                .map_err(|e| ServerError::Open(error_chain(&e)))?,
            None => Vec::new(),
        };
        let applied_changes = apply_approved_server_changes(&approved, &mut settings);
        let config_assessment = match (&changes, &settings.config) {
            (Some(store), Some(config)) => Some(
                crate::config_guard::assess_config(store.as_ref(), config)
                    .await
                    .map_err(|e| ServerError::Open(error_chain(&e)))?,
            ),
            _ => None,
        };
        // The seal key (it signs checkpoints and exports) exists before the trail key, so a
        // replica set up by copying the first server's secrets once its trail key exists gets
        // both (docs/operations.md).
        let seal_key = crate::export::load_seal_key(stores.secrets.as_ref())
            .await
            .map_err(|e| ServerError::Open(error_chain(&e)))?;
        let secret = stores
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .map_err(ServerError::Key)?;
        let key = secret
            .to_trail_key()
            .map_err(|e| ServerError::BadKey(e.to_string()))?;
        let key_id = key.id().clone();
        // The server stamps only its own `_relay` events (ingested records keep the edge's
        // time), so the step-back watch is seeded from `_relay` alone.
        let (clock_watch, clock_steps) = crate::clock_watch::ClockWatch::new(
            stores.clock.clone(),
            crate::clock_watch::DEFAULT_STEP_TOLERANCE,
        );
        clock_watch
            .seed_from_store(stores.records.as_ref(), &[TrailId::relay()])
            .await
            .map_err(|e| ServerError::Open(error_chain(&e)))?;
        let clock: Arc<dyn TimeSource> = clock_watch;
        let appender = Arc::new(AppendService::new(
            stores.records.clone(),
            clock.clone(),
            key,
        ));
        let metrics = Metrics::new();
        let journal = Journal::new(appender.clone(), metrics.clone(), settings.device.clone());
        crate::clock_watch::spawn_step_reporter(clock_steps, journal.clone());
        crate::clock_watch::spawn_time_event_reporter(clock.clone(), journal.clone());

        let ingest = relay_api::IngestState::new(relay_api::IngestParts {
            appender: appender.clone(),
            store: stores.records.clone(),
            secrets: stores.secrets.clone(),
            device: settings.device.clone(),
            metrics: metrics.ingest.clone(),
            config: settings.ingest.clone(),
        });
        match &stores.receipts {
            Some(receipts) => {
                ingest.enable_receipts(receipts.clone());
            }
            None => tracing::warn!(
                "no receipt store: the time of receipt of forwarded records is NOT kept, and no \
                 record can be shown as received late"
            ),
        }
        if let Some(fleet) = &stores.fleet {
            ingest.enable_fleet(fleet.clone());
        }
        let revoked_edges = replay_ingest_token_changes(&approved, &ingest);
        let without_token = ingest.edges_without_token().await;
        if settings.ingest.edges.is_empty() && stores.fleet.is_none() {
            tracing::warn!(
                "ingest is DISABLED: no edge is configured (ingest_edges) and there is no fleet \
                 store for enrollment; POST /api/v1/ingest answers 503"
            );
        } else if !without_token.is_empty() {
            tracing::warn!(edges = ?without_token,
                "these edges have no ingest token (secret ingest-token.<edge>); their requests are refused (401)");
        }
        let notary_worm = stores.notary.worm_posture();
        if notary_worm != WormPosture::Enforced {
            tracing::warn!(notary = stores.notary.kind(), worm = %notary_worm,
                "the notary is NOT write-once storage; use an Object Lock notary for regulated production");
        }
        let previous_run =
            crate::run_history::PreviousRun::read(stores.records.as_ref(), &settings.device)
                .await
                .map_err(|e| ServerError::Open(error_chain(&e)))?;
        previous_run
            .record(&journal)
            .await
            .map_err(ServerError::Posture)?;
        let append_only = crate::append_only::read(stores.records.as_ref()).await;
        // Account rows edited behind the server's back (issue 18, item 5), as on the edge.
        let account_rows =
            crate::account_rows::read(stores.accounts.as_ref(), stores.records.as_ref()).await;
        let time = stores.clock.posture();
        let posture = serde_json::json!({
            "version": crate::VERSION,
            "build": crate::build_info::BuildInfo::current().to_json(),
            "binary": crate::build_info::RunningBinary::posture(),
            "previous_run": previous_run.posture(),
            "mode": "server",
            "device": settings.device.as_str(),
            "actor_source": "system",
            "time_source": { "kind": time.kind, "label": time.label.to_label(), "detail": time.detail },
            "key_id": key_id.as_str(),
            "secret_provider": stores.secrets.kind(),
            "notary": { "kind": stores.notary.kind(), "worm": notary_worm },
            "record_store": stores.provider,
            "append_only": crate::append_only::posture(&append_only),
            "account_rows": crate::account_rows::posture(&account_rows),
            "tls": settings.tls.is_some(),
            "approved_changes_applied": applied_changes,
            "config": config_assessment.as_ref().map(|a| a.posture.to_json()),
            "ingest": {
                "edges": settings.ingest.edges,
                "edges_without_token": without_token,
                "revoked_by_approved_change": revoked_edges,
                "clock_skew_threshold_ms": u64::try_from(settings.ingest.clock_skew_threshold.as_millis()).unwrap_or(u64::MAX),
                "receipts": stores.receipts.is_some(),
                "late_after_secs": settings.ingest.late_after.as_secs(),
            },
        });
        journal
            .record(EventKind::startup(), None, posture)
            .await
            .map_err(ServerError::Posture)?;
        crate::append_only::report(&append_only, &journal)
            .await
            .map_err(ServerError::Posture)?;
        crate::account_rows::report(&account_rows, &journal)
            .await
            .map_err(ServerError::Posture)?;
        if let (Some(assessment), Some(store)) = (config_assessment, &changes) {
            assessment
                .record(store.as_ref(), &journal)
                .await
                .map_err(|e| ServerError::Open(error_chain(&e)))?;
        }

        let notary_scheduler = NotaryScheduler::new(
            stores.records.clone(),
            stores.notary.clone(),
            clock.clone(),
            journal.clone(),
        )
        .with_seal_key(Arc::new(seal_key))
        .spawn(NotarySchedule::every(settings.notary_interval));

        let mut api_config = settings.api.clone();
        api_config.device = settings.device.clone();
        api_config.server_of_record = true;
        let api = relay_api::ApiState::new(relay_api::ApiParts {
            appender: appender.clone(),
            store: stores.records.clone(),
            accounts: stores.accounts.clone(),
            secrets: stores.secrets.clone(),
            notary: stores.notary.clone(),
            metrics: metrics.api_metrics(),
            config: api_config,
        })
        .await
        .map_err(ServerError::Api)?;
        api.warm_review_index();
        if let Some(receipts) = &stores.receipts {
            api.enable_receipts(receipts.clone(), settings.ingest.late_after);
        }
        if stores.fleet.is_some() {
            api.enable_ingest_tokens(ingest.clone());
        }
        if let Some(store) = changes {
            api.enable_changes(store);
            api.enable_ingest_tokens(ingest.clone());
            api.set_change_targets(server_change_targets(applied_changes).current(
                relay_domain::ports::ChangeSetting::NotaryIntervalSecs,
                serde_json::json!(settings.notary_interval.as_secs()),
            ));
        }
        let mut exporter = crate::export::DirExporter::new(
            settings.exports_dir.clone(),
            stores.records.clone(),
            stores.notary.clone(),
            stores.secrets.clone(),
            clock.clone(),
            journal.clone(),
            settings.device.clone(),
        )
        .with_retention(settings.api.export_retention);
        if let Some(receipts) = &stores.receipts {
            exporter = exporter.with_receipts(receipts.clone(), settings.ingest.late_after);
        }
        api.enable_sealed_exports(Arc::new(exporter));
        let app = router(HttpState {
            metrics: metrics.clone(),
            store: stores.records.clone(),
            mode: "server",
        })
        .merge(relay_api::ingest_router(ingest))
        .merge(relay_api::router(api));

        let listener =
            crate::http::listen(settings.listen).map_err(|source| ServerError::Http {
                addr: settings.listen,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| ServerError::Http {
            addr: settings.listen,
            source,
        })?;
        let (stop_http, shutdown) = crate::running::http_stop_switch();
        // Handlers see the peer address (`ConnectInfo`), for the session audit.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let http_task = match &settings.tls {
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }),
            Some(files) => {
                use axum::serve::ListenerExt;
                let acceptor = crate::tls::acceptor(&files.cert, &files.key)
                    .map_err(|e| ServerError::Tls(e.to_string()))?;
                // `tap_io` (a no-op) lets axum hand `SocketAddr` to handlers for our listener.
                let tls = crate::tls::TlsListener::new(listener, acceptor).tap_io(|_| {});
                tokio::spawn(
                    async move { axum::serve(tls, app).with_graceful_shutdown(shutdown).await },
                )
            }
        };
        let fleet_refresh = stores.fleet.clone().map(|fleet| {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(crate::fleet_metrics::refresh_loop(
                metrics.fleet.clone(),
                fleet,
                clock.clone(),
                settings.ingest.edges.clone(),
                settings.ingest.clock_skew_threshold,
                stopped,
            ));
            (stop, task)
        });
        tracing::info!(device = %settings.device, key_id = %key_id, http = %http_addr,
            tls = settings.tls.is_some(), store = stores.provider, "relay-server running");
        Ok(Self {
            stores,
            journal,
            http_addr,
            running: crate::running::Running {
                http_task,
                stop_http,
                notary_scheduler,
            },
            fleet_refresh,
        })
    }

    /// The address the listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The server's `_relay` journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<(), ServerError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received, shutting down");
        self.shutdown().await;
        Ok(())
    }

    /// Records the shutdown, notarizes every head, stops HTTP and closes the stores.
    pub async fn shutdown(self) {
        if let Err(e) = self
            .journal
            .record(EventKind::shutdown(), None, serde_json::json!({}))
            .await
        {
            tracing::error!(error = %e, "shutdown event not recorded");
        }
        if let Some((stop, task)) = self.fleet_refresh {
            if stop.send(true).is_err() {
                tracing::debug!("fleet gauge refresh already stopped");
            }
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "fleet gauge refresh task failed");
            }
        }
        self.running.stop().await;
        self.stores.close().await;
        tracing::info!("relay-server stopped");
    }
}

/// How the server of record applies each four-eyes setting once approved.
fn server_change_targets(applied_at_start: Vec<String>) -> relay_api::ChangeTargets {
    use relay_api::Applies;
    use relay_domain::ports::ChangeSetting;
    let capture = "capture settings belong to each edge; propose the change on the edge's relay";
    let storage = "set by relay-server's storage configuration (the notary's bucket and its \
                   Object Lock retention), read when the stores are opened; change the \
                   deployment's configuration and restart";
    relay_api::ChangeTargets::default()
        .set(ChangeSetting::WatchRoots, Applies::NotHere(capture.into()))
        .set(ChangeSetting::SettleMs, Applies::NotHere(capture.into()))
        .set(
            ChangeSetting::NotaryTarget,
            Applies::NotHere(storage.into()),
        )
        .set(
            ChangeSetting::RetentionDays,
            Applies::NotHere(storage.into()),
        )
        .set(
            ChangeSetting::ConfigBaseline,
            Applies::NotHere("the server does not check its configuration digest yet".into()),
        )
        .set(ChangeSetting::IngestToken, Applies::Now)
        .set(ChangeSetting::EnrollmentCode, Applies::Now)
        .applied_at_start(applied_at_start)
}

/// Applies approved changes the server reads at start-up over `settings`; returns their ids.
fn apply_approved_server_changes(
    approved: &[relay_domain::ports::ChangeRequest],
    settings: &mut ServerSettings,
) -> Vec<String> {
    use relay_domain::ports::ChangeSetting;
    let mut applied = Vec::new();
    for change in approved {
        let done = match change.setting {
            ChangeSetting::NotaryIntervalSecs => change
                .value
                .as_u64()
                .map(|s| settings.notary_interval = Duration::from_secs(s))
                .is_some(),
            ChangeSetting::RegistrationClosed => change
                .value
                .as_bool()
                .map(|b| settings.api.registration_closed = b)
                .is_some(),
            ChangeSetting::SigningWorkflow => {
                relay_domain::workflow::WorkflowPolicy::from_value(&change.value)
                    .map(|p| settings.api.signing_workflow = p)
                    .is_ok()
            }
            _ => false,
        };
        if done {
            tracing::info!(change = %change.id, setting = %change.setting, "approved change applied at start-up");
            applied.push(change.id.clone());
        }
    }
    applied
}

/// Replays approved ingest token changes, oldest first, so an edge whose last approved change
/// revoked its token stays refused; returns the revoked edges.
fn replay_ingest_token_changes(
    approved: &[relay_domain::ports::ChangeRequest],
    ingest: &relay_api::IngestState,
) -> Vec<String> {
    use relay_domain::ports::ChangeSetting;
    for change in approved
        .iter()
        .filter(|c| c.setting == ChangeSetting::IngestToken)
    {
        let source = change.value.get("source").and_then(|v| v.as_str());
        match (source, change.value.get("action").and_then(|v| v.as_str())) {
            (Some(edge), Some("revoke")) => ingest.revoke(edge),
            (Some(edge), Some("issue")) => ingest.reinstate(edge),
            _ => {}
        }
    }
    ingest.revoked()
}

/// Creates (or reads) the ingest token of `edge` and returns its bearer text, to hand to the
/// edge's operator once (`relay-server ingest-token --edge ID`).
pub async fn ingest_token(secrets: &dyn SecretProvider, edge: &str) -> Result<String, SecretError> {
    let name = relay_api::ingest_token_secret(edge).map_err(|e| SecretError::Other {
        message: format!("edge id {edge:?}: {e}"),
        source: None,
    })?;
    let secret = secrets.current_or_create(&name).await?;
    Ok(relay_api::token_text(&secret))
}
