//! Check 18 of docs/spec/export.md §4: `access_review.json`, the periodic access review a
//! `_relay` package may carry. It must be in a `_relay` package (`selection`), parse as a
//! review of the known format (`parse`), carry the digest its content gives (`digest`: what
//! the `ACCESS_REVIEWED` event of its completion attests), have been built from records the
//! package holds (`head`), and match the manifest's SHA-256 and length (`sha256`).

use std::io::BufRead;

use sha2::{Digest, Sha256};

use super::PackageVerifier;
use crate::access_review::{ACCESS_REVIEW_FORMAT, review_digest_of_json};
use crate::export::ACCESS_REVIEW_JSON;
use crate::ids::Checksum;

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 18 (nothing to do when the package has no access review).
    pub(super) fn check_access_review(&mut self, bytes: Option<&[u8]>) {
        let Some(bytes) = bytes else {
            return;
        };
        let mut failures: Vec<(&'static str, String)> = Vec::new();
        let mut fail = |check: &'static str, detail: String| failures.push((check, detail));
        let mut passed = None;
        if !self.manifest.trail_id.is_relay() {
            fail(
                "selection",
                format!(
                    "an access review travels only in a package of the _relay trail, not of {}",
                    self.manifest.trail_id
                ),
            );
        }
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => fail("parse", format!("not JSON: {e}")),
            Ok(review) => {
                let format = review.get("format").and_then(serde_json::Value::as_str);
                let written = review.get("digest").and_then(serde_json::Value::as_str);
                let relay_seq = review.get("relay_seq").and_then(serde_json::Value::as_u64);
                let accounts = review
                    .get("accounts")
                    .and_then(serde_json::Value::as_array)
                    .map(Vec::len);
                match (format, written, relay_seq, accounts) {
                    (Some(ACCESS_REVIEW_FORMAT), Some(written), Some(seq), Some(n)) => {
                        let computed = review_digest_of_json(&review).unwrap_or_default();
                        if computed != written {
                            fail(
                                "digest",
                                format!(
                                    "the review's content gives digest {computed}; it says {written}"
                                ),
                            );
                        } else if seq > self.manifest.head.seq.get() {
                            fail(
                                "head",
                                format!(
                                    "built up to _relay#{seq}, beyond the package's head {}",
                                    self.manifest.head.seq
                                ),
                            );
                        } else {
                            passed = Some(format!(
                                "{n} accounts, built up to _relay#{seq}, digest {computed}"
                            ));
                        }
                    }
                    _ => fail(
                        "parse",
                        format!(
                            "not an access review of format {ACCESS_REVIEW_FORMAT:?} (format, \
                             digest, relay_seq and accounts are required)"
                        ),
                    ),
                }
            }
        }
        for (check, detail) in failures {
            self.f.fail(ACCESS_REVIEW_JSON, None, None, check, detail);
        }
        if let Some(detail) = passed {
            self.f.pass("access review", detail);
        }
        let sha = Checksum(Sha256::digest(bytes).into());
        self.check_digest(ACCESS_REVIEW_JSON, sha, bytes.len() as u64);
    }
}
