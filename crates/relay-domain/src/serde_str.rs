//! Deserializing a value from a JSON string where the reader holds it, without first copying
//! the text into a `String` (serde's `Cow<str>` always copies). The record decoders (ingest,
//! `records.jsonl`, stores) read millions of timestamps, checksums and labels.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Error, Visitor};

/// Deserializes a string with `parse`, which says why text is refused; `expecting` names what
/// the text must be (for type errors, e.g. a number where a string belongs).
pub(crate) fn from_str_with<'de, D, T, F, E>(
    d: D,
    expecting: &'static str,
    parse: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, E>,
    E: fmt::Display,
{
    struct StrVisitor<F, T> {
        expecting: &'static str,
        parse: F,
        out: PhantomData<T>,
    }
    impl<T, F, E> Visitor<'_> for StrVisitor<F, T>
    where
        F: FnOnce(&str) -> Result<T, E>,
        E: fmt::Display,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<Er: Error>(self, s: &str) -> Result<T, Er> {
            (self.parse)(s).map_err(Er::custom)
        }
    }
    d.deserialize_str(StrVisitor {
        expecting,
        parse,
        out: PhantomData,
    })
}
