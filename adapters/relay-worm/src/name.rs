//! The anchor object: its name and its body, written and read back in one place.

use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorRound, NotaryError};

/// The name of one anchor object inside its trail's folder:
/// `<seq>-<anchored_at>-<nonce>.json`, the seq and the anchoring time (Unix microseconds) as 20
/// zero-padded decimal digits, so names sort by seq then time, and a random 64-bit nonce as 16
/// hex digits, so no two anchors ever share a name and the notary never writes a name twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorName {
    /// The anchored head's seq.
    pub seq: u64,
    /// When the anchor was made, in microseconds since the Unix epoch.
    pub anchored_at_micros: i64,
    /// The random part.
    pub nonce: u64,
}

impl AnchorName {
    /// The name of a new object for `anchor`, made unique by `nonce`.
    pub fn new(anchor: &Anchor, nonce: u64) -> Self {
        Self {
            seq: anchor.seq.get(),
            anchored_at_micros: anchor.anchored_at.unix_micros(),
            nonce,
        }
    }

    /// The full object name: the trail's folder (`<prefix><trail>/`) and this name.
    pub fn object_name(&self, trail_prefix: &str) -> String {
        format!(
            "{trail_prefix}{:020}-{:020}-{:016x}.json",
            self.seq, self.anchored_at_micros, self.nonce
        )
    }

    /// Reads back the name part of an object name (after its last `/`), accepting only the exact
    /// spelling [`object_name`](Self::object_name) writes; `None` for anything else.
    pub fn parse(object_name: &str) -> Option<Self> {
        let file = object_name.rsplit('/').next()?;
        let stem = file.strip_suffix(".json")?;
        let mut parts = stem.split('-');
        let (seq, at, nonce) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || seq.len() != 20
            || at.len() != 20
            || nonce.len() != 16
            || !seq.bytes().chain(at.bytes()).all(|b| b.is_ascii_digit())
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let name = Self {
            seq: seq.parse().ok()?,
            anchored_at_micros: at.parse().ok()?,
            nonce: u64::from_str_radix(nonce, 16).ok()?,
        };
        // Only the canonical spelling, so a name round-trips byte for byte.
        (name.object_name("") == file).then_some(name)
    }
}

/// The folder under the notary's prefix that holds rounds (`<prefix>~rounds/`); `~` is never
/// part of a trail id, so it cannot be mistaken for a trail's folder.
pub const ROUNDS_FOLDER: &str = "~rounds";

/// The name of one round object: `<prefix>~rounds/<YYYY-MM-DD>/<round_at>-<nonce>.json`, the
/// round's UTC day as a folder (so a reader lists only the days it needs), the round's time in
/// Unix microseconds as 20 zero-padded digits (names sort by time) and a random 64-bit nonce as
/// 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundName {
    /// The round's UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// When the round was made, in microseconds since the Unix epoch.
    pub round_at_micros: i64,
    /// The random part.
    pub nonce: u64,
}

impl RoundName {
    /// The name of a new object for `round`, made unique by `nonce`.
    pub fn new(round: &AnchorRound, nonce: u64) -> Self {
        Self {
            day: round_day(round.round_at.unix_micros()),
            round_at_micros: round.round_at.unix_micros(),
            nonce,
        }
    }

    /// The full object name under the notary's `prefix`.
    pub fn object_name(&self, prefix: &str) -> String {
        format!(
            "{prefix}{ROUNDS_FOLDER}/{}/{:020}-{:016x}.json",
            self.day, self.round_at_micros, self.nonce
        )
    }

    /// Reads back an object name written by [`object_name`](Self::object_name) under `prefix`,
    /// accepting only that exact spelling; `None` for anything else.
    pub fn parse(prefix: &str, object_name: &str) -> Option<Self> {
        let rest = object_name
            .strip_prefix(prefix)?
            .strip_prefix(ROUNDS_FOLDER)?
            .strip_prefix('/')?;
        let (day, file) = rest.split_once('/')?;
        let (at, nonce) = file.strip_suffix(".json")?.split_once('-')?;
        if at.len() != 20
            || nonce.len() != 16
            || !at.bytes().all(|b| b.is_ascii_digit())
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let name = Self {
            day: day.to_owned(),
            round_at_micros: at.parse().ok()?,
            nonce: u64::from_str_radix(nonce, 16).ok()?,
        };
        (name.day == round_day(name.round_at_micros) && name.object_name(prefix) == object_name)
            .then_some(name)
    }
}

/// The UTC day (`YYYY-MM-DD`) of a time in Unix microseconds.
pub fn round_day(micros: i64) -> String {
    relay_domain::Timestamp::from_unix_micros(micros)
        .map(|t| t.to_canonical()[..10].to_owned())
        .unwrap_or_else(|_| "0000-00-00".to_owned())
}

/// The bytes stored for a round (its JSON).
pub fn encode_round(round: &AnchorRound) -> Result<Vec<u8>, NotaryError> {
    serde_json::to_vec(round).map_err(|e| NotaryError::Other {
        message: "could not encode the anchor round".into(),
        source: Some(Box::new(e)),
    })
}

/// Decodes a stored round stored under `name`: a round's JSON (unknown fields refused) that
/// passes [`AnchorRound::check`] and was made at the time its name states. `Err` says why not.
pub fn decode_round(name: &RoundName, bytes: &[u8]) -> Result<AnchorRound, String> {
    let round: AnchorRound =
        serde_json::from_slice(bytes).map_err(|e| format!("not an anchor round: {e}"))?;
    round.check()?;
    if round.round_at.unix_micros() != name.round_at_micros {
        return Err(format!(
            "holds a round made at {}, not at the time its name states",
            round.round_at
        ));
    }
    Ok(round)
}

/// The bytes stored for `anchor` (its JSON).
pub fn encode_anchor(anchor: &Anchor) -> Result<Vec<u8>, NotaryError> {
    serde_json::to_vec(anchor).map_err(|e| NotaryError::Other {
        message: "could not encode the anchor".into(),
        source: Some(Box::new(e)),
    })
}

/// Decodes a stored anchor of `trail` and checks it belongs there. `Err` says why the object is
/// not a valid anchor of `trail` (the caller names the object): not an anchor's JSON (unknown
/// fields are refused), or an anchor of another trail filed under this one.
pub fn decode_anchor(trail: &TrailId, bytes: &[u8]) -> Result<Anchor, String> {
    let anchor: Anchor =
        serde_json::from_slice(bytes).map_err(|e| format!("not an anchor: {e}"))?;
    if anchor.trail_id != *trail {
        return Err(format!("holds an anchor of trail {}", anchor.trail_id));
    }
    Ok(anchor)
}

#[cfg(test)]
mod tests {
    use relay_domain::ids::{ChainSeq, Checksum};
    use relay_domain::{TimeLabel, Timestamp};

    use super::*;

    fn trail(name: &str) -> TrailId {
        TrailId::new(name).unwrap()
    }

    fn anchor(trail_id: &TrailId, seq: u64, micros: i64) -> Anchor {
        Anchor {
            trail_id: trail_id.clone(),
            seq: ChainSeq::new(seq).unwrap(),
            checksum: Checksum([7; 32]),
            merkle_root: Some(Checksum([9; 32])),
            anchored_at: Timestamp::from_unix_micros(micros).unwrap(),
            time_source: TimeLabel::Validated {
                offset_micros: -1250,
            },
            version: 1,
            frontier: Vec::new(),
            consistency: None,
            checkpoint: None,
        }
    }

    #[test]
    fn names_are_fixed_width_and_round_trip() {
        let t = trail("lims-01");
        let a = anchor(&t, 42, 1_764_075_475_123_456);
        let name = AnchorName::new(&a, 0x00ab_cdef_0123_4567).object_name("anchors/lims-01/");
        assert_eq!(
            name,
            "anchors/lims-01/00000000000000000042-00001764075475123456-00abcdef01234567.json"
        );
        let parsed = AnchorName::parse(&name).unwrap();
        assert_eq!(parsed, AnchorName::new(&a, 0x00ab_cdef_0123_4567));
        assert_eq!(parsed.object_name("anchors/lims-01/"), name);
        // Names of later seqs sort after earlier ones, whatever the digit count.
        let later = AnchorName::new(&anchor(&t, 100, 1), 0).object_name("");
        let earlier = AnchorName::new(&anchor(&t, 99, 2), u64::MAX).object_name("");
        assert!(earlier < later, "{earlier} < {later}");
    }

    #[test]
    fn malformed_names_are_refused() {
        let good = "00000000000000000042-00001764075475123456-00abcdef01234567.json";
        assert!(AnchorName::parse(good).is_some());
        for bad in [
            "",
            "anchors/lims-01/",
            // Not zero-padded, wrong extension, extra or missing parts.
            "42-00001764075475123456-00abcdef01234567.json",
            "00000000000000000042-00001764075475123456-00abcdef01234567.jsn",
            "00000000000000000042-00001764075475123456-00abcdef01234567",
            "00000000000000000042-00001764075475123456-00abcdef01234567-1.json",
            "00000000000000000042-00001764075475123456.json",
            // Upper-case hex, a sign, a non-digit.
            "00000000000000000042-00001764075475123456-00ABCDEF01234567.json",
            "+0000000000000000042-00001764075475123456-00abcdef01234567.json",
            "0000000000000000004x-00001764075475123456-00abcdef01234567.json",
            // Larger than a u64.
            "99999999999999999999-00001764075475123456-00abcdef01234567.json",
        ] {
            assert_eq!(AnchorName::parse(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn bodies_round_trip() {
        let t = trail("lims-01");
        let a = anchor(&t, 3, 1_764_075_475_000_000);
        let bytes = encode_anchor(&a).unwrap();
        assert_eq!(decode_anchor(&t, &bytes).unwrap(), a);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let t = trail("lims-01");
        let bytes = encode_anchor(&anchor(&t, 3, 1)).unwrap();
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            &bytes[..bytes.len() - 1],
            b"gims-relay notary probe: checks that this container locks blobs",
        ] {
            let why = decode_anchor(&t, bad).unwrap_err();
            assert!(why.starts_with("not an anchor: "), "{why}");
        }
    }

    #[test]
    fn tampered_bodies_are_refused() {
        let t = trail("lims-01");
        let a = anchor(&t, 3, 1);
        let text = String::from_utf8(encode_anchor(&a).unwrap()).unwrap();

        // Moved: an anchor of another trail filed under this one.
        let moved = text.replace("\"lims-01\"", "\"lims-02\"");
        assert_ne!(moved, text);
        assert_eq!(
            decode_anchor(&t, moved.as_bytes()).unwrap_err(),
            "holds an anchor of trail lims-02"
        );
        // A field added, or a value that is not of its type.
        let extended = text.replacen('{', "{\"note\":\"x\",", 1);
        assert!(
            decode_anchor(&t, extended.as_bytes())
                .unwrap_err()
                .starts_with("not an anchor: ")
        );
        let bad_seq = text.replace("\"seq\":3", "\"seq\":0");
        assert_ne!(bad_seq, text);
        assert!(
            decode_anchor(&t, bad_seq.as_bytes())
                .unwrap_err()
                .starts_with("not an anchor: ")
        );
        let bad_checksum = text.replace(&"07".repeat(32), &"0g".repeat(32));
        assert_ne!(bad_checksum, text);
        assert!(
            decode_anchor(&t, bad_checksum.as_bytes())
                .unwrap_err()
                .starts_with("not an anchor: ")
        );
    }
}
