//! The custody probe of the SQLite store (the `TamperProbe` port): the attacker with write
//! access to `relay.db`, running SQL on `event_log` past the port (R1.4). Used by the
//! conformance suite and by operational qualification (OQ-02) on a scratch store only.

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{RecordStoreError, TamperAttempt, TamperProbe};

use crate::SqliteRecordStore;
use crate::error::LocalError;
use crate::record_store::required_triggers;

/// The OQ tamper probe on SQLite: the attacker with the database file, running SQL against
/// `event_log` past the port (R1.4).
#[async_trait]
impl TamperProbe for SqliteRecordStore {
    async fn try_rewrite_subject(
        &self,
        trail: &TrailId,
        seq: u64,
        subject: &str,
    ) -> Result<TamperAttempt, RecordStoreError> {
        let seq = probe_seq(trail, seq)?;
        let done =
            sqlx::query("UPDATE event_log SET subject = ?1 WHERE trail_id = ?2 AND chain_seq = ?3")
                .bind(subject)
                .bind(trail.as_str())
                .bind(seq)
                .execute(self.pool())
                .await;
        Ok(attempt(done))
    }

    async fn try_delete(
        &self,
        trail: &TrailId,
        seq: u64,
    ) -> Result<TamperAttempt, RecordStoreError> {
        let seq = probe_seq(trail, seq)?;
        let done = sqlx::query("DELETE FROM event_log WHERE trail_id = ?1 AND chain_seq = ?2")
            .bind(trail.as_str())
            .bind(seq)
            .execute(self.pool())
            .await;
        Ok(attempt(done))
    }

    async fn drop_append_only_controls(&self) -> Result<Vec<String>, RecordStoreError> {
        // The triggers that refuse UPDATE and DELETE; the continuity trigger stays, as it only
        // guards inserts.
        let names: Vec<String> = required_triggers()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.ends_with("_no_update") || name.ends_with("_no_delete"))
            .filter(|name| name.starts_with("event_log"))
            .collect();
        for name in &names {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS \"{name}\""))
                .execute(self.pool())
                .await
                .map_err(LocalError::sql("drop an append-only trigger"))?;
        }
        Ok(names)
    }
}

/// `seq` as SQLite stores it.
fn probe_seq(trail: &TrailId, seq: u64) -> Result<i64, RecordStoreError> {
    i64::try_from(seq).map_err(|_| {
        RecordStoreError::InvalidBatch(format!(
            "trail {trail}: chain_seq {seq} is beyond what the store can hold"
        ))
    })
}

/// A tamper statement's outcome: the backend's refusal, or the rows it changed.
fn attempt(done: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> TamperAttempt {
    match done {
        Ok(r) => TamperAttempt::Accepted(r.rows_affected()),
        Err(e) => TamperAttempt::Refused(e.to_string()),
    }
}
