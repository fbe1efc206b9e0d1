//! `SqliteForwardCursorStore`: the forwarder's progress per trail, table `forward_cursor` of the
//! record store's database (so a cursor and the records it points into share one file and one
//! durability setting, `synchronous=FULL`).

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{
    DeadLetter, ForwardCursor, ForwardCursorError, ForwardCursorStore, ForwardState,
};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::error::LocalError;

/// The forward cursor store of the local adapter, on the record store's pool.
#[derive(Clone)]
pub struct SqliteForwardCursorStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteForwardCursorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteForwardCursorStore")
            .finish_non_exhaustive()
    }
}

impl SqliteForwardCursorStore {
    /// A cursor store over `pool` (the record store's: the schema is migrated with it).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const COLUMNS: &str =
    "trail_id, acked_seq, poisoned, dead_first_seq, dead_last_seq, dead_status, dead_reason";

fn decode(row: &SqliteRow) -> Result<ForwardCursor, ForwardCursorError> {
    let trail: String = row.try_get(0).map_err(|e| ForwardCursorError::Corrupt {
        trail_id: "?".into(),
        message: format!("column trail_id: {e}"),
    })?;
    let corrupt = |message: String| ForwardCursorError::Corrupt {
        trail_id: trail.clone(),
        message,
    };
    let trail_id = TrailId::new(trail.clone()).map_err(|e| corrupt(e.to_string()))?;
    let get_u64 = |i: usize| -> Result<Option<u64>, ForwardCursorError> {
        let v: Option<i64> = row
            .try_get(i)
            .map_err(|e| corrupt(format!("column {i}: {e}")))?;
        v.map(|v| u64::try_from(v).map_err(|_| corrupt(format!("column {i} is negative"))))
            .transpose()
    };
    let acked_seq = get_u64(1)?.unwrap_or(0);
    let poisoned = get_u64(2)?.unwrap_or(0) == 1;
    let state = if poisoned {
        let reason: Option<String> = row
            .try_get(6)
            .map_err(|e| corrupt(format!("column dead_reason: {e}")))?;
        ForwardState::Poisoned(DeadLetter {
            first_seq: get_u64(3)?.unwrap_or(0),
            last_seq: get_u64(4)?.unwrap_or(0),
            status: u16::try_from(get_u64(5)?.unwrap_or(0)).unwrap_or(0),
            reason: reason.unwrap_or_default(),
        })
    } else {
        ForwardState::Active
    };
    Ok(ForwardCursor {
        trail_id,
        acked_seq,
        state,
    })
}

#[async_trait]
impl ForwardCursorStore for SqliteForwardCursorStore {
    async fn get(&self, trail: &TrailId) -> Result<Option<ForwardCursor>, ForwardCursorError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM forward_cursor WHERE trail_id = ?"
        ))
        .bind(trail.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(LocalError::sql("read forward cursor"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn set_acked(&self, trail: &TrailId, seq: u64) -> Result<(), ForwardCursorError> {
        sqlx::query(
            "INSERT INTO forward_cursor (trail_id, acked_seq) VALUES (?1, ?2) \
             ON CONFLICT (trail_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq), \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(trail.as_str())
        .bind(to_i64(seq))
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("advance forward cursor"))?;
        Ok(())
    }

    async fn set_poisoned(
        &self,
        trail: &TrailId,
        dead_letter: &DeadLetter,
    ) -> Result<(), ForwardCursorError> {
        sqlx::query(
            "INSERT INTO forward_cursor (trail_id, poisoned, dead_first_seq, dead_last_seq, \
             dead_status, dead_reason) VALUES (?1, 1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (trail_id) DO UPDATE SET poisoned = 1, \
             dead_first_seq = excluded.dead_first_seq, dead_last_seq = excluded.dead_last_seq, \
             dead_status = excluded.dead_status, dead_reason = excluded.dead_reason, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(trail.as_str())
        .bind(to_i64(dead_letter.first_seq))
        .bind(to_i64(dead_letter.last_seq))
        .bind(i64::from(dead_letter.status))
        .bind(&dead_letter.reason)
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("poison forward cursor"))?;
        Ok(())
    }

    async fn resume(&self, trail: &TrailId) -> Result<(), ForwardCursorError> {
        sqlx::query(
            "INSERT INTO forward_cursor (trail_id) VALUES (?1) \
             ON CONFLICT (trail_id) DO UPDATE SET poisoned = 0, dead_first_seq = NULL, \
             dead_last_seq = NULL, dead_status = NULL, dead_reason = NULL, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(trail.as_str())
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("resume forward cursor"))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ForwardCursor>, ForwardCursorError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM forward_cursor ORDER BY trail_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(LocalError::sql("list forward cursors"))?;
        rows.iter().map(decode).collect()
    }
}
