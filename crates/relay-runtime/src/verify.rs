//! Verification of every stored trail against its keys and notary anchors.
//!
//! One implementation, in `relay_api`, shared by the review API's `POST /api/v1/verify` and the
//! binaries' `verify` commands, so the two can never check a trail with different keys.

pub use relay_api::{
    TrailVerdict, VerifyReport, VerifyRunError, forwarded_key_ring, trail_key_ring, verify_trails,
};

/// The lines `relay-edge verify` and `relay-server verify` print for `report`: one per trail
/// (`OK` / `BROKEN`), then the store's append-only enforcement (`OK` / `MISSING` per control).
pub fn report_lines(report: &VerifyReport) -> Vec<String> {
    let mut lines = Vec::with_capacity(report.verdicts.len() + 2);
    for v in &report.verdicts {
        match &v.verdict {
            Ok(s) => {
                let head = s
                    .head
                    .map(|(seq, c)| format!("head {seq} {c}"))
                    .unwrap_or_else(|| "empty".into());
                let mut line = format!(
                    "OK      {}: {} records verified ({}), {} anchor(s) checked",
                    v.trail_id, s.records, head, s.anchors_checked
                );
                if let Some(h) = v.anchor_history.as_ref().filter(|h| h.version_2 > 0) {
                    line.push_str(&format!(
                        "; {} signed checkpoint(s) verified, {} consistency proof(s) hold",
                        h.signatures_verified, h.proofs_verified
                    ));
                }
                lines.push(line);
            }
            Err(f) => lines.push(format!(
                "BROKEN  {}: first bad chain_seq {}: {}",
                v.trail_id, f.seq, f.reason
            )),
        }
    }
    if report.verdicts.is_empty() {
        lines.push("no trails to verify".into());
    }
    let e = &report.append_only;
    if e.holds() {
        lines.push(format!(
            "OK      append-only enforcement ({}): {}",
            e.mechanism,
            e.present.join(", ")
        ));
    } else {
        for m in &e.missing {
            lines.push(format!(
                "MISSING append-only enforcement ({}): {m}",
                e.mechanism
            ));
        }
    }
    lines
}
