//! The custody probe of the Postgres record store (the `TamperProbe` port): plays the attacker
//! who holds the table owner's connection, behind the store's back. Used by the conformance
//! suite and operational qualification on a scratch database; never on a production one.

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{RecordStoreError, TamperAttempt, TamperProbe};
use sqlx::postgres::{PgPool, PgQueryResult};

/// `RAISE EXCEPTION` (the append-only triggers) and `insufficient_privilege` (the runtime
/// role's missing grants): the refusals custody is made of.
const REFUSALS: &[&str] = &["P0001", "42501"];

/// Tampers with `event_log` through `pool` (the owner's, or any role's connection).
#[derive(Debug, Clone)]
pub struct OwnerTamperProbe {
    /// The connection the attacker holds.
    pub pool: PgPool,
}

impl OwnerTamperProbe {
    fn attempt(
        done: Result<PgQueryResult, sqlx::Error>,
    ) -> Result<TamperAttempt, RecordStoreError> {
        match done {
            Ok(r) => Ok(TamperAttempt::Accepted(r.rows_affected())),
            Err(e) => match &e {
                sqlx::Error::Database(db)
                    if db.code().is_some_and(|c| REFUSALS.contains(&c.as_ref())) =>
                {
                    Ok(TamperAttempt::Refused(format!(
                        "SQLSTATE {}: {e}",
                        db.code().unwrap_or_default()
                    )))
                }
                _ => Err(RecordStoreError::Other {
                    message: "the tamper probe's statement failed".into(),
                    source: Some(Box::new(e)),
                }),
            },
        }
    }
}

fn probe_seq(trail: &TrailId, seq: u64) -> Result<i64, RecordStoreError> {
    i64::try_from(seq).map_err(|_| {
        RecordStoreError::InvalidBatch(format!(
            "trail {trail}: chain_seq {seq} is beyond what the store can hold"
        ))
    })
}

#[async_trait]
impl TamperProbe for OwnerTamperProbe {
    async fn try_rewrite_subject(
        &self,
        trail: &TrailId,
        seq: u64,
        subject: &str,
    ) -> Result<TamperAttempt, RecordStoreError> {
        Self::attempt(
            sqlx::query("UPDATE event_log SET subject = $3 WHERE trail_id = $1 AND chain_seq = $2")
                .bind(trail.as_str())
                .bind(probe_seq(trail, seq)?)
                .bind(subject)
                .execute(&self.pool)
                .await,
        )
    }

    async fn try_delete(
        &self,
        trail: &TrailId,
        seq: u64,
    ) -> Result<TamperAttempt, RecordStoreError> {
        Self::attempt(
            sqlx::query("DELETE FROM event_log WHERE trail_id = $1 AND chain_seq = $2")
                .bind(trail.as_str())
                .bind(probe_seq(trail, seq)?)
                .execute(&self.pool)
                .await,
        )
    }

    async fn drop_append_only_controls(&self) -> Result<Vec<String>, RecordStoreError> {
        let names = ["event_log_no_update", "event_log_no_delete"];
        for name in names {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {name} ON event_log"))
                .execute(&self.pool)
                .await
                .map_err(|e| RecordStoreError::Other {
                    message: format!("drop trigger {name}"),
                    source: Some(Box::new(e)),
                })?;
        }
        Ok(names.iter().map(|n| (*n).to_owned()).collect())
    }
}
