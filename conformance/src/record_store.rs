//! The `RecordStore` suite: chain rules, idempotence, atomicity, concurrency, paging, and the
//! append-only claim.
//!
//! Why this file is long (~820 lines): one function per rule of the `RecordStore` contract, so
//! a failing adapter names the rule; they share the fixtures at the top.

use std::collections::BTreeSet;
use std::sync::Arc;

use relay_domain::memory::ManualClock;
use relay_domain::ports::{
    RecordStore, RecordStoreError, RecordStoreExt, TamperAttempt, TamperProbe,
};
use relay_domain::{
    Actor, ActorSource, AppendError, AppendService, ChainSeq, ChainVerifier, Checksum, Device,
    EventDraft, EventKind, KeyRing, Payload, Record, Subject, Timestamp, TrailId,
};

use crate::fixtures::{ChainBuilder, must, payload, present, test_key, unique_trail};

/// Why a store's `append_only_enforced` claim holds, for the suite to check.
#[derive(Clone, Copy)]
pub enum AppendOnlyEvidence<'a> {
    /// Try to break it through the store's custody probe (the adapter's
    /// [`TamperProbe`] on its backend's side door); every attempt must be refused.
    Probe(&'a dyn TamperProbe),
    /// Nothing outside the store can reach its records (e.g. an in-memory store); the reason is
    /// printed so the claim is visible in test output.
    ByConstruction(&'static str),
}

/// What the record store suite needs besides the store, to check the store's capabilities.
#[derive(Clone)]
pub struct RecordStoreProbes<'a> {
    /// How to check `append_only_enforced`.
    pub append_only: AppendOnlyEvidence<'a>,
    /// A second, independent handle on the same backing store (another connection pool, as a
    /// second process would have). Required when `cross_process_serialization` is claimed.
    pub second_handle: Option<Arc<dyn RecordStore>>,
}

/// Runs every rule of the record store contract against `store`.
pub async fn suite(store: Arc<dyn RecordStore>, probes: RecordStoreProbes<'_>) {
    let s = store.as_ref();
    appends_then_reads_back_verbatim(s).await;
    stores_unicode_and_large_payloads_byte_for_byte(s).await;
    stores_a_large_batch_byte_for_byte(s).await;
    stores_non_canonical_payload_text_verbatim(s).await;
    refuses_empty_and_malformed_batches(s).await;
    refuses_a_first_record_other_than_seq_one(s).await;
    refuses_a_gap_as_not_next(s).await;
    refuses_a_wrong_prev_checksum_as_not_next(s).await;
    refuses_a_different_record_at_a_stored_seq_as_conflict(s).await;
    acknowledges_an_identical_reappend_as_already_present(s).await;
    accepts_a_batch_overlapping_the_head_then_continuing(s).await;
    stores_nothing_of_a_batch_whose_later_record_is_bad(s).await;
    reports_the_head_of_empty_and_written_trails(s).await;
    lists_trails_with_their_heads_in_order(s).await;
    reads_ten_thousand_records_in_pages(s).await;
    reads_only_the_records_of_one_kind(s).await;
    serializes_concurrent_append_service_writers(Arc::clone(&store)).await;
    lets_exactly_one_of_racing_appends_win(Arc::clone(&store), Arc::clone(&store)).await;
    checks_the_append_only_claim(s, probes.append_only).await;
    reports_its_append_only_enforcement(s).await;
    checks_the_cross_process_claim(Arc::clone(&store), probes.second_handle).await;
    // Last: it weakens the store.
    reports_a_removed_control_as_missing(store.as_ref(), probes.append_only).await;
}

async fn head_seq(store: &dyn RecordStore, trail: &TrailId) -> u64 {
    must(store.head(trail).await, "head").map_or(0, |h| h.seq.get())
}

async fn read_all(store: &dyn RecordStore, trail: &TrailId) -> Vec<Record> {
    let mut out = Vec::new();
    must(
        store
            .for_each_record(trail, 1000, |r| {
                out.push(r);
                true
            })
            .await,
        "read whole trail",
    );
    out
}

/// Verifies the whole stored trail with the test key and returns how many records it holds.
async fn verify_stored(store: &dyn RecordStore, trail: &TrailId) -> u64 {
    let ring = KeyRing::single(test_key());
    let mut verifier = ChainVerifier::new(trail.clone(), &ring);
    for r in read_all(store, trail).await {
        if let Err(f) = verifier.push(&r) {
            panic!("stored trail {trail} does not verify: {f}");
        }
    }
    match verifier.finish() {
        Ok(summary) => summary.records,
        Err(f) => panic!("stored trail {trail} does not verify: {f}"),
    }
}

#[track_caller]
fn expect_not_next(result: Result<impl std::fmt::Debug, RecordStoreError>, seq: u64, what: &str) {
    match result {
        Err(RecordStoreError::NotNext { seq: s, .. }) if s.get() == seq => {}
        other => panic!("{what}: expected NotNext at seq {seq}, got {other:?}"),
    }
}

/// A batch appended is read back equal, field for field, in seq order.
pub async fn appends_then_reads_back_verbatim(store: &dyn RecordStore) {
    let trail = unique_trail("rs-verbatim");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(12);
    let receipt = must(store.append(&batch).await, "append 12 records");
    assert_eq!(receipt.appended, 12, "receipt counts new records");
    assert_eq!(receipt.already_present, 0);
    assert_eq!(receipt.head.seq.get(), 12);
    assert_eq!(receipt.head.checksum, batch[11].checksum);
    let back = must(store.read(&trail, 0, 100).await, "read back");
    assert_eq!(back, batch, "records read back differ from those appended");
    let one = must(
        store.get(&trail, must(ChainSeq::new(5), "seq")).await,
        "get",
    );
    assert_eq!(one.as_ref(), Some(&batch[4]));
    assert_eq!(verify_stored(store, &trail).await, 12);
}

/// Payload text comes back byte-identical: non-ASCII text, escapes, and a 1 MiB payload.
pub async fn stores_unicode_and_large_payloads_byte_for_byte(store: &dyn RecordStore) {
    let trail = unique_trail("rs-unicode");
    let mut chain = ChainBuilder::new(trail.clone());
    let unicode = payload(
        r#"{"name":"Spektrum ü/測試 🧪","ctl":"tab\tnl\nnul\u0000","q":"\"\\","n":-0.5e-7}"#,
    );
    let big = must(
        Payload::from_value(&serde_json::json!({ "blob": "ä".repeat(512 * 1024) })),
        "1 MiB payload",
    );
    assert!(big.as_str().len() > 1024 * 1024);
    let batch = vec![
        chain.next_with_payload(unicode.clone()),
        chain.next_with_payload(big.clone()),
    ];
    must(
        store.append(&batch).await,
        "append unicode and 1 MiB payloads",
    );
    let back = must(store.read(&trail, 0, 10).await, "read back");
    assert_eq!(back.len(), 2);
    assert_eq!(
        back[0].payload.as_str().as_bytes(),
        unicode.as_str().as_bytes()
    );
    assert_eq!(back[1].payload.as_str().as_bytes(), big.as_str().as_bytes());
    assert_eq!(back, batch);
    assert_eq!(verify_stored(store, &trail).await, 2);
}

/// A batch large enough for a store's bulk path (binary COPY in Postgres) comes back
/// byte-identical too, with control characters, backslashes and a 1 MiB payload inside it, and
/// a later small batch continues it.
pub async fn stores_a_large_batch_byte_for_byte(store: &dyn RecordStore) {
    let trail = unique_trail("rs-bulk");
    let mut chain = ChainBuilder::new(trail.clone());
    let mut batch = chain.batch(150);
    batch.push(chain.next_with_payload(payload(
        r#"{"path":"C:\\data\\tab\there","ctl":"\u0000\u0001\r\n","u":"ü測試🧪"}"#,
    )));
    batch.push(chain.next_with_payload(must(
        Payload::from_value(&serde_json::json!({ "blob": "\\\t".repeat(300 * 1024) })),
        "large payload",
    )));
    batch.extend(chain.batch(50));
    let receipt = must(store.append(&batch).await, "append 202 records at once");
    assert_eq!(receipt.appended, 202);
    let tail = chain.batch(3);
    must(store.append(&tail).await, "append 3 after the bulk batch");
    let back = read_all(store, &trail).await;
    assert_eq!(back.len(), 205);
    assert_eq!(&back[..202], &batch[..], "a bulk batch read back differs");
    assert_eq!(&back[202..], &tail[..]);
    assert_eq!(verify_stored(store, &trail).await, 205);
}

/// Payload text that is not canonical (replicated from elsewhere) is still stored as is: the
/// store never re-serializes.
pub async fn stores_non_canonical_payload_text_verbatim(store: &dyn RecordStore) {
    let trail = unique_trail("rs-noncanon");
    let mut chain = ChainBuilder::new(trail.clone());
    let text = "{ \"b\" : 1,\n  \"a\":[1.0, 2e3] }";
    let r = chain.next_with_payload(Payload::from_stored(text.to_owned()));
    must(store.append(std::slice::from_ref(&r)).await, "append");
    let back = must(store.read(&trail, 0, 1).await, "read back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].payload.as_str(), text, "payload text was altered");
    assert_eq!(back[0], r);
}

/// Empty batches, batches mixing trails and batches with broken internal links are
/// `InvalidBatch`.
pub async fn refuses_empty_and_malformed_batches(store: &dyn RecordStore) {
    assert!(
        matches!(
            store.append(&[]).await,
            Err(RecordStoreError::InvalidBatch(_))
        ),
        "empty batch must be InvalidBatch"
    );
    let trail = unique_trail("rs-malformed");
    let mut chain = ChainBuilder::new(trail.clone());
    let mut other = ChainBuilder::new(unique_trail("rs-malformed-other"));
    let mixed = vec![chain.next_record(), other.next_record()];
    assert!(
        matches!(
            store.append(&mixed).await,
            Err(RecordStoreError::InvalidBatch(_))
        ),
        "batch mixing trails must be InvalidBatch"
    );
    let mut chain = ChainBuilder::new(trail.clone());
    let mut skipping = chain.batch(3);
    skipping.remove(1);
    assert!(
        matches!(
            store.append(&skipping).await,
            Err(RecordStoreError::InvalidBatch(_))
        ),
        "batch with a gap inside must be InvalidBatch"
    );
    assert_eq!(head_seq(store, &trail).await, 0, "nothing may be stored");
}

/// On an empty trail only seq 1 with the genesis link is accepted.
pub async fn refuses_a_first_record_other_than_seq_one(store: &dyn RecordStore) {
    let trail = unique_trail("rs-first");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(3);
    expect_not_next(
        store.append(&batch[1..]).await,
        2,
        "seq 2 on an empty trail",
    );
    assert_eq!(head_seq(store, &trail).await, 0);
    must(store.append(&batch[..1]).await, "seq 1 on an empty trail");
}

/// A record whose seq is past `head + 1` is `NotNext`.
pub async fn refuses_a_gap_as_not_next(store: &dyn RecordStore) {
    let trail = unique_trail("rs-gap");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(4);
    must(store.append(&batch[..2]).await, "append 1..=2");
    expect_not_next(store.append(&batch[3..]).await, 4, "seq 4 after head 2");
    assert_eq!(head_seq(store, &trail).await, 2);
    let err = store.append(&batch[3..]).await.err();
    assert!(
        err.is_some_and(|e| !e.status().is_temporary()),
        "NotNext is permanent: retrying the same batch cannot help"
    );
}

/// A record at `head + 1` whose `prev_checksum` is not the head's checksum is `NotNext`.
pub async fn refuses_a_wrong_prev_checksum_as_not_next(store: &dyn RecordStore) {
    let trail = unique_trail("rs-prev");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(2);
    must(store.append(&batch[..1]).await, "append 1");
    let forged = crate::fixtures::record(
        &trail,
        &test_key(),
        must(ChainSeq::new(2), "seq"),
        Checksum([0x5a; 32]),
        payload(r#"{"forged":true}"#),
    );
    expect_not_next(store.append(&[forged]).await, 2, "wrong prev_checksum");
    assert_eq!(head_seq(store, &trail).await, 1);
    must(
        store.append(&batch[1..]).await,
        "the right record 2 still fits",
    );
}

/// A record different from the one stored at its seq is `Conflict` naming that seq.
pub async fn refuses_a_different_record_at_a_stored_seq_as_conflict(store: &dyn RecordStore) {
    let trail = unique_trail("rs-conflict");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(3);
    must(store.append(&batch).await, "append 1..=3");
    let mut fork = ChainBuilder::new(trail.clone());
    fork.batch(1);
    let different_2 = fork.next_with_payload(payload(r#"{"fork":true}"#));
    match store.append(&[different_2]).await {
        Err(RecordStoreError::Conflict { trail_id, seq }) => {
            assert_eq!(trail_id, trail);
            assert_eq!(seq.get(), 2);
        }
        other => panic!("expected Conflict at seq 2, got {other:?}"),
    }
    let back = must(store.read(&trail, 0, 10).await, "read back");
    assert_eq!(back, batch, "a conflicting append must not change anything");
}

/// Re-appending records identical to stored ones is acknowledged, counted as already present,
/// and stores nothing twice.
pub async fn acknowledges_an_identical_reappend_as_already_present(store: &dyn RecordStore) {
    let trail = unique_trail("rs-idem");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(5);
    must(store.append(&batch).await, "append 1..=5");
    let again = must(store.append(&batch).await, "re-append 1..=5");
    assert_eq!(again.appended, 0);
    assert_eq!(again.already_present, 5);
    assert_eq!(again.head.seq.get(), 5);
    assert_eq!(again.head.checksum, batch[4].checksum);
    let middle = must(store.append(&batch[1..3]).await, "re-append 2..=3");
    assert_eq!((middle.appended, middle.already_present), (0, 2));
    assert_eq!(middle.head.seq.get(), 5, "the receipt names the trail head");
    assert_eq!(read_all(store, &trail).await, batch);
}

/// A batch starting below the head, identical up to it, stores only what follows.
pub async fn accepts_a_batch_overlapping_the_head_then_continuing(store: &dyn RecordStore) {
    let trail = unique_trail("rs-overlap");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(8);
    must(store.append(&batch[..5]).await, "append 1..=5");
    let receipt = must(store.append(&batch[3..]).await, "append 4..=8");
    assert_eq!((receipt.appended, receipt.already_present), (3, 2));
    assert_eq!(receipt.head.seq.get(), 8);
    assert_eq!(read_all(store, &trail).await, batch);
    assert_eq!(verify_stored(store, &trail).await, 8);
}

/// Atomicity: a batch whose first records are fine but a later one is bad stores nothing.
pub async fn stores_nothing_of_a_batch_whose_later_record_is_bad(store: &dyn RecordStore) {
    let trail = unique_trail("rs-atomic");
    let mut chain = ChainBuilder::new(trail.clone());
    let stored = chain.batch(2);
    must(store.append(&stored).await, "append 1..=2");
    let mut next = chain.batch(4);
    // Record 6 keeps its seq but links to the wrong predecessor.
    next[3] = crate::fixtures::record(
        &trail,
        &test_key(),
        next[3].chain_seq,
        Checksum([0x11; 32]),
        payload(r#"{"bad":"link"}"#),
    );
    assert!(
        store.append(&next).await.is_err(),
        "a batch with a broken later link must be refused"
    );
    assert_eq!(
        head_seq(store, &trail).await,
        2,
        "nothing of the batch may be stored"
    );
    // Records 3.. of another trail's chain slipped into the batch.
    let mut good = ChainBuilder::new(trail.clone());
    good.batch(2);
    let mut mixed = good.batch(3);
    let mut stranger = ChainBuilder::new(unique_trail("rs-atomic-other"));
    stranger.batch(4);
    mixed.push(stranger.next_record());
    assert!(store.append(&mixed).await.is_err());
    // An identical prefix, then a record conflicting with a stored one, then a new record.
    let bad_2 = crate::fixtures::record(
        &trail,
        &test_key(),
        stored[1].chain_seq,
        stored[0].checksum,
        payload(r#"{"fork":2}"#),
    );
    let bad_3 = crate::fixtures::record(
        &trail,
        &test_key(),
        stored[1].chain_seq.next(),
        bad_2.checksum,
        payload(r#"{"fork":3}"#),
    );
    let conflicting = vec![stored[0].clone(), bad_2, bad_3];
    assert!(matches!(
        store.append(&conflicting).await,
        Err(RecordStoreError::Conflict { .. })
    ));
    assert_eq!(
        read_all(store, &trail).await,
        stored,
        "the trail must be unchanged"
    );
}

/// `head` of a trail never written is `None`; after appends it is the last record's seq and
/// checksum.
pub async fn reports_the_head_of_empty_and_written_trails(store: &dyn RecordStore) {
    let trail = unique_trail("rs-head");
    assert_eq!(must(store.head(&trail).await, "head of empty trail"), None);
    assert!(must(store.read(&trail, 0, 10).await, "read empty trail").is_empty());
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(3);
    must(store.append(&batch).await, "append");
    let head = present(must(store.head(&trail).await, "head"), "head after append");
    assert_eq!(head.seq.get(), 3);
    assert_eq!(head.checksum, batch[2].checksum);
    assert!(must(store.read(&trail, 3, 10).await, "read past head").is_empty());
    assert!(must(store.read(&trail, 0, 0).await, "read zero records").is_empty());
    assert_eq!(
        must(
            store.get(&trail, must(ChainSeq::new(4), "seq")).await,
            "get past head"
        ),
        None
    );
}

/// `trails` lists every written trail once, with its head, ordered by trail id.
pub async fn lists_trails_with_their_heads_in_order(store: &dyn RecordStore) {
    let base = crate::fixtures::unique("rs-list");
    let names = [
        format!("{base}-b"),
        format!("{base}-a"),
        format!("{base}-c"),
    ];
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let trail = must(TrailId::new(name.as_str()), "trail id");
        let mut chain = ChainBuilder::new(trail.clone());
        let batch = chain.batch(i + 1);
        let receipt = must(store.append(&batch).await, "append");
        expected.push((trail, receipt.head));
    }
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let listed = must(store.trails().await, "trails");
    let ids: Vec<&TrailId> = listed.iter().map(|(t, _)| t).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "trails must be ordered by id, each once");
    let ours: Vec<_> = listed
        .into_iter()
        .filter(|(t, _)| t.as_str().starts_with(&base))
        .collect();
    assert_eq!(ours, expected);
}

/// Ten thousand records (appended in batches) read back in pages: complete, ordered, no
/// duplicates, and every page boundary honoured.
pub async fn reads_ten_thousand_records_in_pages(store: &dyn RecordStore) {
    const TOTAL: usize = 10_000;
    let trail = unique_trail("rs-pages");
    let mut chain = ChainBuilder::new(trail.clone());
    let mut last_checksum = None;
    for _ in 0..(TOTAL / 1000) {
        let batch = chain.batch(1000);
        let receipt = must(store.append(&batch).await, "append 1000");
        assert_eq!(receipt.appended, 1000);
        last_checksum = batch.last().map(|r| r.checksum);
    }
    let head = present(must(store.head(&trail).await, "head"), "head");
    assert_eq!(head.seq.get(), TOTAL as u64);
    assert_eq!(Some(head.checksum), last_checksum);
    let mut after = 0u64;
    let mut pages = 0;
    loop {
        let page = must(store.read(&trail, after, 997).await, "read page");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 997, "a page must not exceed its limit");
        for (i, r) in page.iter().enumerate() {
            assert_eq!(
                r.chain_seq.get(),
                after + 1 + i as u64,
                "records out of order"
            );
        }
        after = last.chain_seq.get();
        pages += 1;
    }
    assert_eq!(after, TOTAL as u64);
    assert_eq!(pages, TOTAL.div_ceil(997));
    let window = must(store.read(&trail, 5000, 10).await, "read window");
    let seqs: Vec<u64> = window.iter().map(|r| r.chain_seq.get()).collect();
    assert_eq!(seqs, (5001..=5010).collect::<Vec<_>>());
    assert_eq!(verify_stored(store, &trail).await, TOTAL as u64);
}

/// `read_kind` returns exactly the records of the asked kind, in seq order, honouring `after`
/// and `limit`, and nothing of another trail.
pub async fn reads_only_the_records_of_one_kind(store: &dyn RecordStore) {
    let trail = unique_trail("rs-kind");
    let other = unique_trail("rs-kind-other");
    let signature = must(EventKind::new("SIGNATURE"), "kind");
    let mut chain = ChainBuilder::new(trail.clone());
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for n in 1..=300u64 {
        if n % 7 == 0 {
            let r = chain.next_of_kind(signature.clone());
            expected.push(r.clone());
            batch.push(r);
        } else {
            batch.push(chain.next_record());
        }
    }
    must(store.append(&batch).await, "append mixed kinds");
    let mut elsewhere = ChainBuilder::new(other);
    let foreign: Vec<Record> = (0..5)
        .map(|_| elsewhere.next_of_kind(signature.clone()))
        .collect();
    must(store.append(&foreign).await, "append other trail");

    let all = must(
        store.read_kind(&trail, &signature, 0, 1000).await,
        "read_kind",
    );
    assert_eq!(
        all, expected,
        "read_kind must return exactly the SIGNATURE records"
    );
    // Paging: limit and after are honoured.
    let mut after = 0u64;
    let mut paged = Vec::new();
    loop {
        let page = must(store.read_kind(&trail, &signature, after, 4).await, "page");
        assert!(page.len() <= 4, "a page must not exceed its limit");
        let Some(last) = page.last() else { break };
        after = last.chain_seq.get();
        paged.extend(page);
    }
    assert_eq!(paged, expected);
    let none = must(
        store
            .read_kind(&trail, &must(EventKind::new("NO_SUCH_KIND"), "kind"), 0, 10)
            .await,
        "read_kind of an absent kind",
    );
    assert!(none.is_empty());
}

fn draft(trail: &TrailId, task: usize, n: usize) -> EventDraft {
    EventDraft {
        trail_id: trail.clone(),
        kind: EventKind::file_created(),
        actor: Some(must(Actor::new(format!("writer-{task}")), "actor")),
        actor_source: ActorSource::OsSession,
        occurred_at: None,
        device: must(Device::new("conformance-ws.01"), "device"),
        project: None,
        subject: Some(must(
            Subject::new(format!("task-{task}/file-{n}.raw")),
            "subject",
        )),
        payload: payload(&format!(r#"{{"task":{task},"n":{n}}}"#)),
    }
}

fn service(store: Arc<dyn RecordStore>) -> Arc<AppendService> {
    let start = must(Timestamp::from_unix_micros(1_764_075_475_000_000), "start");
    Arc::new(AppendService::new(
        store,
        Arc::new(ManualClock::new(start)),
        test_key(),
    ))
}

/// 16 tasks appending concurrently through one [`AppendService`] produce one gapless, unforked
/// chain that verifies, and each caller gets the record that was stored.
pub async fn serializes_concurrent_append_service_writers(store: Arc<dyn RecordStore>) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 10;
    let trail = unique_trail("rs-service");
    let svc = service(Arc::clone(&store));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let svc = Arc::clone(&svc);
        let trail = trail.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..PER_TASK {
                mine.push(must(
                    svc.append(draft(&trail, task, n)).await,
                    "append via service",
                ));
            }
            mine
        }));
    }
    let mut returned = Vec::new();
    for h in handles {
        returned.extend(must(h.await, "writer task"));
    }
    let seqs: BTreeSet<u64> = returned.iter().map(|r| r.chain_seq.get()).collect();
    let total = (TASKS * PER_TASK) as u64;
    assert_eq!(seqs, (1..=total).collect(), "every seq once, no gap");
    let stored = read_all(store.as_ref(), &trail).await;
    assert_eq!(stored.len() as u64, total);
    for r in &returned {
        assert_eq!(
            &stored[(r.chain_seq.get() - 1) as usize],
            r,
            "caller got what was stored"
        );
    }
    assert_eq!(verify_stored(store.as_ref(), &trail).await, total);
}

/// 16 different records racing for the same seq: exactly one is stored, the others get
/// `Conflict` or `NotNext`. `a` and `b` may be the same handle or two handles on one backend.
pub async fn lets_exactly_one_of_racing_appends_win(
    a: Arc<dyn RecordStore>,
    b: Arc<dyn RecordStore>,
) {
    const RACERS: usize = 16;
    let trail = unique_trail("rs-race");
    let mut chain = ChainBuilder::new(trail.clone());
    let first = chain.next_record();
    must(a.append(std::slice::from_ref(&first)).await, "append seq 1");
    let seq2 = must(ChainSeq::new(2), "seq");
    let mut handles = Vec::new();
    for i in 0..RACERS {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let candidate = crate::fixtures::record(
            &trail,
            &test_key(),
            seq2,
            first.checksum,
            payload(&format!(r#"{{"racer":{i}}}"#)),
        );
        handles.push(tokio::spawn(async move {
            let result = store.append(std::slice::from_ref(&candidate)).await;
            (candidate, result)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        let (candidate, result) = must(h.await, "racer task");
        match result {
            Ok(receipt) => {
                assert_eq!(receipt.appended, 1);
                winners.push(candidate);
            }
            Err(RecordStoreError::Conflict { .. } | RecordStoreError::NotNext { .. }) => {}
            Err(e) => panic!("a losing racer must get Conflict or NotNext, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer may win seq 2");
    let stored = read_all(a.as_ref(), &trail).await;
    assert_eq!(stored, vec![first, winners.remove(0)]);
}

/// Where the store claims `append_only_enforced`, UPDATE and DELETE through the backend's side
/// door are refused and the records stay as they were.
pub async fn checks_the_append_only_claim(
    store: &dyn RecordStore,
    evidence: AppendOnlyEvidence<'_>,
) {
    if !store.capabilities().append_only_enforced {
        eprintln!("NOTE: {store:?} does not claim append_only_enforced; nothing to check");
        return;
    }
    let probe = match evidence {
        AppendOnlyEvidence::Probe(p) => p,
        AppendOnlyEvidence::ByConstruction(why) => {
            eprintln!("NOTE: {store:?} claims append_only_enforced by construction: {why}");
            return;
        }
    };
    let trail = unique_trail("rs-tamper");
    let mut chain = ChainBuilder::new(trail.clone());
    let batch = chain.batch(3);
    must(store.append(&batch).await, "append 1..=3");
    match must(
        probe.try_rewrite_subject(&trail, 2, "forged.dat").await,
        "tamper probe update",
    ) {
        TamperAttempt::Refused(msg) => eprintln!("update refused as claimed: {msg}"),
        TamperAttempt::Accepted(n) => {
            panic!("store claims append_only_enforced but UPDATE changed {n} row(s)")
        }
    }
    match must(probe.try_delete(&trail, 2).await, "tamper probe delete") {
        TamperAttempt::Refused(msg) => eprintln!("delete refused as claimed: {msg}"),
        TamperAttempt::Accepted(n) => {
            panic!("store claims append_only_enforced but DELETE removed {n} row(s)")
        }
    }
    assert_eq!(
        read_all(store, &trail).await,
        batch,
        "refused tampering changed records"
    );
}

/// A store that claims `append_only_enforced` reports its controls through
/// `append_only_enforcement`, every one in place on a fresh store.
pub async fn reports_its_append_only_enforcement(store: &dyn RecordStore) {
    let e = must(
        store.append_only_enforcement().await,
        "append_only_enforcement",
    );
    if !store.capabilities().append_only_enforced {
        eprintln!("NOTE: {store:?} does not claim append_only_enforced; reports {e:?}");
        return;
    }
    assert!(
        e.holds(),
        "{store:?} claims append_only_enforced but reports controls missing: {e:?}"
    );
    assert!(
        !e.present.is_empty(),
        "{store:?} claims append_only_enforced but names no control it relies on: {e:?}"
    );
    assert!(!e.mechanism.is_empty(), "no mechanism named: {e:?}");
}

/// After a control is removed through the backend's side door, `append_only_enforcement` no
/// longer holds and names it (so a start and `verify` can report it).
pub async fn reports_a_removed_control_as_missing(
    store: &dyn RecordStore,
    evidence: AppendOnlyEvidence<'_>,
) {
    let AppendOnlyEvidence::Probe(probe) = evidence else {
        eprintln!("NOTE: {store:?} has no side door to remove a control through");
        return;
    };
    let removed = must(
        probe.drop_append_only_controls().await,
        "drop the append-only controls",
    );
    assert!(!removed.is_empty(), "the probe removed no control");
    let e = must(
        store.append_only_enforcement().await,
        "append_only_enforcement after removing the controls",
    );
    assert!(
        !e.holds(),
        "{removed:?} were removed but the store reports enforcement in place: {e:?}"
    );
    for control in &removed {
        assert!(
            e.missing.iter().any(|m| m.contains(control.as_str())),
            "{control} was removed but is not named as missing: {e:?}"
        );
        assert!(
            !e.present.iter().any(|p| p.contains(control.as_str())),
            "{control} was removed but is still reported present: {e:?}"
        );
    }
    // With the controls gone the side door is open: the same probe now rewrites history, which
    // is why verification (not the store) is the last line of defence.
    let trail = unique_trail("rs-tamper-open");
    let mut chain = ChainBuilder::new(trail.clone());
    must(store.append(&chain.batch(2)).await, "append 1..=2");
    match must(
        probe.try_rewrite_subject(&trail, 2, "forged.dat").await,
        "tamper probe update without controls",
    ) {
        TamperAttempt::Accepted(1) => {}
        other => panic!("with {removed:?} dropped, the rewrite should land: {other:?}"),
    }
}

/// Where the store claims `cross_process_serialization`, two independent handles racing on one
/// trail never fork or gap it, both raw and through two append services (two processes).
pub async fn checks_the_cross_process_claim(
    store: Arc<dyn RecordStore>,
    second: Option<Arc<dyn RecordStore>>,
) {
    if !store.capabilities().cross_process_serialization {
        eprintln!("NOTE: {store:?} does not claim cross_process_serialization; nothing to check");
        return;
    }
    let Some(second) = second else {
        panic!("{store:?} claims cross_process_serialization: the suite needs a second handle");
    };
    lets_exactly_one_of_racing_appends_win(Arc::clone(&store), Arc::clone(&second)).await;
    two_append_services_on_two_handles_never_fork(store, second).await;
}

/// Two append services, each on its own handle like two processes, append to one trail; losers
/// of a race retry, and the result is one chain holding every acknowledged record once.
pub async fn two_append_services_on_two_handles_never_fork(
    a: Arc<dyn RecordStore>,
    b: Arc<dyn RecordStore>,
) {
    const TASKS_PER_SERVICE: usize = 8;
    const PER_TASK: usize = 5;
    let trail = unique_trail("rs-twoproc");
    let services = [service(Arc::clone(&a)), service(b)];
    let mut handles = Vec::new();
    for (s, svc) in services.iter().enumerate() {
        for t in 0..TASKS_PER_SERVICE {
            let svc = Arc::clone(svc);
            let trail = trail.clone();
            let task = s * TASKS_PER_SERVICE + t;
            handles.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..PER_TASK {
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match svc.append(draft(&trail, task, n)).await {
                            Ok(r) => {
                                mine.push(r);
                                break;
                            }
                            // The other "process" took the seq; the service reloads the head.
                            Err(AppendError::Store { source, .. })
                                if attempts < 200
                                    && matches!(
                                        *source,
                                        RecordStoreError::NotNext { .. }
                                            | RecordStoreError::Conflict { .. }
                                            | RecordStoreError::Unavailable { .. }
                                    ) => {}
                            Err(e) => panic!("append failed after {attempts} attempts: {e:?}"),
                        }
                    }
                }
                mine
            }));
        }
    }
    let mut returned = Vec::new();
    for h in handles {
        returned.extend(must(h.await, "writer task"));
    }
    let total = (2 * TASKS_PER_SERVICE * PER_TASK) as u64;
    let seqs: BTreeSet<u64> = returned.iter().map(|r| r.chain_seq.get()).collect();
    assert_eq!(
        seqs,
        (1..=total).collect(),
        "every acknowledged record at its own seq"
    );
    let stored = read_all(a.as_ref(), &trail).await;
    for r in &returned {
        assert_eq!(
            &stored[(r.chain_seq.get() - 1) as usize],
            r,
            "caller got what was stored"
        );
    }
    assert_eq!(verify_stored(a.as_ref(), &trail).await, total);
}
