//! What capture has recorded, derived from the trail itself: the last known version of every
//! captured file and every failure already reported. Because it is read back from the trail at
//! start-up (and updated only from records the store acknowledged), a restart neither repeats a
//! capture nor misses one.

use std::collections::{HashMap, HashSet};

use relay_domain::ports::record_store::{RecordStore, RecordStoreError, RecordStoreExt};
use relay_domain::{Checksum, EventKind, Record, TrailId};
use serde_json::Value;
use tracing::warn;

use crate::event::{field, parse_size};
use crate::paths::{FileKey, Roots, subject_path};
use crate::stat::FileStat;

/// Records read per page while deriving the index.
const PAGE: usize = 1000;

/// The last recorded version of a captured file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub sha256: Checksum,
    pub size: u64,
    /// As written in the payload (see [`FileStat::mtime_text`]).
    pub mtime: String,
    /// The inode change time as written in the payload; `None` for records written before
    /// capture recorded it (then only size and mtime are compared, and the re-hash audit is
    /// what catches a content change that restored both).
    pub ctime: Option<String>,
    /// The inode number, when the record holds one.
    pub inode: Option<u64>,
    /// The owner's uid of the recorded version, when the record holds one: a `FILE_DELETED`
    /// is attributed by it (the OS does not say who deleted a file).
    pub owner_uid: Option<u32>,
    /// The last event about it was `FILE_DELETED`.
    pub deleted: bool,
}

impl IndexEntry {
    /// Whether `stat` looks like this recorded version: same size and mtime, and the same inode
    /// change time and inode number where the record holds them. `utime` can restore an mtime
    /// but not a ctime, and a file replaced by another (rename over it) has another inode, so a
    /// content change with its size and mtime put back still does not match.
    pub fn matches(&self, stat: &FileStat) -> bool {
        !self.deleted
            && self.size == stat.size
            && self.mtime == stat.mtime_text()
            && self.ctime.as_ref().is_none_or(|c| *c == stat.ctime_text())
            && self.inode.is_none_or(|i| i == stat.ino)
    }
}

/// What makes a `CAPTURE_FAILED` distinct: one is recorded per path, reason and file version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FailureKey {
    pub root: Option<String>,
    pub subject: String,
    pub reason: String,
    pub size: Option<u64>,
    pub mtime: Option<String>,
}

/// The capture state of one trail.
#[derive(Debug, Default)]
pub(crate) struct CaptureIndex {
    files: HashMap<FileKey, IndexEntry>,
    failures: HashSet<FailureKey>,
}

impl CaptureIndex {
    /// Reads every record of `trail` and keeps what capture needs.
    pub async fn load(
        store: &dyn RecordStore,
        trail: &TrailId,
        roots: &Roots,
    ) -> Result<Self, RecordStoreError> {
        let mut index = CaptureIndex::default();
        store
            .for_each_record(trail, PAGE, |record| {
                index.apply(roots, &record);
                true
            })
            .await?;
        Ok(index)
    }

    /// Folds one record into the index; records capture did not write are ignored.
    pub fn apply(&mut self, roots: &Roots, record: &Record) {
        let kind = record.kind.as_str();
        let relevant = [
            EventKind::file_created(),
            EventKind::file_modified(),
            EventKind::file_deleted(),
            EventKind::capture_failed(),
        ];
        if !relevant.iter().any(|k| k.as_str() == kind) {
            return;
        }
        let Some(subject) = record.subject.as_ref() else {
            return;
        };
        let payload = match record.payload.to_value() {
            Ok(v) => v,
            Err(e) => {
                warn!(trail = %record.trail_id, seq = %record.chain_seq, error = %e, "capture record has an unreadable payload");
                return;
            }
        };
        let root = payload.get(field::ROOT).and_then(Value::as_str);
        if kind == EventKind::capture_failed().as_str() {
            let key = FailureKey {
                root: root.map(str::to_owned),
                subject: subject.as_str().to_owned(),
                reason: payload
                    .get(field::REASON)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                size: payload.get(field::SIZE).and_then(parse_size),
                mtime: payload
                    .get(field::MTIME)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            self.failures.insert(key);
            return;
        }
        // A file under a root no longer configured is not this run's concern.
        let Some(root_index) = root.and_then(|r| roots.by_label(r)) else {
            return;
        };
        let Some(root_path) = roots.get(root_index).map(|r| &r.path) else {
            return;
        };
        if subject_path(root_path, subject.as_str()).is_err() {
            warn!(trail = %record.trail_id, seq = %record.chain_seq, path = %subject, "capture record names an unsafe path; ignored");
            return;
        }
        let entry = (|| {
            Some(IndexEntry {
                sha256: Checksum::from_hex(payload.get(field::SHA256)?.as_str()?).ok()?,
                size: parse_size(payload.get(field::SIZE)?)?,
                mtime: payload.get(field::MTIME)?.as_str()?.to_owned(),
                ctime: payload
                    .get(field::CTIME)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                inode: payload.get(field::INODE).and_then(parse_size),
                owner_uid: payload
                    .get(field::OWNER_UID)
                    .and_then(Value::as_u64)
                    .and_then(|u| u32::try_from(u).ok()),
                deleted: kind == EventKind::file_deleted().as_str(),
            })
        })();
        let Some(entry) = entry else {
            warn!(trail = %record.trail_id, seq = %record.chain_seq, path = %subject, "capture record lacks sha256, size or mtime; ignored");
            return;
        };
        let key = FileKey {
            root: root_index,
            rel: subject.as_str().to_owned(),
        };
        self.files.insert(key, entry);
    }

    /// The last recorded version of `key`, deleted or not.
    pub fn entry(&self, key: &FileKey) -> Option<&IndexEntry> {
        self.files.get(key)
    }

    /// The last recorded version of `key` if it is not deleted.
    pub fn live(&self, key: &FileKey) -> Option<&IndexEntry> {
        self.files.get(key).filter(|e| !e.deleted)
    }

    /// Notes that `key` was re-hashed with unchanged content, so it is not hashed again until
    /// its size, mtime, ctime or inode moves (nothing is recorded for a mere touch or `chmod`;
    /// after a restart such a file is re-hashed once more, since the trail still holds the
    /// version it recorded).
    pub fn note_unchanged(&mut self, key: &FileKey, stat: &FileStat) {
        if let Some(entry) = self.files.get_mut(key) {
            entry.size = stat.size;
            entry.mtime = stat.mtime_text();
            entry.ctime = Some(stat.ctime_text());
            entry.inode = Some(stat.ino);
            entry.owner_uid = Some(stat.uid);
        }
    }

    /// Every live file, in subject order: what a re-hash audit goes through.
    pub fn live_keys(&self) -> Vec<FileKey> {
        let mut keys: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Live files under `root`, restricted to the folder `under` (a subject) if given.
    pub fn live_keys_under(&self, root: usize, under: Option<&str>) -> Vec<FileKey> {
        self.files
            .iter()
            .filter(|(k, e)| {
                !e.deleted
                    && k.root == root
                    && under.is_none_or(|dir| {
                        k.rel.len() > dir.len()
                            && k.rel.starts_with(dir)
                            && k.rel.as_bytes()[dir.len()] == b'/'
                    })
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether this failure was already recorded.
    pub fn has_failure(&self, key: &FailureKey) -> bool {
        self.failures.contains(key)
    }

    /// How many files the index knows (live or deleted).
    pub fn len(&self) -> usize {
        self.files.len()
    }
}
