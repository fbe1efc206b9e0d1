//! The fast canonical-payload check of the package verifier (`relay_domain::canonical_check`)
//! (also the fast path of `Payload::parse`) may only ever save work: whenever it says a payload
//! text is in RFC 8785 form, parsing the text into a JSON value and canonicalizing it gives
//! exactly that text back. Checked on random JSON objects, their
//! canonical texts and random edits of those texts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use relay_domain::Payload;
use relay_domain::canonical_check::is_canonical_object;
use serde_json::{Map, Value};

const MAX: usize = 1 << 20;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[ -~]{0,6}|\\PC{0,3}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-z_]{1,8}|[ -~]{0,6}", json()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// The property: a text the fast check accepts is exactly what parsing it into a JSON value
/// and canonicalizing (RFC 8785, the path `Payload::parse` skips for it) gives, numbers exact.
fn sound(text: &str) -> Result<(), TestCaseError> {
    if is_canonical_object(text, MAX) {
        let value: Result<Value, _> = serde_json::from_str(text);
        prop_assert!(value.is_ok(), "accepted but not JSON: {text}");
        let value = value.unwrap();
        prop_assert!(value.is_object(), "accepted but not an object: {text}");
        let canonical = serde_json_canonicalizer::to_string(&value).unwrap();
        prop_assert_eq!(canonical.as_str(), text);
        // Re-reading the value gives the same value (no number was rounded).
        let again: Value = serde_json::from_str(&canonical).unwrap();
        prop_assert_eq!(&again, &value);
        let payload = Payload::parse(text).unwrap();
        prop_assert_eq!(payload.as_str(), text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_canonical_check_never_accepts_what_parsing_would_change(
        value in object(),
        at in any::<prop::sample::Index>(),
        op in 0u8..5,
        byte in prop::sample::select(b"{}[]\",:0123456789-.eE+\\ abtfnru/\t\n".to_vec()),
    ) {
        let Ok(payload) = Payload::from_value(&value) else { return Ok(()); };
        let canonical = payload.as_str().to_owned();
        sound(&canonical)?;
        // The canonical text of simple objects is recognised, so the fast path is taken.
        let simple = value.as_object().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                k.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
                    && matches!(v, Value::Null | Value::Bool(_))
            })
        });
        if simple {
            prop_assert!(is_canonical_object(&canonical, MAX), "{}", canonical);
        }
        // Any edit: still sound.
        let mut bytes = canonical.into_bytes();
        let i = at.index(bytes.len().max(1)).min(bytes.len());
        match op {
            0 if i < bytes.len() => bytes[i] = byte,
            1 if i < bytes.len() => { bytes.remove(i); }
            2 => bytes.insert(i, byte),
            3 => bytes.truncate(i),
            _ => bytes.swap(0, i.saturating_sub(1)),
        }
        if let Ok(text) = String::from_utf8(bytes) {
            sound(&text)?;
        }
    }

    #[test]
    fn arbitrary_text_is_never_wrongly_accepted(text in "\\{[ -~]{0,40}\\}|\\{\"[a-c]\":[-0-9.eE]{1,20}\\}") {
        sound(&text)?;
    }
}
