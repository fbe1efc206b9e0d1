//! `SqliteAccountStore`: relay accounts in table `accounts` of `relay.db` (migration 0002).

use async_trait::async_trait;
use relay_domain::Timestamp;
use relay_domain::ports::{Account, AccountStore, AccountStoreError, StoredAccountRow, Username};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection};

use crate::error::LocalError;

const COLUMNS: &str = "username, full_name, role, password_hash, totp_secret, disabled, \
                       password_changed_at, failed_attempts, failure_window_start, locked_until, \
                       created_at, version, password_history, last_login_at";

/// The account store of the local adapter, sharing the record store's database and pool.
///
/// Unlike `event_log`, the `accounts` table is mutable state; its rows may be updated.
#[derive(Clone)]
pub struct SqliteAccountStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteAccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAccountStore").finish_non_exhaustive()
    }
}

impl SqliteAccountStore {
    /// An account store over `pool` (the record store's: the schema is migrated with it).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_canonical)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn decode(row: &SqliteRow) -> Result<Account, AccountStoreError> {
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
        disabled: int(5, "disabled")? != 0,
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

async fn insert(
    conn: &mut SqliteConnection,
    a: &Account,
    only_if_empty: bool,
) -> Result<u64, LocalError> {
    let guard = if only_if_empty {
        " WHERE NOT EXISTS (SELECT 1 FROM accounts)"
    } else {
        ""
    };
    let done = sqlx::query(&format!(
        "INSERT INTO accounts ({COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{guard}"
    ))
    .bind(a.username.as_str())
    .bind(&a.full_name)
    .bind(a.role.as_str())
    .bind(&a.password_hash)
    .bind(a.totp_secret.as_ref().map(|s| s.expose().to_owned()))
    .bind(i64::from(a.disabled))
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
    .map_err(LocalError::sql("insert account"))?;
    Ok(done.rows_affected())
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create(&self, account: &Account) -> Result<(), AccountStoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(LocalError::sql("acquire connection"))?;
        match insert(&mut conn, account, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_unique_violation() => {
                Err(AccountStoreError::AlreadyExists(account.username.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn create_first(&self, account: &Account) -> Result<(), AccountStoreError> {
        // BEGIN IMMEDIATE takes the write lock first, so the emptiness check and the insert are
        // one step even across processes.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(LocalError::sql("begin bootstrap"))?;
        let inserted = insert(&mut tx, account, true).await?;
        if inserted == 0 {
            tx.rollback()
                .await
                .map_err(LocalError::sql("end refused bootstrap"))?;
            return Err(AccountStoreError::Precondition(
                "an account already exists".into(),
            ));
        }
        tx.commit()
            .await
            .map_err(LocalError::sql("commit bootstrap"))?;
        Ok(())
    }

    async fn get(&self, username: &Username) -> Result<Option<Account>, AccountStoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE username = ?"
        ))
        .bind(username.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(LocalError::sql("read account"))?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<Account>, AccountStoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts ORDER BY username"))
            .fetch_all(&self.pool)
            .await
            .map_err(LocalError::sql("list accounts"))?;
        rows.iter().map(decode).collect()
    }

    async fn update(&self, a: &Account) -> Result<u64, AccountStoreError> {
        let next = a.version.saturating_add(1);
        let done = sqlx::query(
            "UPDATE accounts SET full_name = ?, role = ?, password_hash = ?, totp_secret = ?, \
             disabled = ?, password_changed_at = ?, failed_attempts = ?, \
             failure_window_start = ?, locked_until = ?, version = ?, password_history = ?, \
             last_login_at = ? WHERE username = ? AND version = ?",
        )
        .bind(&a.full_name)
        .bind(a.role.as_str())
        .bind(&a.password_hash)
        .bind(a.totp_secret.as_ref().map(|s| s.expose().to_owned()))
        .bind(i64::from(a.disabled))
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
        .map_err(LocalError::sql("update account"))?;
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
            .map_err(LocalError::sql("count accounts"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
