//! The trail record (R1.1) and its JSON payload.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::timestamp::{TimeLabel, Timestamp};

/// Records written in their canonical layout (a sound package's `records.jsonl` lines, the
/// records of a relay's ingest batch) read directly, without `serde`, where they can be judged
/// exactly; `None` means "not known" and the caller takes its `serde` path.
pub use crate::export::package_verify::line_read::{read_canonical_array, read_canonical_line};

/// The largest payload accepted, in bytes of canonical JSON.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Why a payload was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The text is not JSON.
    #[error("payload is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The payload must be a JSON object.
    #[error("payload must be a JSON object")]
    NotAnObject,
    /// The payload holds a number that has no exact canonical form (RFC 8785 needs IEEE doubles).
    #[error("payload could not be canonicalized: {0}")]
    NotCanonicalizable(String),
    /// The canonical payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload is {0} bytes; at most {MAX_PAYLOAD_BYTES} are allowed")]
    TooLarge(usize),
}

/// A record's payload: a JSON object held in its RFC 8785 (JCS) canonical text form.
///
/// Holding the canonical text (rather than a parsed value) means the chain hashes exactly the
/// bytes that are stored and exported, with no re-serialization in between.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payload(String);

impl Payload {
    /// Canonicalizes a JSON object.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, PayloadError> {
        if !value.is_object() {
            return Err(PayloadError::NotAnObject);
        }
        check_numbers_exact(value)?;
        let text = serde_json_canonicalizer::to_string(value)
            .map_err(|e| PayloadError::NotCanonicalizable(e.to_string()))?;
        if text.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::TooLarge(text.len()));
        }
        Ok(Self(text))
    }

    /// Parses JSON text of any formatting and canonicalizes it. Text already in RFC 8785 form
    /// that [`crate::canonical_check`] can judge exactly (what relays send and store) is taken
    /// as it is, without building a JSON value; the result is the same.
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        if crate::canonical_check::is_canonical_object(text, MAX_PAYLOAD_BYTES) {
            return Ok(Self(text.to_owned()));
        }
        if text.len() > MAX_PAYLOAD_BYTES * 2 {
            return Err(PayloadError::TooLarge(text.len()));
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(PayloadError::NotJson)?;
        Self::from_value(&value)
    }

    /// Wraps text read back from a store this relay wrote, without re-canonicalizing it.
    ///
    /// Safe for integrity because the chain's HMAC covers these exact bytes: text that is not the
    /// canonical form the record was chained with fails verification.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// An empty object, `{}`.
    pub fn empty() -> Self {
        Self("{}".to_owned())
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the payload into a JSON value.
    pub fn to_value(&self) -> Result<serde_json::Value, PayloadError> {
        serde_json::from_str(&self.0).map_err(PayloadError::NotJson)
    }
}

/// The largest integer magnitude an IEEE double holds exactly (RFC 8785 numbers are doubles).
const MAX_EXACT_INT: u64 = 1 << 53;

/// Refuses numbers beyond 2^53 in magnitude, integers or not: canonicalization would round them
/// silently (a file size must stay exact), and their canonical text would not read back.
fn check_numbers_exact(value: &serde_json::Value) -> Result<(), PayloadError> {
    match value {
        serde_json::Value::Number(n) => {
            let exact = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_EXACT_INT,
                (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT_INT,
                // A double beyond 2^53 is a whole number whose RFC 8785 text is an integer
                // (e.g. `9007199254740993e1` becomes `90071992547409930`), which this very check
                // would refuse on the next read: refuse it now, whatever its spelling.
                (None, None) => n.as_f64().is_some_and(|f| f.abs() <= MAX_EXACT_INT as f64),
            };
            if exact {
                Ok(())
            } else {
                Err(PayloadError::NotCanonicalizable(format!(
                    "number {n} is beyond 2^53 and would be rounded; send it as a string"
                )))
            }
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(check_numbers_exact),
        serde_json::Value::Object(map) => map.values().try_for_each(check_numbers_exact),
        _ => Ok(()),
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|i| self.0.is_char_boundary(*i))
                .unwrap_or(0);
            write!(f, "Payload({}… {} bytes)", &self.0[..cut], self.0.len())
        } else {
            write!(f, "Payload({})", self.0)
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        Payload::parse(raw.get()).map_err(serde::de::Error::custom)
    }
}

/// One record of a trail, exactly as chained (R1.1).
///
/// Field order here is the canonical key order of the encoding, see [`crate::canonical`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Who caused the event, as resolved by the relay.
    pub actor: Actor,
    /// How the actor was resolved.
    pub actor_source: ActorSource,
    /// Position in the trail, gapless from 1.
    pub chain_seq: ChainSeq,
    /// The workstation the event happened on.
    pub device: Device,
    /// The key that computed `checksum`.
    pub key_id: KeyId,
    /// The kind of event.
    pub kind: EventKind,
    /// When the event happened (e.g. the file's completion), as seen by the relay.
    pub occurred_at: Timestamp,
    /// Kind-specific details as canonical JSON.
    pub payload: Payload,
    /// The checksum of the previous record, or [`crate::GENESIS`] for `chain_seq` 1.
    pub prev_checksum: Checksum,
    /// The project the event belongs to, if any.
    pub project: Option<Project>,
    /// When the relay appended the record.
    pub recorded_at: Timestamp,
    /// What the event is about (e.g. a path relative to its watched root), if anything.
    pub subject: Option<Subject>,
    /// Where `occurred_at` and `recorded_at` came from.
    pub time_source: TimeLabel,
    /// The trail this record belongs to.
    pub trail_id: TrailId,
    /// HMAC-SHA256 over the canonical bytes of every other field.
    pub checksum: Checksum,
}

impl Record {
    /// A reference naming this record: `trail_id#chain_seq`.
    pub fn locator(&self) -> String {
        format!("{}#{}", self.trail_id, self.chain_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_is_canonicalized_on_the_way_in() {
        let p = Payload::parse(r#"{ "b": 1, "a": {"d": [1, 2.50, "x"], "c": null} }"#).unwrap();
        assert_eq!(p.as_str(), r#"{"a":{"c":null,"d":[1,2.5,"x"]},"b":1}"#);
    }

    #[test]
    fn payload_must_be_an_object() {
        assert!(matches!(
            Payload::from_value(&json!([1])),
            Err(PayloadError::NotAnObject)
        ));
        assert!(matches!(
            Payload::parse("not json"),
            Err(PayloadError::NotJson(_))
        ));
    }

    #[test]
    fn integers_beyond_exact_double_range_are_not_silently_rounded() {
        let result = Payload::from_value(&json!({"size": u64::MAX}));
        match result {
            Err(PayloadError::NotCanonicalizable(_)) => {}
            Ok(p) => panic!("u64::MAX was accepted as {}", p.as_str()),
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(Payload::from_value(&json!({"size": 9_007_199_254_740_992u64})).is_ok());
    }

    #[test]
    fn whole_doubles_beyond_2_53_are_refused_so_canonical_text_reads_back() {
        // Found by the record_json fuzz target: a double spelled with an exponent canonicalized
        // to integer digits beyond 2^53, which the next read refused.
        for text in [
            r#"{"x":9007199254740993e1}"#,
            r#"{"x":-1.8014398509481984e16}"#,
            r#"{"x":1e300}"#,
        ] {
            assert!(
                matches!(
                    Payload::parse(text),
                    Err(PayloadError::NotCanonicalizable(_))
                ),
                "{text} was accepted"
            );
        }
        // Every accepted payload reads back as itself.
        for text in [
            r#"{"x":9007199254740992e0}"#,
            r#"{"x":1.5e3}"#,
            r#"{"x":-0.25}"#,
        ] {
            let payload = Payload::parse(text).expect("within 2^53");
            assert_eq!(
                Payload::parse(payload.as_str()).expect("reads back"),
                payload
            );
        }
    }

    #[test]
    fn oversized_payload_is_refused() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES + 1);
        assert!(matches!(
            Payload::from_value(&json!({"x": big})),
            Err(PayloadError::TooLarge(_))
        ));
    }
}
