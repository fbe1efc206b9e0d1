//! UTC timestamps with a fixed, canonical text form, and the label saying where a time came from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use time::OffsetDateTime;

/// A UTC instant with microsecond precision.
///
/// Its canonical text form is always `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 bytes, six fractional
/// digits, `Z`), so two implementations never disagree on how an instant is written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// Why a timestamp could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The text is not in the canonical `YYYY-MM-DDTHH:MM:SS.ffffffZ` form.
    #[error("timestamp {0:?} is not of the form YYYY-MM-DDTHH:MM:SS.ffffffZ")]
    BadFormat(String),
    /// The instant is outside the years 1970..=9999.
    #[error("timestamp is outside the years 1970..=9999")]
    OutOfRange,
}

const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z

impl Timestamp {
    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> Result<Self, TimestampError> {
        if (0..=MAX_MICROS).contains(&micros) {
            Ok(Self(micros))
        } else {
            Err(TimestampError::OutOfRange)
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.0
    }

    /// The signed distance `self - earlier` in microseconds.
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// Appends the canonical 27-byte text form to `out` without allocating.
    pub fn write_canonical(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.canonical_bytes());
    }

    /// The canonical text form as ASCII bytes on the stack (one copy into the output instead
    /// of a push per character: timestamps are rendered several times per exported record).
    fn canonical_bytes(self) -> [u8; 27] {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let mut t = *b"0000-00-00T00:00:00.000000Z";
        put_digits(&mut t[0..4], y as u32);
        put_digits(&mut t[5..7], m);
        put_digits(&mut t[8..10], d);
        put_digits(&mut t[11..13], sod / 3600);
        put_digits(&mut t[14..16], (sod / 60) % 60);
        put_digits(&mut t[17..19], sod % 60);
        put_digits(&mut t[20..26], micros);
        t
    }

    /// Parses the canonical text form (and only it).
    pub fn parse_canonical(s: &str) -> Result<Self, TimestampError> {
        let bad = || TimestampError::BadFormat(s.chars().take(64).collect());
        let b = s.as_bytes();
        if b.len() != 27
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[26] != b'Z'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, TimestampError> {
            let part = &b[r];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
        let month = time::Month::try_from(mo as u8).map_err(|_| bad())?;
        let date = time::Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| bad())?;
        let t = time::Time::from_hms_micro(h as u8, mi as u8, sec as u8, us).map_err(|_| bad())?;
        let odt = time::PrimitiveDateTime::new(date, t).assume_utc();
        let micros = odt.unix_timestamp() * 1_000_000 + i64::from(us);
        Self::from_unix_micros(micros)
    }

    /// The canonical text form as a `String`.
    pub fn to_canonical(self) -> String {
        let mut out = Vec::with_capacity(27);
        self.write_canonical(&mut out);
        // The writer emits ASCII digits and separators only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Converts to a `time::OffsetDateTime` (UTC).
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Writes `v` as decimal digits filling `out`, zero-padded (higher digits are dropped).
fn put_digits(out: &mut [u8], mut v: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_canonical())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_canonical(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_canonical())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::serde_str::from_str_with(d, "an RFC 3339 UTC timestamp", Self::parse_canonical)
    }
}

/// Where a timestamp came from (R9.1): the host clock, or a clock validated against NTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeLabel {
    /// The host's system clock, not checked against a reference.
    System,
    /// The host clock checked against NTP; `offset_micros` is reference minus host at last check.
    Validated {
        /// Measured offset (reference - host) in microseconds.
        offset_micros: i64,
    },
}

impl TimeLabel {
    /// The canonical label: `system` or `ntp:<signed offset>us`, e.g. `ntp:-1250us`.
    pub fn to_label(self) -> String {
        match self {
            TimeLabel::System => "system".to_owned(),
            TimeLabel::Validated { offset_micros } => format!("ntp:{offset_micros:+}us"),
        }
    }

    /// Parses a canonical label.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "system" {
            return Some(TimeLabel::System);
        }
        let inner = s.strip_prefix("ntp:")?.strip_suffix("us")?;
        if !(inner.starts_with('+') || inner.starts_with('-')) {
            return None;
        }
        let offset_micros = inner.parse::<i64>().ok()?;
        let label = TimeLabel::Validated { offset_micros };
        // Only the exact canonical spelling is accepted, so the label round-trips byte for byte.
        (label.to_label() == s).then_some(label)
    }
}

impl fmt::Display for TimeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_label())
    }
}

impl Serialize for TimeLabel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_label())
    }
}

impl<'de> Deserialize<'de> for TimeLabel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::serde_str::from_str_with(d, "a time_source label", |s| {
            Self::parse(s).ok_or_else(|| format!("unknown time_source label {s:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        let t = Timestamp::from_unix_micros(0).unwrap();
        assert_eq!(t.to_canonical(), "1970-01-01T00:00:00.000000Z");
        let t = Timestamp::from_unix_micros(1_764_075_475_123_456).unwrap();
        assert_eq!(t.to_canonical(), "2025-11-25T12:57:55.123456Z");
        let t = Timestamp::from_unix_micros(951_782_400_000_001).unwrap();
        assert_eq!(t.to_canonical(), "2000-02-29T00:00:00.000001Z");
    }

    #[test]
    fn refuses_non_canonical_text() {
        for s in [
            "2025-11-25T12:57:55Z",
            "2025-11-25T12:57:55.123456+00:00",
            "2025-02-30T00:00:00.000000Z",
            "2025-11-25 12:57:55.123456Z",
            "１９７０-01-01T00:00:00.000000Z",
        ] {
            assert!(Timestamp::parse_canonical(s).is_err(), "{s}");
        }
    }

    // REQ: R9.1
    #[test]
    fn time_labels_round_trip_exactly() {
        for l in [
            TimeLabel::System,
            TimeLabel::Validated { offset_micros: 0 },
            TimeLabel::Validated {
                offset_micros: -1250,
            },
        ] {
            assert_eq!(TimeLabel::parse(&l.to_label()), Some(l));
        }
        assert_eq!(TimeLabel::parse("ntp:12us"), None);
        assert_eq!(TimeLabel::parse("ntp:+012us"), None);
        assert_eq!(TimeLabel::parse("sundial"), None);
    }

    proptest! {
        #[test]
        fn canonical_form_round_trips_and_matches_time_crate(micros in 0i64..=MAX_MICROS) {
            let t = Timestamp::from_unix_micros(micros).unwrap();
            let text = t.to_canonical();
            prop_assert_eq!(Timestamp::parse_canonical(&text).unwrap(), t);
            let odt = t.to_offset_date_time();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                odt.year(), u8::from(odt.month()), odt.day(),
                odt.hour(), odt.minute(), odt.second(), odt.microsecond()
            );
            prop_assert_eq!(text, expected);
        }
    }
}
