//! Check 5 of docs/spec/export.md §4: `anchors.json`, the notary anchors of the trail up to the
//! exported head. They must be of this trail, none beyond the head (which would mean a
//! truncated trail), and one must notarize the head itself.

use std::io::BufRead;

use sha2::{Digest, Sha256};

use super::PackageVerifier;
use crate::anchor_history::check_anchor_history;
use crate::export::{ANCHORS_JSON, MAX_ANCHORS_BYTES};
use crate::ids::Checksum;
use crate::ports::Anchor;

impl<R: BufRead> PackageVerifier<'_, R> {
    /// Check 5: the digest of `anchors.json`, its parse, each anchor's trail and seq, and the
    /// anchor of the head. Keeps the anchors for the record walk.
    pub(super) fn check_anchors(&mut self, bytes: Option<&[u8]>) {
        if let Some(bytes) = bytes {
            let sha = Checksum(Sha256::digest(bytes).into());
            self.check_digest(ANCHORS_JSON, sha, bytes.len() as u64);
            if bytes.len() > MAX_ANCHORS_BYTES {
                self.f
                    .fail(ANCHORS_JSON, None, None, "parse", "file is too large");
            } else {
                match serde_json::from_slice::<Vec<Anchor>>(bytes) {
                    Ok(list) => self.anchors = list,
                    Err(e) => self
                        .f
                        .fail(ANCHORS_JSON, None, None, "parse", e.to_string()),
                }
            }
        }
        let manifest = &self.manifest;
        let anchors = &self.anchors;
        let f = &mut self.f;
        // Every anchor is of this trail, and none lies beyond the exported head.
        for (i, a) in anchors.iter().enumerate() {
            if a.trail_id != manifest.trail_id {
                f.fail(
                    ANCHORS_JSON,
                    Some(i as u64 + 1),
                    Some(a.seq.get()),
                    "anchor",
                    format!(
                        "anchor of trail {} in a package of {}",
                        a.trail_id, manifest.trail_id
                    ),
                );
            }
            if a.seq > manifest.head.seq {
                f.fail(
                    ANCHORS_JSON,
                    Some(i as u64 + 1),
                    Some(a.seq.get()),
                    "anchor",
                    format!(
                        "anchor at chain_seq {} lies beyond the exported head {}: trail truncated",
                        a.seq, manifest.head.seq
                    ),
                );
            }
        }
        // An anchor notarizes the head, with the head's checksum and tree head.
        let head = manifest.head;
        let head_anchor = anchors
            .iter()
            .filter(|a| a.seq == head.seq)
            .collect::<Vec<_>>();
        if head_anchor.is_empty() {
            f.fail(
                ANCHORS_JSON,
                None,
                Some(head.seq.get()),
                "anchor",
                format!(
                    "no anchor covers the exported head (chain_seq {})",
                    head.seq
                ),
            );
        }
        for a in &head_anchor {
            let root_ok = a.merkle_root.is_none_or(|r| r == head.merkle_root);
            if a.checksum != head.checksum || !root_ok {
                f.fail(
                ANCHORS_JSON,
                None,
                Some(head.seq.get()),
                "anchor",
                "the anchor of the head differs from the manifest's head checksum or Merkle root",
            );
            }
        }
        self.head_anchored = !head_anchor.is_empty();
        // The anchors agree with each other: checkpoints signed with the seal key that sealed
        // this package, consistency links that hold, no fork (docs/spec/checkpoint.md). The
        // chain of links from the head's anchor proves every earlier anchored tree a prefix of
        // the head's, without the records in between.
        let history = check_anchor_history(&manifest.trail_id, anchors, self.seal_key.as_ref());
        for finding in &history.findings {
            f.fail(
                ANCHORS_JSON,
                None,
                Some(finding.seq.get()),
                "anchor",
                finding.to_string(),
            );
        }
        self.history = history;
    }

    /// The anchors' passed check, once the records' totals are checked: an anchor notarizes
    /// the head and no anchor check failed.
    pub(super) fn pass_anchors(&mut self) {
        let head = self.manifest.head;
        if self.head_anchored && !self.f.has(ANCHORS_JSON) {
            let h = &self.history;
            self.f.pass("anchors", format!(
                "{} anchor(s); the head chain_seq {} is notarized with the same checksum and tree head; \
                 {} signed checkpoint(s) verified with the seal key, {} consistency proof(s) hold, \
                 {} anchor(s) proven prefixes of the head's tree",
                self.anchors.len(), head.seq, h.signatures_verified, h.proofs_verified, h.proven_prefixes
            ));
        }
    }
}
