//! A fast, conservative test that a payload text is already in its RFC 8785 (JCS) form, so
//! `Payload::parse` (ingest, stores, the package verifier) need not parse it into a value and
//! canonicalize it again to find out.
//!
//! It answers `true` only for a subset of JSON it can judge exactly: objects and arrays (nested
//! at most [`MAX_DEPTH`] deep), keys of printable ASCII without escapes in strictly increasing
//! byte order (which is RFC 8785's UTF-16 order for ASCII), strings whose escapes are the short
//! forms JSON.stringify writes, integers in their shortest spelling up to 2^53 in magnitude,
//! `true`, `false` and `null`, with no whitespace anywhere. Anything else (a fraction or an
//! exponent, a `\u` escape, a non-ASCII key, ...) is `false`, meaning "not known": the caller
//! then takes the full path (parse into a JSON value, canonicalize, compare), which decides and
//! names the fault. So the answer can only save work, never change a verdict; the property
//! test `fast_canonical_check_never_accepts_what_parsing_would_change` holds it to that.

/// How deep the fast check follows nested objects and arrays before it gives up.
pub const MAX_DEPTH: usize = 64;

/// The largest integer magnitude an IEEE double holds exactly (RFC 8785 numbers are doubles).
const MAX_EXACT_INT: u64 = 1 << 53;

/// Whether `text` is certainly a JSON object in RFC 8785 canonical form, no longer than `max`
/// bytes (`false`: not known).
pub fn is_canonical_object(text: &str, max: usize) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() > max || bytes.first() != Some(&b'{') {
        return false;
    }
    let mut at = 0;
    value(bytes, &mut at, 0) && at == bytes.len()
}

/// The end (exclusive) of the JSON object that starts at byte `at` of `text`, when that object
/// is certainly in RFC 8785 canonical form (by the rules of [`is_canonical_object`]) and at most
/// `max` bytes long; `None`: not known. Lets a reader of a larger canonical text find where an
/// embedded object ends and know it canonical in one pass.
pub(crate) fn canonical_object_end(text: &str, at: usize, max: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut end = at;
    (value(bytes, &mut end, 0) && end - at <= max).then_some(end)
}

/// Checks the value starting at `*at` and moves past it.
fn value(b: &[u8], at: &mut usize, depth: usize) -> bool {
    match b.get(*at) {
        Some(b'{') => depth < MAX_DEPTH && object(b, at, depth + 1),
        Some(b'[') => depth < MAX_DEPTH && array(b, at, depth + 1),
        Some(b'"') => string(b, at),
        Some(b'-' | b'0'..=b'9') => integer(b, at),
        Some(b't') => literal(b, at, b"true"),
        Some(b'f') => literal(b, at, b"false"),
        Some(b'n') => literal(b, at, b"null"),
        _ => false,
    }
}

fn literal(b: &[u8], at: &mut usize, word: &[u8]) -> bool {
    if b.get(*at..*at + word.len()) == Some(word) {
        *at += word.len();
        true
    } else {
        false
    }
}

/// `{` members in strictly increasing key order `}`.
fn object(b: &[u8], at: &mut usize, depth: usize) -> bool {
    *at += 1;
    if b.get(*at) == Some(&b'}') {
        *at += 1;
        return true;
    }
    let mut previous: Option<&[u8]> = None;
    loop {
        let Some(key) = plain_key(b, at) else {
            return false;
        };
        if previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
        if b.get(*at) != Some(&b':') {
            return false;
        }
        *at += 1;
        if !value(b, at, depth) {
            return false;
        }
        match b.get(*at) {
            Some(b',') => *at += 1,
            Some(b'}') => {
                *at += 1;
                return true;
            }
            _ => return false,
        }
    }
}

/// A key of printable ASCII without `"` or `\`; returns its bytes (between the quotes).
fn plain_key<'b>(b: &'b [u8], at: &mut usize) -> Option<&'b [u8]> {
    if b.get(*at) != Some(&b'"') {
        return None;
    }
    let start = *at + 1;
    let len = b
        .get(start..)?
        .iter()
        .position(|c| *c == b'"' || *c == b'\\' || !(0x20..0x7f).contains(c))?;
    if b[start + len] != b'"' {
        return None;
    }
    *at = start + len + 1;
    Some(&b[start..start + len])
}

/// `[` values `]`.
fn array(b: &[u8], at: &mut usize, depth: usize) -> bool {
    *at += 1;
    if b.get(*at) == Some(&b']') {
        *at += 1;
        return true;
    }
    loop {
        if !value(b, at, depth) {
            return false;
        }
        match b.get(*at) {
            Some(b',') => *at += 1,
            Some(b']') => {
                *at += 1;
                return true;
            }
            _ => return false,
        }
    }
}

/// A string as JSON.stringify writes it: no control characters, and only the escapes `\"`,
/// `\\`, `\b`, `\f`, `\n`, `\r` and `\t` (a `\u` escape is left to the full path). The text is
/// valid UTF-8 (it is a `&str`), and other characters are written as they are.
fn string(b: &[u8], at: &mut usize) -> bool {
    *at += 1;
    loop {
        match b.get(*at) {
            Some(b'"') => {
                *at += 1;
                return true;
            }
            Some(b'\\') => match b.get(*at + 1) {
                Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => *at += 2,
                _ => return false,
            },
            Some(c) if *c < 0x20 => return false,
            Some(_) => *at += 1,
            None => return false,
        }
    }
}

/// An integer in its shortest spelling (`0`, or no leading zero; no `-0`), at most 2^53 in
/// magnitude, and not followed by a fraction or an exponent.
fn integer(b: &[u8], at: &mut usize) -> bool {
    let start = *at;
    if b[*at] == b'-' {
        *at += 1;
    }
    let digits_start = *at;
    while b.get(*at).is_some_and(u8::is_ascii_digit) {
        *at += 1;
    }
    let digits = &b[digits_start..*at];
    if digits.is_empty()
        || (digits[0] == b'0' && (digits.len() > 1 || digits_start > start))
        || matches!(b.get(*at), Some(b'.' | b'e' | b'E'))
        || digits.len() > 16
    {
        return false;
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .is_some_and(|n| n <= MAX_EXACT_INT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Payload;

    const MAX: usize = 1 << 20;

    #[test]
    fn accepts_the_canonical_forms_it_knows() {
        for text in [
            "{}",
            r#"{"a":1,"b":[true,false,null],"c":{"d":"x\ny\"z\\"}}"#,
            r#"{"path":"run-01/f.fid","sha256":"ab12","size":9007199254740992}"#,
            r#"{"n":-9007199254740992,"z":0}"#,
            r#"{"s":"Grüße, 日本"}"#,
        ] {
            assert!(is_canonical_object(text, MAX), "{text}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json_canonicalizer::to_string(&value).unwrap(), text);
            assert_eq!(Payload::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn leaves_everything_else_to_the_full_path() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{ "a":1}"#,
            r#"{"a":1} "#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":9007199254740993}"#,
            r#"{"a":"\u0001"}"#,
            r#"{"a":"\/"}"#,
            r#"{"é":1}"#,
            r#"{"a\"b":1}"#,
            "[1]",
            "{\"a\":\"tab\there\"}",
            r#"{"a":tru}"#,
            r#"{"a":"#,
            "",
        ] {
            assert!(!is_canonical_object(text, MAX), "{text}");
        }
        assert!(!is_canonical_object(r#"{"a":1}"#, 3), "longer than allowed");
        let deep = format!("{}{}", "{\"a\":[".repeat(40), "]}".repeat(40));
        assert!(!is_canonical_object(&deep, MAX), "deeper than MAX_DEPTH");
    }
}
