//! Trail reads: `/api/v1/trails`, `/api/v1/events`, `/api/v1/events/{trail}/{seq}` and
//! `/api/v1/export`, each record with its signatures' manifestations (R4.3). Every read of
//! records is an `ACCESS` event in `_relay` (R3.4), written before the answer (fail closed).
//!
//! Filtering happens in this layer while paging through the trail with `RecordStore::read`, so
//! it works on every record store. Cost: one query scans at most `max_scan` records (default
//! 5000) from `after_seq`; the answer's `next_after_seq` continues the scan.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use relay_domain::ports::RecordStoreExt;
use relay_domain::{ChainSeq, Checksum, EventKind, Record, Timestamp, TrailId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, MAX_API_INTEGER, NumParam};
use crate::facets::TallyKey;
use crate::review::ReviewSnapshot;
use crate::state::ApiState;
use relay_domain::ports::Role;
use relay_domain::workflow::{ReviewStatus, WorkflowPolicy};

const READ_PAGE: usize = 500;
/// The most records one `/events` page returns.
const MAX_PAGE: u64 = 500;

/// The manifestation of an electronic signature (§11.50): who, when (UTC), what it means, why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Manifestation {
    /// The signer's printed name.
    pub printed_name: String,
    /// The signer's username.
    pub username: String,
    /// When the signature was recorded (UTC).
    pub signed_at: String,
    /// `reviewed`, `approved` or `rejected`.
    pub meaning: String,
    /// The signer's reason.
    pub reason: String,
    /// The seq of the SIGNATURE record in the same trail.
    pub signature_seq: u64,
    /// The checksum of the SIGNATURE record.
    pub signature_checksum: String,
}

impl Manifestation {
    /// The manifestation a SIGNATURE record carries, if it is one.
    pub(crate) fn of(record: &Record) -> Option<(Checksum, Self)> {
        if record.kind != EventKind::signature() {
            return None;
        }
        let payload = record.payload.to_value().ok()?;
        let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let target = Checksum::from_hex(&text("target_checksum")?).ok()?;
        Some((
            target,
            Self {
                printed_name: text("printed_name")?,
                username: record.actor.as_str().to_owned(),
                signed_at: record.recorded_at.to_canonical(),
                meaning: text("meaning")?,
                reason: text("reason")?,
                signature_seq: record.chain_seq.get(),
                signature_checksum: record.checksum.to_hex(),
            },
        ))
    }
}

/// A trail and its head.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailView {
    /// The trail.
    pub trail_id: String,
    /// Its last seq.
    pub head_seq: u64,
    /// Its last checksum.
    pub head_checksum: String,
}

/// Lists every trail with its head; logged as `ACCESS` (the caller is the event's actor).
#[utoipa::path(get, path = "/api/v1/trails", tag = "records",
    responses((status = 200, description = "Every trail", body = [TrailView]),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 503, description = "The audit trail cannot be written; nothing was answered", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn trails(
    State(state): State<ApiState>,
    user: AuthUser,
) -> Result<Json<Vec<TrailView>>, ApiError> {
    let trails = state.parts().store.trails().await?;
    state
        .record_access(
            user.username(),
            serde_json::json!({"action": "list_trails", "trails": trails.len()}),
        )
        .await?;
    Ok(Json(
        trails
            .into_iter()
            .map(|(t, h)| TrailView {
                trail_id: t.to_string(),
                head_seq: h.seq.get(),
                head_checksum: h.checksum.to_hex(),
            })
            .collect(),
    ))
}

/// One record as the API shows it, with its signatures.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The trail.
    pub trail_id: String,
    /// The seq.
    pub chain_seq: u64,
    /// The kind.
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// How the actor was resolved.
    pub actor_source: String,
    /// When it happened (UTC).
    pub occurred_at: String,
    /// When it was recorded (UTC).
    pub recorded_at: String,
    /// Where the times came from.
    pub time_source: String,
    /// The workstation.
    pub device: String,
    /// The project.
    pub project: Option<String>,
    /// What it is about.
    pub subject: Option<String>,
    /// Kind-specific details.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The key of the checksum.
    pub key_id: String,
    /// The previous record's checksum.
    pub prev_checksum: String,
    /// The record's checksum.
    pub checksum: String,
    /// Signatures of this record, oldest first.
    pub signatures: Vec<Manifestation>,
    /// Where the record stands in the signing workflow: `pending`, `reviewed`, `approved`,
    /// `rejected` or `superseded`; `null` for records that cannot be signed (SIGNATURE records
    /// and the `_relay` trail).
    pub review_status: Option<String>,
    /// The seq of the newest later capture of the same subject (`FILE_MODIFIED` /
    /// `FILE_DELETED`) when one superseded this capture; such a record cannot be approved.
    pub superseded_by: Option<u64>,
    /// Server of record only: when the server stored this forwarded record (UTC, server clock),
    /// kept outside the chained bytes. `null` on an edge, for the server's own `_relay`
    /// records, and when the time of receipt is unknown (records ingested before receipts were
    /// kept, or whose receipt could not be stored: see `RECEIPT_NOT_RECORDED` events).
    pub received_at: Option<String>,
    /// `received_at - recorded_at` in milliseconds (negative when the edge clock ran ahead);
    /// `null` when `received_at` is.
    pub received_after_ms: Option<i64>,
    /// Whether the server received the record more than `late_after_secs` after it was
    /// recorded (downtime between capture and custody); `null` when `received_at` is.
    pub late: Option<bool>,
    /// The lateness threshold `late` was judged with, in seconds (the server's
    /// `late_after_secs` when the record was read); `null` where no receipt is kept (an edge).
    pub late_after_secs: Option<u64>,
}

/// The receipts a page of records is shown with.
#[derive(Debug)]
pub(crate) enum ReceiptIndex {
    /// No receipt store (an edge): the receipt fields stay `null`.
    Disabled,
    /// The receipts covering the page and the lateness threshold.
    Enabled {
        /// Receipts overlapping the page's seqs.
        receipts: Vec<relay_domain::ports::Receipt>,
        /// The threshold.
        late_after: std::time::Duration,
    },
}

impl ReceiptIndex {
    /// The lateness of `r`, if a receipt covers it.
    pub(crate) fn lateness_of(&self, r: &Record) -> Option<relay_domain::ports::Lateness> {
        match self {
            ReceiptIndex::Disabled => None,
            ReceiptIndex::Enabled {
                receipts,
                late_after,
            } => relay_domain::ports::receipt_for(receipts, r.chain_seq.get()).map(|receipt| {
                relay_domain::ports::Lateness::judge(
                    r.recorded_at,
                    receipt.received_at,
                    *late_after,
                )
            }),
        }
    }
}

impl EventView {
    pub(crate) fn of(r: &Record, review: &ReviewSnapshot) -> Self {
        Self {
            trail_id: r.trail_id.to_string(),
            chain_seq: r.chain_seq.get(),
            kind: r.kind.to_string(),
            actor: r.actor.to_string(),
            actor_source: r.actor_source.to_string(),
            occurred_at: r.occurred_at.to_canonical(),
            recorded_at: r.recorded_at.to_canonical(),
            time_source: r.time_source.to_label(),
            device: r.device.to_string(),
            project: r.project.as_ref().map(ToString::to_string),
            subject: r.subject.as_ref().map(ToString::to_string),
            payload: r
                .payload
                .to_value()
                .unwrap_or_else(|_| serde_json::Value::String(r.payload.as_str().to_owned())),
            key_id: r.key_id.to_string(),
            prev_checksum: r.prev_checksum.to_hex(),
            checksum: r.checksum.to_hex(),
            signatures: review.signatures_on(&r.checksum).to_vec(),
            review_status: review.status(r).map(|s| s.as_str().to_owned()),
            superseded_by: review.superseded_by(r),
            received_at: None,
            received_after_ms: None,
            late: None,
            late_after_secs: None,
        }
    }

    /// The view of `r` with its time of receipt from `receipts`.
    pub(crate) fn with_receipt(
        r: &Record,
        review: &ReviewSnapshot,
        receipts: &ReceiptIndex,
    ) -> Self {
        let mut view = Self::of(r, review);
        if let ReceiptIndex::Enabled { late_after, .. } = receipts {
            view.late_after_secs = Some(late_after.as_secs());
            if let Some(l) = receipts.lateness_of(r) {
                view.received_at = Some(l.received_at.to_canonical());
                view.received_after_ms = Some(l.delay_micros / 1000);
                view.late = Some(l.late);
            }
        }
        view
    }
}

/// Filters of an event query; all optional but the trail.
#[derive(Debug, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The trail to read.
    pub trail: String,
    /// Only this kind (e.g. `FILE_CREATED`).
    pub kind: Option<String>,
    /// Only this actor (exact).
    pub actor: Option<String>,
    /// Only this project (exact). Not a valid project name: 400.
    pub project: Option<String>,
    /// Only records whose subject lies under this folder (a relative path such as `run7` or
    /// `2026/run7`: the subject starts with `<folder>/`). The distinct
    /// top-level folders are answered by `/api/v1/trails/{trail}/facets`. An absolute path, a
    /// backslash, or a `.` / `..` component: 400.
    pub folder: Option<String>,
    /// Only records recorded at or after this instant (RFC 3339 UTC, e.g. `2026-01-31T00:00:00Z`).
    pub since: Option<String>,
    /// Only records recorded before this instant.
    pub until: Option<String>,
    /// Only records whose subject or payload contains this text (case-insensitive).
    pub q: Option<String>,
    /// Only records in these review statuses, comma-separated (`pending`, `reviewed`,
    /// `approved`, `rejected`, `superseded`; case-insensitive); records that cannot be signed
    /// never match. Unknown status: 400.
    pub status: Option<String>,
    /// `true`: only the caller's signing queue, the records awaiting the next signature the
    /// caller may apply (pending records to review, reviewed records to approve under the
    /// workflow's separation of duties). Reviewers only (403 otherwise).
    pub queue: Option<bool>,
    /// Start after this seq (paging cursor), 0 to 2^53 - 1; beyond: 400 `out_of_range`.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64)]
    pub(crate) after_seq: Option<NumParam>,
    /// Most records to return (1-500, default 100); outside: 400 `out_of_range`.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub(crate) limit: Option<NumParam>,
    /// `asc` (the default: oldest first, paged with `after_seq`) or `desc` (newest first,
    /// paged with `before_seq`). Anything else: 400.
    #[param(inline)]
    pub order: Option<SortOrder>,
    /// With `order=desc`: start below this seq (paging cursor; the answer's
    /// `next_before_seq`), 1 to 2^53 - 1; beyond: 400 `out_of_range`. With `order=asc`: 400.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 9007199254740991_u64)]
    pub(crate) before_seq: Option<NumParam>,
    /// Leave out records of these kinds, comma-separated, case-insensitive (e.g. `ACCESS`, so
    /// that the `_relay` trail shows account and configuration events without every read).
    pub exclude_kind: Option<String>,
    /// `true`: also answer `total` (the records matching the filters in the whole trail) and
    /// `offset` (how many of them come before this page in the chosen order). Without
    /// filters this is read from the trail's head; with filters it reads the whole trail.
    pub count: Option<bool>,
}

/// The order of an event page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Oldest first (seq ascending).
    #[default]
    Asc,
    /// Newest first (seq descending).
    Desc,
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The trail.
    pub trail_id: String,
    /// Matching records in seq order (descending with `order=desc`).
    pub events: Vec<EventView>,
    /// Pass as `after_seq` to continue; `null` when the trail's end was reached (and always
    /// with `order=desc`).
    pub next_after_seq: Option<u64>,
    /// With `order=desc`: pass as `before_seq` to continue; `null` when the trail's start was
    /// reached (and always with `order=asc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_seq: Option<u64>,
    /// How many records were scanned for this page.
    pub scanned: u64,
    /// With `count=true`: how many records match the filters in the whole trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// With `count=true`: how many matching records come before this page in its order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

fn parse_instant(what: &str, s: &str) -> Result<Timestamp, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "{what} must be an RFC 3339 UTC instant such as 2026-01-31T08:00:00Z"
        ))
    };
    let odt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    let micros = odt.unix_timestamp_nanos() / 1000;
    Timestamp::from_unix_micros(i64::try_from(micros).map_err(|_| bad())?).map_err(|_| bad())
}

pub(crate) fn parse_trail(s: &str) -> Result<TrailId, ApiError> {
    TrailId::new(s).map_err(|e| ApiError::bad_request(format!("invalid trail: {e}")))
}

struct Filter {
    kind: Option<String>,
    actor: Option<String>,
    project: Option<String>,
    /// A relative folder without a trailing `/`.
    folder: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    q: Option<String>,
    statuses: Option<Vec<ReviewStatus>>,
    /// Kinds left out, upper-cased.
    exclude_kinds: Vec<String>,
    /// The signer whose queue is asked for, with the workflow's rules.
    queue_of: Option<(String, WorkflowPolicy)>,
}

/// A folder filter: a relative path, `/`-separated, without `.` or `..` components; a
/// trailing `/` is dropped.
fn parse_folder(s: &str) -> Result<String, ApiError> {
    let trimmed = s.trim().trim_end_matches('/');
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "folder must be a relative path such as run7 or 2026/run7 ({why})"
        ))
    };
    if trimmed.is_empty() || trimmed.starts_with('/') {
        return Err(bad("not absolute, not empty"));
    }
    if trimmed.contains('\\') || trimmed.chars().any(char::is_control) {
        return Err(bad("no backslash or control character"));
    }
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("no empty, . or .. component"));
    }
    Ok(trimmed.to_owned())
}

fn parse_statuses(s: &str) -> Result<Vec<ReviewStatus>, ApiError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            ReviewStatus::parse(p).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown review status {:?}; known: pending, reviewed, approved, rejected, \
                     superseded",
                    p.trim()
                ))
            })
        })
        .collect()
}

impl Filter {
    fn from(query: &EventQuery) -> Result<Self, ApiError> {
        Ok(Self {
            statuses: query
                .status
                .as_deref()
                .map(parse_statuses)
                .transpose()?
                .filter(|v| !v.is_empty()),
            queue_of: None,
            exclude_kinds: query
                .exclude_kind
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(|k| k.trim().to_uppercase())
                .filter(|k| !k.is_empty())
                .collect(),
            kind: query.kind.clone().filter(|s| !s.is_empty()),
            actor: query.actor.clone().filter(|s| !s.is_empty()),
            project: query
                .project
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|p| {
                    relay_domain::Project::new(p)
                        .map(|p| p.as_str().to_owned())
                        .map_err(|e| ApiError::bad_request(format!("invalid project: {e}")))
                })
                .transpose()?,
            folder: query
                .folder
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(parse_folder)
                .transpose()?,
            since: query
                .since
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_instant("since", s))
                .transpose()?,
            until: query
                .until
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_instant("until", s))
                .transpose()?,
            q: query
                .q
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase),
        })
    }

    /// Limits the filter to `user`'s signing queue.
    fn queue_of(mut self, user: &AuthUser, policy: WorkflowPolicy) -> Result<Self, ApiError> {
        user.require(&[Role::Reviewer], "have a signing queue")?;
        self.queue_of = Some((user.username().as_str().to_owned(), policy));
        Ok(self)
    }

    /// Whether every record matches (no filter at all).
    fn is_empty(&self) -> bool {
        self.statuses.is_none()
            && self.exclude_kinds.is_empty()
            && self.queue_of.is_none()
            && self.kind.is_none()
            && self.actor.is_none()
            && self.project.is_none()
            && self.folder.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.q.is_none()
    }

    /// The number of records of the trail matching the filter as the tally counts it, when
    /// the filter only uses kind, actor, project and excluded kinds, or only a top-level
    /// folder, and the tally is complete for them; `None` otherwise.
    fn tallied_total(&self, review: &ReviewSnapshot) -> Option<u64> {
        if self.statuses.is_some()
            || self.queue_of.is_some()
            || self.since.is_some()
            || self.until.is_some()
            || self.q.is_some()
        {
            return None;
        }
        if let Some(folder) = &self.folder {
            let alone = self.kind.is_none()
                && self.actor.is_none()
                && self.project.is_none()
                && self.exclude_kinds.is_empty();
            return (alone && !folder.contains('/'))
                .then(|| review.tally().count_folder(folder))
                .flatten();
        }
        review.tally().count(|k: &TallyKey| {
            !self
                .exclude_kinds
                .iter()
                .any(|x| k.kind.eq_ignore_ascii_case(x))
                && self.kind.as_deref().is_none_or(|x| k.kind == x)
                && self.actor.as_deref().is_none_or(|x| k.actor == x)
                && self
                    .project
                    .as_deref()
                    .is_none_or(|x| k.project.as_deref() == Some(x))
        })
    }

    fn matches(&self, r: &Record, review: &ReviewSnapshot) -> bool {
        !self
            .exclude_kinds
            .iter()
            .any(|k| r.kind.as_str().eq_ignore_ascii_case(k))
            && self
                .statuses
                .as_ref()
                .is_none_or(|want| review.status(r).is_some_and(|st| want.contains(&st)))
            && self
                .queue_of
                .as_ref()
                .is_none_or(|(who, policy)| review.next_step_for(policy, r, who).is_some())
            && self.kind.as_deref().is_none_or(|k| r.kind.as_str() == k)
            && self.actor.as_deref().is_none_or(|a| r.actor.as_str() == a)
            && self
                .project
                .as_deref()
                .is_none_or(|p| r.project.as_ref().is_some_and(|rp| rp.as_str() == p))
            && self.folder.as_deref().is_none_or(|f| {
                r.subject.as_ref().is_some_and(|s| {
                    let s = s.as_str();
                    s.strip_prefix(f).is_some_and(|rest| rest.starts_with('/'))
                })
            })
            && self.since.is_none_or(|t| r.recorded_at >= t)
            && self.until.is_none_or(|t| r.recorded_at < t)
            && self.q.as_deref().is_none_or(|q| {
                r.subject
                    .as_ref()
                    .is_some_and(|s| s.as_str().to_lowercase().contains(q))
                    || r.payload.as_str().to_lowercase().contains(q)
            })
    }
}

/// Scans `trail` from `after` and returns matching records (at most `limit`), the cursor to
/// continue from, and how many records were scanned.
async fn scan(
    state: &ApiState,
    trail: &TrailId,
    filter: &Filter,
    review: &ReviewSnapshot,
    after: u64,
    limit: usize,
    max_scan: usize,
) -> Result<(Vec<Record>, Option<u64>, u64), ApiError> {
    let mut out = Vec::new();
    let mut cursor = after;
    let mut scanned = 0u64;
    loop {
        let page = state.parts().store.read(trail, cursor, READ_PAGE).await?;
        let full = page.len() == READ_PAGE;
        for r in page {
            cursor = r.chain_seq.get();
            scanned += 1;
            if filter.matches(&r, review) {
                out.push(r);
                if out.len() >= limit {
                    return Ok((out, Some(cursor), scanned));
                }
            }
            if scanned as usize >= max_scan {
                return Ok((out, Some(cursor), scanned));
            }
        }
        if !full {
            return Ok((out, None, scanned));
        }
    }
}

/// Scans `trail` backwards from below `before` (newest first) and returns matching records (at
/// most `limit`), the `before_seq` cursor to continue from, and how many records were scanned.
/// Seqs of a trail are consecutive from 1 (chain continuity), so each store read asks for the
/// window just below the cursor.
async fn scan_desc(
    state: &ApiState,
    trail: &TrailId,
    filter: &Filter,
    review: &ReviewSnapshot,
    before: Option<u64>,
    limit: usize,
    max_scan: usize,
) -> Result<(Vec<Record>, Option<u64>, u64), ApiError> {
    let head = state
        .parts()
        .store
        .head(trail)
        .await?
        .map_or(0, |h| h.seq.get());
    // Records with seq < upper are still to be scanned.
    let mut upper = before.map_or(head.saturating_add(1), |b| b.min(head.saturating_add(1)));
    let mut out = Vec::new();
    let mut scanned = 0u64;
    let window = READ_PAGE as u64;
    loop {
        if upper <= 1 {
            return Ok((out, None, scanned));
        }
        let start = upper.saturating_sub(window + 1);
        let want = usize::try_from(upper - 1 - start).unwrap_or(READ_PAGE);
        let page = state.parts().store.read(trail, start, want).await?;
        for r in page.into_iter().rev() {
            let seq = r.chain_seq.get();
            if seq >= upper {
                continue;
            }
            scanned += 1;
            let more = (seq > 1).then_some(seq);
            if filter.matches(&r, review) {
                out.push(r);
                if out.len() >= limit {
                    return Ok((out, more, scanned));
                }
            }
            if scanned as usize >= max_scan {
                return Ok((out, more, scanned));
            }
        }
        upper = start + 1;
    }
}

/// How many records of `trail` match `filter` (`total`), and how many of them come before
/// the cursor in the page's order (`offset`): with `asc`, those with seq <= `after`; with
/// `desc`, those with seq >= `before`. Without filters both follow from the head. With filters
/// only on kind, actor, project, top-level folder and excluded kinds, `total` comes from the
/// trail's tally (no read) and `offset` from reading the side of the cursor that is shorter
/// (nothing on a first page); otherwise one pass over the trail.
async fn count_matches(
    state: &ApiState,
    trail: &TrailId,
    filter: &Filter,
    review: &ReviewSnapshot,
    order: SortOrder,
    after: u64,
    before: Option<u64>,
) -> Result<(u64, u64), ApiError> {
    let precedes = |seq: u64| match order {
        SortOrder::Asc => seq <= after,
        SortOrder::Desc => before.is_some_and(|b| seq >= b),
    };
    let head = state
        .parts()
        .store
        .head(trail)
        .await?
        .map_or(0, |h| h.seq.get());
    if filter.is_empty() {
        let offset = match order {
            SortOrder::Asc => after.min(head),
            SortOrder::Desc => before.map_or(0, |b| head.saturating_sub(b.saturating_sub(1))),
        };
        return Ok((head, offset));
    }
    if let Some(total) = filter.tallied_total(review) {
        // The tally covers the trail up to the head `review_of` saw; records appended since
        // are counted by reading them.
        let tallied = review.tally().records;
        let mut total = total;
        if head > tallied {
            total += count_range(state, trail, filter, review, tallied, head + 1).await?;
        }
        // The seqs before the page in its order: [1, after] (asc) or [before, head] (desc).
        let (lo, hi) = match order {
            SortOrder::Asc => (1, after.min(head)),
            SortOrder::Desc => match before {
                None => return Ok((total, 0)),
                Some(b) => (b.min(head + 1), head),
            },
        };
        if hi < lo {
            return Ok((total, 0));
        }
        let inside = hi - lo + 1;
        let offset = if inside <= head / 2 {
            count_range(state, trail, filter, review, lo - 1, hi + 1).await?
        } else {
            // Count the other side and subtract.
            let below = count_range(state, trail, filter, review, 0, lo).await?;
            let above = count_range(state, trail, filter, review, hi, head + 1).await?;
            total.saturating_sub(below + above)
        };
        return Ok((total, offset));
    }
    let (mut total, mut offset, mut cursor) = (0u64, 0u64, 0u64);
    loop {
        let page = state.parts().store.read(trail, cursor, READ_PAGE).await?;
        let full = page.len() == READ_PAGE;
        for r in &page {
            cursor = r.chain_seq.get();
            if filter.matches(r, review) {
                total += 1;
                if precedes(cursor) {
                    offset += 1;
                }
            }
        }
        if !full {
            return Ok((total, offset));
        }
    }
}

/// How many records with `after < seq < upto` match `filter`.
async fn count_range(
    state: &ApiState,
    trail: &TrailId,
    filter: &Filter,
    review: &ReviewSnapshot,
    after: u64,
    upto: u64,
) -> Result<u64, ApiError> {
    let (mut n, mut cursor) = (0u64, after);
    while cursor + 1 < upto {
        let want = usize::try_from(upto - cursor - 1)
            .unwrap_or(READ_PAGE)
            .min(READ_PAGE);
        let page = state.parts().store.read(trail, cursor, want).await?;
        let Some(last) = page.last() else { break };
        cursor = last.chain_seq.get();
        n += page
            .iter()
            .filter(|r| r.chain_seq.get() < upto && filter.matches(r, review))
            .count() as u64;
        if page.len() < want {
            break;
        }
    }
    Ok(n)
}

/// Reads a filtered page of a trail's records with their signatures; logged as `ACCESS`.
#[utoipa::path(get, path = "/api/v1/events", tag = "records", params(EventQuery),
    responses(
        (status = 200, description = "A page of records", body = EventPage),
        (status = 400, description = "Malformed filter (an unknown review status or order among them), a cursor that does not fit the order (`before_seq` with `asc`, `after_seq` with `desc`), or a number out of range (`out_of_range`)", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "`queue=true` asked by a role that does not sign (only reviewers have a signing queue)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn events(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let trail = parse_trail(&query.trail)?;
    let mut filter = Filter::from(&query)?;
    if query.queue == Some(true) {
        filter = filter.queue_of(&user, state.config().signing_workflow)?;
    }
    let limit = NumParam::opt_within(query.limit.as_ref(), "limit", 1, MAX_PAGE)?.unwrap_or(100);
    let limit = usize::try_from(limit).unwrap_or(READ_PAGE);
    let after = NumParam::opt_within(query.after_seq.as_ref(), "after_seq", 0, MAX_API_INTEGER)?;
    let before = NumParam::opt_within(query.before_seq.as_ref(), "before_seq", 1, MAX_API_INTEGER)?;
    let order = query.order.unwrap_or_default();
    match order {
        SortOrder::Asc if before.is_some() => {
            return Err(ApiError::bad_request(
                "before_seq pages order=desc; with order=asc use after_seq",
            ));
        }
        SortOrder::Desc if after.is_some() => {
            return Err(ApiError::bad_request(
                "after_seq pages order=asc; with order=desc use before_seq",
            ));
        }
        _ => {}
    }
    let after = after.unwrap_or(0);
    let review = state.review_of(&trail).await?;
    let max_scan = state.config().max_scan;
    let (records, next, next_before, scanned) = match order {
        SortOrder::Asc => {
            let (records, next, scanned) =
                scan(&state, &trail, &filter, &review, after, limit, max_scan).await?;
            (records, next, None, scanned)
        }
        SortOrder::Desc => {
            let (records, next, scanned) =
                scan_desc(&state, &trail, &filter, &review, before, limit, max_scan).await?;
            (records, None, next, scanned)
        }
    };
    let counted = if query.count == Some(true) {
        Some(count_matches(&state, &trail, &filter, &review, order, after, before).await?)
    } else {
        None
    };
    let receipts = state.receipts_of(&trail, &records).await?;
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "read_events",
                "trail": trail.as_str(),
                "filters": query,
                "returned": records.len(),
                "first_seq": records.first().map(|r| r.chain_seq.get()),
                "last_seq": records.last().map(|r| r.chain_seq.get()),
            }),
        )
        .await?;
    Ok(Json(EventPage {
        trail_id: trail.to_string(),
        events: records
            .iter()
            .map(|r| EventView::with_receipt(r, &review, &receipts))
            .collect(),
        next_after_seq: next,
        next_before_seq: next_before,
        scanned,
        total: counted.map(|c| c.0),
        offset: counted.map(|c| c.1),
    }))
}

/// Reads one record with its signatures; logged as `ACCESS`.
#[utoipa::path(get, path = "/api/v1/events/{trail}/{seq}", tag = "records",
    params(("trail" = String, Path, description = "Trail"),
        ("seq" = u64, Path, description = "chain_seq, 1 to 2^53 - 1", minimum = 1, maximum = 9007199254740991_u64)),
    responses(
        (status = 200, description = "The record", body = EventView),
        (status = 400, description = "Malformed trail, or seq out of range (`out_of_range`)", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such record", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn event(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiPath((trail, seq)): ApiPath<(String, NumParam)>,
) -> Result<Json<EventView>, ApiError> {
    let trail = parse_trail(&trail)?;
    let seq = ChainSeq::new(seq.within("seq", 1, MAX_API_INTEGER)?)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let record = state
        .parts()
        .store
        .get(&trail, seq)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no record {trail}#{seq}")))?;
    let review = state.review_of(&trail).await?;
    let receipts = state
        .receipts_of(&trail, std::slice::from_ref(&record))
        .await?;
    state
        .record_access(
            user.username(),
            serde_json::json!({"action": "read_event", "trail": trail.as_str(), "seq": seq.get()}),
        )
        .await?;
    Ok(Json(EventView::with_receipt(&record, &review, &receipts)))
}

/// Export format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One row per record; signatures in one column.
    Csv,
    /// A JSON document with every record and its signatures.
    Json,
}

/// What to export.
#[derive(Debug, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The trail.
    pub trail: String,
    /// `csv` or `json`.
    #[param(value_type = String)]
    pub format: ExportFormat,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this project (as in `/api/v1/events`).
    pub project: Option<String>,
    /// Only subjects under this folder (as in `/api/v1/events`).
    pub folder: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub since: Option<String>,
    /// Recorded before (RFC 3339).
    pub until: Option<String>,
    /// Text in subject or payload.
    pub q: Option<String>,
    /// Only these review statuses, comma-separated (as in `/api/v1/events`).
    pub status: Option<String>,
}

/// The most records one export holds.
const MAX_EXPORT: usize = 100_000;

fn csv_cell(s: &str) -> String {
    // Cells that a spreadsheet would run as a formula are prefixed with a quote (CSV injection).
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Exports a filtered trail (human-readable, with signatures, R5.1); logged as `ACCESS`.
/// Sealed export packages (R5.2) are produced by the export service, not here.
#[utoipa::path(get, path = "/api/v1/export", tag = "records", params(ExportQuery),
    responses(
        (status = 200, description = "The export (text/csv or application/json attachment)"),
        (status = 400, description = "Malformed filter", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Role may not export", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let trail = parse_trail(&query.trail)?;
    crate::authz::require_export(&user, &trail)?;
    let eq = EventQuery {
        trail: query.trail.clone(),
        kind: query.kind.clone(),
        actor: query.actor.clone(),
        project: query.project.clone(),
        folder: query.folder.clone(),
        since: query.since.clone(),
        until: query.until.clone(),
        q: query.q.clone(),
        status: query.status.clone(),
        queue: None,
        after_seq: None,
        limit: None,
        order: None,
        before_seq: None,
        exclude_kind: None,
        count: None,
    };
    let filter = Filter::from(&eq)?;
    let review = state.review_of(&trail).await?;
    let (records, next, _) =
        scan(&state, &trail, &filter, &review, 0, MAX_EXPORT, usize::MAX).await?;
    if next.is_some() {
        return Err(ApiError::unprocessable(
            "export_too_large",
            format!("more than {MAX_EXPORT} records match; narrow the filter"),
        ));
    }
    let receipts = state.receipts_of(&trail, &records).await?;
    let views: Vec<EventView> = records
        .iter()
        .map(|r| EventView::with_receipt(r, &review, &receipts))
        .collect();
    let (body, content_type, ext) = match query.format {
        ExportFormat::Json => {
            let doc = serde_json::json!({
                "trail_id": trail.as_str(),
                "exported_by": user.username().as_str(),
                "filters": query,
                "records": views,
            });
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| ApiError::internal("export rendering failed", &e))?;
            (text, "application/json", "json")
        }
        ExportFormat::Csv => {
            let mut out = String::from(
                "trail_id,chain_seq,kind,actor,actor_source,occurred_at,recorded_at,time_source,device,project,subject,payload,key_id,prev_checksum,checksum,signatures,received_at,late,late_after_secs,review_status,superseded_by\r\n",
            );
            for v in &views {
                // The cell layout of sealed packages (export format v2): fields escaped so any
                // reason text splits back (relay_domain::export::parse_signatures_cell).
                let sig_text = v
                    .signatures
                    .iter()
                    .map(|m| {
                        relay_domain::export::signature_cell_entry([
                            &m.printed_name,
                            &m.username,
                            &m.signed_at,
                            &m.meaning,
                            &m.reason,
                        ])
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let cells = [
                    v.trail_id.clone(),
                    v.chain_seq.to_string(),
                    v.kind.clone(),
                    v.actor.clone(),
                    v.actor_source.clone(),
                    v.occurred_at.clone(),
                    v.recorded_at.clone(),
                    v.time_source.clone(),
                    v.device.clone(),
                    v.project.clone().unwrap_or_default(),
                    v.subject.clone().unwrap_or_default(),
                    v.payload.to_string(),
                    v.key_id.clone(),
                    v.prev_checksum.clone(),
                    v.checksum.clone(),
                    sig_text,
                    v.received_at.clone().unwrap_or_default(),
                    v.late.map(|l| l.to_string()).unwrap_or_default(),
                    v.late_after_secs.map(|s| s.to_string()).unwrap_or_default(),
                    v.review_status.clone().unwrap_or_default(),
                    v.superseded_by.map(|s| s.to_string()).unwrap_or_default(),
                ];
                out.push_str(
                    &cells
                        .iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push_str("\r\n");
            }
            (out, "text/csv; charset=utf-8", "csv")
        }
    };
    state
        .record_access(
            user.username(),
            serde_json::json!({
                "action": "export",
                "trail": trail.as_str(),
                "format": ext,
                "filters": query,
                "records": views.len(),
            }),
        )
        .await?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{trail}.{ext}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
