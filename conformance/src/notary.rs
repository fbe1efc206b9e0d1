//! The `Notary` suite: anchors read back, ordered, per trail; and the WORM claim.

use async_trait::async_trait;
use relay_domain::error::BoxError;
use relay_domain::ports::{Anchor, Notary, WormPosture};
use relay_domain::{ChainSeq, Checksum, TimeLabel, Timestamp, TrailId};

use crate::TamperOutcome;
use crate::fixtures::{must, unique_trail};

/// Tries to rewrite or remove a stored anchor behind the notary's back (with the backend's own
/// credentials), for notaries that claim `WormPosture::Enforced`.
#[async_trait]
pub trait AnchorTamperProbe: Send + Sync {
    /// Tries to delete or overwrite the stored anchors of `trail`.
    async fn try_rewrite(&self, trail: &TrailId) -> Result<TamperOutcome, BoxError>;
}

fn anchor(trail: &TrailId, seq: u64, micros: i64, label: TimeLabel) -> Anchor {
    Anchor {
        trail_id: trail.clone(),
        seq: must(ChainSeq::new(seq), "seq"),
        checksum: Checksum([seq as u8; 32]),
        merkle_root: seq.is_multiple_of(2).then_some(Checksum([0xee; 32])),
        anchored_at: must(
            Timestamp::from_unix_micros(1_764_075_475_000_000 + micros),
            "time",
        ),
        time_source: label,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    }
}

/// Runs every rule of the notary contract; `worm_probe` is required when the notary claims
/// `WormPosture::Enforced`.
pub async fn suite(notary: &dyn Notary, worm_probe: Option<&dyn AnchorTamperProbe>) {
    anchors_then_reads_back(notary).await;
    returns_anchors_ordered_by_seq_then_time(notary).await;
    keeps_trails_apart(notary).await;
    stores_a_round_as_each_trails_anchor(notary).await;
    checks_the_worm_claim(notary, worm_probe).await;
}

/// An anchor is read back equal; a trail never anchored has none.
pub async fn anchors_then_reads_back(notary: &dyn Notary) {
    assert!(!notary.kind().is_empty(), "a notary names its kind");
    let trail = unique_trail("no-back");
    assert!(must(notary.anchors(&trail).await, "anchors of new trail").is_empty());
    let a = anchor(
        &trail,
        42,
        0,
        TimeLabel::Validated {
            offset_micros: -1250,
        },
    );
    let receipt = must(notary.anchor(&a).await, "anchor");
    assert!(
        !receipt.location.is_empty(),
        "a receipt says where the anchor is"
    );
    assert_eq!(must(notary.anchors(&trail).await, "anchors"), vec![a]);
}

/// `anchors` returns seq order, then time order within a seq, whatever the order of writing, and
/// `newest_anchor` the last of them.
pub async fn returns_anchors_ordered_by_seq_then_time(notary: &dyn Notary) {
    let trail = unique_trail("no-order");
    let written = [
        anchor(&trail, 5, 300, TimeLabel::System),
        anchor(&trail, 3, 400, TimeLabel::System),
        anchor(&trail, 5, 100, TimeLabel::System),
        anchor(&trail, 9, 50, TimeLabel::System),
    ];
    for a in &written {
        must(notary.anchor(a).await, "anchor");
    }
    let read = must(notary.anchors(&trail).await, "anchors");
    let expected = vec![
        written[1].clone(),
        written[2].clone(),
        written[0].clone(),
        written[3].clone(),
    ];
    assert_eq!(read, expected);
    // The newest anchor (read alone at start-up) is the last of them: highest seq, then the
    // latest time; none for a trail never anchored.
    assert_eq!(
        must(notary.newest_anchor(&trail).await, "newest anchor"),
        Some(written[3].clone())
    );
    let late = anchor(&trail, 9, 900, TimeLabel::System);
    must(notary.anchor(&late).await, "anchor");
    assert_eq!(
        must(notary.newest_anchor(&trail).await, "newest anchor"),
        Some(late)
    );
    let never = unique_trail("no-newest");
    assert_eq!(
        must(notary.newest_anchor(&never).await, "newest anchor"),
        None
    );
}

/// Anchors of one trail never show up in another's.
pub async fn keeps_trails_apart(notary: &dyn Notary) {
    let a = unique_trail("no-iso-a");
    let b = unique_trail("no-iso-b");
    let anchor_a = anchor(&a, 1, 0, TimeLabel::System);
    let anchor_b = anchor(&b, 2, 0, TimeLabel::System);
    must(notary.anchor(&anchor_a).await, "anchor a");
    must(notary.anchor(&anchor_b).await, "anchor b");
    assert_eq!(must(notary.anchors(&a).await, "anchors a"), vec![anchor_a]);
    assert_eq!(must(notary.anchors(&b).await, "anchors b"), vec![anchor_b]);
    let listed = must(notary.anchored_trails().await, "anchored trails");
    assert!(
        listed.contains(&a) && listed.contains(&b),
        "anchored_trails misses a trail: {listed:?}"
    );
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "anchored_trails is not sorted: {listed:?}"
    );
}

/// A round's anchors (`anchor_round`, one object on object stores) read back among each
/// trail's anchors, count as each trail's newest, and leave the other trails and the list of
/// anchored trails as they were.
pub async fn stores_a_round_as_each_trails_anchor(notary: &dyn Notary) {
    let a = unique_trail("no-round-a");
    let b = unique_trail("no-round-b");
    let alone = [
        anchor(&a, 1, 0, TimeLabel::System),
        anchor(&b, 1, 0, TimeLabel::System),
    ];
    for x in &alone {
        must(notary.anchor(x).await, "anchor alone");
    }
    let first = [
        anchor(&a, 2, 30_000_000, TimeLabel::System),
        anchor(&b, 4, 30_000_000, TimeLabel::System),
    ];
    let receipts = must(notary.anchor_round(&first).await, "anchor round");
    assert_eq!(receipts.len(), 2, "one receipt per anchor of the round");
    assert!(receipts.iter().all(|r| !r.location.is_empty()));
    let second = [anchor(&a, 3, 60_000_000, TimeLabel::System)];
    must(notary.anchor_round(&second).await, "second round");
    assert_eq!(
        must(notary.anchors(&a).await, "anchors a"),
        vec![alone[0].clone(), first[0].clone(), second[0].clone()]
    );
    assert_eq!(
        must(notary.anchors(&b).await, "anchors b"),
        vec![alone[1].clone(), first[1].clone()]
    );
    assert_eq!(
        must(notary.newest_anchor(&a).await, "newest a"),
        Some(second[0].clone())
    );
    assert_eq!(
        must(notary.newest_anchor(&b).await, "newest b"),
        Some(first[1].clone())
    );
    let listed = must(notary.anchored_trails().await, "anchored trails");
    assert!(listed.contains(&a) && listed.contains(&b), "{listed:?}");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
}

/// A notary claiming WORM must refuse a rewrite through its backend; any other posture is
/// reported, since callers warn on it.
pub async fn checks_the_worm_claim(notary: &dyn Notary, probe: Option<&dyn AnchorTamperProbe>) {
    match notary.worm_posture() {
        WormPosture::Enforced => {
            let Some(probe) = probe else {
                panic!("{notary:?} claims WORM: the suite needs an AnchorTamperProbe");
            };
            let trail = unique_trail("no-worm");
            let a = anchor(&trail, 1, 0, TimeLabel::System);
            must(notary.anchor(&a).await, "anchor");
            match must(probe.try_rewrite(&trail).await, "tamper probe") {
                TamperOutcome::Refused(msg) => {
                    eprintln!("anchor rewrite refused as claimed: {msg}")
                }
                TamperOutcome::Applied => panic!("notary claims WORM but an anchor was rewritten"),
            }
            assert_eq!(must(notary.anchors(&trail).await, "anchors"), vec![a]);
        }
        other => eprintln!("NOTE: {notary:?} is not WORM (posture {other}); callers must warn"),
    }
}
