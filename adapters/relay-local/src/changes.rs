//! `SqliteChangeRequestStore`: four-eyes change requests and the approved configuration
//! baseline in `relay.db` (migration 0004).

use async_trait::async_trait;
use relay_domain::ports::changes::apply_decision;
use relay_domain::ports::{ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeStoreError};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use crate::error::LocalError;

/// The change-request store of the local adapter, sharing the record store's database and pool.
#[derive(Clone)]
pub struct SqliteChangeRequestStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteChangeRequestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteChangeRequestStore")
            .finish_non_exhaustive()
    }
}

impl SqliteChangeRequestStore {
    /// A store over `pool` (the record store's: the schema is migrated with it).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ChangeRequestStore for SqliteChangeRequestStore {
    async fn propose(&self, request: &ChangeRequest) -> Result<(), ChangeStoreError> {
        let body = request.to_stored_json()?;
        let done = sqlx::query(
            "INSERT INTO change_requests (id, state, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&request.id)
        .bind(request.state.as_str())
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("insert change request"))?;
        if done.rows_affected() == 0 {
            return Err(ChangeStoreError::AlreadyExists(request.id.clone()));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<ChangeRequest, ChangeStoreError> {
        let row = sqlx::query("SELECT body FROM change_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(LocalError::sql("read change request"))?
            .ok_or_else(|| ChangeStoreError::NotFound(id.to_owned()))?;
        let body: String = row
            .try_get(0)
            .map_err(LocalError::sql("read change request"))?;
        ChangeRequest::from_stored_json(&body)
    }

    async fn list(&self, limit: usize) -> Result<Vec<ChangeRequest>, ChangeStoreError> {
        let rows = sqlx::query("SELECT body FROM change_requests ORDER BY seq DESC LIMIT ?")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(LocalError::sql("list change requests"))?;
        rows.iter()
            .map(|row| {
                let body: String = row
                    .try_get(0)
                    .map_err(LocalError::sql("list change requests"))?;
                ChangeRequest::from_stored_json(&body)
            })
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
            "UPDATE change_requests SET state = ?, body = ? WHERE id = ? AND state = 'pending'",
        )
        .bind(request.state.as_str())
        .bind(body)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("decide change request"))?;
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
            .map_err(LocalError::sql("read config baseline"))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(
                row.try_get(0)
                    .map_err(LocalError::sql("read config baseline"))?,
            )),
        }
    }

    async fn set_config_baseline(&self, canonical_json: &str) -> Result<(), ChangeStoreError> {
        sqlx::query(
            "INSERT INTO config_baseline (id, canonical_json) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET canonical_json = excluded.canonical_json, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(canonical_json)
        .execute(&self.pool)
        .await
        .map_err(LocalError::sql("store config baseline"))?;
        Ok(())
    }
}
