//! The OpenAPI document, generated from the handlers and types (`/api/v1/openapi.json`).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
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
        crate::login::setup,
        crate::login::login,
        crate::login::change_password,
        crate::login::logout,
        crate::login::me,
        crate::login::enrol_totp,
        crate::accounts::list_accounts,
        crate::accounts::create,
        crate::accounts::patch,
        crate::access_review::review,
        crate::access_review::complete,
        crate::access_review::export,
        crate::events::trails,
        crate::facets::facets,
        crate::events::events,
        crate::events::event,
        crate::events::export,
        crate::exports::create,
        crate::exports::download,
        crate::signatures::sign,
        crate::bulk_sign::sign_batch,
        crate::changes::propose,
        crate::changes::list,
        crate::change_settings::settings,
        crate::changes::approve,
        crate::changes::reject,
        crate::verify::verify,
        crate::ingest::ingest,
        crate::ingest::witnessed_heads,
        crate::ingest::enroll,
        crate::ingest::register_keys,
        crate::fleet::list,
        crate::fleet::issue_code,
        crate::fleet::revoke,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth, &ExtractorErrors),
    tags(
        (name = "auth", description = "Registration, login, passwords, TOTP"),
        (name = "fleet", description = "Enrollment codes, revocation, every edge's health"),
        (name = "accounts", description = "Account management (admin) and the periodic access review (admin, auditor)"),
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

/// The answers the request extractors give before a handler runs (`crate::extract`), which the
/// handlers' own annotations do not list: every operation with a JSON body can answer 400
/// (malformed JSON), 413 (body over the limit), 415 (not `application/json`) and 422 (JSON of
/// the wrong shape); every operation with path or query parameters 400 (a parameter of the
/// wrong type). An answer an annotation already documents keeps its own description.
struct ExtractorErrors;

impl Modify for ExtractorErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_extractor_errors(operation);
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add_extractor_errors(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    if operation.request_body.is_some() {
        add("400", "Malformed request: the body is not JSON");
        add("413", "The body is larger than the API accepts");
        add("415", "The body is not `Content-Type: application/json`");
        add("422", "The body is JSON of the wrong shape");
    }
    if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add(
            "400",
            "Malformed request: a path or query parameter is invalid",
        );
    }
    let bearer_only = operation.security.as_ref().is_some_and(|requirements| {
        let text = serde_json::to_string(requirements).unwrap_or_default();
        text.contains("bearer") && !text.contains("{}")
    });
    if bearer_only && operation.operation_id.as_deref() != Some("logout") {
        // Every authenticated operation but logout refuses a session on a temporary password.
        const TEMPORARY: &str = "`password_change_required`: the caller's password was set by \
            an administrator and must be changed (`POST /api/v1/auth/password`) first. Every 403 \
            is recorded as `ACCESS_DENIED` in `_relay`";
        match operation.responses.responses.get_mut("403") {
            Some(RefOr::T(existing)) => {
                existing.description = format!("{}; or {TEMPORARY}", existing.description);
            }
            _ => {
                operation.responses.responses.insert(
                    "403".into(),
                    error_response(&format!("Forbidden: {TEMPORARY}")),
                );
            }
        }
    }
}

/// The path of the ingest operation, which only the server of record serves.
const INGEST_PATH: &str = "/api/v1/ingest";

/// The document as JSON text, with every operation (as the server of record serves it).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_json()
}

/// The document a relay serves at `/api/v1/openapi.json`: an edge does not mount
/// `POST /api/v1/ingest` nor `GET /api/v1/ingest/heads` (only relay-server does), so its
/// document leaves them out.
pub(crate) fn served_openapi_json(server_of_record: bool) -> Result<String, serde_json::Error> {
    let mut doc = ApiDoc::openapi();
    if !server_of_record {
        doc.paths
            .paths
            .retain(|path, _| !path.starts_with(INGEST_PATH));
    }
    doc.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    // REQ: R11.2
    #[test]
    fn every_operation_documents_what_its_extractors_answer() {
        let doc = document(&openapi_json().unwrap());
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = &op["responses"];
                if op.get("requestBody").is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(
                            responses[status]["content"]["application/json"].is_object(),
                            "{method} {path} does not document {status}"
                        );
                    }
                }
                if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
                    assert!(responses["400"].is_object(), "{method} {path} lacks 400");
                }
            }
        }
        // A handler's own description of a status is kept.
        let login = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"];
        assert!(login["401"]["description"].is_string());
    }

    #[test]
    fn only_the_server_of_record_documents_ingest() {
        let edge = document(&served_openapi_json(false).unwrap());
        assert!(edge["paths"].get(INGEST_PATH).is_none());
        assert!(edge["paths"]["/api/v1/auth/login"].is_object());
        let server = document(&served_openapi_json(true).unwrap());
        assert!(server["paths"][INGEST_PATH]["post"].is_object());
    }
}
