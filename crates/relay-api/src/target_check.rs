//! What a signature checks about its target record before anything is signed (issue 20): the
//! record's stored bytes still verify (its HMAC under its key, its link to the previous record
//! and the next record's link to it), so an altered record can never collect a signature; and
//! the `SIGNATURE_REFUSED` event every refused signature leaves in `_relay`.

use axum::http::StatusCode;
use relay_domain::ports::RecordStoreExt;
use relay_domain::{ActorSource, ChainSeq, EventKind, GENESIS, Record, Subject, TrailId};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::ApiState;

fn not_intact(target: &Record, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "target_not_intact",
        format!(
            "record {} does not verify ({why}); an altered record cannot be signed. Run \
             `relay-edge verify` and follow docs/operations.md (rule: only intact records are \
             signed)",
            target.locator()
        ),
    )
}

/// Refuses (409 `target_not_intact`) when `target`'s stored bytes do not verify.
pub(crate) async fn check_intact(state: &ApiState, target: &Record) -> Result<(), ApiError> {
    let parts = state.parts();
    let ring = crate::verify::trail_key_ring(parts.secrets.as_ref(), &target.trail_id).await?;
    let Some(key) = ring.get(&target.key_id) else {
        return Err(not_intact(
            target,
            &format!("its key {} is not held by this relay", target.key_id),
        ));
    };
    if !relay_domain::checksum_of(target, key).ct_eq(&target.checksum) {
        return Err(not_intact(
            target,
            "its HMAC does not match its stored fields",
        ));
    }
    let seq = target.chain_seq.get();
    let expected_prev = match seq.checked_sub(1).filter(|&p| p >= 1) {
        None => Some(GENESIS),
        Some(p) => neighbour(state, &target.trail_id, p)
            .await?
            .map(|r| r.checksum),
    };
    if !expected_prev.is_some_and(|c| c.ct_eq(&target.prev_checksum)) {
        return Err(not_intact(
            target,
            "it does not link to the previous record",
        ));
    }
    if let Some(next) = neighbour(state, &target.trail_id, seq.saturating_add(1)).await?
        && !next.prev_checksum.ct_eq(&target.checksum)
    {
        return Err(not_intact(target, "the next record does not link to it"));
    }
    Ok(())
}

async fn neighbour(
    state: &ApiState,
    trail: &TrailId,
    seq: u64,
) -> Result<Option<Record>, ApiError> {
    let Ok(seq) = ChainSeq::new(seq) else {
        return Ok(None);
    };
    Ok(state.parts().store.get(trail, seq).await?)
}

impl ApiState {
    /// Records `SIGNATURE_REFUSED` in `_relay`: who tried to sign what, and the rule that
    /// refused it. The refusal stands whatever happens to its record; a record that cannot be
    /// written is logged and counted like every other audit write failure.
    pub(crate) async fn record_signature_refused(
        &self,
        user: &AuthUser,
        target: &Record,
        meaning: &str,
        refusal: &ApiError,
    ) {
        self.record_signatures_refused(user, &[(target, refusal.clone())], meaning)
            .await;
    }

    /// [`Self::record_signature_refused`] for several targets at once (a refused bulk
    /// signature): one `SIGNATURE_REFUSED` event each, appended to `_relay` as one group.
    pub(crate) async fn record_signatures_refused(
        &self,
        user: &AuthUser,
        refused: &[(&Record, ApiError)],
        meaning: &str,
    ) {
        let mut drafts = Vec::with_capacity(refused.len());
        for (target, refusal) in refused {
            let payload = serde_json::json!({
                "trail": target.trail_id.as_str(),
                "target_seq": target.chain_seq.get(),
                "target_checksum": target.checksum.to_hex(),
                "meaning": meaning,
                "code": refusal.code,
                "message": refusal.message,
                "role": user.account.role.as_str(),
            });
            match self.event_draft(
                TrailId::relay(),
                EventKind::signature_refused(),
                user.username().as_str(),
                ActorSource::Token,
                Subject::new(target.locator()).ok(),
                None,
                payload,
            ) {
                Ok(draft) => drafts.push(draft),
                Err(e) => {
                    tracing::error!(code = e.code, target = %target.locator(), "a refused signature could not be recorded as SIGNATURE_REFUSED");
                }
            }
        }
        if drafts.is_empty() {
            return;
        }
        if let Err(e) = self.append_group(drafts).await {
            tracing::error!(
                code = e.code,
                refused = refused.len(),
                "refused signatures could not be recorded as SIGNATURE_REFUSED"
            );
        }
    }
}
