//! `PgRecordStore`: the trail log in Postgres, append-only by grant and trigger.

use std::str::FromStr;

use async_trait::async_trait;
use relay_domain::chain::check_batch_at_head;
use relay_domain::ports::{
    AppendOnlyEnforcement, AppendReceipt, Head, RecordStore, RecordStoreCapabilities,
    RecordStoreError,
};
use relay_domain::{ChainSeq, Checksum, EventKind, Project, Record, Subject, TrailId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};

use crate::config::{PgConfig, redact_dsn};
use crate::error::{PgError, sqlstate};
use crate::migrate::{LOCK_NAMESPACE, MIGRATIONS};

/// The columns of `event_log` in the order [`decode_row`] reads them.
pub(crate) const COLUMNS: &str = relay_domain::columns::EVENT_LOG_COLUMNS;

/// What the runtime role may do to `event_log`, read at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custody {
    /// The role the runtime connects as.
    pub role: String,
    /// Privileges beyond SELECT, INSERT that the role holds (`UPDATE`, `DELETE`, `TRUNCATE`,
    /// `OWNER`, `SUPERUSER`); empty under two-role custody.
    pub excess_privileges: Vec<&'static str>,
}

impl Custody {
    /// Whether the runtime role holds only SELECT, INSERT.
    pub fn is_two_role(&self) -> bool {
        self.excess_privileges.is_empty()
    }
}

/// The record store of the self-hosted adapter: table `event_log` in Postgres.
///
/// - **Two-role custody.** The schema belongs to the admin role ([`migrate`](crate::migrate));
///   this store connects with the runtime role, which holds only SELECT, INSERT. `connect`
///   refuses a role that can UPDATE, DELETE or TRUNCATE the log, owns it, or is a superuser,
///   unless [`PgConfig::allow_privileged_role`] says otherwise (then it warns loudly).
/// - **Triggers** refuse UPDATE, DELETE and TRUNCATE for every role (SQLSTATE P0001).
/// - **Serialized per trail** across connections and processes: each append is one
///   transaction that first takes `pg_advisory_xact_lock(namespace, hashtext(trail_id))` and
///   reads the head through the primary-key index after the lock was granted (one call of
///   `event_log_lock_head`), checks the batch with
///   `check_batch_at_head`, and inserts the whole batch in one statement: a binary `COPY` from
///   64 records on, a multi-row `INSERT` (`UNNEST` of arrays) below. A batch of fewer than 64
///   records whose own links continue the head it names first tries one statement that does
///   all of it (lock, head read after the lock, insert only at that head) and commits on its
///   own; any other head sends it down the transactional path, which decides.
///   The primary key (trail_id, chain_seq) stops any writer that skips the lock
///   ([`RecordStoreError::Conflict`]).
pub struct PgRecordStore {
    pool: PgPool,
    target: String,
    custody: Custody,
}

impl std::fmt::Debug for PgRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecordStore")
            .field("target", &self.target)
            .field("role", &self.custody.role)
            .finish_non_exhaustive()
    }
}

impl PgRecordStore {
    /// Connects with the runtime DSN, checks the schema version and the role's custody.
    pub async fn connect(config: &PgConfig) -> Result<Self, RecordStoreError> {
        let target = redact_dsn(config.dsn());
        let options = PgConnectOptions::from_str(config.dsn())
            .map_err(|e| RecordStoreError::Other {
                // The DSN is not repeated: it may hold a password.
                message: format!("the record store DSN ({target}) is invalid"),
                source: Some(Box::new(e)),
            })?
            .application_name("gims-relay")
            .options([(
                "lock_timeout",
                format!("{}ms", config.lock_timeout_value().as_millis()),
            )]);
        // No idle reaper: sqlx 0.8's pool maintenance task can spin a core forever after a
        // `num_idle` underflow (launchbadge/sqlx#3645, fix #4289 not released); the pool is
        // small and bounded, so idle connections are kept.
        let pool = PgPoolOptions::new()
            .idle_timeout(None)
            .max_lifetime(None)
            .max_connections(config.max_connections_value())
            .acquire_timeout(config.acquire_timeout_value())
            .connect_with(options)
            .await
            .map_err(PgError::op("connect"))?;
        check_schema(&pool).await?;
        let custody = read_custody(&pool).await?;
        if !custody.is_two_role() {
            let what = custody.excess_privileges.join(", ");
            if !config.allow_privileged_role_value() {
                pool.close().await;
                return Err(RecordStoreError::PermissionDenied {
                    message: format!(
                        "runtime role {:?} holds {what} on event_log; two-role custody \
                         requires a role with only SELECT, INSERT (run `relay-server migrate \
                         --admin-dsn .. --app-role ..` and connect as that role)",
                        custody.role
                    ),
                    source: None,
                });
            }
            tracing::warn!(
                target = %target,
                role = %custody.role,
                privileges = %what,
                "RUNNING WITH A PRIVILEGED DATABASE ROLE: two-role custody is broken; this \
                 role can rewrite or delete audit records"
            );
        }
        tracing::debug!(target = %target, role = %custody.role, "connected postgres record store");
        Ok(Self {
            pool,
            target,
            custody,
        })
    }

    /// The connection pool, for operational tooling and tests. It connects as the runtime
    /// role, so it can do no more than the store itself.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// What the runtime role may do to `event_log`.
    pub fn custody(&self) -> &Custody {
        &self.custody
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn check_schema(pool: &PgPool) -> Result<(), RecordStoreError> {
    let found: i32 =
        match sqlx::query_scalar("SELECT COALESCE(max(version), 0) FROM relay_schema_migrations")
            .fetch_one(pool)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                let e = PgError::op("read the schema version")(e);
                if e.sqlstate().as_deref() == Some(sqlstate::UNDEFINED_TABLE) {
                    return Err(RecordStoreError::Other {
                        message: "the database has no relay schema: run `relay-server migrate` \
                              with the admin DSN first"
                            .into(),
                        source: Some(Box::new(e)),
                    });
                }
                return Err(e.into());
            }
        };
    let known = MIGRATIONS.len();
    match usize::try_from(found).unwrap_or(usize::MAX) {
        v if v == known => Ok(()),
        v if v > known => Err(RecordStoreError::Other {
            message: format!(
                "database schema version {found} is newer than this relay knows ({known})"
            ),
            source: None,
        }),
        _ => Err(RecordStoreError::Other {
            message: format!(
                "database schema version {found} is older than this relay needs ({known}): run \
                 `relay-server migrate` with the admin DSN"
            ),
            source: None,
        }),
    }
}

async fn read_custody(pool: &PgPool) -> Result<Custody, RecordStoreError> {
    let row: (String, bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                has_table_privilege('event_log', 'UPDATE'), \
                has_table_privilege('event_log', 'DELETE'), \
                has_table_privilege('event_log', 'TRUNCATE'), \
                pg_has_role((SELECT relowner FROM pg_class WHERE oid = 'event_log'::regclass), \
                            'USAGE')",
    )
    .fetch_one(pool)
    .await
    .map_err(PgError::op("read the runtime role's privileges"))?;
    let (role, superuser, update, delete, truncate, owner) = row;
    let excess = [
        (superuser, "SUPERUSER"),
        (owner, "OWNER"),
        (update, "UPDATE"),
        (delete, "DELETE"),
        (truncate, "TRUNCATE"),
    ];
    Ok(Custody {
        role,
        excess_privileges: excess
            .into_iter()
            .filter_map(|(held, name)| held.then_some(name))
            .collect(),
    })
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
fn decode_row(trail: &TrailId, row: &PgRow) -> Result<Record, RecordStoreError> {
    let seq_raw: i64 = row
        .try_get(1)
        .map_err(|e| corrupt(trail, 0, format!("column chain_seq: {e}")))?;
    relay_domain::columns::decode_columns(trail, seq_raw, |i| {
        row.try_get::<Option<&str>, _>(i).map_err(|e| e.to_string())
    })
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

async fn head_in(
    conn: &mut PgConnection,
    trail: &TrailId,
) -> Result<Option<Head>, RecordStoreError> {
    // A backward scan of the primary key: one index probe however long the trail is.
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT chain_seq, checksum FROM event_log WHERE trail_id = $1 \
         ORDER BY chain_seq DESC LIMIT 1",
    )
    .bind(trail.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(PgError::op("read head"))?;
    row.map(|(seq, checksum)| decode_head(trail, seq, &checksum))
        .transpose()
}

async fn read_in(
    conn: &mut PgConnection,
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
        "SELECT {COLUMNS} FROM event_log WHERE trail_id = $1 AND chain_seq > $2 \
         ORDER BY chain_seq LIMIT $3"
    ))
    .bind(trail.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(PgError::op("read records"))?;
    rows.iter().map(|row| decode_row(trail, row)).collect()
}

/// The `UNNEST` of the column arrays `$1..$15` that [`bind_column_arrays`] binds: a batch of any
/// size is one round trip and one plan.
const UNNEST_COLUMNS: &str = "UNNEST(\
     $1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
     $14::text[], $15::text[])";

/// `sql` with each column of `records` bound as one array, `$1..$15` in the order of
/// [`COLUMNS`].
fn bind_column_arrays<'q>(
    sql: &'q str,
    records: &'q [Record],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let n = records.len();
    let mut trail_id = Vec::with_capacity(n);
    let mut chain_seq = Vec::with_capacity(n);
    let mut prev_checksum = Vec::with_capacity(n);
    let mut checksum = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut actor_source = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut recorded_at = Vec::with_capacity(n);
    let mut time_source = Vec::with_capacity(n);
    let mut device = Vec::with_capacity(n);
    let mut project = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut key_id = Vec::with_capacity(n);
    for r in records {
        trail_id.push(r.trail_id.as_str());
        // Checked by the caller: every seq of the batch fits in an i64.
        chain_seq.push(i64::try_from(r.chain_seq.get()).unwrap_or(i64::MAX));
        prev_checksum.push(r.prev_checksum.to_hex());
        checksum.push(r.checksum.to_hex());
        kind.push(r.kind.as_str());
        actor.push(r.actor.as_str());
        actor_source.push(r.actor_source.as_str());
        occurred_at.push(r.occurred_at.to_canonical());
        recorded_at.push(r.recorded_at.to_canonical());
        time_source.push(r.time_source.to_label());
        device.push(r.device.as_str());
        project.push(r.project.as_ref().map(Project::as_str));
        subject.push(r.subject.as_ref().map(Subject::as_str));
        payload.push(r.payload.as_str());
        key_id.push(r.key_id.as_str());
    }
    sqlx::query(sql)
        .bind(trail_id)
        .bind(chain_seq)
        .bind(prev_checksum)
        .bind(checksum)
        .bind(kind)
        .bind(actor)
        .bind(actor_source)
        .bind(occurred_at)
        .bind(recorded_at)
        .bind(time_source)
        .bind(device)
        .bind(project)
        .bind(subject)
        .bind(payload)
        .bind(key_id)
}

/// Inserts `records` into `table` with one statement (see [`UNNEST_COLUMNS`]).
pub(crate) async fn insert_rows(
    conn: &mut PgConnection,
    table: &str,
    records: &[Record],
) -> Result<u64, sqlx::Error> {
    let sql = format!("INSERT INTO {table} ({COLUMNS}) SELECT * FROM {UNNEST_COLUMNS}");
    let done = bind_column_arrays(&sql, records)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// The append of a small batch that continues the head it names, in one statement and one
/// implicit transaction: `event_log_lock_head` takes the trail's advisory lock and reads the
/// head under a snapshot taken after it (as the transactional path does), and the rows are
/// inserted only if that head is the one the batch continues (`$18`, `$19`: seq 0 and NULL for
/// an empty trail). The statement commits when it ends (durably, as any commit), releasing
/// the lock. One round trip instead of four (BEGIN, lock and head, INSERT, COMMIT).
static APPEND_AT_HEAD_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH head AS MATERIALIZED ( \
             SELECT head_seq, head_checksum FROM event_log_lock_head($16, $17)), \
         inserted AS ( \
             INSERT INTO event_log ({COLUMNS}) SELECT * FROM {UNNEST_COLUMNS} \
             WHERE COALESCE((SELECT head_seq FROM head), 0) = $18 \
               AND (SELECT head_checksum FROM head) IS NOT DISTINCT FROM $19 \
             RETURNING 1) \
         SELECT count(*)::int8 FROM inserted"
    )
});

/// A failed insert of records of `trail` from `seq` on: a unique-key violation is
/// [`RecordStoreError::Conflict`] (only a writer that skipped the advisory lock could have stored
/// these seqs), anything else the error as it is.
fn conflict_or(e: PgError, trail: &TrailId, seq: ChainSeq) -> RecordStoreError {
    if e.sqlstate().as_deref() == Some(sqlstate::UNIQUE_VIOLATION) {
        RecordStoreError::Conflict {
            trail_id: trail.clone(),
            seq,
        }
    } else {
        e.into()
    }
}

/// Appends `records` in one statement when the trail's head is the one they continue
/// ([`APPEND_AT_HEAD_SQL`]): true when they were stored, false when the head is another (a
/// re-send, a gap, a fork: the caller then takes the transactional path, which reads the head
/// and the overlap and decides). The batch's own links are checked before, with no I/O.
async fn append_at_expected_head(pool: &PgPool, records: &[Record]) -> Result<bool, PgError> {
    let Some(first) = records.first() else {
        return Ok(false);
    };
    let expected = first
        .chain_seq
        .get()
        .checked_sub(1)
        .and_then(|seq| ChainSeq::new(seq).ok())
        .map(|seq| Head {
            seq,
            checksum: first.prev_checksum,
        });
    // Consecutive links continuing `expected`; anything else is for the full path to word.
    if !matches!(check_batch_at_head(expected, &[], records), Ok(0)) {
        return Ok(false);
    }
    let expected_seq = expected.map_or(0, |h| i64::try_from(h.seq.get()).unwrap_or(i64::MAX));
    let expected_checksum = expected.map(|h| h.checksum.to_hex());
    let row = bind_column_arrays(&APPEND_AT_HEAD_SQL, records)
        .bind(LOCK_NAMESPACE)
        .bind(first.trail_id.as_str())
        .bind(expected_seq)
        .bind(expected_checksum)
        .fetch_one(pool)
        .await
        .map_err(PgError::op("append at the head"))?;
    let stored: i64 = row
        .try_get(0)
        .map_err(PgError::op("read the count of appended records"))?;
    Ok(usize::try_from(stored).is_ok_and(|n| n == records.len()))
}

/// The statement-level triggers that refuse changes to `event_log` (R1.4), with the `tgtype`
/// bits Postgres stores for `BEFORE <op> .. FOR EACH STATEMENT` (BEFORE = 2, DELETE = 8,
/// UPDATE = 16, TRUNCATE = 32).
pub const REQUIRED_TRIGGERS: [(&str, i16); 3] = [
    ("event_log_no_update", 2 | 16),
    ("event_log_no_delete", 2 | 8),
    ("event_log_no_truncate", 2 | 32),
];

/// The function every required trigger executes.
const REFUSE_FUNCTION: &str = "event_log_refuse_change";

fn collapse_whitespace(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The body of `event_log_refuse_change` as the schema installs it (whitespace collapsed).
fn refuse_function_body() -> String {
    let schema = MIGRATIONS
        .first()
        .map(|(_, text)| *text)
        .unwrap_or_default();
    let body = schema.split("$$").nth(1).unwrap_or_default();
    collapse_whitespace(body)
}

/// One row of the trigger query: name, `tgenabled`, `tgtype`, function name, function body.
type TriggerRow = (String, String, i16, String, String);

/// Compares the triggers found on `event_log` and the runtime role's custody with what the
/// schema installs and two-role custody requires.
fn enforcement_of(found: &[TriggerRow], custody: &Custody) -> AppendOnlyEnforcement {
    let mut e = AppendOnlyEnforcement {
        mechanism: format!(
            "postgres triggers on event_log and the grants of runtime role {:?}",
            custody.role
        ),
        ..AppendOnlyEnforcement::default()
    };
    let body = refuse_function_body();
    for (name, tgtype) in REQUIRED_TRIGGERS {
        match found.iter().find(|row| row.0 == name) {
            None => e.missing.push(format!(
                "trigger {name} is missing (dropped): the store no longer refuses edits"
            )),
            // 'O' fires in origin and local mode, 'A' always; 'D' is disabled and 'R' fires
            // only for replication sessions, so neither protects the log.
            Some((_, enabled, _, _, _)) if enabled != "O" && enabled != "A" => {
                e.missing.push(format!(
                    "trigger {name} is disabled (tgenabled {enabled:?}): the store no longer refuses edits"
                ));
            }
            Some((_, _, found_type, function, src))
                if *found_type != tgtype
                    || function != REFUSE_FUNCTION
                    || collapse_whitespace(src) != body =>
            {
                e.missing.push(format!(
                    "trigger {name} was altered: it no longer runs {REFUSE_FUNCTION} as the schema \
                     installs it"
                ));
            }
            Some(_) => e.present.push(format!("trigger {name}")),
        }
    }
    if custody.is_two_role() {
        e.present.push(format!(
            "runtime role {:?} holds only SELECT, INSERT on event_log",
            custody.role
        ));
    } else {
        for privilege in &custody.excess_privileges {
            e.missing.push(format!(
                "runtime role {:?} holds {privilege} on event_log: two-role custody is broken",
                custody.role
            ));
        }
    }
    e
}

#[async_trait]
impl RecordStore for PgRecordStore {
    async fn close(&self) {
        PgRecordStore::close(self).await;
    }

    fn capabilities(&self) -> RecordStoreCapabilities {
        RecordStoreCapabilities::new(true, true)
    }

    async fn append_only_enforcement(&self) -> Result<AppendOnlyEnforcement, RecordStoreError> {
        let found: Vec<TriggerRow> = sqlx::query_as(
            "SELECT t.tgname::text, t.tgenabled::text, t.tgtype::int2, p.proname::text, p.prosrc \
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
             WHERE t.tgrelid = 'event_log'::regclass AND NOT t.tgisinternal",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(PgError::op("list the triggers of event_log"))?;
        // Read again, not the connect-time copy: a grant can be added while the relay runs.
        let custody = read_custody(&self.pool).await?;
        Ok(enforcement_of(&found, &custody))
    }

    async fn append(&self, records: &[Record]) -> Result<AppendReceipt, RecordStoreError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(RecordStoreError::InvalidBatch("empty batch".into()));
        };
        let trail = &first.trail_id;
        seq_to_sql(trail, last.chain_seq)?;

        // The common case, a small batch continuing the head, in one round trip; anything else
        // (a re-send, a gap, a fork, a large batch) takes the transaction below.
        if records.len() < crate::copy::COPY_MIN_ROWS {
            match append_at_expected_head(&self.pool, records).await {
                Ok(true) => {
                    tracing::debug!(trail = %trail, from_seq = first.chain_seq.get(),
                        to_seq = last.chain_seq.get(), "appended records at the head");
                    return Ok(AppendReceipt::stored(records.len(), 0, last));
                }
                Ok(false) => {}
                Err(e) => return Err(conflict_or(e, trail, first.chain_seq)),
            }
        }

        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(PgError::op("begin append"))?;
        // Takes the trail's advisory lock (held to the end of the transaction; waits at most
        // `lock_timeout`, then 55P03, Unavailable) and reads the head under a snapshot taken
        // after the lock was granted, in one round trip.
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT head_seq, head_checksum FROM event_log_lock_head($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(trail.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(PgError::op("lock the trail and read its head"))?;
        let head = row
            .map(|(seq, checksum)| decode_head(trail, seq, &checksum))
            .transpose()?;
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
                .map_err(PgError::op("end read-only append"))?;
            let head = head.ok_or_else(|| RecordStoreError::InvalidBatch("empty batch".into()))?;
            return Ok(AppendReceipt {
                appended: 0,
                already_present: present as u64,
                head,
            });
        };
        let inserted = if new.len() >= crate::copy::COPY_MIN_ROWS {
            crate::copy::copy_rows(&mut tx, "event_log", new).await
        } else {
            insert_rows(&mut tx, "event_log", new).await
        };
        if let Err(e) = inserted {
            return Err(conflict_or(
                PgError::op("insert records")(e),
                trail,
                new[0].chain_seq,
            ));
        }
        tx.commit().await.map_err(PgError::op("commit append"))?;
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
            .map_err(PgError::op("acquire connection"))?;
        head_in(&mut conn, trail).await
    }

    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(PgError::op("acquire connection"))?;
        read_in(&mut conn, trail, after, limit).await
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
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM event_log WHERE trail_id = $1 AND chain_seq > $2 \
             AND kind = $3 ORDER BY chain_seq LIMIT $4"
        ))
        .bind(trail.as_str())
        .bind(after)
        .bind(kind.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(PgError::op("read records of one kind"))?;
        rows.iter().map(|row| decode_row(trail, row)).collect()
    }

    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError> {
        // A loose index scan over the primary key: one probe per trail to find the next trail
        // id and one for its head, so listing costs O(trails · log rows), not a scan of the log.
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "WITH RECURSIVE trails(id) AS ( \
                 (SELECT trail_id FROM event_log ORDER BY trail_id LIMIT 1) \
                 UNION ALL \
                 SELECT (SELECT e.trail_id FROM event_log e WHERE e.trail_id > trails.id \
                         ORDER BY e.trail_id LIMIT 1) \
                 FROM trails WHERE trails.id IS NOT NULL \
             ) \
             SELECT h.trail_id::text, h.chain_seq, h.checksum FROM trails \
             CROSS JOIN LATERAL (SELECT trail_id, chain_seq, checksum FROM event_log e \
                                 WHERE e.trail_id = trails.id \
                                 ORDER BY e.chain_seq DESC LIMIT 1) h \
             WHERE trails.id IS NOT NULL \
             ORDER BY h.trail_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(PgError::op("list trails"))?;
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
