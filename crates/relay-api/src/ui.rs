//! The review UI: static files embedded in the binary, no build step (R11.1); the record list
//! is plain ES modules (`records.js`, `records_lib.js`, `bulk_sign.js`; ADR 0005).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");
const ACCESS_REVIEW_JS: &str = include_str!("../ui/access_review.js");
const FLEET_JS: &str = include_str!("../ui/fleet.js");
const RECORDS_JS: &str = include_str!("../ui/records.js");
const RECORDS_LIB_JS: &str = include_str!("../ui/records_lib.js");
const CHANGE_FORM_JS: &str = include_str!("../ui/change_form.js");
const BULK_SIGN_JS: &str = include_str!("../ui/bulk_sign.js");

/// Scripts and styles only from the relay itself; no framing; no inline script.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub(crate) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub(crate) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

pub(crate) async fn access_review_js() -> Response {
    asset(ACCESS_REVIEW_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn fleet_js() -> Response {
    asset(FLEET_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn records_js() -> Response {
    asset(RECORDS_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn records_lib_js() -> Response {
    asset(RECORDS_LIB_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn change_form_js() -> Response {
    asset(CHANGE_FORM_JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn bulk_sign_js() -> Response {
    asset(BULK_SIGN_JS, "text/javascript; charset=utf-8")
}
