//! `PgAccountStore`: review accounts in table `accounts` of the server's Postgres database.

use async_trait::async_trait;
use relay_domain::Timestamp;
use relay_domain::ports::{Account, AccountStore, AccountStoreError, StoredAccountRow, Username};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};

use crate::error::PgError;

/// `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";
/// Advisory lock key (in the adapter's namespace) serializing bootstrap across processes.
const BOOTSTRAP_LOCK: i32 = 0x4143_4354; // 'ACCT'

/// The account store of the self-hosted adapter, on the runtime role's pool (which holds
/// SELECT, INSERT, UPDATE on `accounts`, never DELETE).
#[derive(Clone)]
pub struct PgAccountStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgAccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccountStore").finish_non_exhaustive()
    }
}

impl PgAccountStore {
    /// An account store over `pool` (e.g. [`crate::PgRecordStore::pool`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const COLUMNS: &str = "username, full_name, role, password_hash, totp_secret, disabled, \
                       password_changed_at, failed_attempts, failure_window_start, locked_until, \
                       created_at, version, password_history, last_login_at";

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_canonical)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn decode(row: &PgRow) -> Result<Account, AccountStoreError> {
    let name: String = row.try_get(0).map_err(|e| AccountStoreError::Corrupt {
        username: "?".into(),
        message: format!("column username: {e}"),
    })?;
    let bad = |column: &str, e: &dyn std::fmt::Display| AccountStoreError::Corrupt {
        username: name.clone(),
        message: format!("column {column}: {e}"),
    };
    let text = |i: usize, c: &str| row.try_get::<String, _>(i).map_err(|e| bad(c, &e));
    let opt_text = |i: usize, c: &str| row.try_get::<Option<String>, _>(i).map_err(|e| bad(c, &e));
    let int = |i: usize, c: &str| row.try_get::<i64, _>(i).map_err(|e| bad(c, &e));
    StoredAccountRow {
        username: name.clone(),
        full_name: text(1, "full_name")?,
        role: text(2, "role")?,
        password_hash: text(3, "password_hash")?,
        totp_secret: opt_text(4, "totp_secret")?,
        disabled: row.try_get::<bool, _>(5).map_err(|e| bad("disabled", &e))?,
        password_changed_at: opt_text(6, "password_changed_at")?,
        failed_attempts: int(7, "failed_attempts")?,
        failure_window_start: opt_text(8, "failure_window_start")?,
        locked_until: opt_text(9, "locked_until")?,
        created_at: text(10, "created_at")?,
        version: int(11, "version")?,
        password_history: text(12, "password_history")?,
        last_login_at: opt_text(13, "last_login_at")?,
    }
    .decode()
}

async fn insert(conn: &mut PgConnection, a: &Account, only_if_empty: bool) -> Result<u64, PgError> {
    let guard = if only_if_empty {
        " WHERE NOT EXISTS (SELECT 1 FROM accounts)"
    } else {
        ""
    };
    let done = sqlx::query(&format!(
        "INSERT INTO accounts ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14{guard}"
    ))
    .bind(a.username.as_str())
    .bind(&a.full_name)
    .bind(a.role.as_str())
    .bind(&a.password_hash)
    .bind(a.totp_secret.as_ref().map(|s| s.expose().to_owned()))
    .bind(a.disabled)
    .bind(ts(a.password_changed_at))
    .bind(i64::from(a.failed_attempts))
    .bind(ts(a.failure_window_start))
    .bind(ts(a.locked_until))
    .bind(a.created_at.to_canonical())
    .bind(to_i64(a.version))
    .bind(StoredAccountRow::encode_history(&a.password_history))
    .bind(ts(a.last_login_at))
    .execute(&mut *conn)
    .await
    .map_err(PgError::op("insert account"))?;
    Ok(done.rows_affected())
}

#[async_trait]
impl AccountStore for PgAccountStore {
    async fn create(&self, account: &Account) -> Result<(), AccountStoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(PgError::op("acquire connection"))?;
        match insert(&mut conn, account, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.sqlstate().as_deref() == Some(UNIQUE_VIOLATION) => {
                Err(AccountStoreError::AlreadyExists(account.username.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn create_first(&self, account: &Account) -> Result<(), AccountStoreError> {
        // A transaction-scoped advisory lock makes the emptiness check and the insert one step
        // across processes (READ COMMITTED alone would let two bootstraps both see no account).
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(PgError::op("begin bootstrap"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(crate::migrate::LOCK_NAMESPACE)
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(PgError::op("lock bootstrap"))?;
        let inserted = match insert(&mut tx, account, true).await {
            Ok(n) => n,
            Err(e) if e.sqlstate().as_deref() == Some(UNIQUE_VIOLATION) => 0,
            Err(e) => return Err(e.into()),
        };
        if inserted == 0 {
            tx.rollback()
                .await
                .map_err(PgError::op("end refused bootstrap"))?;
            return Err(AccountStoreError::Precondition(
                "an account already exists".into(),
            ));
        }
        tx.commit().await.map_err(PgError::op("commit bootstrap"))?;
        Ok(())
    }

    async fn get(&self, username: &Username) -> Result<Option<Account>, AccountStoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE username = $1"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(PgError::op("read account"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<Account>, AccountStoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts ORDER BY username"))
            .fetch_all(&self.pool)
            .await
            .map_err(PgError::op("list accounts"))?;
        rows.iter().map(decode).collect()
    }

    async fn update(&self, a: &Account) -> Result<u64, AccountStoreError> {
        let next = a.version.saturating_add(1);
        let done = sqlx::query(
            "UPDATE accounts SET full_name = $1, role = $2, password_hash = $3, totp_secret = $4, \
             disabled = $5, password_changed_at = $6, failed_attempts = $7, \
             failure_window_start = $8, locked_until = $9, version = $10, \
             password_history = $11, last_login_at = $12 WHERE username = $13 AND version = $14",
        )
        .bind(&a.full_name)
        .bind(a.role.as_str())
        .bind(&a.password_hash)
        .bind(a.totp_secret.as_ref().map(|s| s.expose().to_owned()))
        .bind(a.disabled)
        .bind(ts(a.password_changed_at))
        .bind(i64::from(a.failed_attempts))
        .bind(ts(a.failure_window_start))
        .bind(ts(a.locked_until))
        .bind(to_i64(next))
        .bind(StoredAccountRow::encode_history(&a.password_history))
        .bind(ts(a.last_login_at))
        .bind(a.username.as_str())
        .bind(to_i64(a.version))
        .execute(&self.pool)
        .await
        .map_err(PgError::op("update account"))?;
        if done.rows_affected() == 1 {
            return Ok(next);
        }
        match self.get(&a.username).await? {
            None => Err(AccountStoreError::NotFound(a.username.clone())),
            Some(stored) => Err(AccountStoreError::Precondition(format!(
                "account {} was changed meanwhile (version {} != {})",
                a.username, stored.version, a.version
            ))),
        }
    }

    async fn count(&self) -> Result<u64, AccountStoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await
            .map_err(PgError::op("count accounts"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
