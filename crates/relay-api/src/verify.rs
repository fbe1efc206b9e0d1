//! `POST /api/v1/verify`: verifies trails against their keys and notary anchors (any role);
//! logged as `ACCESS`. [`verify_trails`] is the one whole-store verification: the API, and
//! the binaries' `verify` commands (through `relay_runtime::verify`), all call it, so they
//! check every trail with the same key ring and cannot disagree.

use axum::Json;
use axum::extract::State;
use std::collections::BTreeMap;

use relay_domain::anchor_history::check_anchor_history;
use relay_domain::export::{SealKey, SealPublicKey};
use relay_domain::ports::{
    AppendOnlyEnforcement, Notary, NotaryError, RecordStore, RecordStoreError, SecretError,
    SecretName, SecretProvider, SecretProviderExt,
};
use relay_domain::verify::{
    RecordedAnchor, StoredVerdict, VerifyFailure, VerifyFailureReason, account_for_anchors,
    recorded_anchors, verify_stored_trail_on,
};
use relay_domain::{ChainSeq, EventKind, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::events::parse_trail;
use crate::extract::ApiJson;
use crate::state::ApiState;

/// What to verify.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// One trail; absent: every trail (including ones only the notary still knows).
    pub trail_id: Option<String>,
}

/// The verdict on one trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailVerdictView {
    /// The trail.
    pub trail_id: String,
    /// Whether every record and anchor holds.
    pub ok: bool,
    /// Records checked (when it holds).
    pub records: Option<u64>,
    /// The verified head seq.
    pub head_seq: Option<u64>,
    /// The verified head checksum.
    pub head_checksum: Option<String>,
    /// Notary anchors checked.
    pub anchors_checked: Option<usize>,
    /// The first bad seq (when broken).
    pub first_bad_seq: Option<u64>,
    /// Why it is broken.
    pub reason: Option<String>,
}

/// Whether the record store still enforces append-only (its triggers and grants).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendOnlyView {
    /// Whether every control is in place.
    pub holds: bool,
    /// How the store enforces it.
    pub mechanism: String,
    /// Controls found in place.
    pub present: Vec<String>,
    /// Controls missing, disabled or altered, by name.
    pub missing: Vec<String>,
}

/// The verdicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether every trail holds and the store still enforces append-only.
    pub all_hold: bool,
    /// One verdict per trail.
    pub verdicts: Vec<TrailVerdictView>,
    /// The record store's append-only enforcement, as found now.
    pub append_only: AppendOnlyView,
}

/// Verifies one or every trail.
#[utoipa::path(post, path = "/api/v1/verify", tag = "records", request_body = VerifyRequest,
    responses(
        (status = 200, description = "The verdicts (a broken trail is a verdict, not an error)", body = VerifyResponse),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such trail", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn verify(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let only = req.trail_id.as_deref().map(parse_trail).transpose()?;
    let parts = state.parts();
    // The same function and key rings as `relay-server verify` / `relay-edge verify`: a
    // forwarded trail is checked with its edge's keys, never with this process's own.
    let report = verify_trails(
        parts.store.as_ref(),
        parts.secrets.as_ref(),
        parts.notary.as_ref(),
        only.as_ref(),
        |_, _| {},
    )
    .await
    .map_err(|e| match e {
        VerifyRunError::Store(e) => ApiError::from(e),
        VerifyRunError::Secrets(e) => ApiError::from(e),
        VerifyRunError::Notary(e) => ApiError::from(e),
        VerifyRunError::NoSuchTrail(t) => ApiError::not_found(format!("no trail {t}")),
    })?;
    let enforcement = report.append_only;
    let verdicts: Vec<TrailVerdictView> = report
        .verdicts
        .into_iter()
        .map(|v| match v.verdict {
            Ok(s) => TrailVerdictView {
                trail_id: v.trail_id.to_string(),
                ok: true,
                records: Some(s.records),
                head_seq: s.head.map(|(seq, _)| seq.get()),
                head_checksum: s.head.map(|(_, c)| c.to_hex()),
                anchors_checked: Some(s.anchors_checked),
                first_bad_seq: None,
                reason: None,
            },
            Err(f) => TrailVerdictView {
                trail_id: v.trail_id.to_string(),
                ok: false,
                records: None,
                head_seq: None,
                head_checksum: None,
                anchors_checked: None,
                first_bad_seq: Some(f.seq.get()),
                reason: Some(f.reason.to_string()),
            },
        })
        .collect();
    let all_hold = verdicts.iter().all(|v| v.ok) && enforcement.holds();
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "verify",
                "trail": only.as_ref().map(TrailId::as_str),
                "all_hold": all_hold,
                "append_only_missing": enforcement.missing,
                "trails": verdicts.iter().map(|v| serde_json::json!({"trail": v.trail_id, "ok": v.ok, "first_bad_seq": v.first_bad_seq})).collect::<Vec<_>>(),
            }),
        )
        .await?;
    Ok(Json(VerifyResponse {
        all_hold,
        verdicts,
        append_only: AppendOnlyView {
            holds: enforcement.holds(),
            mechanism: enforcement.mechanism,
            present: enforcement.present,
            missing: enforcement.missing,
        },
    }))
}

/// The verdict on one trail.
#[derive(Debug)]
pub struct TrailVerdict {
    /// The trail.
    pub trail_id: TrailId,
    /// Whether it holds, and if not, the first bad seq and why.
    pub verdict: StoredVerdict,
    /// What the anchors' signed checkpoints and consistency links proved (docs/spec/checkpoint.md),
    /// when the chain held far enough for them to be checked.
    pub anchor_history: Option<relay_domain::anchor_history::AnchorHistory>,
}

/// Why verification could not run at all (as opposed to finding a broken trail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyRunError {
    /// The record store could not be read.
    #[error("cannot read the record store")]
    Store(#[from] RecordStoreError),
    /// The trail keys could not be loaded.
    #[error("cannot load the trail keys")]
    Secrets(#[from] SecretError),
    /// The notary's anchors could not be read.
    #[error("cannot read the notary anchors")]
    Notary(#[from] NotaryError),
    /// The trail asked for does not exist.
    #[error("trail {0} does not exist in this store")]
    NoSuchTrail(TrailId),
}

/// The key ring of a trail forwarded to a server of record: its edge's keys
/// (`trail-hmac.<trail>`), or `None` when the trail is the process's own (checked with its
/// own `trail-hmac` keys).
pub async fn forwarded_key_ring(
    secrets: &dyn SecretProvider,
    trail_id: &TrailId,
) -> Result<Option<relay_domain::KeyRing>, SecretError> {
    match crate::ingest::trail_key_secret(trail_id) {
        Ok(name) if !trail_id.is_relay() => match secrets.key_ring(&name).await {
            Ok(ring) => Ok(Some(ring)),
            Err(SecretError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    }
}

/// The keys `trail_id` is checked with: its edge's ([`forwarded_key_ring`]) on a server of
/// record, else the process's own `trail-hmac` keys.
pub async fn trail_key_ring(
    secrets: &dyn SecretProvider,
    trail_id: &TrailId,
) -> Result<relay_domain::KeyRing, SecretError> {
    match forwarded_key_ring(secrets, trail_id).await? {
        Some(ring) => Ok(ring),
        None => secrets.key_ring(&SecretName::trail_hmac()).await,
    }
}

/// What a whole-store verification found.
#[derive(Debug)]
pub struct VerifyReport {
    /// One verdict per trail.
    pub verdicts: Vec<TrailVerdict>,
    /// Whether the store still enforces append-only, as read from it during the verification.
    pub append_only: AppendOnlyEnforcement,
}

impl VerifyReport {
    /// Whether every trail holds and append-only enforcement is in place.
    pub fn all_hold(&self) -> bool {
        self.append_only.holds() && self.verdicts.iter().all(|v| v.verdict.is_ok())
    }
}

/// Every notarization recorded in `_relay` (`ANCHORED` events), by trail. An `ANCHORED` record
/// whose payload cannot be read makes `_relay`'s verdict broken (see [`verify_trails`]).
async fn anchors_recorded_in_relay(
    store: &dyn RecordStore,
) -> Result<
    (
        BTreeMap<TrailId, Vec<(ChainSeq, RecordedAnchor)>>,
        Vec<ChainSeq>,
    ),
    RecordStoreError,
> {
    const PAGE: usize = 4096;
    let relay = TrailId::relay();
    let kind = EventKind::anchored();
    let mut by_trail: BTreeMap<TrailId, Vec<(ChainSeq, RecordedAnchor)>> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut after = 0u64;
    loop {
        let page = store.read_kind(&relay, &kind, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.chain_seq.get();
        let (ok, bad) = recorded_anchors(&page);
        for (seq, a) in ok {
            by_trail.entry(a.trail.clone()).or_default().push((seq, a));
        }
        unreadable.extend(bad);
        if page.len() < PAGE {
            break;
        }
    }
    Ok((by_trail, unreadable))
}

/// Verifies `only` (or every trail, including ones only the notary or `_relay`'s record of
/// notarizations still knows), each with its key ring ([`trail_key_ring`]), calling
/// `progress(trail, records_checked)` as it goes.
///
/// Besides each trail's chain, its notary anchors' checksums and Merkle roots, it checks that
/// every anchor `_relay` recorded (`ANCHORED`) is still in the notary as recorded (a trail whose
/// chain holds but whose recorded anchors are gone is broken, naming them), and reads the
/// store's append-only enforcement ([`VerifyReport::append_only`]).
pub async fn verify_trails(
    store: &dyn RecordStore,
    secrets: &dyn SecretProvider,
    notary: &dyn Notary,
    only: Option<&TrailId>,
    mut progress: impl FnMut(&TrailId, u64) + Send,
) -> Result<VerifyReport, VerifyRunError> {
    let keys = secrets.key_ring(&SecretName::trail_hmac()).await?;
    let seal = seal_public_key(secrets).await?;
    let append_only = store.append_only_enforcement().await?;
    let (mut recorded, unreadable) = anchors_recorded_in_relay(store).await?;
    let mut trails: Vec<TrailId> = store.trails().await?.into_iter().map(|(t, _)| t).collect();
    // A trail deleted from the store entirely is still known to the notary, or to `_relay`'s
    // record of its anchors: verify it too, so its anchors report the truncation instead of
    // the trail silently vanishing.
    let recorded_trails: Vec<TrailId> = recorded.keys().cloned().collect();
    for anchored in notary
        .anchored_trails()
        .await?
        .into_iter()
        .chain(recorded_trails)
    {
        if !trails.contains(&anchored) {
            trails.push(anchored);
        }
    }
    trails.sort();
    if let Some(only) = only {
        if !trails.contains(only) {
            return Err(VerifyRunError::NoSuchTrail(only.clone()));
        }
        trails = vec![only.clone()];
    }
    let mut out = Vec::with_capacity(trails.len());
    for trail_id in trails {
        let anchors = notary.anchors(&trail_id).await?;
        let forwarded = forwarded_key_ring(secrets, &trail_id).await?;
        let keys = forwarded.as_ref().unwrap_or(&keys);
        let mut verdict =
            verify_stored_trail_on(store, keys, &trail_id, &anchors, verify_threads(), |n| {
                progress(&trail_id, n)
            })
            .await?;
        // The chain's own failure comes first; a chain that holds must still account for every
        // notarization `_relay` recorded.
        if verdict.is_ok() {
            let unaccounted =
                account_for_anchors(&recorded.remove(&trail_id).unwrap_or_default(), &anchors);
            if let Some(first) = unaccounted.first() {
                verdict = Err(VerifyFailure {
                    trail_id: trail_id.clone(),
                    seq: first.recorded.seq,
                    reason: VerifyFailureReason::AnchorsUnaccounted {
                        anchors: unaccounted,
                    },
                });
            }
        }
        // The anchors must agree with each other: signed checkpoints, consistency links, no
        // fork (docs/spec/checkpoint.md).
        let mut anchor_history = None;
        if verdict.is_ok() {
            let history = check_anchor_history(&trail_id, &anchors, seal.as_ref());
            if let Some(first) = history.findings.first() {
                verdict = Err(VerifyFailure {
                    trail_id: trail_id.clone(),
                    seq: first.seq,
                    reason: VerifyFailureReason::AnchorHistory {
                        findings: history.findings.clone(),
                    },
                });
            }
            anchor_history = Some(history);
        }
        if trail_id.is_relay()
            && verdict.is_ok()
            && let Some(seq) = unreadable.first()
        {
            verdict = Err(VerifyFailure {
                trail_id: trail_id.clone(),
                seq: *seq,
                reason: VerifyFailureReason::UnreadableAnchorRecord,
            });
        }
        out.push(TrailVerdict {
            trail_id,
            verdict,
            anchor_history,
        });
    }
    Ok(VerifyReport {
        verdicts: out,
        append_only,
    })
}

/// The public half of the seal key that signs this relay's checkpoints; `None` when the relay
/// has none yet (it never signed a checkpoint, so none can be checked).
async fn seal_public_key(
    secrets: &dyn SecretProvider,
) -> Result<Option<SealPublicKey>, VerifyRunError> {
    match secrets.current(&SecretName::export_seal()).await {
        Ok(seed) => Ok(SealKey::from_seed(seed.expose()).ok().map(|k| k.public())),
        Err(SecretError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How many threads recompute HMACs during a verification: the machine's cores (issue 23),
/// 1 when they cannot be read.
pub(crate) fn verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
