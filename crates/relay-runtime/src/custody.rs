//! Custody evidence over time: the per-trail record counts and heads of a store, written into
//! backup manifests, restore reports and upgrade checks, and the comparison of two of them.
//!
//! A state is read through the [`RecordStore`] port only, so the edge (SQLite) and the server
//! of record (Postgres) produce the same document and an upgrade check compares like with like.

use std::path::Path;

use relay_domain::TrailId;
use relay_domain::ports::{RecordStore, RecordStoreError};
use serde::{Deserialize, Serialize};

/// The format tag of a written [`CustodyState`] file.
pub const CUSTODY_STATE_FORMAT: &str = "relay-custody-state/1";

/// One trail's count and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailState {
    /// The trail id.
    pub trail: String,
    /// Records actually stored (counted, not inferred from the head).
    pub records: u64,
    /// The head's chain_seq.
    pub head_seq: u64,
    /// The head's checksum (hex).
    pub head_checksum: String,
}

/// Every trail's count and head, ordered by trail id, with the build that read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyState {
    /// [`CUSTODY_STATE_FORMAT`].
    pub format: String,
    /// The version evidence of the binary that read the state.
    pub relay: crate::build_info::BuildInfo,
    /// One entry per trail.
    pub trails: Vec<TrailState>,
}

/// Why a state could not be read, written or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyStateError {
    /// The store could not be read.
    #[error("cannot read the record store")]
    Store(#[from] RecordStoreError),
    /// The state file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a custody state.
    #[error("{path} is not a custody state file: {message}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads every trail's head and counts its records (reading each trail once, in pages).
pub async fn custody_state(store: &dyn RecordStore) -> Result<CustodyState, RecordStoreError> {
    let mut trails = Vec::new();
    for (trail, head) in store.trails().await? {
        let records = count_records(store, &trail).await?;
        trails.push(TrailState {
            trail: trail.as_str().to_owned(),
            records,
            head_seq: head.seq.get(),
            head_checksum: head.checksum.to_string(),
        });
    }
    trails.sort_by(|a, b| a.trail.cmp(&b.trail));
    Ok(CustodyState {
        format: CUSTODY_STATE_FORMAT.into(),
        relay: crate::build_info::BuildInfo::current(),
        trails,
    })
}

async fn count_records(store: &dyn RecordStore, trail: &TrailId) -> Result<u64, RecordStoreError> {
    let mut n = 0u64;
    let mut after = 0u64;
    loop {
        let page = store.read(trail, after, 4096).await?;
        let Some(last) = page.last() else {
            return Ok(n);
        };
        after = last.chain_seq.get();
        n += page.len() as u64;
    }
}

/// One difference between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDifference {
    /// A trail of `before` is missing from `after`.
    Missing(TrailState),
    /// A trail of `after` was not in `before`.
    Added(TrailState),
    /// A trail's count or head differs.
    Changed {
        /// As recorded before.
        before: TrailState,
        /// As found after.
        after: TrailState,
    },
}

impl std::fmt::Display for StateDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(t) => write!(
                f,
                "trail {} is missing (it had {} records, head {} {})",
                t.trail, t.records, t.head_seq, t.head_checksum
            ),
            Self::Added(t) => write!(
                f,
                "trail {} was not there before (now {} records, head {})",
                t.trail, t.records, t.head_seq
            ),
            Self::Changed { before, after } => write!(
                f,
                "trail {}: {} records head {} {} before, {} records head {} {} now",
                before.trail,
                before.records,
                before.head_seq,
                before.head_checksum,
                after.records,
                after.head_seq,
                after.head_checksum
            ),
        }
    }
}

/// Every difference between `before` and `after` (empty: identical counts and heads).
pub fn compare(before: &CustodyState, after: &CustodyState) -> Vec<StateDifference> {
    let mut out = Vec::new();
    for b in &before.trails {
        match after.trails.iter().find(|a| a.trail == b.trail) {
            None => out.push(StateDifference::Missing(b.clone())),
            Some(a) if a != b => out.push(StateDifference::Changed {
                before: b.clone(),
                after: a.clone(),
            }),
            Some(_) => {}
        }
    }
    for a in &after.trails {
        if !before.trails.iter().any(|b| b.trail == a.trail) {
            out.push(StateDifference::Added(a.clone()));
        }
    }
    out
}

impl CustodyState {
    /// Writes the state as pretty JSON to `path` (refusing to overwrite an existing file).
    pub fn write_new(&self, path: &Path) -> Result<(), CustodyStateError> {
        use std::io::Write;
        let io = |source| CustodyStateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let body = serde_json::to_vec_pretty(self).map_err(|e| CustodyStateError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Reads a state written by [`write_new`](Self::write_new) (or embedded as the `state` of a
    /// backup manifest).
    pub fn read(path: &Path) -> Result<Self, CustodyStateError> {
        let text = std::fs::read_to_string(path).map_err(|source| CustodyStateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let state: Self = serde_json::from_str(&text).map_err(|e| CustodyStateError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if state.format != CUSTODY_STATE_FORMAT {
            return Err(CustodyStateError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "format {:?}, expected {CUSTODY_STATE_FORMAT:?}",
                    state.format
                ),
            });
        }
        Ok(state)
    }

    /// One line per trail, for printing.
    pub fn lines(&self) -> Vec<String> {
        self.trails
            .iter()
            .map(|t| {
                format!(
                    "{:<32} {:>10} records  head {:>10} {}",
                    t.trail, t.records, t.head_seq, t.head_checksum
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(trail: &str, n: u64, c: &str) -> TrailState {
        TrailState {
            trail: trail.into(),
            records: n,
            head_seq: n,
            head_checksum: c.into(),
        }
    }

    fn state(trails: Vec<TrailState>) -> CustodyState {
        CustodyState {
            format: CUSTODY_STATE_FORMAT.into(),
            relay: crate::build_info::BuildInfo::current(),
            trails,
        }
    }

    #[test]
    fn compare_names_every_missing_added_and_changed_trail() {
        let before = state(vec![t("a", 3, "aa"), t("b", 2, "bb"), t("c", 1, "cc")]);
        let after = state(vec![t("a", 3, "aa"), t("b", 2, "bx"), t("d", 1, "dd")]);
        let diff = compare(&before, &after);
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert!(matches!(&diff[0], StateDifference::Changed { before, .. } if before.trail == "b"));
        assert!(matches!(&diff[1], StateDifference::Missing(t) if t.trail == "c"));
        assert!(matches!(&diff[2], StateDifference::Added(t) if t.trail == "d"));
        assert!(compare(&before, &before).is_empty());
    }
}
