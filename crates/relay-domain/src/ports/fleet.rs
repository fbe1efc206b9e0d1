//! `FleetStore`: the edges a server of record accepts, their one-time enrollment codes, and the
//! last health each edge reported (issue 24).
//!
//! The set of allowed edges lives here, in the server's own store, so every replica on one
//! database sees an enrollment or a revocation at once, without a configuration edit or a
//! restart. Enrollment codes are kept as SHA-256 digests only: the code text exists on the
//! admin's screen and the workstation, never in the store.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::error::{BoxError, ErrorStatus};
use crate::ids::TrailId;
use crate::timestamp::Timestamp;

/// The SHA-256 digest of an enrollment code's text: what the store keeps and looks codes up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodeDigest([u8; 32]);

impl CodeDigest {
    /// The digest of `code` (its text as the admin saw it, surrounding whitespace removed).
    pub fn of(code: &str) -> Self {
        Self(Sha256::digest(code.trim().as_bytes()).into())
    }

    /// A digest from its 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time.
    pub fn ct_eq(&self, other: &CodeDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest of a 128-bit random code reveals nothing, but it is a lookup key: print a
        // prefix only.
        write!(f, "CodeDigest({}…)", hex::encode(&self.0[..4]))
    }
}

/// A one-time enrollment code as stored: for which edge, who issued it, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode {
    /// The digest of the code text.
    pub digest: CodeDigest,
    /// The edge id the code enrolls (a code is good for that edge only).
    pub edge: String,
    /// The admin who issued it (`username`, or `os:<user>` from the server CLI).
    pub issued_by: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// After this instant the code is refused.
    pub expires_at: Timestamp,
    /// When it was used (`None`: still unused).
    pub used_at: Option<Timestamp>,
}

/// Whether an edge may ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// Enrolled: its ingest token is honoured.
    Enrolled,
    /// Revoked: refused whatever it presents, until it enrolls again with a new code.
    Revoked,
}

impl EdgeState {
    /// The stored text (`enrolled`, `revoked`).
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeState::Enrolled => "enrolled",
            EdgeState::Revoked => "revoked",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enrolled" => Some(EdgeState::Enrolled),
            "revoked" => Some(EdgeState::Revoked),
            _ => None,
        }
    }
}

/// One edge the server knows through enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeEntry {
    /// The edge id (its `X-Relay-Edge`).
    pub edge: String,
    /// Enrolled or revoked.
    pub state: EdgeState,
    /// The trails it may forward.
    pub trails: Vec<TrailId>,
    /// When it last enrolled.
    pub enrolled_at: Timestamp,
    /// The admin who issued the code it enrolled with.
    pub enrolled_by: String,
    /// When it was revoked, and by whom (only while revoked).
    pub revoked: Option<(Timestamp, String)>,
}

/// What the server saw of one edge's trail on its last request: the figures of the fleet view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeReport {
    /// The edge.
    pub edge: String,
    /// The trail.
    pub trail: TrailId,
    /// When the server received the request (server clock).
    pub seen_at: Timestamp,
    /// When the server last stored a batch of this trail from this edge.
    pub last_batch_at: Option<Timestamp>,
    /// The edge's local head seq, as it reported it with the batch.
    pub local_head_seq: Option<u64>,
    /// The edge's local head `recorded_at`, as it reported it.
    pub local_head_at: Option<Timestamp>,
    /// The server's stored head seq of the trail after the request.
    pub stored_head_seq: u64,
    /// The stored head's `recorded_at`.
    pub stored_head_at: Option<Timestamp>,
    /// Edge clock minus server clock at send time, in milliseconds (from `X-Relay-Sent-At`).
    pub skew_ms: Option<i64>,
    /// The edge's software version (`X-Relay-Version`).
    pub version: Option<String>,
    /// The error code of the last refused batch (`bad_hmac`, `gap`, …), cleared by the next
    /// stored batch: a refused batch halts the edge's forwarding of the trail (poisoned).
    pub refused: Option<String>,
}

/// Why a code could not be redeemed. Each is a refusal; none says more than needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RedeemRefusal {
    /// No such code (wrong text, or issued for another edge).
    #[error("unknown enrollment code")]
    Unknown,
    /// The code was already used.
    #[error("enrollment code already used")]
    Used,
    /// The code expired.
    #[error("enrollment code expired")]
    Expired,
}

/// Why a fleet store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A code could not be redeemed.
    #[error(transparent)]
    Refused(#[from] RedeemRefusal),
    /// No such edge.
    #[error("edge {edge:?} is not enrolled")]
    UnknownEdge {
        /// The edge id.
        edge: String,
    },
    /// Stored data could not be decoded.
    #[error("fleet store holds an unreadable row: {message}")]
    Corrupt {
        /// What was wrong.
        message: String,
    },
    /// The store cannot be reached or is busy; retry later.
    #[error("fleet store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other provider failure.
    #[error("fleet store failed: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl FleetError {
    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        match self {
            FleetError::Unavailable { .. } => ErrorStatus::Temporary,
            _ => ErrorStatus::Permanent,
        }
    }
}

/// Where a server of record keeps its fleet: shared by every replica on one database.
///
/// # Contract
/// - [`issue_code`](Self::issue_code) stores a code; a second code for the same edge does not
///   invalidate the first (each expires on its own).
/// - [`redeem`](Self::redeem) is **single use and atomic**: of any number of concurrent
///   redemptions of one code, at most one succeeds; it fails with [`RedeemRefusal::Unknown`] for
///   a digest not stored for that edge, [`RedeemRefusal::Used`] once used, and
///   [`RedeemRefusal::Expired`] at or after `expires_at` (an expired code is not marked used).
/// - [`enroll`](Self::enroll) makes the edge `Enrolled` with exactly `trails`, whatever it was
///   (a revoked edge enrolls again only this way, i.e. with a new code).
/// - [`revoke`](Self::revoke) makes it `Revoked`; there is no call that undoes a revocation.
/// - [`report`](Self::report) keeps the newest report per (edge, trail), replacing the last,
///   except that a report without `last_batch_at` or `stored_head_at` (a refused batch) keeps
///   the stored values of those two.
/// - [`seen`](Self::seen) moves `seen_at` of every report of the edge (a heartbeat of an idle
///   edge); an edge without a report is left alone.
/// - Every read sees every write that returned `Ok`, from any replica.
#[async_trait]
pub trait FleetStore: Send + Sync + std::fmt::Debug {
    /// Stores a new unused code.
    async fn issue_code(&self, code: &EnrollmentCode) -> Result<(), FleetError>;

    /// Marks the code with `digest` for `edge` used at `now` and returns it as it was issued.
    async fn redeem(
        &self,
        digest: &CodeDigest,
        edge: &str,
        now: Timestamp,
    ) -> Result<EnrollmentCode, FleetError>;

    /// Enrolls `edge` (again) for `trails`, by the admin who issued its code.
    async fn enroll(
        &self,
        edge: &str,
        trails: &[TrailId],
        at: Timestamp,
        by: &str,
    ) -> Result<(), FleetError>;

    /// Revokes `edge`. [`FleetError::UnknownEdge`] when it never enrolled.
    async fn revoke(&self, edge: &str, at: Timestamp, by: &str) -> Result<(), FleetError>;

    /// The edge, if it ever enrolled.
    async fn edge(&self, edge: &str) -> Result<Option<EdgeEntry>, FleetError>;

    /// Every edge that ever enrolled, by id.
    async fn edges(&self) -> Result<Vec<EdgeEntry>, FleetError>;

    /// Keeps `report` as the newest of its (edge, trail).
    async fn report(&self, report: &EdgeReport) -> Result<(), FleetError>;

    /// The newest report of every (edge, trail), by edge then trail.
    async fn reports(&self) -> Result<Vec<EdgeReport>, FleetError>;

    /// Records that `edge` was heard from at `at` (see the contract).
    async fn seen(&self, edge: &str, at: Timestamp) -> Result<(), FleetError>;
}

/// What [`FleetStore::redeem`] must answer for a stored `code` at `now` (shared by adapters so
/// they all answer the same): `Ok` to mark it used.
pub fn judge_redemption(code: &EnrollmentCode, now: Timestamp) -> Result<(), RedeemRefusal> {
    if code.used_at.is_some() {
        return Err(RedeemRefusal::Used);
    }
    if now >= code.expires_at {
        return Err(RedeemRefusal::Expired);
    }
    Ok(())
}
