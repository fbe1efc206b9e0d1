//! The time source: periodic SNTP checks, corrected instants, loud fallback.

use relay_domain::error_chain;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use relay_domain::ports::{TimeEvent, TimePosture, TimeSource, TimeSourceError, TimedInstant};
use relay_domain::{TimeLabel, Timestamp};
use tokio::task::JoinHandle;

use crate::config::NtpConfig;
use crate::error::NtpError;
use crate::sntp::{Sample, host_micros, query};

#[derive(Debug, Default)]
struct SyncState {
    last_good: Option<(Sample, Instant)>,
    last_error: Option<String>,
    warned_fallback: bool,
    /// Every server failed the latest check after an earlier one succeeded.
    lost: bool,
    /// Steps, losses and recoveries not yet taken by [`TimeSource::take_events`].
    events: Vec<TimeEvent>,
}

impl SyncState {
    /// A successful check: a step beyond the threshold, or the end of a loss, becomes an event.
    fn good(&mut self, sample: &Sample, threshold_micros: i64) {
        let previous = self.last_good.as_ref().map(|(s, _)| s.offset_micros);
        let change = previous.map(|p| sample.offset_micros - p);
        if self.lost {
            self.lost = false;
            tracing::warn!(server = %sample.server, offset_us = sample.offset_micros, "NTP validation recovered");
            self.events.push(TimeEvent {
                what: "NTP_RECOVERED",
                detail: serde_json::json!({
                    "server": sample.server,
                    "offset_ms": sample.offset_micros / 1000,
                    "offset_change_ms": change.map(|c| c / 1000),
                    "detail": "an NTP server answers again; instants are validated again",
                }),
            });
        } else if let (Some(previous), Some(change)) = (previous, change)
            && change.abs() > threshold_micros
        {
            tracing::warn!(server = %sample.server, previous_offset_us = previous,
                offset_us = sample.offset_micros, "the NTP reference stepped the clock");
            self.events.push(TimeEvent {
                what: "NTP_STEP",
                detail: serde_json::json!({
                    "server": sample.server,
                    "direction": if change > 0 { "forward" } else { "backward" },
                    "step_ms": change / 1000,
                    "previous_offset_ms": previous / 1000,
                    "offset_ms": sample.offset_micros / 1000,
                    "threshold_ms": threshold_micros / 1000,
                    "detail": "the offset between the host clock and the NTP reference changed by more \
                               than the threshold between two checks: validated instants jump by \
                               step_ms; chain_seq stays the order",
                }),
            });
        }
        self.last_good = Some((sample.clone(), Instant::now()));
        self.last_error = None;
    }

    /// A check that no server answered: the first after a success is a loss event.
    fn failed(&mut self, error: String, servers: &[String]) {
        if self.last_good.is_some() && !self.lost {
            self.lost = true;
            self.events.push(TimeEvent {
                what: "NTP_LOST",
                detail: serde_json::json!({
                    "servers": servers,
                    "error": error,
                    "last_offset_ms": self.last_good.as_ref().map(|(s, _)| s.offset_micros / 1000),
                    "detail": "no NTP server answered; instants stay corrected by the last offset \
                               until it goes stale, then fall back to the system clock",
                }),
            });
        }
        self.last_error = Some(error);
    }
}

/// A [`TimeSource`] validated against NTP servers.
#[derive(Debug)]
pub struct NtpTimeSource {
    config: NtpConfig,
    state: Arc<Mutex<SyncState>>,
    poller: Option<JoinHandle<()>>,
}

impl NtpTimeSource {
    /// Checks the servers once (bounded by their timeouts), then keeps checking in the
    /// background every poll interval. Never fails: with no answer, instants are labelled
    /// `system` and the fallback is logged and shown in the posture.
    pub async fn start(config: NtpConfig) -> Self {
        let state = Arc::new(Mutex::new(SyncState::default()));
        if let Err(e) = check(&config, &state).await {
            // Recorded in the state; `now()` labels instants `system` and warns once.
            tracing::warn!(error = %e, "initial NTP check failed");
        }
        let poller = tokio::spawn(poll(config.clone(), state.clone()));
        Self {
            config,
            state,
            poller: Some(poller),
        }
    }

    /// A source that checks only when [`sync_now`](Self::sync_now) is called (tests, tools).
    pub fn manual(config: NtpConfig) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(SyncState::default())),
            poller: None,
        }
    }

    /// Checks the servers now and returns the sample used, or why none answered.
    pub async fn sync_now(&self) -> Result<Sample, NtpError> {
        check(&self.config, &self.state).await
    }

    fn fresh_sample(&self) -> Option<Sample> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = st
            .last_good
            .as_ref()
            .filter(|(_, at)| at.elapsed() <= self.config.max_staleness)
            .map(|(s, _)| s.clone());
        if fresh.is_none() && !st.warned_fallback {
            st.warned_fallback = true;
            tracing::warn!(
                servers = ?self.config.servers,
                last_error = st.last_error.as_deref().unwrap_or("no successful check yet"),
                "NTP validation unavailable: timestamps fall back to the unvalidated system clock (labelled `system`)"
            );
        }
        if fresh.is_some() {
            st.warned_fallback = false;
        }
        fresh
    }
}

impl Drop for NtpTimeSource {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
    }
}

async fn check(config: &NtpConfig, state: &Mutex<SyncState>) -> Result<Sample, NtpError> {
    let mut last = None;
    for server in &config.servers {
        match query(server, config.timeout).await {
            Ok(sample) => {
                tracing::debug!(server = %server, offset_us = sample.offset_micros, delay_us = sample.delay_micros, "NTP check");
                let threshold =
                    i64::try_from(config.step_threshold.as_micros()).unwrap_or(i64::MAX);
                state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .good(&sample, threshold);
                return Ok(sample);
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "NTP server did not give a usable answer");
                last = Some(e);
            }
        }
    }
    let err = match last {
        None => NtpError::NoServers,
        Some(e) => NtpError::AllFailed {
            tried: config.servers.len(),
            last: Box::new(e),
        },
    };
    state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .failed(error_chain(&err), &config.servers);
    Err(err)
}

async fn poll(config: NtpConfig, state: Arc<Mutex<SyncState>>) {
    let mut every = tokio::time::interval(config.poll_interval);
    every.tick().await; // the first tick is immediate; start() already checked
    loop {
        every.tick().await;
        if let Err(e) = check(&config, &state).await {
            tracing::warn!(error = %e, "periodic NTP check failed");
        }
    }
}

#[async_trait]
impl TimeSource for NtpTimeSource {
    async fn now(&self) -> Result<TimedInstant, TimeSourceError> {
        let host = host_micros();
        let (micros, label) = match self.fresh_sample() {
            Some(s) => (
                host + s.offset_micros,
                TimeLabel::Validated {
                    offset_micros: s.offset_micros,
                },
            ),
            None => (host, TimeLabel::System),
        };
        let at = Timestamp::from_unix_micros(micros)
            .map_err(|e| TimeSourceError::OutOfRange(e.to_string()))?;
        Ok(TimedInstant { at, label })
    }

    fn take_events(&self) -> Vec<TimeEvent> {
        std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .events,
        )
    }

    fn posture(&self) -> TimePosture {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match st
            .last_good
            .as_ref()
            .filter(|(_, at)| at.elapsed() <= self.config.max_staleness)
        {
            Some((s, at)) => TimePosture {
                kind: "ntp",
                label: TimeLabel::Validated {
                    offset_micros: s.offset_micros,
                },
                detail: format!(
                    "validated against {} (stratum {}), offset {} us, delay {} us, checked {} s ago",
                    s.server,
                    s.stratum,
                    s.offset_micros,
                    s.delay_micros,
                    at.elapsed().as_secs()
                ),
            },
            None => TimePosture {
                kind: "ntp",
                label: TimeLabel::System,
                detail: format!(
                    "FALLBACK to the unvalidated system clock: {} (servers: {})",
                    st.last_error
                        .as_deref()
                        .unwrap_or("no successful check yet"),
                    self.config.servers.join(", ")
                ),
            },
        }
    }
}
