//! `PgReceiptStore`: the server of record's time of receipt of forwarded records, table
//! `receipts` (migration 0004). The runtime role holds SELECT, INSERT only; triggers refuse
//! UPDATE, DELETE, TRUNCATE and overlapping inserts, the owner included (P0001).

use async_trait::async_trait;
use relay_domain::ports::receipts::decide_record;
use relay_domain::ports::{Receipt, ReceiptError, ReceiptStore};
use relay_domain::{Timestamp, TrailId};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use crate::error::PgError;

/// The advisory lock namespace of receipts (`'RECR'`), also taken by the overlap trigger.
const RECEIPT_LOCK_NAMESPACE: i32 = 0x5245_4352;

/// The receipt store of the self-hosted adapter, on the runtime role's pool.
#[derive(Clone)]
pub struct PgReceiptStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgReceiptStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReceiptStore").finish_non_exhaustive()
    }
}

impl PgReceiptStore {
    /// A receipt store over `pool` (e.g. [`crate::PgRecordStore::pool`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const SELECT: &str = "SELECT trail_id, first_seq, last_seq, received_at, edge FROM receipts \
                      WHERE trail_id = $1 AND first_seq <= $2 AND last_seq >= $3 \
                      ORDER BY first_seq";

fn decode(row: &PgRow) -> Result<Receipt, ReceiptError> {
    let trail: String = row.try_get(0).map_err(|e| ReceiptError::Corrupt {
        trail_id: "?".into(),
        message: format!("column trail_id: {e}"),
    })?;
    let corrupt = |message: String| ReceiptError::Corrupt {
        trail_id: trail.clone(),
        message,
    };
    let seq = |i: usize| -> Result<u64, ReceiptError> {
        let v: i64 = row
            .try_get(i)
            .map_err(|e| corrupt(format!("column {i}: {e}")))?;
        u64::try_from(v).map_err(|_| corrupt(format!("column {i} is negative")))
    };
    let received_at: String = row
        .try_get(3)
        .map_err(|e| corrupt(format!("column received_at: {e}")))?;
    let edge: String = row
        .try_get(4)
        .map_err(|e| corrupt(format!("column edge: {e}")))?;
    Ok(Receipt {
        trail_id: TrailId::new(trail.clone()).map_err(|e| corrupt(e.to_string()))?,
        first_seq: seq(1)?,
        last_seq: seq(2)?,
        received_at: Timestamp::parse_canonical(&received_at)
            .map_err(|e| corrupt(format!("received_at {received_at:?}: {e}")))?,
        edge,
    })
}

#[async_trait]
impl ReceiptStore for PgReceiptStore {
    async fn record(&self, receipt: &Receipt) -> Result<(), ReceiptError> {
        receipt.check()?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(PgError::op("begin receipt"))?;
        // The overlap check and the insert are one step across processes: the same per-trail
        // lock the table's trigger takes.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(RECEIPT_LOCK_NAMESPACE)
            .bind(receipt.trail_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(PgError::op("lock receipts of the trail"))?;
        let rows = sqlx::query(SELECT)
            .bind(receipt.trail_id.as_str())
            .bind(to_i64(receipt.last_seq))
            .bind(to_i64(receipt.first_seq))
            .fetch_all(&mut *tx)
            .await
            .map_err(PgError::op("read overlapping receipts"))?;
        let overlapping = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if decide_record(receipt, &overlapping)? {
            sqlx::query(
                "INSERT INTO receipts (trail_id, first_seq, last_seq, received_at, edge) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(receipt.trail_id.as_str())
            .bind(to_i64(receipt.first_seq))
            .bind(to_i64(receipt.last_seq))
            .bind(receipt.received_at.to_canonical())
            .bind(&receipt.edge)
            .execute(&mut *tx)
            .await
            .map_err(PgError::op("insert receipt"))?;
        }
        tx.commit().await.map_err(PgError::op("commit receipt"))?;
        Ok(())
    }

    async fn receipts(
        &self,
        trail: &TrailId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let rows = sqlx::query(SELECT)
            .bind(trail.as_str())
            .bind(to_i64(to_seq))
            .bind(to_i64(from_seq))
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::op("read receipts"))?;
        rows.iter().map(decode).collect()
    }
}
