//! Session audit (issue 18, 21 CFR 11.10(d), (e)): the session events the login, logout and
//! change handlers do not write themselves.
//!
//! - `SESSION_EXPIRED` in `_relay` when a session ends without a logout: its token is presented
//!   after the idle timeout or after its expiry, or an idle session is swept when another one
//!   opens. Each session is recorded once (it is closed when recorded).
//! - `ACCESS_DENIED` in `_relay` for every 403 the API answers, with the error code, the method
//!   and path, and the caller as far as a valid token names one.
//!
//! Both carry the username, the role at the time, the session id, the client address and the
//! user agent. A refusal stands whatever happens to its record; a record that cannot be written
//! is logged and counted like every other audit write failure.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use relay_domain::ports::Username;
use relay_domain::{ActorSource, EventKind, Subject, TrailId};

use crate::client::ClientInfo;
use crate::state::ApiState;

/// The code of an error answer, attached to the response by `ApiError::into_response` so the
/// audit layer can name it without parsing the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

/// How a session ended without a logout.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expiry {
    /// Its token was presented after the idle timeout.
    Idle,
    /// Its token was presented after its expiry (`exp`).
    TokenExpired,
    /// It was idle and forgotten when another session opened.
    Swept,
}

impl Expiry {
    fn as_str(self) -> &'static str {
        match self {
            Expiry::Idle => "idle_timeout",
            Expiry::TokenExpired => "token_expired",
            Expiry::Swept => "swept_idle",
        }
    }
}

impl ApiState {
    /// Records `SESSION_EXPIRED` for session `session` of `username`.
    pub(crate) async fn record_session_expired(
        &self,
        username: &Username,
        session: &str,
        why: Expiry,
        client: &ClientInfo,
    ) {
        let role = match self.parts().accounts.get(username).await {
            Ok(Some(a)) => Some(a.role.as_str()),
            _ => None,
        };
        let mut payload = client.json();
        payload["username"] = serde_json::json!(username.as_str());
        payload["role"] = serde_json::json!(role);
        payload["session"] = serde_json::json!(session);
        payload["reason"] = serde_json::json!(why.as_str());
        let recorded = self
            .append_event(
                TrailId::relay(),
                EventKind::session_expired(),
                crate::RELAY_ACTOR,
                ActorSource::System,
                Subject::new(format!("account:{username}")).ok(),
                None,
                payload,
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(code = e.code, username = %username, "an expired session could not be recorded as SESSION_EXPIRED");
        }
    }
}

/// The layer that records every 403 of the API as `ACCESS_DENIED`.
pub(crate) async fn record_denials(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let client = ClientInfo::of(request.headers(), request.extensions());
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let method = request.method().to_string();
    // The layer sits on the router nested under `/api/v1`, which sees the path without it.
    let path: String = format!("/api/v1{}", request.uri().path())
        .chars()
        .take(300)
        .collect();
    let response = next.run(request).await;
    if response.status() != StatusCode::FORBIDDEN {
        return response;
    }
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("forbidden", |c| c.0);
    // Who, as far as a valid token says (its session may be closed or idle: the name is still
    // the token's, verified by its signature).
    let mut caller = None;
    if let Some(token) = token
        && let Ok(now) = state.now().await
        && let Ok(claims) = state.decode_token(&token, now)
        && let Ok(name) = Username::new(claims.sub)
    {
        let role = match state.parts().accounts.get(&name).await {
            Ok(Some(a)) => Some(a.role.as_str()),
            _ => None,
        };
        caller = Some((name, role, claims.jti));
    }
    let mut payload = client.json();
    payload["username"] = serde_json::json!(caller.as_ref().map(|c| c.0.as_str()));
    payload["role"] = serde_json::json!(caller.as_ref().and_then(|c| c.1));
    payload["session"] = serde_json::json!(caller.as_ref().map(|c| c.2.as_str()));
    payload["method"] = serde_json::json!(method);
    payload["path"] = serde_json::json!(path);
    payload["code"] = serde_json::json!(code);
    let (actor, source) = match &caller {
        Some((name, _, _)) => (name.as_str().to_owned(), ActorSource::Token),
        None => (crate::RELAY_ACTOR.to_owned(), ActorSource::System),
    };
    let subject = caller
        .as_ref()
        .and_then(|c| Subject::new(format!("account:{}", c.0)).ok());
    if let Err(e) = state
        .append_event(
            TrailId::relay(),
            EventKind::access_denied(),
            &actor,
            source,
            subject,
            None,
            payload,
        )
        .await
    {
        tracing::error!(
            code = e.code,
            "a 403 answer could not be recorded as ACCESS_DENIED"
        );
    }
    response
}
