//! What a started relay (the edge or the server of record) keeps running in the background, and
//! the one way both stop it: a final notarization of every head, then the HTTP listener.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::notary_scheduler::NotarySchedulerHandle;

/// A stop switch for the HTTP listener: the sender flips it, the future resolves (also when the
/// sender is gone), for `with_graceful_shutdown`.
pub(crate) fn http_stop_switch() -> (
    watch::Sender<bool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (stop, mut stopped) = watch::channel(false);
    let signal = async move {
        while !*stopped.borrow_and_update() {
            if stopped.changed().await.is_err() {
                break;
            }
        }
    };
    (stop, signal)
}

/// The HTTP listener task and the notary scheduler of a started relay.
#[derive(Debug)]
pub(crate) struct Running {
    /// The listener's task.
    pub(crate) http_task: JoinHandle<std::io::Result<()>>,
    /// Its stop switch ([`http_stop_switch`]).
    pub(crate) stop_http: watch::Sender<bool>,
    /// The notary scheduler.
    pub(crate) notary_scheduler: NotarySchedulerHandle,
}

impl Running {
    /// Notarizes every head one last time (the `SHUTDOWN` record included, so record it
    /// first), then stops the listener and waits for it. Failures were journaled, counted and
    /// logged by the scheduler; they are logged here once more and the stop goes on, so the
    /// store can still be closed cleanly.
    pub(crate) async fn stop(self) {
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
    }
}
