//! A direct reader of `records.jsonl` lines that are in the canonical layout (check 7 of
//! docs/spec/export.md §4), the form every line of a sound package has: it walks the line once,
//! field by field in the layout's fixed order, with no `serde` and no second encoding of the
//! record to compare against.
//!
//! It is conservative in the way [`crate::canonical_check`] is: it answers `Some(record)` only
//! for a line it can judge exactly, meaning every string without escapes, the payload one the
//! fast canonical check accepts, and every field valid for its type. A record so read encodes
//! back to exactly the line (the property test
//! `a_line_read_directly_is_exactly_its_records_canonical_layout` holds it to that). Anything
//! else (an escape, a field out of place, a bad value) is `None`, meaning "not known": the caller
//! then takes the full path (serde, then the layout comparison), which decides and names the
//! fault. So the reader can only save work, never change a verdict or its wording.

use crate::canonical_check::canonical_object_end;
use crate::ids::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, KeyId, Project, Subject, TrailId,
};
use crate::record::{MAX_PAYLOAD_BYTES, Payload, Record};
use crate::timestamp::{TimeLabel, Timestamp};

/// Reads `line` (without its `\n`) as a record in canonical layout; `None`: not known.
pub fn read_canonical_line(line: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(line).ok()?;
    let (record, end) = read_canonical_at(text, 0)?;
    (end == text.len()).then_some(record)
}

/// Reads a JSON array at byte `at` of `text` whose every element is a record in canonical
/// layout, written with no space (`[` record `,` record ... `]`, or `[]`): the records and the
/// byte after the `]`. `None`: not known (any element the direct reader cannot judge, any
/// space, anything else); the caller then parses the text with `serde`, which decides.
pub fn read_canonical_array(text: &str, at: usize) -> Option<(Vec<Record>, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    let mut records = Vec::new();
    if bytes.get(at + 1) == Some(&b']') {
        return Some((records, at + 2));
    }
    let mut next = at + 1;
    loop {
        let (record, end) = read_canonical_at(text, next)?;
        records.push(record);
        match bytes.get(end) {
            Some(b',') => next = end + 1,
            Some(b']') => return Some((records, end + 1)),
            _ => return None,
        }
    }
}

/// Reads a record in canonical layout that starts at byte `at` of `text`: the record and the
/// byte after its closing brace; `None`: not known.
fn read_canonical_at(text: &str, at: usize) -> Option<(Record, usize)> {
    let mut c = Cursor { text, at };
    c.expect("{\"actor\":")?;
    let actor = Actor::new(c.string()?).ok()?;
    c.expect(",\"actor_source\":")?;
    let actor_source = ActorSource::parse(c.string()?)?;
    c.expect(",\"chain_seq\":")?;
    let chain_seq = ChainSeq::new(c.unsigned()?).ok()?;
    c.expect(",\"device\":")?;
    let device = Device::new(c.string()?).ok()?;
    c.expect(",\"key_id\":")?;
    let key_id = KeyId::new(c.string()?).ok()?;
    c.expect(",\"kind\":")?;
    let kind = EventKind::new(c.string()?).ok()?;
    c.expect(",\"occurred_at\":")?;
    let occurred_at = Timestamp::parse_canonical(c.string()?).ok()?;
    c.expect(",\"payload\":")?;
    let payload = Payload::from_stored(c.canonical_object()?.to_owned());
    c.expect(",\"prev_checksum\":")?;
    let prev_checksum = Checksum::from_hex(c.string()?).ok()?;
    c.expect(",\"project\":")?;
    let project = c.optional_string()?.map(Project::new).transpose().ok()?;
    c.expect(",\"recorded_at\":")?;
    let recorded_at = Timestamp::parse_canonical(c.string()?).ok()?;
    c.expect(",\"subject\":")?;
    let subject = c.optional_string()?.map(Subject::new).transpose().ok()?;
    c.expect(",\"time_source\":")?;
    let time_source = TimeLabel::parse(c.string()?)?;
    c.expect(",\"trail_id\":")?;
    let trail_id = TrailId::new(c.string()?).ok()?;
    c.expect(",\"checksum\":")?;
    let checksum = Checksum::from_hex(c.string()?).ok()?;
    c.expect("}")?;
    let record = Record {
        actor,
        actor_source,
        chain_seq,
        device,
        key_id,
        kind,
        occurred_at,
        payload,
        prev_checksum,
        project,
        recorded_at,
        subject,
        time_source,
        trail_id,
        checksum,
    };
    Some((record, c.at))
}

/// A position in a line known to be UTF-8.
struct Cursor<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Cursor<'t> {
    /// Moves past `literal`, which must come next.
    fn expect(&mut self, literal: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.at..)?;
        rest.starts_with(literal.as_bytes()).then(|| {
            self.at += literal.len();
        })
    }

    /// A JSON string with no escape and no control character, which its canonical form writes
    /// as it is: the text between the quotes.
    fn string(&mut self) -> Option<&'t str> {
        self.expect("\"")?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let len = bytes[start..]
            .iter()
            .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)?;
        let end = start + len;
        (bytes[end] == b'"').then(|| {
            self.at = end + 1;
            // Both ends are ASCII quotes, so the slice falls on character boundaries.
            &self.text[start..end]
        })
    }

    /// `null`, or a string as [`string`](Self::string) reads it.
    fn optional_string(&mut self) -> Option<Option<&'t str>> {
        if self.expect("null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A non-negative integer in its shortest spelling, at most 16 digits (the canonical
    /// `chain_seq` is at most 2^53).
    fn unsigned(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let len = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len() - start);
        if len == 0 || len > 16 || (bytes[start] == b'0' && len > 1) {
            return None;
        }
        self.at = start + len;
        Some(
            bytes[start..start + len]
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
        )
    }

    /// A JSON object the fast canonical check accepts, as its text.
    fn canonical_object(&mut self) -> Option<&'t str> {
        let start = self.at;
        let end = canonical_object_end(self.text, start, MAX_PAYLOAD_BYTES)?;
        self.at = end;
        Some(&self.text[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::{RecordLine, check_line_layout};
    use super::*;
    use crate::canonical::{EVENT_DOMAIN_TAG, write_canonical};
    use proptest::prelude::*;

    /// The canonical layout of `r`: its canonical bytes without the tag, with the checksum
    /// member before the closing brace.
    fn layout(r: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        write_canonical(r, &mut out);
        out.pop();
        out.extend_from_slice(crate::export::LAYOUT_CHECKSUM_KEY);
        r.checksum.write_hex(&mut out);
        out.extend_from_slice(b"\"}");
        out.split_off(EVENT_DOMAIN_TAG.len())
    }

    /// What the verifier does with a line the direct reader leaves: serde, then the layout.
    fn full_path(text: &[u8]) -> Result<Record, String> {
        serde_json::from_slice::<RecordLine>(text)
            .map_err(|e| e.to_string())
            .and_then(RecordLine::into_record)
            .and_then(|r| check_line_layout(text, &r, &mut Vec::new()).map(|()| r))
    }

    fn sample() -> Record {
        Record {
            actor: Actor::new("alice").unwrap(),
            actor_source: ActorSource::FileOwner,
            chain_seq: ChainSeq::new(42).unwrap(),
            device: Device::new("nmr-01").unwrap(),
            key_id: KeyId::new("k-0011223344556677").unwrap(),
            kind: EventKind::file_created(),
            occurred_at: Timestamp::from_unix_micros(1_764_075_475_123_456).unwrap(),
            payload: Payload::parse(r#"{"path":"run/1.fid","size":12}"#).unwrap(),
            prev_checksum: Checksum([7; 32]),
            project: Some(Project::new("Größe µ 測定").unwrap()),
            recorded_at: Timestamp::from_unix_micros(1_764_075_475_223_456).unwrap(),
            subject: None,
            time_source: TimeLabel::Validated {
                offset_micros: -1250,
            },
            trail_id: TrailId::new("nmr").unwrap(),
            checksum: Checksum([9; 32]),
        }
    }

    #[test]
    fn reads_a_canonical_line_into_its_record() {
        let r = sample();
        let line = layout(&r);
        assert_eq!(read_canonical_line(&line), Some(r));
    }

    #[test]
    fn leaves_escapes_reordering_and_bad_values_to_the_full_path() {
        let line = String::from_utf8(layout(&sample())).unwrap();
        let variants = [
            line.replace("\"alice\"", "\"al\\u0069ce\""),
            line.replace("\"alice\"", "\"a\\\"lice\""),
            line.replace("\"chain_seq\":42", "\"chain_seq\":042"),
            line.replace("\"chain_seq\":42", "\"chain_seq\":42.0"),
            line.replace("\"chain_seq\":42", "\"chain_seq\":0"),
            line.replace("\"chain_seq\":42", "\"chain_seq\": 42"),
            line.replace("\"subject\":null", "\"subject\":nul"),
            line.replace("\"size\":12", "\"size\":1.2e1"),
            line.replace("{\"path\"", "{ \"path\""),
            line.replace("file_owner", "File_owner"),
            line.replace("ntp:-1250us", "ntp:-01250us"),
            line.replace("FILE_CREATED", "file_created"),
            line.replace(&"07".repeat(32), &"0A".repeat(32)),
            line.replace(".123456Z", ".123456+00:00"),
            line.replace("{\"actor\":\"alice\",\"actor_source\"", "{\"actor_source\""),
            format!("{line} "),
            line[..line.len() - 1].to_owned(),
        ];
        for v in variants {
            assert_ne!(v, line, "the variant must differ");
            assert_eq!(read_canonical_line(v.as_bytes()), None, "{v}");
        }
        let mut not_utf8 = line.into_bytes();
        let at = not_utf8.iter().position(|b| *b == b'a').unwrap();
        not_utf8[at] = 0xff;
        assert_eq!(read_canonical_line(&not_utf8), None);
    }

    #[test]
    fn serde_writes_a_record_in_its_canonical_layout() {
        // The relay's forwarder sends records with serde; the server reads them directly.
        let r = sample();
        assert_eq!(serde_json::to_vec(&r).unwrap(), layout(&r));
    }

    #[test]
    fn reads_an_array_of_canonical_records_and_leaves_anything_else() {
        let (a, mut b) = (sample(), sample());
        b.chain_seq = ChainSeq::new(43).unwrap();
        let text = format!("x[{}]", String::from_utf8(layout(&a)).unwrap()).replace(
            ']',
            &format!(",{}]", String::from_utf8(layout(&b)).unwrap()),
        );
        let (records, end) = read_canonical_array(&text, 1).unwrap();
        assert_eq!(records, vec![a.clone(), b]);
        assert_eq!(end, text.len());
        assert_eq!(read_canonical_array("[]}", 0), Some((vec![], 2)));
        let one = String::from_utf8(layout(&a)).unwrap();
        for not_known in [
            format!("[{one} ]"),
            format!("[ {one}]"),
            format!("[{one},]"),
            format!("[{one},,{one}]"),
            format!("[{one}"),
            one.clone(),
            format!("[{}]", one.replace("\"alice\"", "\"al\\u0069ce\"")),
            "[ ]".to_owned(),
            String::new(),
        ] {
            assert_eq!(read_canonical_array(&not_known, 0), None, "{not_known}");
        }
    }

    proptest! {
        /// An array read directly holds exactly what `serde` reads from the same text, and
        /// what `serde` writes of records is read back directly as the same records.
        #[test]
        fn an_array_read_directly_is_what_serde_reads(
            seqs in proptest::collection::vec(1u64..(1 << 53), 0..6),
            subject in proptest::option::of("[^\u{0}]{0,12}"),
            at in 0usize..2000,
            byte in any::<u8>(),
        ) {
            let records: Vec<Record> = seqs
                .iter()
                .map(|seq| {
                    let mut r = sample();
                    r.chain_seq = ChainSeq::new(*seq).unwrap();
                    r.subject = subject.clone().and_then(|s| Subject::new(s).ok());
                    r
                })
                .collect();
            let text = serde_json::to_string(&records).unwrap();
            let escaped = text.contains('\\');
            let read = read_canonical_array(&text, 0);
            if !escaped {
                prop_assert_eq!(read.clone(), Some((records.clone(), text.len())));
            }
            let mut tampered = text.clone().into_bytes();
            if !tampered.is_empty() {
                let i = at % tampered.len();
                tampered[i] = byte;
            }
            for bytes in [text.as_bytes(), &tampered[..]] {
                let Ok(candidate) = std::str::from_utf8(bytes) else { continue };
                if let Some((direct, end)) = read_canonical_array(candidate, 0) {
                    let by_serde = serde_json::from_str::<Vec<Record>>(&candidate[..end]);
                    prop_assert_eq!(by_serde.ok(), Some(direct));
                }
            }
        }
    }

    proptest! {
        /// Whatever bytes a line holds, a record read directly encodes back to exactly that
        /// line: the direct reader can never accept what the layout comparison would refuse.
        #[test]
        fn a_line_read_directly_is_exactly_its_records_canonical_layout(
            at in 0usize..400,
            byte in any::<u8>(),
            actor in "[ -~]{1,12}",
            subject in proptest::option::of("[^\u{0}]{0,12}"),
            seq in 1u64..(1 << 53),
        ) {
            let mut r = sample();
            if let Ok(a) = Actor::new(actor) {
                r.actor = a;
            }
            r.subject = subject.and_then(|s| Subject::new(s).ok());
            r.chain_seq = ChainSeq::new(seq).unwrap();
            let line = layout(&r);
            prop_assert_eq!(read_canonical_line(&line).map(|read| layout(&read)), Some(line.clone()).filter(|_| {
                // Strings with escapes are left to the full path.
                !line.contains(&b'\\')
            }));
            let mut tampered = line.clone();
            let i = at % tampered.len();
            tampered[i] = byte;
            for text in [&line, &tampered] {
                if let Some(read) = read_canonical_line(text) {
                    prop_assert_eq!(&layout(&read), text);
                    // The full path accepts the line too, as the same record.
                    prop_assert_eq!(full_path(text), Ok(read));
                }
            }
        }
    }
}
