//! `SqliteFleetStore`: the server of record's fleet (enrollment codes, enrolled and revoked
//! edges, their last reports) in tables `enrollment_codes`, `fleet_edges` and `edge_reports` of
//! the record store's database (migration 0007). Mutable state, like accounts.

use async_trait::async_trait;
use relay_domain::ports::fleet::judge_redemption;
use relay_domain::ports::{
    CodeDigest, EdgeEntry, EdgeReport, EdgeState, EnrollmentCode, FleetError, FleetStore, Meaning,
    ProviderFailure, RedeemRefusal,
};
use relay_domain::{Timestamp, TrailId};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use crate::error::LocalError;

/// The fleet store of the local adapter, on the record store's pool.
#[derive(Clone)]
pub struct SqliteFleetStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteFleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFleetStore").finish_non_exhaustive()
    }
}

impl SqliteFleetStore {
    /// A fleet store over `pool` (the record store's: the schema is migrated with it).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A SQLite failure while doing `op`, as the port error it means: `Unavailable` when retrying
/// may help (busy, locked, connection), `Other` otherwise.
fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> FleetError {
    move |source| {
        let ProviderFailure {
            meaning,
            message,
            source,
        } = ProviderFailure::from(LocalError::sql(op)(source));
        match meaning {
            Meaning::Temporary => FleetError::Unavailable { message, source },
            _ => FleetError::Other { message, source },
        }
    }
}

fn corrupt(message: String) -> FleetError {
    FleetError::Corrupt { message }
}

/// A count as SQLite stores it; beyond `i64::MAX` it cannot be kept as it is.
fn to_sql(n: u64, what: &str) -> Result<i64, FleetError> {
    i64::try_from(n).map_err(|_| FleetError::Other {
        message: format!("{what} {n} is beyond what the store can hold"),
        source: None,
    })
}

fn text(row: &SqliteRow, column: &str) -> Result<String, FleetError> {
    row.try_get(column)
        .map_err(|e| corrupt(format!("column {column}: {e}")))
}

fn opt_text(row: &SqliteRow, column: &str) -> Result<Option<String>, FleetError> {
    row.try_get(column)
        .map_err(|e| corrupt(format!("column {column}: {e}")))
}

fn parse_ts(column: &str, value: &str) -> Result<Timestamp, FleetError> {
    Timestamp::parse_canonical(value).map_err(|e| corrupt(format!("{column} {value:?}: {e}")))
}

fn ts(row: &SqliteRow, column: &str) -> Result<Timestamp, FleetError> {
    parse_ts(column, &text(row, column)?)
}

fn opt_ts(row: &SqliteRow, column: &str) -> Result<Option<Timestamp>, FleetError> {
    opt_text(row, column)?
        .map(|v| parse_ts(column, &v))
        .transpose()
}

fn opt_seq(row: &SqliteRow, column: &str) -> Result<Option<u64>, FleetError> {
    let v: Option<i64> = row
        .try_get(column)
        .map_err(|e| corrupt(format!("column {column}: {e}")))?;
    v.map(|v| u64::try_from(v).map_err(|_| corrupt(format!("column {column} is negative"))))
        .transpose()
}

const CODE_COLUMNS: &str = "digest, edge, issued_by, issued_at, expires_at, used_at";

fn decode_code(row: &SqliteRow) -> Result<EnrollmentCode, FleetError> {
    let digest: Vec<u8> = row
        .try_get("digest")
        .map_err(|e| corrupt(format!("column digest: {e}")))?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|d: Vec<u8>| corrupt(format!("digest of {} bytes", d.len())))?;
    Ok(EnrollmentCode {
        digest: CodeDigest::from_bytes(digest),
        edge: text(row, "edge")?,
        issued_by: text(row, "issued_by")?,
        issued_at: ts(row, "issued_at")?,
        expires_at: ts(row, "expires_at")?,
        used_at: opt_ts(row, "used_at")?,
    })
}

const EDGE_COLUMNS: &str = "edge, state, trails, enrolled_at, enrolled_by, revoked_at, revoked_by";

fn decode_edge(row: &SqliteRow) -> Result<EdgeEntry, FleetError> {
    let edge = text(row, "edge")?;
    let state = text(row, "state")?;
    let state = EdgeState::parse(&state)
        .ok_or_else(|| corrupt(format!("edge {edge:?}: state {state:?}")))?;
    let trails = text(row, "trails")?;
    let trails: Vec<String> = serde_json::from_str(&trails)
        .map_err(|e| corrupt(format!("edge {edge:?}: trails {trails:?}: {e}")))?;
    let trails = trails
        .into_iter()
        .map(|t| TrailId::new(t).map_err(|e| corrupt(format!("edge {edge:?}: trail: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let revoked = match (opt_ts(row, "revoked_at")?, opt_text(row, "revoked_by")?) {
        (Some(at), Some(by)) => Some((at, by)),
        (None, None) => None,
        _ => {
            return Err(corrupt(format!(
                "edge {edge:?}: revoked_at and revoked_by disagree"
            )));
        }
    };
    if (state == EdgeState::Revoked) != revoked.is_some() {
        return Err(corrupt(format!(
            "edge {edge:?}: state {} with revocation {revoked:?}",
            state.as_str()
        )));
    }
    Ok(EdgeEntry {
        enrolled_at: ts(row, "enrolled_at")?,
        enrolled_by: text(row, "enrolled_by")?,
        edge,
        state,
        trails,
        revoked,
    })
}

const REPORT_COLUMNS: &str = "edge, trail_id, seen_at, last_batch_at, local_head_seq, \
                              local_head_at, stored_head_seq, stored_head_at, skew_ms, \
                              version, refused";

fn decode_report(row: &SqliteRow) -> Result<EdgeReport, FleetError> {
    let trail = text(row, "trail_id")?;
    let stored: i64 = row
        .try_get("stored_head_seq")
        .map_err(|e| corrupt(format!("column stored_head_seq: {e}")))?;
    Ok(EdgeReport {
        edge: text(row, "edge")?,
        trail: TrailId::new(trail).map_err(|e| corrupt(format!("column trail_id: {e}")))?,
        seen_at: ts(row, "seen_at")?,
        last_batch_at: opt_ts(row, "last_batch_at")?,
        local_head_seq: opt_seq(row, "local_head_seq")?,
        local_head_at: opt_ts(row, "local_head_at")?,
        stored_head_seq: u64::try_from(stored)
            .map_err(|_| corrupt("column stored_head_seq is negative".into()))?,
        stored_head_at: opt_ts(row, "stored_head_at")?,
        skew_ms: row
            .try_get("skew_ms")
            .map_err(|e| corrupt(format!("column skew_ms: {e}")))?,
        version: opt_text(row, "version")?,
        refused: opt_text(row, "refused")?,
    })
}

#[async_trait]
impl FleetStore for SqliteFleetStore {
    async fn issue_code(&self, code: &EnrollmentCode) -> Result<(), FleetError> {
        sqlx::query(&format!(
            "INSERT INTO enrollment_codes ({CODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(&code.digest.as_bytes()[..])
        .bind(&code.edge)
        .bind(&code.issued_by)
        .bind(code.issued_at.to_canonical())
        .bind(code.expires_at.to_canonical())
        .bind(code.used_at.map(Timestamp::to_canonical))
        .execute(&self.pool)
        .await
        .map_err(failed("insert enrollment code"))?;
        Ok(())
    }

    async fn redeem(
        &self,
        digest: &CodeDigest,
        edge: &str,
        now: Timestamp,
    ) -> Result<EnrollmentCode, FleetError> {
        // One writer at a time (BEGIN IMMEDIATE takes the write lock before the read): of any
        // number of concurrent redemptions, the first to commit marks the code used and every
        // later one reads it used.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed("begin redemption"))?;
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLUMNS} FROM enrollment_codes WHERE digest = ? AND edge = ?"
        ))
        .bind(&digest.as_bytes()[..])
        .bind(edge)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("read enrollment code"))?;
        let verdict = match row.as_ref().map(decode_code).transpose()? {
            None => Err(RedeemRefusal::Unknown),
            Some(code) => judge_redemption(&code, now).map(|()| code),
        };
        let mut code = match verdict {
            Ok(code) => code,
            Err(refusal) => {
                tx.rollback()
                    .await
                    .map_err(failed("end refused redemption"))?;
                return Err(refusal.into());
            }
        };
        let marked = sqlx::query(
            "UPDATE enrollment_codes SET used_at = ? \
             WHERE digest = ? AND edge = ? AND used_at IS NULL",
        )
        .bind(now.to_canonical())
        .bind(&digest.as_bytes()[..])
        .bind(edge)
        .execute(&mut *tx)
        .await
        .map_err(failed("mark enrollment code used"))?;
        if marked.rows_affected() != 1 {
            // Cannot happen under the write lock; refuse rather than hand out a code twice.
            tx.rollback()
                .await
                .map_err(failed("end refused redemption"))?;
            return Err(RedeemRefusal::Used.into());
        }
        tx.commit().await.map_err(failed("commit redemption"))?;
        code.used_at = Some(now);
        Ok(code)
    }

    async fn enroll(
        &self,
        edge: &str,
        trails: &[TrailId],
        at: Timestamp,
        by: &str,
    ) -> Result<(), FleetError> {
        let trails = serde_json::to_string(&trails.iter().map(TrailId::as_str).collect::<Vec<_>>())
            .map_err(|e| FleetError::Other {
                message: format!("encode the trails of edge {edge:?}"),
                source: Some(Box::new(e)),
            })?;
        sqlx::query(
            "INSERT INTO fleet_edges (edge, state, trails, enrolled_at, enrolled_by) \
             VALUES (?, 'enrolled', ?, ?, ?) \
             ON CONFLICT (edge) DO UPDATE SET state = 'enrolled', trails = excluded.trails, \
             enrolled_at = excluded.enrolled_at, enrolled_by = excluded.enrolled_by, \
             revoked_at = NULL, revoked_by = NULL",
        )
        .bind(edge)
        .bind(trails)
        .bind(at.to_canonical())
        .bind(by)
        .execute(&self.pool)
        .await
        .map_err(failed("enroll edge"))?;
        Ok(())
    }

    async fn revoke(&self, edge: &str, at: Timestamp, by: &str) -> Result<(), FleetError> {
        let done = sqlx::query(
            "UPDATE fleet_edges SET state = 'revoked', revoked_at = ?, revoked_by = ? \
             WHERE edge = ?",
        )
        .bind(at.to_canonical())
        .bind(by)
        .bind(edge)
        .execute(&self.pool)
        .await
        .map_err(failed("revoke edge"))?;
        if done.rows_affected() == 0 {
            return Err(FleetError::UnknownEdge {
                edge: edge.to_owned(),
            });
        }
        Ok(())
    }

    async fn edge(&self, edge: &str) -> Result<Option<EdgeEntry>, FleetError> {
        let row = sqlx::query(&format!(
            "SELECT {EDGE_COLUMNS} FROM fleet_edges WHERE edge = ?"
        ))
        .bind(edge)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("read edge"))?;
        row.as_ref().map(decode_edge).transpose()
    }

    async fn edges(&self) -> Result<Vec<EdgeEntry>, FleetError> {
        let rows = sqlx::query(&format!(
            "SELECT {EDGE_COLUMNS} FROM fleet_edges ORDER BY edge"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read edges"))?;
        rows.iter().map(decode_edge).collect()
    }

    async fn report(&self, report: &EdgeReport) -> Result<(), FleetError> {
        let local_head_seq = report
            .local_head_seq
            .map(|n| to_sql(n, "local_head_seq"))
            .transpose()?;
        let stored_head_seq = to_sql(report.stored_head_seq, "stored_head_seq")?;
        sqlx::query(&format!(
            "INSERT INTO edge_reports ({REPORT_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (edge, trail_id) DO UPDATE SET seen_at = excluded.seen_at, \
             last_batch_at = COALESCE(excluded.last_batch_at, edge_reports.last_batch_at), local_head_seq = excluded.local_head_seq, \
             local_head_at = excluded.local_head_at, stored_head_seq = excluded.stored_head_seq, \
             stored_head_at = COALESCE(excluded.stored_head_at, edge_reports.stored_head_at), skew_ms = excluded.skew_ms, \
             version = excluded.version, refused = excluded.refused"
        ))
        .bind(&report.edge)
        .bind(report.trail.as_str())
        .bind(report.seen_at.to_canonical())
        .bind(report.last_batch_at.map(Timestamp::to_canonical))
        .bind(local_head_seq)
        .bind(report.local_head_at.map(Timestamp::to_canonical))
        .bind(stored_head_seq)
        .bind(report.stored_head_at.map(Timestamp::to_canonical))
        .bind(report.skew_ms)
        .bind(report.version.as_deref())
        .bind(report.refused.as_deref())
        .execute(&self.pool)
        .await
        .map_err(failed("store edge report"))?;
        Ok(())
    }

    async fn seen(&self, edge: &str, at: Timestamp) -> Result<(), FleetError> {
        sqlx::query("UPDATE edge_reports SET seen_at = ? WHERE edge = ?")
            .bind(at.to_canonical())
            .bind(edge)
            .execute(&self.pool)
            .await
            .map_err(failed("record that an edge was seen"))?;
        Ok(())
    }

    async fn reports(&self) -> Result<Vec<EdgeReport>, FleetError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM edge_reports ORDER BY edge, trail_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("read edge reports"))?;
        rows.iter().map(decode_report).collect()
    }
}
