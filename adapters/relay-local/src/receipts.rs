//! `SqliteReceiptStore`: the server of record's time of receipt of forwarded records, table
//! `receipts` of the record store's database (migration 0005), append-only by trigger.

use async_trait::async_trait;
use relay_domain::ports::receipts::decide_record;
use relay_domain::ports::{Receipt, ReceiptError, ReceiptStore};
use relay_domain::{Timestamp, TrailId};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::error::LocalError;

/// The receipt store of the local adapter, on the record store's pool.
#[derive(Clone)]
pub struct SqliteReceiptStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteReceiptStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReceiptStore").finish_non_exhaustive()
    }
}

impl SqliteReceiptStore {
    /// A receipt store over `pool` (the record store's: the schema is migrated with it).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "trail_id, first_seq, last_seq, received_at, edge";

fn decode(row: &SqliteRow) -> Result<Receipt, ReceiptError> {
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
impl ReceiptStore for SqliteReceiptStore {
    async fn record(&self, receipt: &Receipt) -> Result<(), ReceiptError> {
        receipt.check()?;
        // One writer at a time (BEGIN IMMEDIATE): the overlap check and the insert are atomic;
        // the `receipts_no_overlap` trigger refuses overlaps from any other writer too.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(LocalError::sql("begin receipt"))?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM receipts WHERE trail_id = ? AND first_seq <= ? \
             AND last_seq >= ? ORDER BY first_seq"
        ))
        .bind(receipt.trail_id.as_str())
        .bind(to_i64(receipt.last_seq))
        .bind(to_i64(receipt.first_seq))
        .fetch_all(&mut *tx)
        .await
        .map_err(LocalError::sql("read overlapping receipts"))?;
        let overlapping = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if decide_record(receipt, &overlapping)? {
            sqlx::query(
                "INSERT INTO receipts (trail_id, first_seq, last_seq, received_at, edge) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(receipt.trail_id.as_str())
            .bind(to_i64(receipt.first_seq))
            .bind(to_i64(receipt.last_seq))
            .bind(receipt.received_at.to_canonical())
            .bind(&receipt.edge)
            .execute(&mut *tx)
            .await
            .map_err(LocalError::sql("insert receipt"))?;
        }
        tx.commit()
            .await
            .map_err(LocalError::sql("commit receipt"))?;
        Ok(())
    }

    async fn receipts(
        &self,
        trail: &TrailId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM receipts WHERE trail_id = ? AND first_seq <= ? \
             AND last_seq >= ? ORDER BY first_seq"
        ))
        .bind(trail.as_str())
        .bind(to_i64(to_seq))
        .bind(to_i64(from_seq))
        .fetch_all(&self.pool)
        .await
        .map_err(LocalError::sql("read receipts"))?;
        rows.iter().map(decode).collect()
    }
}
