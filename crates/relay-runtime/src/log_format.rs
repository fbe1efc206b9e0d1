//! The human log format's field formatter: every field value (the message included) has its
//! control characters escaped, so a file name such as `"a\nFORGED line"` stays on its own log
//! line and an ANSI escape in a name cannot repaint the operator's terminal.
//!
//! `tracing-subscriber`'s default field formatter writes `%`-formatted values as they are; ours
//! writes `\n`, `\r` and `\t` as two-character escapes and every other control character (C0,
//! DEL, C1, and the Unicode line and paragraph separators) as `\u{..}`. The JSON format
//! needs none of this: JSON strings escape control characters already.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// A [`FormatFields`] for the human format that escapes control characters in every field.
///
/// Use it with `tracing_subscriber::fmt().fmt_fields(EscapedFields)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value, false);
        } else {
            self.write(field, value, true);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            // Same shape as the binaries' error reports: "outer: cause: cause".
            if write!(text, ": {cause}").is_err() {
                break;
            }
            source = cause.source();
        }
        self.write(field, &text, false);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"), false);
    }
}

impl EscapingVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &str, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of records bridged from the `log` crate, already shown by the formatter.
        if name.starts_with("log.") {
            return;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        let value = escape_control(value);
        self.result = self.result.and_then(|()| match name {
            "message" => write!(self.writer, "{value}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                if quoted {
                    write!(self.writer, "{name}=\"{value}\"")
                } else {
                    write!(self.writer, "{name}={value}")
                }
            }
        });
    }
}

/// `text` with every control character escaped (see the module docs); borrowed when there is
/// none, which is the common case.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_newlines_ansi_and_separators_and_keeps_plain_text() {
        assert!(matches!(escape_control("run7/fid"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\nFORGED line\r\t\u{1b}[31mred\u{7f}\u{85}\u{2028}"),
            "a\\nFORGED line\\r\\t\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}"
        );
    }

    #[test]
    fn a_forged_line_in_any_field_stays_on_one_line() {
        use std::io;
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "a\nFORGED line";
            let span = tracing::info_span!("capture", root = %"/data\n2026 FORGED span");
            let _entered = span.enter();
            let err = io::Error::other("disk\nFORGED error");
            tracing::warn!(path = %name, debug = ?name, plain = name, error = &err as &dyn std::error::Error, "file\nFORGED message");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.lines().any(|l| l.starts_with("FORGED")), "{out}");
        assert!(out.contains("path=a\\nFORGED line"), "{out}");
        assert!(out.contains("plain=\"a\\nFORGED line\""), "{out}");
        assert!(out.contains("file\\nFORGED message"), "{out}");
        assert!(out.contains("root=/data\\n2026 FORGED span"), "{out}");
    }
}
