//! The bearer token parser of the review API (relay-api `auth.rs`: the `Authorization` header,
//! then HS256 JWT decoding and the claim checks), through the real router on `GET
//! /api/v1/auth/me`, with one administrator `ada` logged in.
//!
//! Input: the first byte picks the mode, the rest is a template in which `$TOKEN`, `$JTI`, `$KID`,
//! `$SUB`, `$IAT` and `$EXP` stand for ada's real token, its session id, the signing key's id,
//! `ada`, now and an hour from now (so seeds can hold valid tokens, which change every run).
//! - even: the rest is the `Authorization` header value, sent as it is;
//! - odd: the rest is a JWT header and claims JSON (split at `relay_fuzz::FILE_SEPARATOR`),
//!   base64url-encoded and HMAC-SHA256 signed with the server's real key, i.e. what a holder of
//!   the key could forge; the claims checks must still hold.
//!
//! Properties: never a 5xx; a 200 only for a token whose signed part is ada's real one (even
//! mode), or whose signed claims name ada's open session with the pinned algorithm, key id,
//! issuer and audience (odd mode).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use relay_api::{ApiConfig, ApiMetrics, ApiParts, ApiState, TOKEN_SIGNING_SECRET};
use relay_domain::memory::{
    InMemoryAccountStore, InMemoryNotary, InMemoryRecordStore, InMemorySecretProvider, ManualClock,
};
use relay_domain::ports::{SecretName, SecretProvider};
use relay_domain::{AppendService, Device, Timestamp};
use relay_fuzz::{call, debug, runtime, spec_key, split_files};
use serde_json::{Value, json};

struct Fixture {
    app: axum::Router,
    token: String,
    jti: String,
    kid: String,
    key: Vec<u8>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| runtime().block_on(build()))
}

async fn build() -> Fixture {
    let store = Arc::new(InMemoryRecordStore::new());
    let now = Timestamp::from_unix_micros(i64::try_from(now_secs()).unwrap_or(0) * 1_000_000)
        .expect("the clock is past 1970");
    let clock = Arc::new(ManualClock::new(now));
    let mut counter = 0u8;
    let secrets = Arc::new(InMemorySecretProvider::with_seed_source(Box::new(
        move || {
            counter = counter.wrapping_add(1);
            [counter; 32]
        },
    )));
    let mut config = ApiConfig::new(Device::new("fuzz-ws").expect("valid"));
    config.session_idle_timeout = Duration::from_secs(7 * 24 * 3600);
    let state = ApiState::new(ApiParts {
        appender: Arc::new(AppendService::new(store.clone(), clock, spec_key())),
        store,
        accounts: Arc::new(InMemoryAccountStore::new()),
        secrets: secrets.clone(),
        notary: Arc::new(InMemoryNotary::new()),
        metrics: ApiMetrics::default(),
        config,
    })
    .await
    .expect("the API state builds");
    let app = relay_api::router(state);
    let post = |uri: &str, body: Value| {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("valid request")
    };
    let (status, body) = call(
        &app,
        post(
            "/api/v1/auth/register",
            json!({"username": "ada", "full_name": "Ada Admin", "password": "fuzzing password 1", "role": "admin"}),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = call(
        &app,
        post(
            "/api/v1/auth/login",
            json!({"username": "ada", "password": "fuzzing password 1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let login: Value = serde_json::from_slice(&body).expect("login answers JSON");
    let token = login["token"].as_str().expect("a token").to_owned();
    let claims = decode_segment(&token, 1).expect("the issued token has claims");
    let jti = claims["jti"].as_str().expect("a jti").to_owned();
    let secret = secrets
        .current(&SecretName::new(TOKEN_SIGNING_SECRET).expect("valid"))
        .await
        .expect("the token key exists");
    Fixture {
        app,
        token,
        jti,
        kid: secret.id().as_str().to_owned(),
        key: secret.expose().to_vec(),
    }
}

fn decode_segment(token: &str, i: usize) -> Option<Value> {
    let seg = token.split('.').nth(i)?;
    serde_json::from_slice(&B64.decode(seg).ok()?).ok()
}

fn substitute(f: &Fixture, template: &[u8]) -> Vec<u8> {
    let now = now_secs();
    let mut text = template.to_vec();
    for (from, to) in [
        ("$TOKEN", f.token.clone()),
        ("$JTI", f.jti.clone()),
        ("$KID", f.kid.clone()),
        ("$SUB", "ada".to_owned()),
        ("$IAT", now.to_string()),
        ("$EXP", (now + 3600).to_string()),
    ] {
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text.as_slice();
        while let Some(at) = rest.windows(from.len()).position(|w| w == from.as_bytes()) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(to.as_bytes());
            rest = &rest[at + from.len()..];
        }
        out.extend_from_slice(rest);
        text = out;
    }
    text
}

fn sign(key: &[u8], header: &[u8], claims: &[u8]) -> String {
    let msg = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(msg.as_bytes());
    format!("{msg}.{}", B64.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let template = substitute(f, rest);
    let (authorization, signed) = if mode % 2 == 0 {
        (template, None)
    } else {
        let parts = split_files(&template);
        let header = parts.first().copied().unwrap_or_default();
        let claims = parts.get(1).copied().unwrap_or_default();
        let token = sign(&f.key, header, claims);
        (
            format!("Bearer {token}").into_bytes(),
            Some((header.to_vec(), claims.to_vec())),
        )
    };
    let Ok(value) = HeaderValue::from_bytes(&authorization) else {
        return;
    };
    let request = Request::get("/api/v1/auth/me")
        .header("authorization", value)
        .body(Body::empty())
        .expect("valid request");
    let (status, body) = runtime().block_on(call(&f.app, request));
    if debug() {
        eprintln!("api_token: {status} {}", String::from_utf8_lossy(&body));
    }
    assert!(
        !status.is_server_error(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    if status != StatusCode::OK {
        return;
    }
    match signed {
        None => {
            let signed_part = f.token.rsplit_once('.').map_or("", |(m, _)| m);
            let sent = String::from_utf8_lossy(&authorization);
            assert!(
                sent.contains(signed_part),
                "accepted a token that is not ada's: {sent}"
            );
        }
        Some((header, claims)) => {
            let header: Value =
                serde_json::from_slice(&header).expect("an accepted header is JSON");
            let claims: Value = serde_json::from_slice(&claims).expect("accepted claims are JSON");
            assert_eq!(header["alg"], "HS256", "{header}");
            assert_eq!(header["kid"].as_str(), Some(f.kid.as_str()), "{header}");
            assert_eq!(claims["sub"], "ada", "{claims}");
            assert_eq!(claims["jti"].as_str(), Some(f.jti.as_str()), "{claims}");
            assert_eq!(claims["iss"], "gims-relay", "{claims}");
            assert_eq!(claims["aud"], "gims-relay-api", "{claims}");
            let exp = claims["exp"].as_u64().expect("an accepted exp is a number");
            assert!(exp + 5 >= now_secs(), "accepted an expired token: {claims}");
        }
    }
});
