//! `SqliteRecordStore`: the trail log in one SQLite file, append-only by trigger.
//!
//! Why this file is long (~1,000 lines): the append paths (the one-statement fast path and the
//! checked transaction that tells re-sends from conflicts), the reads, the trigger check and
//! their unit tests all work on the same connection and schema; the tamper probe lives in
//! `tamper.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use relay_domain::chain::check_batch_at_head;
use relay_domain::ports::{
    AppendOnlyEnforcement, AppendReceipt, Head, RecordStore, RecordStoreCapabilities,
    RecordStoreError,
};
use relay_domain::{ChainSeq, Checksum, EventKind, Project, Record, Subject, TrailId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::config::LocalConfig;
use crate::error::LocalError;

/// The schema, one entry per version; `PRAGMA user_version` records how many were applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_event_log.sql"),
    include_str!("../migrations/0002_accounts.sql"),
    include_str!("../migrations/0003_forward_cursor.sql"),
    include_str!("../migrations/0004_change_requests.sql"),
    include_str!("../migrations/0005_receipts.sql"),
    include_str!("../migrations/0006_account_history.sql"),
    include_str!("../migrations/0007_fleet.sql"),
];

/// The columns of `event_log` in the order [`decode_row`] reads them.
const COLUMNS: &str = relay_domain::columns::EVENT_LOG_COLUMNS;

/// Rows per INSERT statement: 15 bound values each stays far below SQLite's variable limit.
const ROWS_PER_INSERT: usize = 500;

/// The record store of the local adapter: table `event_log` in `<data-dir>/relay.db`.
///
/// - WAL journal with `synchronous=FULL`: an acknowledged append survives power loss.
/// - Triggers refuse UPDATE and DELETE (and, through `recursive_triggers`, INSERT OR REPLACE).
/// - Each append is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock up front
///   and so serializes writers across connections and processes; in-process writers also queue
///   on an async mutex so they do not spin in SQLite's busy handler.
pub struct SqliteRecordStore {
    pool: SqlitePool,
    path: PathBuf,
    writer: tokio::sync::Mutex<()>,
    reader: Arc<Mutex<rusqlite::Connection>>,
    read_only: bool,
}

impl std::fmt::Debug for SqliteRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecordStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteRecordStore {
    /// Opens (creating if needed) `<data-dir>/relay.db` and brings its schema up to date.
    ///
    /// A data directory that was already in use (it holds the relay's own trail key or notary
    /// anchors) but whose `relay.db` is missing or empty is refused: the store was deleted or
    /// truncated, and creating a new, empty one in its place would silently restart every
    /// trail at seq 1.
    pub async fn open(config: &LocalConfig) -> Result<Self, RecordStoreError> {
        let dir = config.data_dir();
        crate::private_fs::create_dir_all_private(dir)
            .map_err(LocalError::io("create data directory", dir))?;
        crate::private_fs::make_private_if_empty(dir)
            .map_err(LocalError::io("make the data directory owner-only", dir))?;
        refuse_shared_data(config)?;
        refuse_reinitialisation(config)?;
        Self::open_file(
            &config.db_path(),
            config.busy_timeout_value(),
            config.max_connections_value(),
        )
        .await
    }

    /// Opens (creating if needed, owner-only) the database file at `path`.
    pub async fn open_file(
        path: &Path,
        busy_timeout: std::time::Duration,
        max_connections: u32,
    ) -> Result<Self, RecordStoreError> {
        create_private_db_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            .pragma("recursive_triggers", "ON");
        // No idle reaper: sqlx 0.8's pool maintenance task can spin a core forever after a
        // `num_idle` underflow (launchbadge/sqlx#3645, fix #4289 not released), and reaping
        // idle connections to a local file gains nothing.
        let pool = SqlitePoolOptions::new()
            .idle_timeout(None)
            .max_lifetime(None)
            .max_connections(max_connections.max(1))
            .acquire_timeout(busy_timeout + std::time::Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| naming_file(path, LocalError::sql("open database")(e).into()))?;
        migrate(&pool)
            .await
            .map_err(|e| naming_file(path, e.into()))?;
        tracing::debug!(path = %path.display(), "opened sqlite record store");
        let reader = open_bulk_reader(path, busy_timeout).map_err(|e| naming_file(path, e))?;
        Ok(Self {
            pool,
            path: path.to_owned(),
            writer: tokio::sync::Mutex::new(()),
            reader: Arc::new(Mutex::new(reader)),
            read_only: false,
        })
    }

    /// Opens the existing database file at `path` for reading only: nothing is created, the
    /// schema is not migrated and no write lock is ever taken, so a running relay's appends
    /// neither wait for it nor make it wait. For tools and tests that inspect a data
    /// directory while the relay writes to it. A file whose schema is not exactly the version
    /// this relay writes is refused (an older one needs the relay to open it once; a newer one
    /// is from a newer relay). Appends through this store fail.
    pub async fn open_read_only(
        path: &Path,
        busy_timeout: std::time::Duration,
    ) -> Result<Self, RecordStoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(busy_timeout);
        // No idle reaper: sqlx 0.8's pool maintenance task can spin a core forever after a
        // `num_idle` underflow (launchbadge/sqlx#3645, fix #4289 not released), and reaping
        // idle connections to a local file gains nothing.
        let pool = SqlitePoolOptions::new()
            .idle_timeout(None)
            .max_lifetime(None)
            .max_connections(1)
            .acquire_timeout(busy_timeout + std::time::Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| naming_file(path, LocalError::sql("open database read-only")(e).into()))?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&pool)
            .await
            .map_err(|e| naming_file(path, LocalError::sql("read schema version")(e).into()))?;
        if usize::try_from(version).ok() != Some(MIGRATIONS.len()) {
            pool.close().await;
            return Err(naming_file(
                path,
                RecordStoreError::Other {
                    message: format!(
                        "database schema version {version}; a read-only open reads version {} \
                         only (open it once read-write with this relay to upgrade it)",
                        MIGRATIONS.len()
                    ),
                    source: None,
                },
            ));
        }
        let reader = open_bulk_reader(path, busy_timeout).map_err(|e| naming_file(path, e))?;
        tracing::debug!(path = %path.display(), "opened sqlite record store read-only");
        Ok(Self {
            pool,
            path: path.to_owned(),
            writer: tokio::sync::Mutex::new(()),
            reader: Arc::new(Mutex::new(reader)),
            read_only: true,
        })
    }

    /// Reads one page on the bulk reader's blocking thread.
    async fn read_blocking(
        &self,
        trail: &TrailId,
        kind: Option<String>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let (reader, trail) = (self.reader.clone(), trail.clone());
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(PoisonError::into_inner);
            read_page_blocking(&conn, &trail, kind.as_deref(), after, limit)
        })
        .await
        .map_err(|e| RecordStoreError::Other {
            message: format!("read task failed: {e}"),
            source: None,
        })?
    }

    /// The connection pool, for operational tooling and for tests that play an attacker with
    /// direct database access. Writing through it bypasses every rule of the store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the structure of the whole database file (`PRAGMA quick_check`: every page,
    /// b-tree and record format, without the cross-checks of indexes against tables). Reads the
    /// whole file once; run at start-up and by `verify`, not on every open. A damaged file is
    /// [`RecordStoreError::Other`] naming it and SQLite's first findings.
    pub async fn quick_check(&self) -> Result<(), RecordStoreError> {
        let (reader, path) = (self.reader.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(PoisonError::into_inner);
            quick_check_on(&conn, &path)
        })
        .await
        .map_err(|e| RecordStoreError::Other {
            message: format!("quick_check of {} failed to run: {e}", self.path.display()),
            source: None,
        })?
    }

    /// [`quick_check`](Self::quick_check) of the database file at `path` without opening the
    /// store (read-only, no schema change): for telling a damaged file from other reasons an
    /// open failed. Blocking.
    pub fn quick_check_file(path: &Path) -> Result<(), RecordStoreError> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match rusqlite::Connection::open_with_flags(path, flags) {
            Ok(conn) => quick_check_on(&conn, path),
            Err(e) => Err(damaged(path, &e.to_string())),
        }
    }

    /// Copies every committed page of the write-ahead log into the database file and truncates
    /// the log to zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`), so `relay.db` alone holds
    /// every record: a copy of that one file after a clean stop is complete. A checkpoint that
    /// a concurrent reader or writer kept from finishing is [`RecordStoreError::Unavailable`].
    pub async fn checkpoint(&self) -> Result<WalCheckpoint, RecordStoreError> {
        let (busy, log_frames, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    naming_file(&self.path, LocalError::sql("checkpoint WAL")(e).into())
                })?;
        if busy != 0 {
            return Err(RecordStoreError::Unavailable {
                message: format!(
                    "{}: the WAL checkpoint could not finish ({checkpointed} of {log_frames} \
                     frames copied): another connection is reading or writing",
                    self.path.display()
                ),
                source: None,
            });
        }
        Ok(WalCheckpoint {
            frames: u64::try_from(checkpointed.max(0)).unwrap_or(0),
        })
    }

    /// Writes a consistent copy of the whole database to `target` while the store stays in use
    /// (`VACUUM INTO`: one read transaction, so the copy is the state at one instant, compact
    /// and without a WAL). `target` must not exist.
    pub async fn snapshot_into(&self, target: &Path) -> Result<(), RecordStoreError> {
        let target_str = target.to_str().ok_or_else(|| RecordStoreError::Other {
            message: format!("the backup path {} is not UTF-8", target.display()),
            source: None,
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(target_str)
            .execute(&self.pool)
            .await
            .map_err(|e| naming_file(&self.path, LocalError::sql("VACUUM INTO")(e).into()))?;
        crate::private_fs::set_mode(target, 0o600).map_err(|e| {
            naming_file(
                target,
                LocalError::io("make the copy owner-only", target)(e).into(),
            )
        })?;
        Ok(())
    }

    /// Checkpoints the WAL into the database file (TRUNCATE, see [`checkpoint`](Self::checkpoint))
    /// and closes every connection. A checkpoint that fails is logged: the records stay safe in
    /// the WAL, which SQLite replays at the next open, but the database file alone is then not
    /// complete. A store opened read-only only closes its connections.
    pub async fn close(&self) {
        if self.read_only {
            self.pool.close().await;
            return;
        }
        match self.checkpoint().await {
            Ok(c) => {
                tracing::debug!(path = %self.path.display(), frames = c.frames, "WAL checkpointed")
            }
            Err(e) => tracing::error!(
                path = %self.path.display(), error = %e,
                "WAL checkpoint at close failed: the records are safe in relay.db-wal, but relay.db \
                 alone is not complete; copy both files, or use `relay-edge backup`"
            ),
        }
        self.pool.close().await;
    }
}

/// The outcome of a WAL checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// WAL frames copied into the database file.
    pub frames: u64,
}

/// Runs `PRAGMA quick_check` on `conn`; any finding, or a failure to read, means damage.
fn quick_check_on(conn: &rusqlite::Connection, path: &Path) -> Result<(), RecordStoreError> {
    let findings = conn.prepare("PRAGMA quick_check(10)").and_then(|mut stmt| {
        stmt.query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<String>, rusqlite::Error>>()
    });
    match findings {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(damaged(path, &lines.join("; "))),
        Err(e) => Err(damaged(path, &e.to_string())),
    }
}

fn damaged(path: &Path, detail: &str) -> RecordStoreError {
    RecordStoreError::Other {
        message: format!(
            "the database file {} is damaged (PRAGMA quick_check: {detail}); it was left as it \
             is: restore it from a backup, and keep the damaged copy for investigation",
            path.display()
        ),
        source: None,
    }
}

/// Puts the database file's name in front of an error's message.
fn naming_file(path: &Path, e: RecordStoreError) -> RecordStoreError {
    let name = |message: String| format!("{}: {message}", path.display());
    match e {
        RecordStoreError::Unavailable { message, source } => RecordStoreError::Unavailable {
            message: name(message),
            source,
        },
        RecordStoreError::PermissionDenied { message, source } => {
            RecordStoreError::PermissionDenied {
                message: name(message),
                source,
            }
        }
        RecordStoreError::Other { message, source } => RecordStoreError::Other {
            message: name(message),
            source,
        },
        other => other,
    }
}

/// Creates `path` empty and owner-only (0600) when it does not exist, so SQLite (which gives
/// its `-wal` and `-shm` files the database file's mode) never creates it with the umask's.
fn create_private_db_file(path: &Path) -> Result<(), RecordStoreError> {
    match crate::private_fs::private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(naming_file(
            path,
            LocalError::io("create the database file", path)(e).into(),
        )),
    }
}

/// Refuses a data directory, or a database file, that group or others can access: they hold
/// the audit trail and the accounts' password hashes. Everything the relay creates is
/// owner-only; a shared one was made so by hand or by an older relay.
fn refuse_shared_data(config: &LocalConfig) -> Result<(), RecordStoreError> {
    let db = config.db_path();
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let mut shm = db.clone().into_os_string();
    shm.push("-shm");
    let paths = [
        config.data_dir().to_path_buf(),
        db.clone(),
        PathBuf::from(wal),
        PathBuf::from(shm),
    ];
    let mut shared = Vec::new();
    for path in &paths {
        if let Some(found) = crate::private_fs::shared_access(path)
            .map_err(LocalError::io("inspect the permissions of", path))?
        {
            shared.push(found.to_string());
        }
    }
    if shared.is_empty() {
        return Ok(());
    }
    Err(RecordStoreError::PermissionDenied {
        message: format!(
            "the data directory must be accessible to its owner only (it holds the audit trail \
             and password hashes): {}",
            shared.join("; ")
        ),
        source: None,
    })
}

/// Refuses to create `relay.db` where one existed: see [`SqliteRecordStore::open`].
fn refuse_reinitialisation(config: &LocalConfig) -> Result<(), RecordStoreError> {
    let db = config.db_path();
    let len = match std::fs::metadata(&db) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(LocalError::io("inspect the database file", &db)(e).into()),
    };
    if len > 0 {
        return Ok(());
    }
    // The relay's own trail key is created right after its first open of the store, and
    // anchors only name trails that had records; either proves the store existed.
    let key = config.secrets_dir().join("trail-hmac.json");
    let mut evidence = Vec::new();
    if key.is_file() {
        evidence.push(key.display().to_string());
    }
    if let Ok(entries) = std::fs::read_dir(config.anchors_dir()) {
        let anchors = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(".jsonl"))
            })
            .count();
        if anchors > 0 {
            evidence.push(format!(
                "{} anchor file(s) in {}",
                anchors,
                config.anchors_dir().display()
            ));
        }
    }
    if evidence.is_empty() {
        return Ok(());
    }
    Err(RecordStoreError::Other {
        message: format!(
            "the database file {} is {}, but this data directory was in use ({}): the store was \
             deleted or truncated; refusing to create a new, empty one in its place (restore \
             relay.db from a backup, or move the data directory aside to start a new installation)",
            db.display(),
            if db.exists() { "empty" } else { "missing" },
            evidence.join(", ")
        ),
        source: None,
    })
}

async fn migrate(pool: &SqlitePool) -> Result<(), LocalError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(LocalError::sql("begin migration"))?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(LocalError::sql("read schema version"))?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > known {
        return Err(LocalError::Sql {
            op: "check schema version",
            source: sqlx::Error::Protocol(format!(
                "database schema version {version} is newer than this relay knows ({known})"
            )),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(LocalError::sql("apply migration"))?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1))
            .execute(&mut *tx)
            .await
            .map_err(LocalError::sql("record schema version"))?;
    }
    tx.commit()
        .await
        .map_err(LocalError::sql("commit migration"))?;
    Ok(())
}

fn seq_to_sql(trail: &TrailId, seq: ChainSeq) -> Result<i64, RecordStoreError> {
    i64::try_from(seq.get()).map_err(|_| {
        RecordStoreError::InvalidBatch(format!(
            "trail {trail}: chain_seq {seq} is beyond what the store can hold"
        ))
    })
}

fn corrupt(trail: &TrailId, seq: u64, message: String) -> RecordStoreError {
    RecordStoreError::Corrupt {
        trail_id: trail.clone(),
        seq,
        message,
    }
}

/// Decodes one `event_log` row (columns in [`COLUMNS`] order); any malformed field is
/// [`RecordStoreError::Corrupt`] naming the row's seq.
fn decode_row(trail: &TrailId, row: &SqliteRow) -> Result<Record, RecordStoreError> {
    let seq_raw: i64 = row
        .try_get(1)
        .map_err(|e| corrupt(trail, 0, format!("column chain_seq: {e}")))?;
    relay_domain::columns::decode_columns(trail, seq_raw, |i| {
        row.try_get::<Option<&str>, _>(i).map_err(|e| e.to_string())
    })
}

async fn head_in(
    conn: &mut SqliteConnection,
    trail: &TrailId,
) -> Result<Option<Head>, RecordStoreError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT chain_seq, checksum FROM event_log WHERE trail_id = ? \
         ORDER BY chain_seq DESC LIMIT 1",
    )
    .bind(trail.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(LocalError::sql("read head"))?;
    row.map(|(seq, checksum)| decode_head(trail, seq, &checksum))
        .transpose()
}

fn decode_head(trail: &TrailId, seq: i64, checksum: &str) -> Result<Head, RecordStoreError> {
    let seq_u = u64::try_from(seq).unwrap_or(0);
    Ok(Head {
        seq: ChainSeq::new(seq_u)
            .map_err(|e| corrupt(trail, seq_u, format!("column chain_seq: {e}")))?,
        checksum: Checksum::from_hex(checksum)
            .map_err(|e| corrupt(trail, seq_u, format!("column checksum: {e}")))?,
    })
}

/// Opens the read-only connection used for paged reads (see [`read_page_blocking`]).
fn open_bulk_reader(
    path: &Path,
    busy_timeout: std::time::Duration,
) -> Result<rusqlite::Connection, RecordStoreError> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .map_err(|e| bulk_error("open reader", e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| bulk_error("set reader busy timeout", e))?;
    Ok(conn)
}

fn bulk_error(op: &str, e: rusqlite::Error) -> RecordStoreError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    let message = format!("{op}: {e}");
    if busy {
        RecordStoreError::Unavailable {
            message,
            source: Some(Box::new(e)),
        }
    } else {
        RecordStoreError::Other {
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// Reads one page on the calling (blocking) thread: rows are decoded straight from SQLite's
/// buffers instead of crossing a worker thread one by one.
/// Reads a page of `trail` on the bulk reader; only records of `kind` when given (a filter
/// SQLite applies while it walks the primary key, without decoding the rows it skips).
fn read_page_blocking(
    conn: &rusqlite::Connection,
    trail: &TrailId,
    kind: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<Record>, RecordStoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM event_log WHERE trail_id = ?1 AND chain_seq > ?2 \
         AND (?4 IS NULL OR kind = ?4) ORDER BY chain_seq LIMIT ?3"
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| bulk_error("prepare read", e))?;
    let mut rows = stmt
        .query(rusqlite::params![trail.as_str(), after, limit, kind])
        .map_err(|e| bulk_error("read records", e))?;
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(4096));
    while let Some(row) = rows.next().map_err(|e| bulk_error("read records", e))? {
        let seq_raw: i64 = row
            .get(1)
            .map_err(|e| corrupt(trail, 0, format!("column chain_seq: {e}")))?;
        out.push(relay_domain::columns::decode_columns(
            trail,
            seq_raw,
            |i| match row.get_ref(i) {
                Ok(rusqlite::types::ValueRef::Null) => Ok(None),
                Ok(rusqlite::types::ValueRef::Text(t)) => {
                    std::str::from_utf8(t).map(Some).map_err(|e| e.to_string())
                }
                Ok(other) => Err(format!("expected text, found {:?}", other.data_type())),
                Err(e) => Err(e.to_string()),
            },
        )?);
    }
    Ok(out)
}

async fn read_in(
    conn: &mut SqliteConnection,
    trail: &TrailId,
    after: u64,
    limit: usize,
) -> Result<Vec<Record>, RecordStoreError> {
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM event_log WHERE trail_id = ? AND chain_seq > ? \
         ORDER BY chain_seq LIMIT ?"
    ))
    .bind(trail.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(LocalError::sql("read records"))?;
    rows.iter().map(|row| decode_row(trail, row)).collect()
}

async fn insert_in(conn: &mut SqliteConnection, records: &[Record]) -> Result<(), LocalError> {
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let mut q: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("INSERT INTO event_log ({COLUMNS}) "));
        q.push_values(chunk, |mut b, r| {
            // Checked by the caller: every seq of the batch fits in an i64.
            let seq = i64::try_from(r.chain_seq.get()).unwrap_or(i64::MAX);
            b.push_bind(r.trail_id.as_str())
                .push_bind(seq)
                .push_bind(r.prev_checksum.to_hex())
                .push_bind(r.checksum.to_hex())
                .push_bind(r.kind.as_str())
                .push_bind(r.actor.as_str())
                .push_bind(r.actor_source.as_str())
                .push_bind(r.occurred_at.to_canonical())
                .push_bind(r.recorded_at.to_canonical())
                .push_bind(r.time_source.to_label())
                .push_bind(r.device.as_str())
                .push_bind(r.project.as_ref().map(Project::as_str))
                .push_bind(r.subject.as_ref().map(Subject::as_str))
                .push_bind(r.payload.as_str())
                .push_bind(r.key_id.as_str());
        });
        q.build()
            .execute(&mut *conn)
            .await
            .map_err(LocalError::sql("insert records"))?;
    }
    Ok(())
}

/// Whether the batch is one trail's consecutive, linked records (what the fast path may insert
/// without further checks; anything else takes the checked path and its precise errors).
fn is_one_chained_run(records: &[Record]) -> bool {
    records.windows(2).all(|w| {
        w[1].trail_id == w[0].trail_id
            && w[1].chain_seq == w[0].chain_seq.next()
            && w[1].prev_checksum == w[0].checksum
    })
}

/// The triggers that make `event_log` append-only and gapless (R1.4), as the schema creates
/// them: `(name, CREATE TRIGGER statement with whitespace collapsed)`, read from the migration
/// itself so the check can never drift from what was installed.
pub fn required_triggers() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let schema: String = MIGRATIONS
        .first()
        .copied()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for part in schema.split("CREATE TRIGGER ").skip(1) {
        let Some(end) = part.find("END;") else {
            continue;
        };
        let statement = format!("CREATE TRIGGER {}", &part[..end + 3]);
        let name = part
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        out.push((name, collapse_whitespace(&statement)));
    }
    out
}

fn collapse_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compares the triggers on `event_log` (`(name, sql)` from `sqlite_master`) with the required
/// ones: a required trigger that is absent, or whose statement differs (replaced by one that
/// no longer refuses), is missing.
fn trigger_enforcement(found: &[(String, Option<String>)]) -> AppendOnlyEnforcement {
    let mut e = AppendOnlyEnforcement {
        mechanism: "sqlite triggers on event_log".into(),
        ..AppendOnlyEnforcement::default()
    };
    for (name, expected) in required_triggers() {
        match found.iter().find(|(n, _)| *n == name) {
            None => e.missing.push(format!(
                "trigger {name} is missing (dropped): the store no longer refuses edits"
            )),
            Some((_, sql)) if sql.as_deref().map(collapse_whitespace) != Some(expected) => {
                e.missing.push(format!(
                    "trigger {name} was altered: its statement is not the one the schema installs"
                ));
            }
            Some(_) => e.present.push(format!("trigger {name}")),
        }
    }
    e
}

#[async_trait]
impl RecordStore for SqliteRecordStore {
    fn capabilities(&self) -> RecordStoreCapabilities {
        RecordStoreCapabilities::new(true, true)
    }

    async fn close(&self) {
        SqliteRecordStore::close(self).await;
    }

    async fn append_only_enforcement(&self) -> Result<AppendOnlyEnforcement, RecordStoreError> {
        let found: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'event_log'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(LocalError::sql("list event_log triggers"))?;
        Ok(trigger_enforcement(&found))
    }

    async fn append(&self, records: &[Record]) -> Result<AppendReceipt, RecordStoreError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(RecordStoreError::InvalidBatch("empty batch".into()));
        };
        let trail = &first.trail_id;
        seq_to_sql(trail, last.chain_seq)?;

        // In-process writers queue here; other processes are held off by BEGIN IMMEDIATE.
        let _writer = self.writer.lock().await;

        // Fast path: one INSERT statement is atomic and, in autocommit, one durable commit; the
        // continuity trigger refuses it unless it extends the stored head exactly. Anything
        // refused (overlap, fork, gap) or failed is re-done on the checked path below, which
        // tells idempotent re-appends from conflicts and reports precise errors.
        if records.len() <= ROWS_PER_INSERT && is_one_chained_run(records) {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(LocalError::sql("acquire connection"))?;
            match insert_in(&mut conn, records).await {
                Ok(()) => {
                    tracing::debug!(trail = %trail, from_seq = first.chain_seq.get(), to_seq = last.chain_seq.get(), "appended records");
                    return Ok(AppendReceipt::stored(records.len(), 0, last));
                }
                Err(e) => {
                    tracing::debug!(trail = %trail, error = %e, "single-statement append refused; checking the batch");
                }
            }
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(LocalError::sql("begin append"))?;
        let head = head_in(&mut tx, trail).await?;
        let overlap = match head {
            Some(h) if h.seq >= first.chain_seq => {
                let upto = h.seq.min(last.chain_seq).get();
                let count = usize::try_from(upto - first.chain_seq.get() + 1).unwrap_or(0);
                read_in(&mut tx, trail, first.chain_seq.get() - 1, count).await?
            }
            _ => Vec::new(),
        };
        let present = check_batch_at_head(head, &overlap, records)?;
        let new = &records[present..];
        let Some(new_last) = new.last() else {
            tx.rollback()
                .await
                .map_err(LocalError::sql("end read-only append"))?;
            let head = head.ok_or_else(|| RecordStoreError::InvalidBatch("empty batch".into()))?;
            return Ok(AppendReceipt {
                appended: 0,
                already_present: present as u64,
                head,
            });
        };
        if let Err(e) = insert_in(&mut tx, new).await {
            // Only a writer that skipped BEGIN IMMEDIATE could have stored these seqs meanwhile.
            if e.is_unique_violation() {
                return Err(RecordStoreError::Conflict {
                    trail_id: trail.clone(),
                    seq: new[0].chain_seq,
                });
            }
            return Err(e.into());
        }
        tx.commit()
            .await
            .map_err(LocalError::sql("commit append"))?;
        tracing::debug!(
            trail = %trail,
            from_seq = new[0].chain_seq.get(),
            to_seq = new_last.chain_seq.get(),
            "appended records"
        );
        Ok(AppendReceipt::stored(new.len(), present, new_last))
    }

    async fn head(&self, trail: &TrailId) -> Result<Option<Head>, RecordStoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(LocalError::sql("acquire connection"))?;
        head_in(&mut conn, trail).await
    }

    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_blocking(trail, None, after, limit).await
    }

    async fn read_kind(
        &self,
        trail: &TrailId,
        kind: &EventKind,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_blocking(trail, Some(kind.as_str().to_owned()), after, limit)
            .await
    }

    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError> {
        // A skip-scan over the primary key: one index seek per trail to find the next trail id,
        // one to find its head, so listing costs O(trails · log rows), not a scan of the log.
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "WITH RECURSIVE trails(id) AS ( \
                 SELECT MIN(trail_id) FROM event_log \
                 UNION ALL \
                 SELECT (SELECT MIN(trail_id) FROM event_log WHERE trail_id > trails.id) \
                 FROM trails WHERE trails.id IS NOT NULL \
             ) \
             SELECT e.trail_id, e.chain_seq, e.checksum FROM trails \
             JOIN event_log e ON e.trail_id = trails.id AND e.chain_seq = \
                 (SELECT MAX(chain_seq) FROM event_log WHERE trail_id = trails.id) \
             ORDER BY e.trail_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(LocalError::sql("list trails"))?;
        rows.into_iter()
            .map(|(trail, seq, checksum)| {
                let trail_id =
                    TrailId::new(trail.as_str()).map_err(|e| RecordStoreError::Other {
                        message: format!("stored trail id {trail:?} is invalid: {e}"),
                        source: None,
                    })?;
                let head = decode_head(&trail_id, seq, &checksum)?;
                Ok((trail_id, head))
            })
            .collect()
    }
}
