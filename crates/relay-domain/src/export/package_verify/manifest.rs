//! Checks 2-4 of docs/spec/export.md §4: the seal over the manifest, the seal key the auditor
//! expected, and that the package holds exactly the files the manifest lists.

use std::io::BufRead;

use super::{Origin, PackageVerifier};
use crate::export::seal::Seal;
use crate::export::{
    ACCESS_REVIEW_JSON, ANCHORS_JSON, MANIFEST_FILE, PACKAGE_FILES, PROOFS_JSONL, RECEIPTS_JSONL,
    RECORDS_CSV, RECORDS_JSON, RECORDS_JSONL,
};

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Checks 2-3: the Ed25519 seal over the manifest's signing bytes, and the key it names
    /// against the fingerprint the auditor expects (which pins the origin when both hold).
    pub(super) fn check_seal(
        &mut self,
        seal: &Seal,
        signing_bytes: &[u8],
        expect_fingerprint: Option<&str>,
    ) {
        let f = &mut self.f;
        match seal.verify(signing_bytes) {
            Ok(public) => {
                f.pass(
                    "seal",
                    format!(
                        "Ed25519 signature over the manifest holds (key {})",
                        public.fingerprint()
                    ),
                );
                self.seal_key = Some(public);
            }
            Err(e) => f.fail(MANIFEST_FILE, None, None, "seal", e.to_string()),
        }
        match expect_fingerprint {
            Some(expected) if !expected.eq_ignore_ascii_case(&seal.fingerprint) => f.fail(
                MANIFEST_FILE,
                None,
                None,
                "seal key",
                format!(
                    "sealed by key {} but {expected} was expected",
                    seal.fingerprint
                ),
            ),
            Some(expected) => {
                f.pass("seal key", "fingerprint matches the expected one");
                if !f.has(MANIFEST_FILE) {
                    self.origin = Origin::Pinned(expected.to_ascii_lowercase());
                }
            }
            None => {}
        }
    }

    /// Check 4: the package holds exactly the files the manifest lists (and only package
    /// files); `records.jsonl` and `anchors.json` are required, and `proofs.jsonl` in partial
    /// exports. `anchors.json` is read whole, so only its presence is given here.
    pub(super) fn check_file_list(
        &mut self,
        has_anchors: bool,
        has_access_review: bool,
        other_entries: &[String],
    ) {
        let manifest = &self.manifest;
        let f = &mut self.f;
        // Every listed name is a package file (and not the manifest itself).
        for name in manifest.rendered_sha256.keys() {
            if name == MANIFEST_FILE || !PACKAGE_FILES.contains(&name.as_str()) {
                f.fail(
                    MANIFEST_FILE,
                    None,
                    None,
                    "file list",
                    format!("lists {name:?}, which is not a package file"),
                );
            }
        }
        // Every file is present exactly when it is listed (so covered by the seal).
        let files = &self.files;
        let present = [
            (RECORDS_JSONL, files.jsonl.is_some()),
            (RECORDS_CSV, files.csv.is_some()),
            (RECORDS_JSON, files.json.is_some()),
            (PROOFS_JSONL, files.proofs.is_some()),
            (ANCHORS_JSON, has_anchors),
            (RECEIPTS_JSONL, files.receipts.is_some()),
            (ACCESS_REVIEW_JSON, has_access_review),
        ];
        for (name, is_present) in present {
            let listed = manifest.rendered_sha256.contains_key(name);
            if listed && !is_present {
                f.fail(
                    name,
                    None,
                    None,
                    "presence",
                    "listed in the manifest but missing",
                );
            } else if is_present && !listed {
                f.fail(
                    name,
                    None,
                    None,
                    "presence",
                    "present but not covered by the seal",
                );
            }
        }
        // Nothing else is in the package.
        for other in other_entries {
            let shown: String = other.chars().take(200).collect();
            f.fail(
                &shown,
                None,
                None,
                "presence",
                "unexpected entry in the package (not covered by the seal)",
            );
        }
        // The records and the anchors are required, and partial exports must prove inclusion.
        for required in [RECORDS_JSONL, ANCHORS_JSON] {
            if !manifest.rendered_sha256.contains_key(required) {
                f.fail(
                    required,
                    None,
                    None,
                    "presence",
                    "required file is not in the manifest",
                );
            }
        }
        if !manifest.is_whole_trail() && !manifest.rendered_sha256.contains_key(PROOFS_JSONL) {
            f.fail(
                PROOFS_JSONL,
                None,
                None,
                "presence",
                "a partial export must carry Merkle proofs",
            );
        }
    }
}
