//! The capture events: their drafts and payloads. The payload field names here are also what
//! [`crate::index`] reads back from the trail, so the two stay in one place.

use relay_domain::record::PayloadError;
use relay_domain::{
    ActorSource, Device, EventDraft, EventKind, Payload, Project, Subject, TrailId,
};
use serde_json::{Map, Value, json};

use crate::attribution::{Attributed, Attribution};
use crate::error::CaptureFailure;
use crate::hash::FileDigest;
use crate::index::IndexEntry;
use crate::stat::FileStat;

/// Payload field names.
pub(crate) mod field {
    pub const ROOT: &str = "root";
    pub const SHA256: &str = "sha256";
    pub const SIZE: &str = "size";
    pub const MTIME: &str = "mtime";
    /// The inode change time of the recorded version (absent in records written before it).
    pub const CTIME: &str = "ctime";
    /// The inode number of the recorded version (absent in records written before it).
    pub const INODE: &str = "inode";
    /// How a `FILE_MODIFIED` was found when not by a size, mtime or ctime change.
    pub const DETECTED_BY: &str = "detected_by";
    pub const PREVIOUS_SHA256: &str = "previous_sha256";
    pub const PREVIOUS_SIZE: &str = "previous_size";
    pub const PREVIOUS_MTIME: &str = "previous_mtime";
    pub const REASON: &str = "reason";
    pub const DETAIL: &str = "detail";
    pub use crate::attribution::field::OWNER_UID;
}

/// The largest integer a canonical (IEEE double) JSON number holds exactly.
const MAX_EXACT_INT: u64 = 1 << 53;

/// A size as JSON: a number while exact, else a decimal string (never silently rounded).
fn size_value(size: u64) -> Value {
    if size <= MAX_EXACT_INT {
        json!(size)
    } else {
        json!(size.to_string())
    }
}

/// Reads a size written by [`size_value`].
pub(crate) fn parse_size(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Who and where every capture event is recorded for.
#[derive(Debug, Clone)]
pub(crate) struct EventContext {
    pub trail_id: TrailId,
    pub device: Device,
    pub project: Option<Project>,
    pub attribution: Attribution,
}

impl EventContext {
    /// The attribution of an event about a file owned by `owner_uid`, resolved off the async
    /// executor when it asks the OS (an account lookup, the console session).
    pub async fn attribute(&self, owner_uid: Option<u32>) -> Attributed {
        if !self.attribution.asks_the_os() {
            return self.attribution.resolve(owner_uid);
        }
        let attribution = self.attribution.clone();
        match tokio::task::spawn_blocking(move || attribution.resolve(owner_uid)).await {
            Ok(attributed) => attributed,
            Err(e) => {
                // Evidence is never dropped for want of a name: the service identity, flagged.
                tracing::error!(trail = %self.trail_id, error = %e, "attribution task failed; recording unattributed");
                Attributed {
                    actor: self.attribution.process_actor().clone(),
                    source: ActorSource::Service,
                    owner: None,
                    process: None,
                    unattributed: true,
                }
            }
        }
    }

    fn draft(
        &self,
        kind: EventKind,
        subject: Subject,
        payload: Value,
        who: &Attributed,
    ) -> Result<EventDraft, PayloadError> {
        let mut payload = match payload {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        who.add_to(&mut payload);
        let payload = Value::Object(payload);
        Ok(EventDraft {
            trail_id: self.trail_id.clone(),
            kind,
            actor: Some(who.actor.clone()),
            actor_source: who.source,
            // The record's `recorded_at` is when capture saw the file complete; the file's own
            // mtime is in the payload.
            occurred_at: None,
            device: self.device.clone(),
            project: self.project.clone(),
            subject: Some(subject),
            payload: Payload::from_value(&payload)?,
        })
    }

    /// `FILE_CREATED`: a new file was captured.
    pub fn file_created(
        &self,
        root: &str,
        subject: Subject,
        stat: &FileStat,
        digest: &FileDigest,
        who: &Attributed,
    ) -> Result<EventDraft, PayloadError> {
        let payload = json!({
            field::ROOT: root,
            field::SHA256: digest.sha256.to_hex(),
            field::SIZE: size_value(digest.size),
            field::MTIME: stat.mtime_text(),
            field::CTIME: stat.ctime_text(),
            field::INODE: size_value(stat.ino),
        });
        self.draft(EventKind::file_created(), subject, payload, who)
    }

    /// `FILE_MODIFIED`: a captured file's content changed. `detected_by` names the re-hash
    /// audit when that is what found it (the file's size, mtime and ctime all looked unchanged).
    #[allow(clippy::too_many_arguments)] // the version seen, the version recorded, and who
    pub fn file_modified(
        &self,
        root: &str,
        subject: Subject,
        stat: &FileStat,
        digest: &FileDigest,
        prior: &IndexEntry,
        detected_by: Option<&str>,
        who: &Attributed,
    ) -> Result<EventDraft, PayloadError> {
        let mut payload = json!({
            field::ROOT: root,
            field::SHA256: digest.sha256.to_hex(),
            field::SIZE: size_value(digest.size),
            field::MTIME: stat.mtime_text(),
            field::CTIME: stat.ctime_text(),
            field::INODE: size_value(stat.ino),
            field::PREVIOUS_SHA256: prior.sha256.to_hex(),
            field::PREVIOUS_SIZE: size_value(prior.size),
            field::PREVIOUS_MTIME: prior.mtime,
        });
        if let (Some(how), Some(map)) = (detected_by, payload.as_object_mut()) {
            map.insert(field::DETECTED_BY.into(), json!(how));
        }
        self.draft(EventKind::file_modified(), subject, payload, who)
    }

    /// `FILE_DELETED`: a captured file is gone; the payload holds its last captured version
    /// (and `who` was resolved for that version's owner: the OS does not say who deleted it).
    pub fn file_deleted(
        &self,
        root: &str,
        subject: Subject,
        prior: &IndexEntry,
        who: &Attributed,
    ) -> Result<EventDraft, PayloadError> {
        let payload = json!({
            field::ROOT: root,
            field::SHA256: prior.sha256.to_hex(),
            field::SIZE: size_value(prior.size),
            field::MTIME: prior.mtime,
        });
        self.draft(EventKind::file_deleted(), subject, payload, who)
    }

    /// `CAPTURE_FAILED`: a file could not be captured. `stat` is the version that failed, when
    /// known; it is part of what makes a failure distinct (see [`crate::index::FailureKey`]).
    pub fn capture_failed(
        &self,
        root: Option<&str>,
        subject: Subject,
        failure: &CaptureFailure,
        stat: Option<&FileStat>,
        who: &Attributed,
    ) -> Result<EventDraft, PayloadError> {
        let mut payload = Map::new();
        payload.insert(field::ROOT.into(), root.map_or(Value::Null, |r| json!(r)));
        payload.insert(field::REASON.into(), json!(failure.reason.code()));
        payload.insert(field::DETAIL.into(), json!(failure.detail));
        if let Some(stat) = stat {
            payload.insert(field::SIZE.into(), size_value(stat.size));
            payload.insert(field::MTIME.into(), json!(stat.mtime_text()));
        }
        self.draft(
            EventKind::capture_failed(),
            subject,
            Value::Object(payload),
            who,
        )
    }
}

/// A subject for any path text: truncated to the subject limit, `-` when empty.
pub(crate) fn subject_lossy(text: &str) -> Subject {
    const MAX: usize = 4096;
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut: String = text[..end].chars().filter(|c| *c != '\0').collect();
    Subject::new(cut).unwrap_or_else(|_| Subject::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_sizes_stay_exact_as_strings() {
        assert_eq!(size_value(5), json!(5));
        assert_eq!(size_value(u64::MAX), json!(u64::MAX.to_string()));
        assert_eq!(parse_size(&size_value(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_size(&size_value(42)), Some(42));
    }

    #[test]
    fn lossy_subject_never_fails() {
        assert_eq!(subject_lossy("").as_str(), "-");
        assert_eq!(subject_lossy(&"é".repeat(3000)).as_str().len(), 4096);
        assert_eq!(subject_lossy("a/b").as_str(), "a/b");
    }
}
