//! Binary `COPY` of records into `event_log` (issue 23, item 3): the cheapest way Postgres
//! takes rows, used for large batches inside the same transaction, advisory lock and
//! link-at-head check as every append.
//!
//! Format (PostgreSQL "COPY ... (FORMAT binary)"): the 11-byte signature, a 32-bit flags word
//! and a 32-bit header-extension length (both 0); per row a 16-bit field count and per field a
//! 32-bit length (-1 for NULL) and its bytes (`text` as UTF-8, `bigint` as 8 bytes big-endian);
//! then the 16-bit trailer -1. The columns are [`EVENT_LOG_COLUMNS`](relay_domain::columns::EVENT_LOG_COLUMNS) in order.

use relay_domain::{Project, Record, Subject};
use sqlx::PgConnection;

/// The binary COPY signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Fields per row: the 15 columns of `event_log`.
const FIELDS: i16 = 15;

/// Batches at least this large go through `COPY`; smaller ones through one multi-row INSERT,
/// which costs fewer round trips for a handful of rows.
pub(crate) const COPY_MIN_ROWS: usize = 64;

fn text(out: &mut Vec<u8>, s: &str) {
    // A field longer than 2 GiB cannot be a record (records are capped far below it).
    out.extend_from_slice(&i32::try_from(s.len()).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => text(out, s),
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// The COPY data for `records`, in [`EVENT_LOG_COLUMNS`](relay_domain::columns::EVENT_LOG_COLUMNS) order.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + records.len() * 700);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for r in records {
        out.extend_from_slice(&FIELDS.to_be_bytes());
        text(&mut out, r.trail_id.as_str());
        out.extend_from_slice(&8i32.to_be_bytes());
        // Checked by the caller: every seq of the batch fits in an i64.
        out.extend_from_slice(
            &i64::try_from(r.chain_seq.get())
                .unwrap_or(i64::MAX)
                .to_be_bytes(),
        );
        text(&mut out, &r.prev_checksum.to_hex());
        text(&mut out, &r.checksum.to_hex());
        text(&mut out, r.kind.as_str());
        text(&mut out, r.actor.as_str());
        text(&mut out, r.actor_source.as_str());
        text(&mut out, &r.occurred_at.to_canonical());
        text(&mut out, &r.recorded_at.to_canonical());
        text(&mut out, &r.time_source.to_label());
        text(&mut out, r.device.as_str());
        optional(&mut out, r.project.as_ref().map(Project::as_str));
        optional(&mut out, r.subject.as_ref().map(Subject::as_str));
        text(&mut out, r.payload.as_str());
        text(&mut out, r.key_id.as_str());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Copies `records` into `table` with one binary `COPY` on `conn` (inside the caller's
/// transaction). A failure aborts the copy, so the connection stays usable and the
/// transaction rolls back.
pub(crate) async fn copy_rows(
    conn: &mut PgConnection,
    table: &str,
    records: &[Record],
) -> Result<u64, sqlx::Error> {
    let data = encode(records);
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            crate::record_store::COLUMNS
        ))
        .await?;
    if let Err(e) = copy.send(data).await {
        if let Err(abort) = copy.abort("the relay could not send the rows").await {
            tracing::warn!(error = %abort, "aborting a failed COPY failed too");
        }
        return Err(e);
    }
    copy.finish().await
}
