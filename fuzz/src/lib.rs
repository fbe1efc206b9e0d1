//! Helpers shared by the fuzz targets in `fuzz_targets/`: the fixed test keys the seed corpora
//! were made with, splitting one fuzz input into several files, and a tokio runtime for the
//! targets that drive the HTTP handlers.
//!
//! Nothing here is product code; it exists so each target stays a short statement of what it
//! feeds in and which property it asserts.

use std::sync::OnceLock;

use relay_domain::{KeyId, KeyRing, TrailKey};

/// The key of the chain test vectors (`docs/spec/chain.md`): bytes 0x00..=0x1f, id `k-test-0001`.
pub const SPEC_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The key id of [`SPEC_KEY_HEX`].
pub const SPEC_KEY_ID: &str = "k-test-0001";
/// The rotated key of the chain test vectors (bytes 0x80..=0x9f), id `k-test-0002`.
pub const SPEC_KEY2_HEX: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
/// The key id of [`SPEC_KEY2_HEX`].
pub const SPEC_KEY2_ID: &str = "k-test-0002";

/// The trail key of the package seeds in `seeds/export_package` (a throw-away relay-edge data
/// directory's `secrets/trail-hmac.json`; see `seeds/README.md`).
pub const PACKAGE_KEY_HEX: &str =
    "69869f5efeb1b37630c2cc061300c96895e2fa5e7babbda6692500e83e8e27ae";
/// The key id of [`PACKAGE_KEY_HEX`].
pub const PACKAGE_KEY_ID: &str = "k-43eff3b534bac670";

/// Separates the files of one fuzz input (`manifest`, `anchors`, ...). Never valid UTF-8, so it
/// never occurs inside a real package file.
pub const FILE_SEPARATOR: &[u8] = b"\xff\xfe--file--\xfe\xff";

fn key(id: &str, hex_bytes: &str) -> TrailKey {
    let bytes = hex::decode(hex_bytes).expect("the fuzz key constants are valid hex");
    TrailKey::new(KeyId::new(id).expect("the fuzz key ids are valid"), &bytes)
        .expect("the fuzz keys are 32 bytes")
}

/// The spec vectors' key alone.
pub fn spec_key() -> TrailKey {
    key(SPEC_KEY_ID, SPEC_KEY_HEX)
}

/// Every seed key as `(id, hex)`, oldest first: the spec vectors' two, then the packages'.
pub const SEED_KEYS: [(&str, &str); 3] = [
    (SPEC_KEY_ID, SPEC_KEY_HEX),
    (SPEC_KEY2_ID, SPEC_KEY2_HEX),
    (PACKAGE_KEY_ID, PACKAGE_KEY_HEX),
];

/// A ring holding every seed key.
pub fn seed_ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut ring = KeyRing::default();
        for (id, hex_bytes) in SEED_KEYS {
            ring.insert_current(key(id, hex_bytes));
        }
        ring
    })
}

/// Splits `data` at every [`FILE_SEPARATOR`].
pub fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest
        .windows(FILE_SEPARATOR.len())
        .position(|w| w == FILE_SEPARATOR)
    {
        out.push(&rest[..at]);
        rest = &rest[at + FILE_SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

/// One current-thread tokio runtime per fuzzing process (libFuzzer runs inputs one at a time).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// Whether `RELAY_FUZZ_DEBUG` is set: targets then print what each input got (to check that a
/// seed reaches the path it was written for, e.g. `RELAY_FUZZ_DEBUG=1 <target> seeds/<target>/*`).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("RELAY_FUZZ_DEBUG").is_some())
}

/// Sends `request` to `app` and returns the status and the body bytes.
pub async fn call(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("axum routers are infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory response body can be read")
        .to_bytes()
        .to_vec();
    (status, body)
}
