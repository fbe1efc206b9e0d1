#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Anchor rounds (issue 19, item 1): the notary scheduler's cost per round does not grow with
//! the number of trails. Every trail that moved goes into one `anchor_round` call (one object
//! on an object store) once the trail has an anchor stored alone less than an hour old; a
//! trail's first anchor after a start, and one an hour, is stored alone. The anchors of rounds
//! link and verify exactly like anchors stored alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use relay_domain::anchor_history::check_anchor_history;
use relay_domain::export::SealKey;
use relay_domain::memory::{InMemoryNotary, InMemoryRecordStore, ManualClock};
use relay_domain::ports::{
    Anchor, AnchorReceipt, Notary, NotaryError, ROUND_SPAN_MICROS, RecordStore, TimeSource,
    WormPosture,
};
use relay_domain::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, KeyId, Payload, Subject,
    Timestamp, TrailId, TrailKey,
};
use relay_runtime::journal::Journal;
use relay_runtime::metrics::Metrics;
use relay_runtime::notary_scheduler::NotaryScheduler;

/// Counts the notary calls that would each write an object on an object store.
#[derive(Debug)]
struct CountingNotary {
    inner: InMemoryNotary,
    alone: AtomicUsize,
    rounds: AtomicUsize,
}

impl CountingNotary {
    fn take(&self) -> (usize, usize) {
        (
            self.alone.swap(0, Ordering::SeqCst),
            self.rounds.swap(0, Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl Notary for CountingNotary {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn worm_posture(&self) -> WormPosture {
        WormPosture::Unenforced
    }
    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        self.alone.fetch_add(1, Ordering::SeqCst);
        self.inner.anchor(anchor).await
    }
    async fn anchor_round(&self, anchors: &[Anchor]) -> Result<Vec<AnchorReceipt>, NotaryError> {
        self.rounds.fetch_add(1, Ordering::SeqCst);
        let mut out = Vec::new();
        for a in anchors {
            out.push(self.inner.anchor(a).await?);
        }
        Ok(out)
    }
    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        self.inner.anchors(trail).await
    }
    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        self.inner.anchored_trails().await
    }
}

const TRAILS: usize = 40;
const START: i64 = 1_790_000_000_000_000;

struct Fixture {
    store: Arc<dyn RecordStore>,
    clock: Arc<ManualClock>,
    appender: Arc<AppendService>,
    journal: Journal,
    notary: Arc<CountingNotary>,
    seal: Arc<SealKey>,
}

fn fixture() -> Fixture {
    let store: Arc<dyn RecordStore> = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_unix_micros(START).unwrap(),
    ));
    let key = TrailKey::new(KeyId::new("k-rounds").unwrap(), &[7; 32]).unwrap();
    let time: Arc<dyn TimeSource> = clock.clone();
    let appender = Arc::new(AppendService::new(store.clone(), time, key));
    let journal = Journal::new(
        appender.clone(),
        Metrics::new(),
        Device::new("srv").unwrap(),
    );
    Fixture {
        store,
        clock,
        appender,
        journal,
        notary: Arc::new(CountingNotary {
            inner: InMemoryNotary::new(),
            alone: AtomicUsize::new(0),
            rounds: AtomicUsize::new(0),
        }),
        seal: Arc::new(SealKey::from_seed(&[9; 32]).unwrap()),
    }
}

impl Fixture {
    fn scheduler(&self) -> NotaryScheduler {
        let notary: Arc<dyn Notary> = self.notary.clone();
        let clock: Arc<dyn TimeSource> = self.clock.clone();
        NotaryScheduler::new(self.store.clone(), notary, clock, self.journal.clone())
            .with_seal_key(self.seal.clone())
    }

    fn trail(i: usize) -> TrailId {
        TrailId::new(format!("ws-{i:03}")).unwrap()
    }

    async fn append_to_every_trail(&self) {
        for i in 0..TRAILS {
            self.appender
                .append(EventDraft {
                    trail_id: Self::trail(i),
                    kind: EventKind::file_created(),
                    actor: Some(Actor::new("alice").unwrap()),
                    actor_source: ActorSource::OsSession,
                    occurred_at: None,
                    device: Device::new("ws").unwrap(),
                    project: None,
                    subject: Some(Subject::new("f.fid").unwrap()),
                    payload: Payload::from_value(&serde_json::json!({"size": i})).unwrap(),
                })
                .await
                .unwrap();
        }
    }

    fn at(&self, micros_after_start: i64) {
        self.clock
            .set(Timestamp::from_unix_micros(START + micros_after_start).unwrap());
    }
}

// REQ: R7.1
#[tokio::test]
async fn a_round_costs_two_writes_however_many_trails_moved() {
    let f = fixture();
    f.journal
        .record(EventKind::startup(), None, serde_json::json!({}))
        .await
        .unwrap();
    let mut scheduler = f.scheduler();

    // First round after a start: every trail's anchor is stored alone (the notary finds a
    // trail's newest anchor from its newest one stored alone).
    f.append_to_every_trail().await;
    let round = scheduler.notarize_all(1).await;
    assert!(round.failures.is_empty(), "{:?}", round.failures);
    assert_eq!(round.anchored.len(), TRAILS + 1);
    assert_eq!(f.notary.take(), (TRAILS + 1, 0));

    // Within the hour: all 40 moved trails go into one round, `_relay` into a second.
    for step in 1..=3 {
        f.at(step * 30_000_000);
        f.append_to_every_trail().await;
        let round = scheduler.notarize_all(1).await;
        assert!(round.failures.is_empty(), "{:?}", round.failures);
        assert_eq!(round.anchored.len(), TRAILS + 1);
        assert_eq!(f.notary.take(), (0, 2), "round {step}");
    }

    // Nothing moved: nothing written (the `_relay` ANCHORED events of its own anchor do not
    // make it due again).
    f.at(120_000_000);
    let round = scheduler.notarize_all(1).await;
    assert!(round.anchored.is_empty(), "{:?}", round.anchored);
    assert_eq!(f.notary.take(), (0, 0));

    // An hour after the anchors stored alone: each trail is stored alone once more.
    f.at(ROUND_SPAN_MICROS + 1);
    f.append_to_every_trail().await;
    scheduler.notarize_all(1).await;
    assert_eq!(f.notary.take(), (TRAILS + 1, 0));
    f.at(ROUND_SPAN_MICROS + 30_000_000);
    f.append_to_every_trail().await;
    scheduler.notarize_all(1).await;
    assert_eq!(f.notary.take(), (0, 2));

    // A restart stores each trail's first anchor alone again, linked to the newest anchor
    // (which was in a round).
    let mut restarted = f.scheduler();
    f.at(ROUND_SPAN_MICROS + 60_000_000);
    f.append_to_every_trail().await;
    let round = restarted.notarize_all(1).await;
    assert!(round.failures.is_empty(), "{:?}", round.failures);
    assert_eq!(f.notary.take(), (TRAILS + 1, 0));

    // Every trail's anchors, alone or in rounds, form one linked, signed history.
    for i in 0..TRAILS {
        let trail = Fixture::trail(i);
        let anchors = f.notary.anchors(&trail).await.unwrap();
        assert_eq!(anchors.len(), 7, "{trail}");
        let history = check_anchor_history(&trail, &anchors, Some(&f.seal.public()));
        assert!(history.holds(), "{trail}: {:?}", history.findings);
        assert_eq!(history.signatures_verified, 7);
        assert_eq!(history.proofs_verified, 6);
        assert_eq!(history.proven_prefixes, 7);
        assert_eq!(anchors.last().unwrap().seq.get(), 7);
    }
}

// REQ: R7.1
#[tokio::test]
async fn a_failed_round_anchors_none_of_its_trails_and_the_next_round_catches_up() {
    #[derive(Debug)]
    struct RoundsFail(InMemoryNotary, AtomicUsize);
    #[async_trait]
    impl Notary for RoundsFail {
        fn kind(&self) -> &'static str {
            "rounds-fail"
        }
        fn worm_posture(&self) -> WormPosture {
            WormPosture::Unenforced
        }
        async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
            self.0.anchor(anchor).await
        }
        async fn anchor_round(
            &self,
            anchors: &[Anchor],
        ) -> Result<Vec<AnchorReceipt>, NotaryError> {
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(NotaryError::Unavailable {
                    message: "bucket unreachable".into(),
                    source: None,
                });
            }
            let mut out = Vec::new();
            for a in anchors {
                out.push(self.0.anchor(a).await?);
            }
            Ok(out)
        }
        async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
            self.0.anchors(trail).await
        }
        async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
            self.0.anchored_trails().await
        }
    }
    let f = fixture();
    let notary = Arc::new(RoundsFail(InMemoryNotary::new(), AtomicUsize::new(0)));
    let dyn_notary: Arc<dyn Notary> = notary.clone();
    let clock: Arc<dyn TimeSource> = f.clock.clone();
    let mut scheduler = NotaryScheduler::new(f.store.clone(), dyn_notary, clock, f.journal.clone())
        .with_seal_key(f.seal.clone());
    f.append_to_every_trail().await;
    assert!(scheduler.notarize_all(1).await.failures.is_empty());
    f.at(30_000_000);
    f.append_to_every_trail().await;
    let failed = scheduler.notarize_all(1).await;
    assert_eq!(failed.failures.len(), 1, "{:?}", failed.failures);
    assert!(
        failed.failures[0]
            .to_string()
            .contains(&format!("a round of {TRAILS} trail heads")),
        "{}",
        failed.failures[0]
    );
    assert!(failed.anchored.iter().all(|a| a.trail_id.is_relay()));
    // The failure is journaled in `_relay` as NOTARY_FAILED.
    let relay = f.store.read(&TrailId::relay(), 0, 10_000).await.unwrap();
    assert!(relay.iter().any(|r| r.kind == EventKind::notary_failed()
        && r.payload.as_str().contains("a round of 40 trail heads")));
    // The next round anchors every trail's head, linked to the anchor before the failure.
    f.at(60_000_000);
    let next = scheduler.notarize_all(2).await;
    assert!(next.failures.is_empty(), "{:?}", next.failures);
    for i in 0..TRAILS {
        let trail = Fixture::trail(i);
        let anchors = notary.anchors(&trail).await.unwrap();
        assert_eq!(
            anchors.iter().map(|a| a.seq.get()).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let history = check_anchor_history(&trail, &anchors, Some(&f.seal.public()));
        assert!(history.holds(), "{:?}", history.findings);
    }
}
