//! Adversarial tests of the chain, the verifier and the append service: every way of breaking a
//! trail must be caught and named at the right `chain_seq`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::executor::block_on;
use futures::future::join_all;
use proptest::prelude::*;
use relay_domain::chain::checksum_of;
use relay_domain::memory::{InMemoryRecordStore, ManualClock};
use relay_domain::ports::{
    AppendReceipt, Head, RecordStore, RecordStoreCapabilities, RecordStoreError,
};
use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, ChainSeq, ChainVerifier, Checksum, Device,
    EventDraft, EventKind, KeyId, KeyRing, Payload, Subject, Timestamp, TrailId, TrailKey,
    VerifyFailureReason,
};

fn key(fill: u8, id: &str) -> TrailKey {
    TrailKey::new(KeyId::new(id).unwrap(), &[fill; 32]).unwrap()
}

fn trail() -> TrailId {
    TrailId::new("nmr-01").unwrap()
}

fn draft(i: usize) -> EventDraft {
    EventDraft {
        trail_id: trail(),
        kind: EventKind::file_created(),
        actor: Some(Actor::new("alice").unwrap()),
        actor_source: ActorSource::OsSession,
        occurred_at: None,
        device: Device::new("nmr-01").unwrap(),
        project: None,
        subject: Some(Subject::new(format!("run/{i}.fid")).unwrap()),
        payload: Payload::from_value(&serde_json::json!({"size": i, "sha256": "00"})).unwrap(),
    }
}

fn service(store: Arc<dyn RecordStore>, k: TrailKey) -> AppendService {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap(),
    ));
    AppendService::new(store, clock, k)
}

fn chain_of(n: usize) -> Vec<relay_domain::Record> {
    let store = Arc::new(InMemoryRecordStore::new());
    let svc = service(store, key(7, "k-a"));
    block_on(async {
        let mut out = Vec::new();
        for i in 0..n {
            out.push(svc.append(draft(i)).await.unwrap());
        }
        out
    })
}

fn verify(
    records: &[relay_domain::Record],
    ring: &KeyRing,
) -> Result<u64, (u64, VerifyFailureReason)> {
    let mut v = ChainVerifier::new(trail(), ring);
    for r in records {
        if let Err(f) = v.push(r) {
            return Err((f.seq.get(), f.reason));
        }
    }
    v.finish()
        .map(|s| s.records)
        .map_err(|f| (f.seq.get(), f.reason))
}

fn ring() -> KeyRing {
    KeyRing::single(key(7, "k-a"))
}

// REQ: R1.2
#[test]
fn intact_chain_verifies() {
    let records = chain_of(50);
    assert_eq!(verify(&records, &ring()), Ok(50));
}

// REQ: R1.2
#[test]
fn edited_field_is_named_by_seq() {
    let records = chain_of(10);
    let mut tampered = records.clone();
    tampered[6].subject = Some(Subject::new("run/other.fid").unwrap());
    assert!(matches!(
        verify(&tampered, &ring()),
        Err((7, VerifyFailureReason::ChecksumMismatch { .. }))
    ));

    let mut tampered = records.clone();
    tampered[2].actor = Actor::new("mallory").unwrap();
    assert!(matches!(
        verify(&tampered, &ring()),
        Err((3, VerifyFailureReason::ChecksumMismatch { .. }))
    ));

    let mut tampered = records.clone();
    tampered[4].payload =
        Payload::from_value(&serde_json::json!({"size": 4, "sha256": "ff"})).unwrap();
    assert!(matches!(
        verify(&tampered, &ring()),
        Err((5, VerifyFailureReason::ChecksumMismatch { .. }))
    ));

    let mut tampered = records;
    tampered[0].recorded_at = Timestamp::from_unix_micros(1).unwrap();
    assert!(matches!(
        verify(&tampered, &ring()),
        Err((1, VerifyFailureReason::ChecksumMismatch { .. }))
    ));
}

// REQ: R1.2
#[test]
fn forged_checksum_without_the_key_is_caught() {
    let records = chain_of(5);
    let mut forged = records.clone();
    forged[3].subject = Some(Subject::new("run/forged.fid").unwrap());
    forged[3].checksum = checksum_of(&forged[3], &key(8, "k-a"));
    assert!(matches!(
        verify(&forged, &ring()),
        Err((4, VerifyFailureReason::ChecksumMismatch { .. }))
    ));
}

// REQ: R1.2
#[test]
fn deletion_is_a_gap_at_the_first_missing_seq() {
    let mut records = chain_of(10);
    records.remove(4);
    assert!(matches!(
        verify(&records, &ring()),
        Err((5, VerifyFailureReason::Gap { .. }))
    ));
    let records = chain_of(3);
    assert!(matches!(
        verify(&records[1..], &ring()),
        Err((1, VerifyFailureReason::Gap { .. }))
    ));
}

// REQ: R1.2
#[test]
fn reorder_and_duplicate_are_named() {
    let records = chain_of(6);
    let mut swapped = records.clone();
    swapped.swap(2, 3);
    // Streaming, a swap shows first as seq 3 missing where seq 4 came.
    assert!(matches!(
        verify(&swapped, &ring()),
        Err((3, VerifyFailureReason::Gap { .. }))
    ));
    let mut back = records.clone();
    back.insert(4, records[1].clone());
    assert!(matches!(
        verify(&back, &ring()),
        Err((2, VerifyFailureReason::Reorder { .. }))
    ));
    let mut dup = records.clone();
    dup.insert(3, records[2].clone());
    assert!(matches!(
        verify(&dup, &ring()),
        Err((3, VerifyFailureReason::Duplicate))
    ));
}

// REQ: R4.2
#[test]
fn spliced_record_from_another_chain_breaks_the_link() {
    let a = chain_of(5);
    // Same key, same seq, different history: a valid record that does not belong here.
    let store = Arc::new(InMemoryRecordStore::new());
    let svc = service(store, key(7, "k-a"));
    let b = block_on(async {
        let mut out = Vec::new();
        for i in 100..105 {
            out.push(svc.append(draft(i)).await.unwrap());
        }
        out
    });
    let mut spliced = a.clone();
    spliced[3] = b[3].clone();
    assert!(matches!(
        verify(&spliced, &ring()),
        Err((4, VerifyFailureReason::BrokenLink { .. }))
    ));
}

#[test]
fn unknown_key_and_wrong_trail_are_named() {
    let records = chain_of(3);
    assert!(matches!(
        verify(&records, &KeyRing::single(key(9, "k-other"))),
        Err((1, VerifyFailureReason::UnknownKey { .. }))
    ));
    let keys = ring();
    let mut v = ChainVerifier::new(TrailId::new("nmr-02").unwrap(), &keys);
    let err = v.push(&records[0]).unwrap_err();
    assert!(matches!(err.reason, VerifyFailureReason::WrongTrail { .. }));
}

// REQ: R7.2
#[test]
fn anchors_catch_a_rechained_rewrite_and_truncation_even_with_the_real_key() {
    let records = chain_of(8);
    let anchored = records[5].clone();
    // The attacker holds the key: rewrites record 3 and re-chains everything after it.
    let k = key(7, "k-a");
    let mut rewritten = records.clone();
    rewritten[2].subject = Some(Subject::new("run/replaced.fid").unwrap());
    for i in 2..rewritten.len() {
        if i > 2 {
            rewritten[i].prev_checksum = rewritten[i - 1].checksum;
        }
        rewritten[i].checksum = checksum_of(&rewritten[i], &k);
    }
    assert_eq!(
        verify(&rewritten, &ring()),
        Ok(8),
        "without anchors the rewrite is undetectable"
    );
    let keys = ring();
    let mut v =
        ChainVerifier::new(trail(), &keys).with_anchor(anchored.chain_seq, anchored.checksum);
    let failure = rewritten.iter().find_map(|r| v.push(r).err()).unwrap();
    assert_eq!(failure.seq, ChainSeq::new(6).unwrap());
    assert!(matches!(
        failure.reason,
        VerifyFailureReason::AnchorMismatch { .. }
    ));

    // Truncation below the anchored head.
    let mut v =
        ChainVerifier::new(trail(), &keys).with_anchor(anchored.chain_seq, anchored.checksum);
    for r in &records[..4] {
        v.push(r).unwrap();
    }
    let failure = v.finish().unwrap_err();
    assert!(matches!(
        failure.reason,
        VerifyFailureReason::Truncated { .. }
    ));
    assert_eq!(failure.seq.get(), 6);
}

fn root_over(records: &[relay_domain::Record]) -> Checksum {
    let mut acc = relay_domain::merkle::MerkleAccumulator::new();
    let mut buf = Vec::new();
    for r in records {
        acc.push_leaf_hash(relay_domain::merkle::record_leaf_hash(r, &mut buf));
    }
    acc.root()
}

// REQ: R7.2
#[test]
fn an_anchor_checksum_rewritten_to_a_rechained_record_is_caught_by_its_merkle_root() {
    let records = chain_of(8);
    let original_root = root_over(&records[..6]);
    let k = key(7, "k-a");
    let mut rewritten = records.clone();
    rewritten[2].subject = Some(Subject::new("run/replaced.fid").unwrap());
    for i in 2..rewritten.len() {
        if i > 2 {
            rewritten[i].prev_checksum = rewritten[i - 1].checksum;
        }
        rewritten[i].checksum = checksum_of(&rewritten[i], &k);
    }
    let keys = ring();
    // The intact trail holds against its own root.
    let mut v = ChainVerifier::new(trail(), &keys)
        .with_anchor(records[5].chain_seq, records[5].checksum)
        .with_anchor_root(records[5].chain_seq, original_root);
    for r in &records {
        v.push(r).unwrap();
    }
    assert_eq!(v.finish().unwrap().anchors_checked, 1);
    // The anchor's checksum was rewritten to the re-chained record; its root was not.
    let mut v = ChainVerifier::new(trail(), &keys)
        .with_anchor(rewritten[5].chain_seq, rewritten[5].checksum)
        .with_anchor_root(rewritten[5].chain_seq, original_root);
    let failure = rewritten.iter().find_map(|r| v.push(r).err()).unwrap();
    assert_eq!(failure.seq.get(), 6);
    match failure.reason {
        VerifyFailureReason::MerkleRootMismatch { anchored, computed } => {
            assert_eq!(anchored, original_root);
            assert_eq!(computed, root_over(&rewritten[..6]));
        }
        other => panic!("expected a Merkle root mismatch, got {other:?}"),
    }
    // A root anchored beyond the end is a truncation, like a checksum.
    let mut v =
        ChainVerifier::new(trail(), &keys).with_anchor_root(records[5].chain_seq, original_root);
    for r in &records[..4] {
        v.push(r).unwrap();
    }
    assert!(matches!(
        v.finish().unwrap_err().reason,
        VerifyFailureReason::Truncated { .. }
    ));
}

// REQ: R7.2
#[test]
fn recorded_anchors_are_accounted_for_against_the_notary() {
    use relay_domain::ports::Anchor;
    use relay_domain::verify::{AnchorDiscrepancy, RecordedAnchor, account_for_anchors};
    let records = chain_of(6);
    let anchor = |i: usize| Anchor {
        trail_id: trail(),
        seq: records[i].chain_seq,
        checksum: records[i].checksum,
        merkle_root: Some(root_over(&records[..=i])),
        anchored_at: Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap(),
        time_source: relay_domain::TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    };
    let notary = vec![anchor(2), anchor(5)];
    let recorded: Vec<(ChainSeq, RecordedAnchor)> = notary
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                ChainSeq::new(10 + i as u64).unwrap(),
                RecordedAnchor::of(a, "anchors/nmr-01.jsonl"),
            )
        })
        .collect();
    assert!(account_for_anchors(&recorded, &notary).is_empty());
    // One deleted.
    let gone = account_for_anchors(&recorded, &notary[1..]);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].recorded.seq.get(), 3);
    assert_eq!(gone[0].discrepancy, AnchorDiscrepancy::Missing);
    assert!(
        gone[0].to_string().contains("anchors/nmr-01.jsonl"),
        "{}",
        gone[0]
    );
    assert!(gone[0].to_string().contains("_relay#10"), "{}", gone[0]);
    // One rewritten: checksum, then root only.
    let mut other = notary.clone();
    other[1].checksum = records[4].checksum;
    assert!(matches!(
        account_for_anchors(&recorded, &other)[0].discrepancy,
        AnchorDiscrepancy::ChecksumDiffers { .. }
    ));
    let mut other = notary.clone();
    other[1].merkle_root = Some(records[0].checksum);
    assert!(matches!(
        account_for_anchors(&recorded, &other)[0].discrepancy,
        AnchorDiscrepancy::RootDiffers { .. }
    ));
    // All deleted: every one is named.
    assert_eq!(account_for_anchors(&recorded, &[]).len(), 2);
}

#[test]
fn links_only_verification_needs_no_key_but_still_sees_order() {
    let mut records = chain_of(5);
    let mut v = ChainVerifier::links_only(trail());
    for r in &records {
        v.push(r).unwrap();
    }
    assert!(!v.finish().unwrap().hmac_checked);
    records.remove(2);
    let mut v = ChainVerifier::links_only(trail());
    assert!(records.iter().any(|r| v.push(r).is_err()));
}

#[test]
fn resume_after_verifies_a_range() {
    let records = chain_of(10);
    let keys = ring();
    let mut v =
        ChainVerifier::new(trail(), &keys).resume_after(records[3].chain_seq, records[3].checksum);
    for r in &records[4..] {
        v.push(r).unwrap();
    }
    assert_eq!(v.finish().unwrap().records, 6);
}

#[test]
fn nothing_follows_a_record_at_the_last_possible_seq() {
    // A chain resumed just below ChainSeq::MAX (2^53): a record at MAX verifies, a second record at MAX
    // that links to it and carries a valid HMAC (the attacker holds the key) must not.
    let k = key(7, "k-a");
    let keys = ring();
    let template = chain_of(1).remove(0);
    let base = Checksum([9; 32]);
    let mut last = template.clone();
    last.chain_seq = ChainSeq::MAX;
    last.prev_checksum = base;
    last.checksum = checksum_of(&last, &k);
    let mut again = last.clone();
    again.prev_checksum = last.checksum;
    again.checksum = checksum_of(&again, &k);
    let mut v = ChainVerifier::new(trail(), &keys)
        .resume_after(ChainSeq::new(ChainSeq::MAX.get() - 1).unwrap(), base);
    v.push(&last).unwrap();
    let failure = v.push(&again).unwrap_err();
    assert_eq!(failure.seq, ChainSeq::MAX);
    // Beyond 2^53 a seq cannot be canonicalized exactly (RFC 8785 numbers are IEEE-754
    // doubles), so it is not a sequence number at all: the record JSON is refused.
    assert!(ChainSeq::new(ChainSeq::MAX.get() + 1).is_err());
    let mut json = serde_json::to_value(&last).unwrap();
    json["chain_seq"] = serde_json::json!(ChainSeq::MAX.get() + 1);
    assert!(serde_json::from_value::<relay_domain::Record>(json).is_err());
    assert!(matches!(failure.reason, VerifyFailureReason::Duplicate));
}

// REQ: R2.2
#[test]
fn append_without_actor_is_refused_and_stores_nothing() {
    let store = Arc::new(InMemoryRecordStore::new());
    let svc = service(store.clone(), key(7, "k-a"));
    let mut d = draft(0);
    d.actor = None;
    let err = block_on(svc.append(d)).unwrap_err();
    assert!(matches!(err, AppendError::NoActor { .. }));
    assert_eq!(block_on(store.head(&trail())).unwrap(), None);
}

/// A future that is pending once, like a real store awaiting the disk.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// Counts batches so the test can see group commit happen.
#[derive(Debug)]
struct CountingStore {
    inner: InMemoryRecordStore,
    batches: AtomicUsize,
    fail_next: AtomicUsize,
}

#[async_trait]
impl RecordStore for CountingStore {
    fn capabilities(&self) -> RecordStoreCapabilities {
        self.inner.capabilities()
    }
    async fn append_only_enforcement(
        &self,
    ) -> Result<relay_domain::ports::AppendOnlyEnforcement, relay_domain::ports::RecordStoreError>
    {
        self.inner.append_only_enforcement().await
    }
    async fn append(
        &self,
        records: &[relay_domain::Record],
    ) -> Result<AppendReceipt, RecordStoreError> {
        // Yield so concurrent appenders can queue up behind the writer, as with a real disk.
        YieldOnce(false).await;
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(RecordStoreError::Unavailable {
                message: "disk full".into(),
                source: None,
            });
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.append(records).await
    }
    async fn head(&self, trail: &TrailId) -> Result<Option<Head>, RecordStoreError> {
        self.inner.head(trail).await
    }
    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<relay_domain::Record>, RecordStoreError> {
        self.inner.read(trail, after, limit).await
    }
    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError> {
        self.inner.trails().await
    }
}

// REQ: R1.5
#[test]
fn concurrent_appends_never_fork_or_gap_and_share_commits() {
    let store = Arc::new(CountingStore {
        inner: InMemoryRecordStore::new(),
        batches: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
    });
    let svc = service(store.clone(), key(7, "k-a"));
    let results = block_on(join_all((0..200).map(|i| svc.append(draft(i)))));
    let mut seqs: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap().chain_seq.get())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    let stored = block_on(store.read(&trail(), 0, 1000)).unwrap();
    assert_eq!(verify(&stored, &ring()), Ok(200));
    let batches = store.batches.load(Ordering::SeqCst);
    assert!(
        batches < 200,
        "group commit should share commits, got {batches} for 200 appends"
    );
}

#[test]
fn failed_commit_fails_its_callers_and_the_next_append_continues_the_chain() {
    let store = Arc::new(CountingStore {
        inner: InMemoryRecordStore::new(),
        batches: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
    });
    let svc = service(store.clone(), key(7, "k-a"));
    block_on(svc.append(draft(0))).unwrap();
    store.fail_next.store(1, Ordering::SeqCst);
    let err = block_on(svc.append(draft(1))).unwrap_err();
    assert!(matches!(err, AppendError::Store { .. }));
    let r = block_on(svc.append(draft(2))).unwrap();
    assert_eq!(r.chain_seq.get(), 2);
    let stored = block_on(store.read(&trail(), 0, 10)).unwrap();
    assert_eq!(verify(&stored, &ring()), Ok(2));
}

// REQ: R1.5
#[test]
fn a_group_is_chained_consecutively_and_stored_all_or_nothing() {
    let store = Arc::new(CountingStore {
        inner: InMemoryRecordStore::new(),
        batches: AtomicUsize::new(0),
        fail_next: AtomicUsize::new(0),
    });
    let svc = service(store.clone(), key(7, "k-a"));
    block_on(svc.append(draft(0))).unwrap();
    // A failed commit stores none of the group.
    store.fail_next.store(1, Ordering::SeqCst);
    let err = block_on(svc.append_group((1..=5).map(draft).collect())).unwrap_err();
    assert!(matches!(err, AppendError::Store { .. }));
    assert_eq!(block_on(store.read(&trail(), 0, 100)).unwrap().len(), 1);
    // Concurrent single appends never land inside a group: its seqs are consecutive.
    let (group, singles) = block_on(async {
        futures::join!(
            svc.append_group((10..20).map(draft).collect()),
            join_all((20..40).map(|i| svc.append(draft(i))))
        )
    });
    let group = group.unwrap();
    assert_eq!(group.len(), 10);
    let first = group[0].chain_seq.get();
    for (i, r) in group.iter().enumerate() {
        assert_eq!(r.chain_seq.get(), first + i as u64);
    }
    assert!(singles.iter().all(Result::is_ok));
    let stored = block_on(store.read(&trail(), 0, 100)).unwrap();
    assert_eq!(verify(&stored, &ring()), Ok(31));
    // A group without an actor, empty, or spanning trails is refused and stores nothing.
    let mut d = draft(50);
    d.actor = None;
    let err = block_on(svc.append_group(vec![draft(49), d])).unwrap_err();
    assert!(matches!(err, AppendError::NoActor { .. }));
    let err = block_on(svc.append_group(Vec::new())).unwrap_err();
    assert!(matches!(err, AppendError::InvalidGroup { .. }));
    let mut other = draft(51);
    other.trail_id = TrailId::new("other-trail").unwrap();
    let err = block_on(svc.append_group(vec![draft(52), other])).unwrap_err();
    assert!(matches!(err, AppendError::InvalidGroup { .. }));
    assert_eq!(block_on(store.read(&trail(), 0, 100)).unwrap().len(), 31);
}

// REQ: R1.3
#[test]
fn rotated_key_keeps_older_records_verifiable() {
    let store = Arc::new(InMemoryRecordStore::new());
    let svc = service(store.clone(), key(7, "k-a"));
    block_on(async {
        for i in 0..3 {
            svc.append(draft(i)).await.unwrap();
        }
        svc.set_signing_key(key(8, "k-b"));
        for i in 3..6 {
            svc.append(draft(i)).await.unwrap();
        }
    });
    let stored = block_on(store.read(&trail(), 0, 10)).unwrap();
    assert_eq!(stored[2].key_id.as_str(), "k-a");
    assert_eq!(stored[3].key_id.as_str(), "k-b");
    let mut both = KeyRing::single(key(7, "k-a"));
    both.insert_current(key(8, "k-b"));
    assert_eq!(verify(&stored, &both), Ok(6));
    assert!(matches!(
        verify(&stored, &KeyRing::single(key(8, "k-b"))),
        Err((1, VerifyFailureReason::UnknownKey { .. }))
    ));
}

// REQ: R1.5
#[test]
fn store_refuses_fork_and_gap_attempts() {
    let records = chain_of(3);
    let store = InMemoryRecordStore::new();
    block_on(store.append(&records)).unwrap();
    // Idempotent re-append.
    let receipt = block_on(store.append(&records[1..])).unwrap();
    assert_eq!((receipt.appended, receipt.already_present), (0, 2));
    // A different record at a stored seq.
    let mut other = records[2].clone();
    other.subject = Some(Subject::new("x").unwrap());
    assert!(matches!(
        block_on(store.append(&[other])),
        Err(RecordStoreError::Conflict { .. })
    ));
    // A gap.
    let mut far = records[2].clone();
    far.chain_seq = ChainSeq::new(9).unwrap();
    assert!(matches!(
        block_on(store.append(&[far])),
        Err(RecordStoreError::NotNext { .. })
    ));
    let _unchanged: Checksum = block_on(store.head(&trail())).unwrap().unwrap().checksum;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    // REQ: R1.2
    #[test]
    fn any_single_byte_edit_of_a_subject_is_detected(n in 2usize..12, pick in 0usize..12, byte in any::<u8>()) {
        let records = chain_of(n);
        let i = pick % n;
        let mut tampered = records.clone();
        let mut subject = tampered[i].subject.as_ref().unwrap().as_str().as_bytes().to_vec();
        let pos = (byte as usize) % subject.len();
        subject[pos] = if subject[pos] == b'z' { b'y' } else { b'z' };
        tampered[i].subject = Some(Subject::new(String::from_utf8(subject).unwrap()).unwrap());
        prop_assume!(tampered[i] != records[i]);
        let result = verify(&tampered, &ring());
        prop_assert!(
            matches!(result, Err((s, VerifyFailureReason::ChecksumMismatch { .. })) if s == (i + 1) as u64),
            "expected checksum mismatch at seq {}, got {:?}", i + 1, result
        );
    }
}

/// The verdict of `records` checked page by page (`page` records each) with HMACs on
/// `threads` threads.
fn verify_paged(
    records: &[relay_domain::Record],
    ring: &KeyRing,
    threads: usize,
    page: usize,
) -> Result<u64, (u64, VerifyFailureReason)> {
    let mut v = ChainVerifier::new(trail(), ring).with_threads(threads);
    for chunk in records.chunks(page.max(1)) {
        if let Err(f) = v.push_page(chunk) {
            return Err((f.seq.get(), f.reason));
        }
    }
    v.finish()
        .map(|s| s.records)
        .map_err(|f| (f.seq.get(), f.reason))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    // Parallel HMAC checking (issue 23) never changes a verdict: whatever the tampering, the
    // page size and the thread count, `push_page` names the same first bad record for the same
    // reason as `push` record by record.
    // REQ: R1.2
    #[test]
    fn parallel_verification_names_the_same_first_bad_record_as_sequential(
        n in 260usize..700,
        kind in 0u8..6,
        at in 0usize..700,
        also in 0usize..700,
        threads in 2usize..6,
        page in 1usize..1200,
    ) {
        let records = chain_of(n);
        let i = at % n;
        let j = also % n;
        let mut tampered = records.clone();
        match kind {
            // an edited subject, and a second edit later (or earlier) on
            0 => {
                for k in [i, j] {
                    tampered[k].subject = Some(Subject::new(format!("forged-{k}.dat")).unwrap());
                }
            }
            // a deleted record
            1 => { tampered.remove(i); }
            // two records swapped
            2 => { let k = (i + 1).min(n - 1); tampered.swap(i, k); }
            // a record claiming a key the ring does not hold
            3 => { tampered[i].key_id = relay_domain::KeyId::new("k-unknown").unwrap(); }
            // a forged checksum
            4 => { tampered[i].checksum = Checksum([0x5a; 32]); }
            // intact
            _ => {}
        }
        let sequential = verify(&tampered, &ring());
        let parallel = verify_paged(&tampered, &ring(), threads, page);
        prop_assert_eq!(&parallel, &sequential);
        if kind == 5 {
            prop_assert_eq!(sequential, Ok(n as u64));
        }
    }
}
