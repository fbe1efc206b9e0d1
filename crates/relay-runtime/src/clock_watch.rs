//! Detection of the wall clock stepping backwards (R9).
//!
//! A clock may step back (an administrator sets it, NTP corrects a clock that ran ahead, a VM
//! resumes from a snapshot). Records keep whatever instant the time source gave them, labelled
//! with its source, and `chain_seq` stays the authoritative order; what must not happen is that
//! the step goes unnoticed. [`ClockWatch`] wraps the relay's [`TimeSource`]: it remembers the
//! latest instant it handed out (seeded at start-up from the newest `recorded_at` in the store),
//! and when the clock reads earlier than that by more than a tolerance it reports a
//! [`ClockStep`]. [`spawn_step_reporter`] turns each report into a `CLOCK_SKEW` event in
//! `_relay` (payload `"check": "step_back"`) and the `relay_clock_steps_back_total` counter.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use relay_domain::ports::{
    RecordStore, RecordStoreError, RecordStoreExt, TimePosture, TimeSource, TimeSourceError,
    TimedInstant,
};
use relay_domain::{EventKind, TrailId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::journal::Journal;

/// How far back a reading may lie before it counts as a step: readings taken concurrently by
/// several appenders may reach the watch slightly out of order, and small corrections are
/// slewed by NTP rather than stepped.
pub const DEFAULT_STEP_TOLERANCE: Duration = Duration::from_secs(1);

/// What the stepped-back reading was compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepReference {
    /// An instant this process handed out earlier.
    EarlierReading,
    /// The newest `recorded_at` in the store at start-up.
    StoredRecord {
        /// The trail holding it.
        trail: TrailId,
        /// Its seq.
        seq: u64,
    },
}

/// One backwards step of the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockStep {
    /// The latest instant known before the step.
    pub previous: TimedInstant,
    /// The reading that lies before it.
    pub now: TimedInstant,
    /// Where `previous` came from.
    pub reference: StepReference,
}

impl ClockStep {
    /// How far the clock went back, in microseconds (positive).
    pub fn step_back_micros(&self) -> i64 {
        self.previous.at.micros_since(self.now.at)
    }

    /// The `CLOCK_SKEW` payload recording this step.
    pub fn payload(&self) -> serde_json::Value {
        let (reference, trail, seq) = match &self.reference {
            StepReference::EarlierReading => ("earlier_reading", None, None),
            StepReference::StoredRecord { trail, seq } => {
                ("stored_record", Some(trail.as_str().to_owned()), Some(*seq))
            }
        };
        serde_json::json!({
            "check": "step_back",
            "previous": self.previous.at.to_canonical(),
            "previous_label": self.previous.label.to_label(),
            "now": self.now.at.to_canonical(),
            "label": self.now.label.to_label(),
            "step_back_ms": self.step_back_micros() / 1000,
            "reference": reference,
            "reference_trail": trail,
            "reference_seq": seq,
            "order": "chain_seq",
        })
    }
}

#[derive(Debug)]
struct High {
    at: TimedInstant,
    reference: StepReference,
}

/// A [`TimeSource`] that reports backwards steps of the one it wraps; instants pass unchanged.
#[derive(Debug)]
pub struct ClockWatch {
    inner: Arc<dyn TimeSource>,
    tolerance_micros: i64,
    high: Mutex<Option<High>>,
    steps: mpsc::UnboundedSender<ClockStep>,
}

impl ClockWatch {
    /// Watches `inner`; steps are sent to the returned receiver (see [`spawn_step_reporter`]).
    pub fn new(
        inner: Arc<dyn TimeSource>,
        tolerance: Duration,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<ClockStep>) {
        let (steps, rx) = mpsc::unbounded_channel();
        let watch = Arc::new(Self {
            inner,
            tolerance_micros: i64::try_from(tolerance.as_micros()).unwrap_or(i64::MAX),
            high: Mutex::new(None),
            steps,
        });
        (watch, rx)
    }

    /// Raises the reference to the newest `recorded_at` among the heads of `trails` (e.g. at
    /// start-up, so a clock that stepped back while the relay was down is noticed on the first
    /// reading). Returns how many heads were read.
    pub async fn seed_from_store(
        &self,
        store: &dyn RecordStore,
        trails: &[TrailId],
    ) -> Result<usize, RecordStoreError> {
        let mut read = 0;
        for trail in trails {
            let Some(head) = store.head(trail).await? else {
                continue;
            };
            let Some(record) = store.get(trail, head.seq).await? else {
                continue;
            };
            read += 1;
            self.raise(
                TimedInstant {
                    at: record.recorded_at,
                    label: record.time_source,
                },
                StepReference::StoredRecord {
                    trail: trail.clone(),
                    seq: head.seq.get(),
                },
            );
        }
        Ok(read)
    }

    fn raise(&self, at: TimedInstant, reference: StepReference) {
        let mut high = self.high.lock().unwrap_or_else(PoisonError::into_inner);
        if high.as_ref().is_none_or(|h| at.at > h.at.at) {
            *high = Some(High { at, reference });
        }
    }

    /// Compares a reading with the reference; returns the step when it lies too far before it.
    fn observe(&self, now: TimedInstant) -> Option<ClockStep> {
        let mut high = self.high.lock().unwrap_or_else(PoisonError::into_inner);
        let step = match high.as_ref() {
            Some(h) if h.at.at.micros_since(now.at) > self.tolerance_micros => Some(ClockStep {
                previous: h.at,
                now,
                reference: h.reference.clone(),
            }),
            // Within the tolerance below the reference: concurrent readers, not a step.
            Some(h) if now.at <= h.at.at => return None,
            _ => None,
        };
        // After a step the clock's new time is the reference, so the step is reported once.
        *high = Some(High {
            at: now,
            reference: StepReference::EarlierReading,
        });
        step
    }
}

#[async_trait]
impl TimeSource for ClockWatch {
    async fn now(&self) -> Result<TimedInstant, TimeSourceError> {
        let now = self.inner.now().await?;
        if let Some(step) = self.observe(now) {
            tracing::warn!(
                previous = %step.previous.at, now = %step.now.at,
                step_back_ms = step.step_back_micros() / 1000,
                label = %step.now.label.to_label(),
                "the clock stepped backwards; records keep their labelled time, chain_seq orders them"
            );
            if self.steps.send(step).is_err() {
                tracing::error!("clock step not recorded: the step reporter is gone");
            }
        }
        Ok(now)
    }

    fn posture(&self) -> TimePosture {
        self.inner.posture()
    }

    fn take_events(&self) -> Vec<relay_domain::ports::TimeEvent> {
        self.inner.take_events()
    }
}

/// How often [`spawn_time_event_reporter`] takes the time source's events.
pub const TIME_EVENT_POLL: Duration = Duration::from_secs(1);

/// Records every [`TimeEvent`](relay_domain::ports::TimeEvent) of `clock` (NTP steps in either
/// direction, loss of every server, recovery) as a SYSTEM event in `_relay`, checking every
/// [`TIME_EVENT_POLL`]; runs until the runtime stops.
pub fn spawn_time_event_reporter(clock: Arc<dyn TimeSource>, journal: Journal) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TIME_EVENT_POLL);
        loop {
            every.tick().await;
            for event in clock.take_events() {
                if let Err(e) = journal.system(event.what, event.detail).await {
                    // The journal logged and counted it.
                    tracing::error!(event = event.what, error = %e, "time event not recorded");
                }
            }
        }
    })
}

/// Records every step received as a `CLOCK_SKEW` event in `_relay` and counts it in
/// `relay_clock_steps_back_total`; ends when the [`ClockWatch`] is dropped.
pub fn spawn_step_reporter(
    mut steps: mpsc::UnboundedReceiver<ClockStep>,
    journal: Journal,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(step) = steps.recv().await {
            journal.metrics().clock_steps_back.inc();
            if let Err(e) = journal
                .record(EventKind::clock_skew(), None, step.payload())
                .await
            {
                // The journal logged and counted it; the metric above still shows the step.
                tracing::error!(error = %e, "CLOCK_SKEW (step back) event not recorded");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use relay_domain::keys::TrailKey;
    use relay_domain::memory::{InMemoryRecordStore, ManualClock};
    use relay_domain::{
        Actor, ActorSource, AppendService, Device, EventDraft, KeyId, Payload, Timestamp,
    };

    const T0: i64 = 1_764_000_000_000_000;

    fn ts(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros).unwrap()
    }

    fn draft(trail: &str, i: u32) -> EventDraft {
        EventDraft {
            trail_id: TrailId::new(trail).unwrap(),
            kind: EventKind::system(),
            actor: Some(Actor::new("alice").unwrap()),
            actor_source: ActorSource::System,
            occurred_at: None,
            device: Device::new("ws-1").unwrap(),
            project: None,
            subject: None,
            payload: Payload::parse(&format!("{{\"i\":{i}}}")).unwrap(),
        }
    }

    struct Rig {
        manual: Arc<ManualClock>,
        watch: Arc<ClockWatch>,
        appender: Arc<AppendService>,
        store: Arc<InMemoryRecordStore>,
        journal: Journal,
    }

    fn rig(
        store: Arc<InMemoryRecordStore>,
        start: i64,
    ) -> (Rig, mpsc::UnboundedReceiver<ClockStep>) {
        let manual = Arc::new(ManualClock::new(ts(start)));
        let (watch, rx) = ClockWatch::new(manual.clone(), DEFAULT_STEP_TOLERANCE);
        let key = TrailKey::new(KeyId::new("k1").unwrap(), &[7; 32]).unwrap();
        let appender = Arc::new(AppendService::new(store.clone(), watch.clone(), key));
        let journal = Journal::new(
            appender.clone(),
            Metrics::new(),
            Device::new("ws-1").unwrap(),
        );
        (
            Rig {
                manual,
                watch,
                appender,
                store,
                journal,
            },
            rx,
        )
    }

    async fn relay_events(store: &InMemoryRecordStore) -> Vec<relay_domain::Record> {
        let mut out = Vec::new();
        store
            .for_each_record(&TrailId::relay(), 100, |r| {
                out.push(r);
                true
            })
            .await
            .unwrap();
        out
    }

    async fn settle(rig: &Rig, n: usize) -> Vec<relay_domain::Record> {
        for _ in 0..200 {
            let events = relay_events(&rig.store).await;
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        relay_events(&rig.store).await
    }

    #[tokio::test]
    async fn a_backwards_step_during_appends_is_recorded_once_and_chain_seq_keeps_order() {
        let (rig, rx) = rig(Arc::new(InMemoryRecordStore::new()), T0);
        let _reporter = spawn_step_reporter(rx, rig.journal.clone());
        let mut stored = Vec::new();
        for i in 0..3 {
            stored.push(rig.appender.append(draft("nmr", i)).await.unwrap());
        }
        // The clock steps back one hour in the middle of capture.
        rig.manual.set(ts(T0 - 3_600_000_000));
        for i in 3..6 {
            stored.push(rig.appender.append(draft("nmr", i)).await.unwrap());
        }
        let events = settle(&rig, 1).await;
        assert_eq!(events.len(), 1, "one step, one event: {events:?}");
        let e = &events[0];
        assert_eq!(e.kind, EventKind::clock_skew());
        let p = e.payload.to_value().unwrap();
        assert_eq!(p["check"], "step_back");
        assert_eq!(p["reference"], "earlier_reading");
        assert_eq!(p["order"], "chain_seq");
        assert!(
            (3_599_999..=3_600_000).contains(&p["step_back_ms"].as_i64().unwrap()),
            "{p}"
        );
        assert_eq!(p["label"], "system");
        // The records keep the instants the clock gave (earlier after the step) and their
        // labels; chain_seq stays strictly increasing.
        assert!(stored[3].recorded_at < stored[2].recorded_at);
        for pair in stored.windows(2) {
            assert_eq!(pair[1].chain_seq.get(), pair[0].chain_seq.get() + 1);
            assert_eq!(pair[1].prev_checksum, pair[0].checksum);
        }
        assert!(stored.iter().all(|r| r.time_source.to_label() == "system"));
        assert_eq!(
            rig.journal.metrics().clock_steps_back.get(),
            1,
            "relay_clock_steps_back_total"
        );
    }

    #[tokio::test]
    async fn readings_within_the_tolerance_or_forward_are_not_steps() {
        let (rig, mut rx) = rig(Arc::new(InMemoryRecordStore::new()), T0);
        rig.watch.now().await.unwrap();
        rig.manual.set(ts(T0 - 500_000)); // half a second back: jitter, not a step
        rig.watch.now().await.unwrap();
        rig.manual.set(ts(T0 + 86_400_000_000)); // a day forward
        rig.watch.now().await.unwrap();
        assert!(rx.try_recv().is_err(), "no step expected");
        rig.manual.set(ts(T0 + 86_400_000_000 - 2_000_000));
        rig.watch.now().await.unwrap();
        let step = rx.try_recv().unwrap();
        assert_eq!(step.step_back_micros() / 1000, 2_000);
        assert_eq!(step.reference, StepReference::EarlierReading);
    }

    #[tokio::test]
    async fn a_clock_behind_the_newest_stored_record_at_start_up_is_a_step() {
        let store = Arc::new(InMemoryRecordStore::new());
        // A first run stamps records at T0.
        {
            let (rig, _rx) = rig(store.clone(), T0);
            for i in 0..4 {
                rig.appender.append(draft("nmr", i)).await.unwrap();
            }
        }
        // The relay restarts with the clock ten minutes behind.
        let (rig, rx) = rig(store.clone(), T0 - 600_000_000);
        let seeded = rig
            .watch
            .seed_from_store(
                rig.store.as_ref(),
                &[TrailId::new("nmr").unwrap(), TrailId::relay()],
            )
            .await
            .unwrap();
        assert_eq!(seeded, 1, "only nmr has records");
        let _reporter = spawn_step_reporter(rx, rig.journal.clone());
        let r = rig.appender.append(draft("nmr", 9)).await.unwrap();
        assert_eq!(r.chain_seq.get(), 5);
        let events = settle(&rig, 1).await;
        assert_eq!(events.len(), 1);
        let p = events[0].payload.to_value().unwrap();
        assert_eq!(p["reference"], "stored_record");
        assert_eq!(p["reference_trail"], "nmr");
        assert_eq!(p["reference_seq"], 4);
        assert!(p["step_back_ms"].as_i64().unwrap() >= 599_999, "{p}");
    }
}
