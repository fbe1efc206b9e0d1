//! `Notary`: anchors trail heads in storage the relay's operators cannot rewrite (R7).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::{ChainSeq, Checksum, TrailId};
use crate::timestamp::{TimeLabel, Timestamp};

/// Whether stored objects or anchors are protected against deletion and overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WormPosture {
    /// The store itself refuses deletion and overwrite (Object Lock COMPLIANCE, locked retention).
    Enforced,
    /// Nothing stops an operator with access from rewriting or deleting.
    Unenforced,
    /// The adapter could not determine it.
    Unknown,
}

impl fmt::Display for WormPosture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WormPosture::Enforced => "enforced",
            WormPosture::Unenforced => "unenforced",
            WormPosture::Unknown => "unknown",
        })
    }
}

/// A notarized trail head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The trail.
    pub trail_id: TrailId,
    /// The head's seq.
    pub seq: ChainSeq,
    /// The head's checksum.
    pub checksum: Checksum,
    /// The RFC 9162 tree head over records 1..=seq, when computed.
    pub merkle_root: Option<Checksum>,
    /// When the anchor was made.
    pub anchored_at: Timestamp,
    /// Where `anchored_at` came from.
    pub time_source: TimeLabel,
    /// The anchor format: 1 (absent in stored JSON) carries only the fields above; 2 adds the
    /// frontier, the consistency link and the signed checkpoint (docs/spec/checkpoint.md).
    #[serde(default = "version_1", skip_serializing_if = "is_version_1")]
    pub version: u8,
    /// Version 2: the heads of the perfect subtrees of the tree over records `1..=seq`,
    /// largest first, so a relay resumes its tree from the newest anchor instead of re-reading
    /// the trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frontier: Vec<Checksum>,
    /// Version 2: the RFC 9162 consistency proof from the trail's previous anchor to this one
    /// (absent on a trail's first anchor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<ConsistencyLink>,
    /// Version 2: the C2SP signed-note checkpoint of this head, signed with the seal key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// The anchor format that carries frontier, consistency link and checkpoint.
pub const ANCHOR_VERSION: u8 = 2;

fn version_1() -> u8 {
    1
}

fn is_version_1(v: &u8) -> bool {
    *v == 1
}

/// The proof that an anchor's tree extends the trail's previous anchor's tree: the trail only
/// grew between them (RFC 9162 section 2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyLink {
    /// The previous anchor's seq (its tree size).
    pub from_seq: ChainSeq,
    /// The previous anchor's tree head.
    pub from_root: Checksum,
    /// The consistency proof from `from_seq` to this anchor's seq.
    pub proof: Vec<Checksum>,
}

/// How long after a trail's newest anchor stored alone its anchors may go into rounds
/// ([`Notary::anchor_round`]): one hour. The scheduler stores a trail's anchor alone again when
/// its last one stored alone is older; a notary looking for a trail's newest anchor reads only
/// the rounds of that hour after it.
pub const ROUND_SPAN_MICROS: i64 = 3_600 * 1_000_000;

/// The anchors of several trails made in one scheduler round and stored as one notary object
/// (docs/spec/checkpoint.md, "Rounds"). Each anchor is complete on its own (frontier,
/// consistency link, signed checkpoint), so a trail is verified without reading the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorRound {
    /// When the round was made: the `anchored_at` of every anchor in it.
    pub round_at: Timestamp,
    /// One anchor per trail that moved since its previous anchor.
    pub anchors: Vec<Anchor>,
}

impl AnchorRound {
    /// A round of `anchors`; refuses an empty round, anchors made at different times or two
    /// anchors of one trail.
    pub fn new(anchors: Vec<Anchor>) -> Result<Self, String> {
        let Some(first) = anchors.first() else {
            return Err("a round holds at least one anchor".into());
        };
        let round = Self {
            round_at: first.anchored_at,
            anchors,
        };
        round.check()?;
        Ok(round)
    }

    /// Checks what [`new`](Self::new) checks, for a round read back from a notary.
    pub fn check(&self) -> Result<(), String> {
        if self.anchors.is_empty() {
            return Err("a round holds at least one anchor".into());
        }
        let mut trails = std::collections::BTreeSet::new();
        for a in &self.anchors {
            if a.anchored_at != self.round_at {
                return Err(format!(
                    "the anchor of {} was made at {}, the round at {}",
                    a.trail_id, a.anchored_at, self.round_at
                ));
            }
            if !trails.insert(&a.trail_id) {
                return Err(format!("holds two anchors of trail {}", a.trail_id));
            }
        }
        Ok(())
    }
}

/// Where an anchor was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorReceipt {
    /// Provider-specific location (path, object key and version).
    pub location: String,
    /// Until when the store guarantees the anchor cannot be removed, if it does.
    pub retain_until: Option<Timestamp>,
}

/// Why a notary operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NotaryError {
    /// The notary's storage cannot guarantee immutability and the operator did not allow that.
    #[error("notary refuses to run without WORM storage: {0}")]
    NotWorm(String),
    /// A stored anchor could not be read back or has lost its protection.
    #[error("stored anchor is invalid: {0}")]
    InvalidAnchor(String),
    /// The notary refused on permission grounds.
    #[error("notary permission denied: {message}")]
    PermissionDenied {
        /// Why.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The notary cannot be reached; retry later.
    #[error("notary unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure.
    #[error("notary failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl NotaryError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            NotaryError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Anchors trail heads outside the record store.
///
/// # Contract
/// - `anchor` stores the anchor durably before returning; anchors are never modified.
/// - `anchors` returns every stored anchor of a trail, ordered by seq then time.
/// - `anchored_trails` lists every trail with at least one anchor.
/// - `newest_anchor` is the last of `anchors` (by seq, then time), or `None`.
/// - [`worm_posture`](Self::worm_posture) states honestly what the backing store enforces;
///   the conformance suite tries to delete and overwrite anchors where it claims `Enforced`.
#[async_trait]
pub trait Notary: Send + Sync + std::fmt::Debug {
    /// A short name for posture events (`filesystem`, `s3-object-lock`, ...).
    fn kind(&self) -> &'static str;
    /// What the backing store enforces.
    fn worm_posture(&self) -> WormPosture;
    /// Stores an anchor.
    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError>;
    /// Stores the anchors one scheduler round made, at most one per trail, all with the same
    /// `anchored_at` (an [`AnchorRound`]). Object-store notaries write the round as one object,
    /// so a round costs one write however many trails moved; the default stores each anchor
    /// with [`anchor`](Self::anchor). Returns one receipt per anchor, in order. Afterwards each
    /// anchor is among its trail's [`anchors`](Self::anchors) and counts for
    /// [`newest_anchor`](Self::newest_anchor) exactly as if it had been stored alone.
    ///
    /// Callers keep [`ROUND_SPAN_MICROS`]: a trail's anchor goes into a round only when the
    /// trail has an anchor stored alone at most that long before, which bounds how far back a
    /// notary looks for a trail's newest anchor.
    async fn anchor_round(&self, anchors: &[Anchor]) -> Result<Vec<AnchorReceipt>, NotaryError> {
        let mut receipts = Vec::with_capacity(anchors.len());
        for anchor in anchors {
            receipts.push(self.anchor(anchor).await?);
        }
        Ok(receipts)
    }
    /// Every anchor of a trail, stored alone or in a round.
    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError>;
    /// The trail's newest anchor (highest seq, then latest time), what a relay needs at start to
    /// resume from its frontier. Adapters whose `anchors` reads every anchor override it to read
    /// one; the full read-back stays with verification.
    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        Ok(self
            .anchors(trail)
            .await?
            .into_iter()
            .max_by_key(|a| (a.seq, a.anchored_at.unix_micros())))
    }
    /// Every trail that has at least one anchor, sorted. Verification uses it to notice a trail
    /// that was anchored and then deleted from the record store entirely.
    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError>;
}
