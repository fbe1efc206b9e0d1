//! `PgChangeRequestStore`: four-eyes change requests and the approved configuration baseline in
//! tables `change_requests` and `config_baseline` of the server's Postgres database (migration
//! 0003).
//!
//! Same custody as `accounts`: the runtime role holds SELECT, INSERT, UPDATE, never DELETE or
//! TRUNCATE, and a trigger lets an UPDATE only record a decision on a pending request (the
//! proposal itself, and any decided request, are immutable even to the owner).

use async_trait::async_trait;
use relay_domain::ports::changes::apply_decision;
use relay_domain::ports::{ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeStoreError};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::error::PgError;

/// The change-request store of the self-hosted adapter, on the runtime role's pool.
#[derive(Clone)]
pub struct PgChangeRequestStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgChangeRequestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgChangeRequestStore")
            .finish_non_exhaustive()
    }
}

impl PgChangeRequestStore {
    /// A change-request store over `pool` (e.g. [`crate::PgRecordStore::pool`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn body_of(row: &sqlx::postgres::PgRow, op: &'static str) -> Result<String, ChangeStoreError> {
    row.try_get::<String, _>(0)
        .map_err(|e| PgError::op(op)(e).into())
}

#[async_trait]
impl ChangeRequestStore for PgChangeRequestStore {
    async fn propose(&self, request: &ChangeRequest) -> Result<(), ChangeStoreError> {
        let body = request.to_stored_json()?;
        let done = sqlx::query(
            "INSERT INTO change_requests (id, state, body) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&request.id)
        .bind(request.state.as_str())
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(PgError::op("insert change request"))?;
        if done.rows_affected() == 0 {
            return Err(ChangeStoreError::AlreadyExists(request.id.clone()));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<ChangeRequest, ChangeStoreError> {
        let row = sqlx::query("SELECT body FROM change_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(PgError::op("read change request"))?
            .ok_or_else(|| ChangeStoreError::NotFound(id.to_owned()))?;
        ChangeRequest::from_stored_json(&body_of(&row, "read change request")?)
    }

    async fn list(&self, limit: usize) -> Result<Vec<ChangeRequest>, ChangeStoreError> {
        let rows = sqlx::query("SELECT body FROM change_requests ORDER BY seq DESC LIMIT $1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::op("list change requests"))?;
        rows.iter()
            .map(|row| ChangeRequest::from_stored_json(&body_of(row, "list change requests")?))
            .collect()
    }

    async fn decide(
        &self,
        id: &str,
        decision: &ChangeDecision,
    ) -> Result<ChangeRequest, ChangeStoreError> {
        let mut request = self.get(id).await?;
        apply_decision(&mut request, decision)?;
        let body = request.to_stored_json()?;
        // Compare-and-set on the state: a concurrent decision makes this update match no row.
        let done = sqlx::query(
            "UPDATE change_requests SET state = $1, body = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(request.state.as_str())
        .bind(body)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(PgError::op("decide change request"))?;
        if done.rows_affected() == 0 {
            let now = self.get(id).await?;
            return Err(ChangeStoreError::NotPending {
                id: id.to_owned(),
                state: now.state.as_str(),
            });
        }
        Ok(request)
    }

    async fn config_baseline(&self) -> Result<Option<String>, ChangeStoreError> {
        let row = sqlx::query("SELECT canonical_json FROM config_baseline WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(PgError::op("read config baseline"))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(body_of(&row, "read config baseline")?)),
        }
    }

    async fn set_config_baseline(&self, canonical_json: &str) -> Result<(), ChangeStoreError> {
        sqlx::query(
            "INSERT INTO config_baseline (id, canonical_json) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET canonical_json = EXCLUDED.canonical_json, \
             updated_at = now()",
        )
        .bind(canonical_json)
        .execute(&self.pool)
        .await
        .map_err(PgError::op("store config baseline"))?;
        Ok(())
    }
}
