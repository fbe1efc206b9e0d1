//! The forwarder's read-ahead: while one batch of a trail is in flight, the next one is read from
//! the local store and encoded, so the server's acknowledgement is followed at once by the next
//! request instead of by a store read and a JSON encoding.
//!
//! Nothing of the forwarding contract changes: one batch of a trail is in flight at a time, the
//! next is sent only after the previous one was acknowledged, and the durable cursor still moves
//! only on an acknowledgement. A batch read ahead is used only when it starts exactly at the
//! cursor the loop reads afterwards; any other answer (retry, poison, a partial acknowledgement)
//! or a stop drops it, and the loop reads again from the cursor as it always did.

use std::sync::Arc;

use hyper::body::Bytes;
use relay_domain::ports::{RecordStore, RecordStoreError};
use relay_domain::{Record, TrailId};
use serde::Serialize;
use tokio::task::JoinHandle;

/// The body of an ingest request (the server's `IngestRequest`).
#[derive(Serialize)]
struct IngestBody<'a> {
    trail_id: &'a TrailId,
    records: &'a [Record],
}

/// Encodes `records` of `trail` as the body of `POST /api/v1/ingest`.
pub(crate) fn encode_batch(trail: &TrailId, records: &[Record]) -> Result<Bytes, String> {
    serde_json::to_vec(&IngestBody {
        trail_id: trail,
        records,
    })
    .map(Bytes::from)
    .map_err(|e| format!("cannot encode the batch: {e}"))
}

/// A batch read from the store and encoded, ready to send.
pub(crate) struct Batch {
    /// The acknowledged seq it continues: its first record is `after + 1`.
    pub(crate) after: u64,
    /// Its records, in chain order (never empty).
    pub(crate) records: Vec<Record>,
    /// The encoded request body, or why it could not be encoded.
    pub(crate) body: Result<Bytes, String>,
}

impl Batch {
    /// The first and the last seq of the batch.
    pub(crate) fn seqs(&self) -> (u64, u64) {
        let first = self.records.first().map_or(0, |r| r.chain_seq.get());
        let last = self.records.last().map_or(0, |r| r.chain_seq.get());
        (first, last)
    }
}

/// Reads up to `max` records of `trail` after `after` and encodes them; `None` when there is no
/// record after `after` yet.
pub(crate) async fn read_batch(
    store: &dyn RecordStore,
    trail: &TrailId,
    after: u64,
    max: usize,
) -> Result<Option<Batch>, RecordStoreError> {
    let records = store.read(trail, after, max.max(1)).await?;
    if records.is_empty() {
        return Ok(None);
    }
    let body = encode_batch(trail, &records);
    Ok(Some(Batch {
        after,
        records,
        body,
    }))
}

/// The next batch being read in the background; dropping it cancels the read.
pub(crate) struct ReadAhead {
    task: JoinHandle<Result<Option<Batch>, RecordStoreError>>,
}

impl ReadAhead {
    /// Starts reading the batch after `after` on another task.
    pub(crate) fn start(
        store: Arc<dyn RecordStore>,
        trail: TrailId,
        after: u64,
        max: usize,
    ) -> Self {
        Self {
            task: tokio::spawn(async move { read_batch(store.as_ref(), &trail, after, max).await }),
        }
    }

    /// The batch read ahead, when it could be read and holds a record. A failed read is logged
    /// and dropped: the loop then reads from its cursor itself and reports a failure there.
    pub(crate) async fn finish(mut self, trail: &TrailId) -> Option<Batch> {
        match (&mut self.task).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::debug!(trail = %trail, error = %e,
                    "forwarder: the read-ahead failed; reading again from the cursor");
                None
            }
            Err(e) => {
                tracing::debug!(trail = %trail, error = %e,
                    "forwarder: the read-ahead task ended; reading again from the cursor");
                None
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}
