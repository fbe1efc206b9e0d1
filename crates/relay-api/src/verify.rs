//! `POST /api/v1/verify`: verifies trails against their keys and notary anchors (any role);
//! logged as `ACCESS`.

use axum::Json;
use axum::extract::State;
use relay_domain::TrailId;
use relay_domain::ports::{SecretName, SecretProviderExt};
use relay_domain::verify::verify_stored_trail;
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

/// The verdicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether every trail holds.
    pub all_hold: bool,
    /// One verdict per trail.
    pub verdicts: Vec<TrailVerdictView>,
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
    let keys = parts.secrets.key_ring(&SecretName::trail_hmac()).await?;
    let mut trails: Vec<TrailId> = parts
        .store
        .trails()
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for anchored in parts.notary.anchored_trails().await? {
        if !trails.contains(&anchored) {
            trails.push(anchored);
        }
    }
    trails.sort();
    if let Some(only) = &only {
        if !trails.contains(only) {
            return Err(ApiError::not_found(format!("no trail {only}")));
        }
        trails = vec![only.clone()];
    }
    let mut verdicts = Vec::with_capacity(trails.len());
    for trail in trails {
        let anchors = parts.notary.anchors(&trail).await?;
        let verdict =
            verify_stored_trail(parts.store.as_ref(), &keys, &trail, &anchors, |_| {}).await?;
        verdicts.push(match verdict {
            Ok(s) => TrailVerdictView {
                trail_id: trail.to_string(),
                ok: true,
                records: Some(s.records),
                head_seq: s.head.map(|(seq, _)| seq.get()),
                head_checksum: s.head.map(|(_, c)| c.to_hex()),
                anchors_checked: Some(s.anchors_checked),
                first_bad_seq: None,
                reason: None,
            },
            Err(f) => TrailVerdictView {
                trail_id: trail.to_string(),
                ok: false,
                records: None,
                head_seq: None,
                head_checksum: None,
                anchors_checked: None,
                first_bad_seq: Some(f.seq.get()),
                reason: Some(f.reason.to_string()),
            },
        });
    }
    let all_hold = verdicts.iter().all(|v| v.ok);
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "verify",
                "trail": only.as_ref().map(TrailId::as_str),
                "all_hold": all_hold,
                "trails": verdicts.iter().map(|v| serde_json::json!({"trail": v.trail_id, "ok": v.ok, "first_bad_seq": v.first_bad_seq})).collect::<Vec<_>>(),
            }),
        )
        .await?;
    Ok(Json(VerifyResponse { all_hold, verdicts }))
}
