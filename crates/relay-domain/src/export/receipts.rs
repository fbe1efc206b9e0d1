//! `receipts.jsonl`: the server of record's time of receipt of each exported record (issue 21),
//! sealed with the package but outside the chained bytes (docs/spec/export.md §2).
//!
//! Line layout (one per exported record that has a receipt, ascending `seq`, each ending `\n`):
//!
//! ```text
//! {"seq":<chain_seq>,"received_at":"<canonical UTC>","late":<true|false>,"late_after_secs":<n>}
//! ```
//!
//! `late` is `received_at - recorded_at > late_after_secs` (microseconds, strictly greater), the
//! rule of [`crate::ports::Lateness::judge`]; a verifier recomputes it from the record's
//! `recorded_at`.

use serde::Deserialize;

use crate::timestamp::Timestamp;

/// One line of `receipts.jsonl`, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptLine {
    /// The record's `chain_seq`.
    pub seq: u64,
    /// When the server of record stored it.
    pub received_at: Timestamp,
    /// Whether it was received more than `late_after_secs` after it was recorded.
    pub late: bool,
    /// The threshold `late` was judged with, in seconds.
    pub late_after_secs: u64,
}

impl ReceiptLine {
    /// Appends the line (with its `\n`) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"received_at\":\"");
        self.received_at.write_canonical(out);
        out.extend_from_slice(b"\",\"late\":");
        out.extend_from_slice(if self.late { b"true" } else { b"false" });
        out.extend_from_slice(b",\"late_after_secs\":");
        out.extend_from_slice(self.late_after_secs.to_string().as_bytes());
        out.extend_from_slice(b"}\n");
    }

    /// Whether `late` is what the rule gives for a record recorded at `recorded_at`.
    pub fn late_holds_for(&self, recorded_at: Timestamp) -> bool {
        let threshold = i64::try_from(self.late_after_secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .unwrap_or(i64::MAX);
        (self.received_at.micros_since(recorded_at) > threshold) == self.late
    }

    /// Parses one line (without its `\n`) in exactly the layout [`write`](Self::write) makes;
    /// any other spelling is refused.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            seq: u64,
            received_at: String,
            late: bool,
            late_after_secs: u64,
        }
        let raw: Raw = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let line = Self {
            seq: raw.seq,
            received_at: Timestamp::parse_canonical(&raw.received_at)
                .map_err(|e| format!("received_at: {e}"))?,
            late: raw.late,
            late_after_secs: raw.late_after_secs,
        };
        let mut again = Vec::with_capacity(text.len() + 1);
        line.write(&mut again);
        if again.strip_suffix(b"\n") != Some(text) {
            return Err("the line is not in the receipts.jsonl layout".into());
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_other_spellings_are_refused() {
        let line = ReceiptLine {
            seq: 7,
            received_at: Timestamp::parse_canonical("2026-03-01T10:00:00.000001Z").unwrap(),
            late: true,
            late_after_secs: 900,
        };
        let mut out = Vec::new();
        line.write(&mut out);
        assert_eq!(
            out,
            b"{\"seq\":7,\"received_at\":\"2026-03-01T10:00:00.000001Z\",\"late\":true,\"late_after_secs\":900}\n"
        );
        assert_eq!(ReceiptLine::parse(&out[..out.len() - 1]).unwrap(), line);
        for bad in [
            &b"{\"late\":true,\"seq\":7,\"received_at\":\"2026-03-01T10:00:00.000001Z\",\"late_after_secs\":900}"[..],
            b"{\"seq\":7, \"received_at\":\"2026-03-01T10:00:00.000001Z\",\"late\":true,\"late_after_secs\":900}",
            b"{\"seq\":7,\"received_at\":\"2026-03-01T10:00:00Z\",\"late\":true,\"late_after_secs\":900}",
            b"{\"seq\":7,\"received_at\":\"2026-03-01T10:00:00.000001Z\",\"late\":true,\"late_after_secs\":900,\"x\":1}",
        ] {
            assert!(ReceiptLine::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let recorded = Timestamp::parse_canonical("2026-03-01T09:45:00.000001Z").unwrap();
        assert!(!line.late_holds_for(recorded), "exactly 900 s is not late");
        let earlier = Timestamp::parse_canonical("2026-03-01T09:45:00.000000Z").unwrap();
        assert!(line.late_holds_for(earlier));
    }
}
