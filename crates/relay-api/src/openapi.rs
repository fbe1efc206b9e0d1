//! The OpenAPI document, generated from the handlers and types (`/api/v1/openapi.json`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The review API's OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "GIMS Compliance Relay review API",
        description = "Accounts, login, electronic signatures, trail reads, export and verification. \
Errors are `{\"error\": {\"code\", \"message\"}}`. Authenticate with `Authorization: Bearer <token>` \
from `/api/v1/auth/login`; no other header ever names the caller."
    ),
    paths(
        crate::login::register,
        crate::login::login,
        crate::login::change_password,
        crate::login::logout,
        crate::login::me,
        crate::login::enrol_totp,
        crate::accounts::list_accounts,
        crate::accounts::create,
        crate::accounts::patch,
        crate::events::trails,
        crate::events::events,
        crate::events::event,
        crate::events::export,
        crate::exports::create,
        crate::exports::download,
        crate::signatures::sign,
        crate::changes::propose,
        crate::changes::list,
        crate::changes::approve,
        crate::changes::reject,
        crate::verify::verify,
        crate::ingest::ingest,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login, passwords, TOTP"),
        (name = "accounts", description = "Account management (admin)"),
        (name = "records", description = "Trails, records, export, verification"),
        (name = "signatures", description = "Electronic signatures (reviewers)"),
        (name = "changes", description = "Four-eyes configuration changes (admins)"),
        (name = "ingest", description = "Edge -> server forwarding (service credential per edge)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON text.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_json()
}
