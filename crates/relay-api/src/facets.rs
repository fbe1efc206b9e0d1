//! Per-trail tallies (issue 25): how many records each (kind, actor, project) combination has,
//! and each top-level run folder, kept incrementally with the review snapshot
//! ([`crate::review::ReviewSnapshot`]). They answer `GET /api/v1/trails/{trail}/facets` (the
//! values the review UI's actor, project and folder pickers offer) and the `total` of an
//! `/api/v1/events` page filtered only by kind / actor / project / excluded kinds, or only by a
//! top-level folder, without reading the trail.
//!
//! Memory: one entry per distinct (kind, actor, project), at most [`MAX_TALLY_KEYS`] per trail,
//! and one per top-level folder, at most [`MAX_FOLDERS`] (about 100 bytes each: at most ~7 MB
//! per trail, typically a few kB plus ~100 bytes per run folder); records beyond a cap are
//! only counted in an overflow, the facets then say they are incomplete and totals fall back
//! to reading the trail.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use relay_domain::Record;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::events::parse_trail;
use crate::extract::{ApiPath, ApiQuery, NumParam};
use crate::state::ApiState;

/// The most distinct (kind, actor, project) combinations tallied per trail.
pub(crate) const MAX_TALLY_KEYS: usize = 20_000;
/// The most distinct top-level folders tallied per trail.
pub(crate) const MAX_FOLDERS: usize = 50_000;
/// The default and the largest number of values answered per facet.
const DEFAULT_VALUES: u64 = 200;
const MAX_VALUES: u64 = 1000;

/// One combination of the tallied fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TallyKey {
    /// The record's kind.
    pub(crate) kind: String,
    /// Its actor.
    pub(crate) actor: String,
    /// Its project.
    pub(crate) project: Option<String>,
}

/// Whether records of `kind` are about files (their subjects are paths under the watched
/// folder).
fn is_file_kind(kind: &str) -> bool {
    kind.starts_with("FILE_") || kind == "CAPTURE_FAILED"
}

/// The top-level folder of a record's subject: its first component when it has more than
/// one (`run7` of `run7/fid-001.fid`); `None` without a subject or a `/` in it. Kept for every
/// record, so that totals of `folder=` filters match what the filter reads; the `folders`
/// facet shows those of file records only.
pub(crate) fn top_folder(record: &Record) -> Option<String> {
    let subject = record.subject.as_ref()?.as_str();
    let (first, _) = subject.split_once('/')?;
    (!first.is_empty()).then(|| first.to_owned())
}

/// Records under one top-level folder.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FolderCount {
    /// Every record whose subject lies under it.
    pub(crate) all: u64,
    /// Those of them that are file records.
    pub(crate) files: u64,
}

/// The counts of one trail.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Records observed.
    pub(crate) records: u64,
    /// Records per (kind, actor, project) (at most [`MAX_TALLY_KEYS`] keys).
    pub(crate) by_key: HashMap<TallyKey, u64>,
    /// Records whose combination did not fit under the cap.
    pub(crate) overflow: u64,
    /// Records per top-level folder (at most [`MAX_FOLDERS`]).
    pub(crate) by_folder: HashMap<String, FolderCount>,
    /// Records under a folder that did not fit under the cap.
    pub(crate) folder_overflow: u64,
}

impl Tally {
    /// Counts `record`.
    pub(crate) fn observe(&mut self, record: &Record) {
        self.records += 1;
        let key = TallyKey {
            kind: record.kind.as_str().to_owned(),
            actor: record.actor.as_str().to_owned(),
            project: record.project.as_ref().map(|p| p.as_str().to_owned()),
        };
        if let Some(n) = self.by_key.get_mut(&key) {
            *n += 1;
        } else if self.by_key.len() < MAX_TALLY_KEYS {
            self.by_key.insert(key, 1);
        } else {
            self.overflow += 1;
        }
        if let Some(folder) = top_folder(record) {
            let file = u64::from(is_file_kind(record.kind.as_str()));
            if let Some(c) = self.by_folder.get_mut(&folder) {
                c.all += 1;
                c.files += file;
            } else if self.by_folder.len() < MAX_FOLDERS {
                self.by_folder.insert(
                    folder,
                    FolderCount {
                        all: 1,
                        files: file,
                    },
                );
            } else {
                self.folder_overflow += 1;
            }
        }
    }

    /// Whether every record is counted under its combination and its folder.
    pub(crate) fn complete(&self) -> bool {
        self.overflow == 0 && self.folder_overflow == 0
    }

    /// How many counted records have a combination `keep` accepts; `None` when the cap was
    /// reached (some records are not counted by combination).
    pub(crate) fn count(&self, keep: impl Fn(&TallyKey) -> bool) -> Option<u64> {
        (self.overflow == 0).then(|| {
            self.by_key
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// How many records lie under the top-level `folder`; `None` when the folder cap was
    /// reached.
    pub(crate) fn count_folder(&self, folder: &str) -> Option<u64> {
        (self.folder_overflow == 0).then(|| self.by_folder.get(folder).map_or(0, |c| c.all))
    }

    fn facet<'a>(counts: impl Iterator<Item = (&'a str, u64)>, limit: usize) -> Facet {
        let mut merged: HashMap<&str, u64> = HashMap::new();
        for (v, n) in counts {
            *merged.entry(v).or_default() += n;
        }
        let mut values: Vec<FacetValue> = merged
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(value, count)| FacetValue {
                value: value.to_owned(),
                count,
            })
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        let more = values.len().saturating_sub(limit) as u64;
        values.truncate(limit);
        Facet { values, more }
    }
}

/// One value of a facet and how many records have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    /// The value (an actor, a project, a folder).
    pub value: String,
    /// Records with it.
    pub count: u64,
}

/// The most frequent values of one field.
#[derive(Debug, Serialize, ToSchema)]
pub struct Facet {
    /// Values, most records first (ties by value).
    pub values: Vec<FacetValue>,
    /// How many more distinct values there are beyond `values`.
    pub more: u64,
}

/// The distinct actors, projects and top-level run folders of a trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrailFacets {
    /// The trail.
    pub trail_id: String,
    /// Records counted (the trail's records up to the head when asked).
    pub records: u64,
    /// Actors (usernames, OS users, `relay`).
    pub actors: Facet,
    /// Projects.
    pub projects: Facet,
    /// Top-level folders of file records' subjects (`run7` for `run7/fid-001.fid`); use
    /// them as `folder=` of `/api/v1/events`.
    pub folders: Facet,
    /// `false` when the trail has more than 20,000 distinct (kind, actor, project)
    /// combinations or more than 50,000 top-level folders: then values and counts cover only
    /// the records of those counted first.
    pub complete: bool,
}

/// Options of the facets read.
#[derive(Debug, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FacetsQuery {
    /// Most values per facet (1-1000, default 200); outside: 400 `out_of_range`.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<NumParam>,
}

/// The distinct actors, projects and top-level run folders of a trail with their counts (the
/// values of the review UI's pickers); logged as `ACCESS`. Kept incrementally per trail: the
/// first read of a trail reads it once, later reads only the new records.
#[utoipa::path(get, path = "/api/v1/trails/{trail}/facets", tag = "records",
    params(("trail" = String, Path, description = "Trail"), FacetsQuery),
    responses(
        (status = 200, description = "The trail's facets", body = TrailFacets),
        (status = 400, description = "Malformed trail, or `limit` out of range (`out_of_range`)", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such trail", body = ErrorBody),
        (status = 503, description = "The audit trail cannot be written; nothing was answered", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn facets(
    State(state): State<ApiState>,
    user: AuthUser,
    ApiPath(trail): ApiPath<String>,
    ApiQuery(query): ApiQuery<FacetsQuery>,
) -> Result<Json<TrailFacets>, ApiError> {
    let trail = parse_trail(&trail)?;
    let limit = NumParam::opt_within(query.limit.as_ref(), "limit", 1, MAX_VALUES)?
        .unwrap_or(DEFAULT_VALUES);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if state.parts().store.head(&trail).await?.is_none() {
        return Err(ApiError::not_found(format!("no trail {trail}")));
    }
    let review = state.review_of(&trail).await?;
    let tally = review.tally();
    let answer = TrailFacets {
        trail_id: trail.to_string(),
        records: tally.records,
        actors: Tally::facet(
            tally.by_key.iter().map(|(k, n)| (k.actor.as_str(), *n)),
            limit,
        ),
        projects: Tally::facet(
            tally
                .by_key
                .iter()
                .filter_map(|(k, n)| Some((k.project.as_deref()?, *n))),
            limit,
        ),
        folders: Tally::facet(
            tally.by_folder.iter().map(|(f, c)| (f.as_str(), c.files)),
            limit,
        ),
        complete: tally.complete(),
    };
    state
        .record_access(
            user.username(),
            serde_json::json!({"action": "read_facets", "trail": trail.as_str()}),
        )
        .await?;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use relay_domain::{
        Actor, ActorSource, ChainSeq, Device, EventKind, GENESIS, KeyId, Payload, Project, Subject,
        TimeLabel, Timestamp, TrailId,
    };

    fn record(seq: u64, kind: EventKind, actor: &str, subject: Option<&str>) -> Record {
        let at = Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap();
        Record {
            actor: Actor::new(actor).unwrap(),
            actor_source: ActorSource::OsSession,
            chain_seq: ChainSeq::new(seq).unwrap(),
            device: Device::new("ws").unwrap(),
            key_id: KeyId::new("k").unwrap(),
            kind,
            occurred_at: at,
            payload: Payload::from_value(&serde_json::json!({})).unwrap(),
            prev_checksum: GENESIS,
            project: Some(Project::new("P").unwrap()),
            recorded_at: at,
            subject: subject.map(|s| Subject::new(s).unwrap()),
            time_source: TimeLabel::System,
            trail_id: TrailId::new("t").unwrap(),
            checksum: GENESIS,
        }
    }

    // REQ: R11.1
    #[test]
    fn folders_are_the_first_component_and_the_facet_shows_file_records_only() {
        let mut t = Tally::default();
        t.observe(&record(
            1,
            EventKind::file_created(),
            "a",
            Some("run7/x.fid"),
        ));
        t.observe(&record(2, EventKind::signature(), "b", Some("run7/x.fid")));
        t.observe(&record(3, EventKind::file_created(), "a", Some("top.fid")));
        t.observe(&record(4, EventKind::file_created(), "a", None));
        assert_eq!(t.count_folder("run7"), Some(2), "every record under it");
        assert_eq!(t.by_folder["run7"].files, 1, "of which one file record");
        assert_eq!(t.count_folder("top.fid"), Some(0));
        assert_eq!(t.count(|k| k.actor == "a"), Some(3));
    }

    // REQ: R11.1
    #[test]
    fn beyond_the_caps_counts_are_not_claimed() {
        let mut t = Tally::default();
        for i in 0..=MAX_TALLY_KEYS as u64 {
            t.observe(&record(
                i + 1,
                EventKind::file_created(),
                &format!("u{i}"),
                None,
            ));
        }
        assert_eq!(t.by_key.len(), MAX_TALLY_KEYS);
        assert_eq!(t.overflow, 1);
        assert!(!t.complete());
        assert_eq!(
            t.count(|_| true),
            None,
            "a total from an incomplete tally would be wrong"
        );
        assert_eq!(t.count_folder("x"), Some(0), "folders are capped apart");
        let f = Tally::facet(t.by_key.keys().map(|k| (k.actor.as_str(), 1)), 10);
        assert_eq!(f.values.len(), 10);
        assert_eq!(f.more, MAX_TALLY_KEYS as u64 - 10);
    }
}
