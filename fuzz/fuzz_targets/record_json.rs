//! A record as JSON, the form of `records.jsonl` lines and of ingest batches: decoding must never
//! panic, and a decoded record must survive encode -> decode unchanged, with canonical bytes equal
//! to an independent RFC 8785 implementation's (the HMAC input must not depend on the encoder).
//! Any input the fast canonical check (`Payload::parse`'s shortcut) accepts must be exactly its
//! own RFC 8785 canonicalization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_domain::canonical::{EVENT_DOMAIN_TAG, canonical_bytes};
use relay_domain::{Payload, Record, Timestamp};

fuzz_target!(|data: &[u8]| {
    // The fast canonical check (`Payload::parse`'s shortcut) only ever says "canonical" when
    // parsing into a value and canonicalizing gives the same text back.
    if let Ok(text) = std::str::from_utf8(data)
        && relay_domain::canonical_check::is_canonical_object(text, 1 << 20)
    {
        let value: serde_json::Value =
            serde_json::from_str(text).expect("what the fast check accepts is JSON");
        let canonical = serde_json_canonicalizer::to_string(&value)
            .expect("what the fast check accepts canonicalizes");
        assert_eq!(canonical, text);
    }
    let Ok(record) = serde_json::from_slice::<Record>(data) else {
        return;
    };
    // encode -> decode is the identity, and encoding is stable.
    let text = serde_json::to_vec(&record).expect("a decoded record encodes");
    let again: Record = serde_json::from_slice(&text).expect("an encoded record decodes");
    assert_eq!(record, again);
    assert_eq!(text, serde_json::to_vec(&again).expect("encodes"));

    // The payload is held canonical: canonicalizing it again changes nothing.
    let payload = Payload::parse(record.payload.as_str()).expect("a canonical payload parses");
    assert_eq!(payload.as_str(), record.payload.as_str());

    // Timestamps round-trip through their canonical text.
    for t in [record.occurred_at, record.recorded_at] {
        assert_eq!(Timestamp::parse_canonical(&t.to_canonical()), Ok(t));
    }

    // The fast canonical encoder agrees with serde_json_canonicalizer (JCS) on every record.
    let canonical = canonical_bytes(&record);
    let mut value = serde_json::to_value(&record).expect("a record is a JSON value");
    if let Some(map) = value.as_object_mut() {
        map.remove("checksum");
    }
    let mut expected = EVENT_DOMAIN_TAG.to_vec();
    expected.extend(serde_json_canonicalizer::to_vec(&value).expect("JCS of a record"));
    assert_eq!(
        String::from_utf8_lossy(&canonical),
        String::from_utf8_lossy(&expected)
    );
});
