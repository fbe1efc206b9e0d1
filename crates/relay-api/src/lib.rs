//! The relay's review API and web UI: accounts, login, electronic signatures, trail reads,
//! export and verification over HTTP (R2, R3, R4, R11.1, R11.2). Both binaries mount
//! [`router`]; the runtime adds `/healthz` and `/metrics` next to it.
//!
//! - **Attribution (R2.1).** The actor of every call is the account named by a verified HS256
//!   token (algorithm pinned by the server, key from the `SecretProvider`, `exp`, `iat`, `iss`,
//!   `aud`, `sub` required) whose session is open and not idle, re-read from the
//!   [`AccountStore`](relay_domain::ports::AccountStore) on every call. No other header is read.
//! - **Accounts (R3).** Argon2id hashes, four roles, bootstrap-then-admin registration, lockout
//!   persisted in the account store, password expiry, idle timeout, optional TOTP.
//! - **Signatures (R4).** Password re-checked, meaning and reason required, a chained
//!   `SIGNATURE` record in the signed record's own trail naming its checksum.
//! - **Audit (R3.4).** Reads, exports, verifications, registrations, account changes and
//!   lockouts are events in `_relay`, written before the answer; if the event cannot be
//!   written, the call is refused (503), never carried out unrecorded.
//!
//! It holds no provider code and reads no configuration: binaries pass an [`ApiConfig`].

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod access_review;
mod accounts;
mod auth;
mod authz;
mod bulk_sign;
mod change_settings;
mod changes;
mod client;
mod client_limit;
mod config;
mod error;
mod events;
mod exports;
mod extract;
mod facets;
pub mod fleet;
mod four_eyes;
mod four_eyes_apply;
mod identity;
mod ingest;
mod login;
mod openapi;
mod password_gate;
mod password_policy;
mod review;
mod session_audit;
mod signatures;
mod state;
mod target_check;
mod totp_seal;
mod ui;
mod verify;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};

pub use access_review::{AccessReviewView, CompleteReviewRequest, ReviewCompleted};
pub use auth::{AuthUser, Claims, Password, hash_password_blocking, verify_password_blocking};
pub use bulk_sign::{
    BatchRefusedBody, BatchSignRequest, BatchSignResponse, BatchTargetResult, MAX_BATCH_TARGETS,
};
pub use changes::{Applies, ChangeTargets, ChangeView};
pub use config::{
    ApiConfig, CLIENT_FAILURE_WINDOW_CEILING, DEFAULT_REVIEW_WARM_BUDGET_RECORDS, ExportRetention,
    GENERIC_ACCOUNT_NAMES, InvalidSetting, MIN_PASSWORD_CHARS_CEILING, MIN_PASSWORD_CHARS_FLOOR,
    PASSWORD_HISTORY_CEILING, SHARED_ACCOUNT_MARKERS,
};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use events::{EventPage, EventView, Manifestation, TrailView};
pub use exports::{
    SealedExportBody, SealedExportError, SealedExportJob, SealedExportView, SealedExporter,
    SealedPackage,
};
pub use ingest::{
    EDGE_HEAD_HEADER, EDGE_HEADER, EDGE_VERSION_HEADER, EnrollRequest, EnrollResponse,
    IngestConfig, IngestMetrics, IngestParts, IngestRequest, IngestResponse, IngestState,
    KeyVersion, MAX_BATCH_RECORDS, RegisterKeysRequest, RegisterKeysResponse, SENT_AT_HEADER,
    WitnessedHead, WitnessedHeads, ingest_router, ingest_token_secret, token_text,
    trail_key_secret,
};
pub use login::AccountView;
pub use openapi::{ApiDoc, openapi_json};
pub use signatures::{Meaning, SignResponse};
pub use state::{ApiMetrics, ApiParts, ApiStartError, ApiState, TOKEN_SIGNING_SECRET};
pub use verify::{
    AppendOnlyView, TrailVerdict, TrailVerdictView, VerifyReport, VerifyResponse, VerifyRunError,
    forwarded_key_ring, trail_key_ring, verify_trails,
};

/// How often an event the API appends is re-chained when another replica appended to the same
/// trail first ([`relay_domain::AppendService::append_rechaining`]).
pub const APPEND_RETRIES: u32 = 8;

/// The actor name of events the relay process causes itself (as in the runtime's journal).
pub const RELAY_ACTOR: &str = "relay";

/// The API under `/api/v1` and the UI under `/` and `/ui/*`.
pub fn router(state: ApiState) -> Router {
    let limit = state.config().max_body_bytes;
    let api = Router::new()
        .route("/auth/register", post(login::register))
        .route("/auth/setup", get(login::setup))
        .route("/auth/login", post(login::login))
        .route("/auth/password", post(login::change_password))
        .route("/auth/logout", post(login::logout))
        .route("/auth/me", get(login::me))
        .route("/auth/totp", post(login::enrol_totp))
        .route(
            "/accounts",
            get(accounts::list_accounts).post(accounts::create),
        )
        .route("/accounts/{username}", patch(accounts::patch))
        .route("/access-review", get(access_review::review))
        .route("/access-review/complete", post(access_review::complete))
        .route("/access-review/export", post(access_review::export))
        .route("/trails", get(events::trails))
        .route("/trails/{trail}/facets", get(facets::facets))
        .route("/events", get(events::events))
        .route("/events/{trail}/{seq}", get(events::event))
        .route("/export", get(events::export))
        .route("/exports", post(exports::create))
        .route("/exports/{package}", get(exports::download))
        .route("/signatures", post(signatures::sign))
        .route("/signatures/batch", post(bulk_sign::sign_batch))
        .route("/changes", get(changes::list).post(changes::propose))
        .route("/changes/settings", get(change_settings::settings))
        .route("/changes/{id}/approve", post(changes::approve))
        .route("/changes/{id}/reject", post(changes::reject))
        .route("/verify", post(verify::verify))
        .route("/fleet", get(fleet::list))
        .route("/fleet/codes", post(fleet::issue_code))
        .route("/fleet/edges/{edge}/revoke", post(fleet::revoke))
        .route("/openapi.json", get(openapi_document))
        .fallback(api_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session_audit::record_denials,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state);
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/app.css", get(ui::app_css))
        .route("/ui/access_review.js", get(ui::access_review_js))
        .route("/ui/fleet.js", get(ui::fleet_js))
        .route("/ui/records.js", get(ui::records_js))
        .route("/ui/records_lib.js", get(ui::records_lib_js))
        .route("/ui/change_form.js", get(ui::change_form_js))
        .route("/ui/bulk_sign.js", get(ui::bulk_sign_js))
}

async fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

async fn openapi_document(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    match openapi::served_openapi_json(state.config().server_of_record) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            ApiError::internal("the OpenAPI document could not be rendered", &e).into_response()
        }
    }
}
