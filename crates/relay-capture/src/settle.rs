//! The pending-file tracker: a file is complete once what `lstat` says about it (size, mtime,
//! identity) is unchanged across a whole settle window with no watcher activity in between
//! (R6.1). Pure bookkeeping: the caller passes the instants and the observations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::hash::FileDigest;
use crate::paths::FileKey;
use crate::stat::{FileKind, FileStat, Seen};

/// A pending path whose observation held still for the settle window.
#[derive(Debug)]
pub(crate) struct Settled {
    pub path: PathBuf,
    pub seen: Seen,
    /// The last regular-file version observed, even if the path is gone now.
    pub last_regular: Option<FileStat>,
    /// The path was renamed to another name (its content lives on there).
    pub renamed_away: bool,
    /// A digest already computed for `(stat, digest)` whose append failed.
    pub cached: Option<(FileStat, FileDigest)>,
}

#[derive(Debug)]
struct Pending {
    path: PathBuf,
    /// The last observation; `None` until the first one.
    seen: Option<Seen>,
    check_at: Instant,
    last_regular: Option<FileStat>,
    renamed_away: bool,
    cached: Option<(FileStat, FileDigest)>,
}

/// Files waiting for their settle window.
#[derive(Debug)]
pub(crate) struct SettleTracker {
    settle: Duration,
    files: HashMap<FileKey, Pending>,
}

impl SettleTracker {
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            files: HashMap::new(),
        }
    }

    /// The watcher saw activity on `key`: examine it now if new, else restart its window.
    /// `last_regular` is a version of the file already known (e.g. one a capture attempt saw).
    pub fn touch(
        &mut self,
        key: FileKey,
        path: PathBuf,
        last_regular: Option<FileStat>,
        now: Instant,
    ) {
        let settle = self.settle;
        self.files
            .entry(key)
            .and_modify(|p| {
                p.renamed_away = false;
                p.last_regular = last_regular.or(p.last_regular);
                if p.seen.is_some() {
                    p.check_at = p.check_at.max(now + settle);
                }
            })
            .or_insert(Pending {
                path,
                seen: None,
                check_at: now,
                last_regular,
                renamed_away: false,
                cached: None,
            });
    }

    /// A scan observed `key` as `seen`; it settles if nothing changes for a window. A path
    /// already pending keeps its own schedule.
    pub fn seed(&mut self, key: FileKey, path: PathBuf, seen: Seen, now: Instant) {
        let settle = self.settle;
        self.files.entry(key).or_insert_with(|| Pending {
            path,
            last_regular: regular(&seen),
            seen: Some(seen),
            check_at: now + settle,
            renamed_away: false,
            cached: None,
        });
    }

    /// Looks at `key` again at `at` (after a failed append or an interrupted capture). With
    /// `cached`, a file still at that version settles at once and is not hashed again.
    pub fn retry(
        &mut self,
        key: FileKey,
        path: PathBuf,
        cached: Option<(FileStat, FileDigest)>,
        at: Instant,
    ) {
        let seen = cached.map(|(stat, _)| Seen::Present(stat));
        self.files.insert(
            key,
            Pending {
                path,
                last_regular: cached.map(|(stat, _)| stat),
                seen,
                check_at: at,
                renamed_away: false,
                cached,
            },
        );
    }

    /// `key` was renamed away; if it is gone when it settles, that is not a loss.
    pub fn mark_renamed(&mut self, key: &FileKey) {
        if let Some(p) = self.files.get_mut(key) {
            p.renamed_away = true;
        }
    }

    /// Paths due for an observation at `now`, at most `limit`.
    pub fn due(&self, now: Instant, limit: usize) -> Vec<(FileKey, PathBuf)> {
        self.files
            .iter()
            .filter(|(_, p)| p.check_at <= now)
            .take(limit)
            .map(|(k, p)| (k.clone(), p.path.clone()))
            .collect()
    }

    /// The earliest instant a pending path is due for an observation (`None`: nothing pending).
    /// One pass over the pending paths, like [`due`](Self::due).
    pub fn next_check(&self) -> Option<Instant> {
        self.files.values().map(|p| p.check_at).min()
    }

    /// Records an observation of `key`; returns it settled if it matches the previous one.
    pub fn observe(&mut self, key: &FileKey, seen: Seen, now: Instant) -> Option<Settled> {
        let pending = self.files.get_mut(key)?;
        if let Some(stat) = regular(&seen) {
            pending.last_regular = Some(stat);
        }
        if pending.seen.as_ref() == Some(&seen) {
            let p = self.files.remove(key)?;
            return Some(Settled {
                path: p.path,
                seen,
                last_regular: p.last_regular,
                renamed_away: p.renamed_away,
                cached: p.cached,
            });
        }
        pending.seen = Some(seen);
        pending.check_at = now + self.settle;
        None
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &FileKey) {
        self.files.remove(key);
    }

    /// Pending entries holding a digest whose append has not succeeded yet.
    pub fn with_cached_digest(&self) -> Vec<(FileKey, PathBuf, FileStat, FileDigest)> {
        self.files
            .iter()
            .filter_map(|(k, p)| p.cached.map(|(s, d)| (k.clone(), p.path.clone(), s, d)))
            .collect()
    }

    /// How many paths are pending.
    pub fn contains(&self, key: &FileKey) -> bool {
        self.files.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}

fn regular(seen: &Seen) -> Option<FileStat> {
    match seen {
        Seen::Present(stat) if stat.kind == FileKind::File => Some(*stat),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(100);

    fn key() -> FileKey {
        FileKey {
            root: 0,
            rel: "a".into(),
        }
    }

    fn file(size: u64, mtime_ns: i128) -> Seen {
        Seen::Present(FileStat {
            kind: FileKind::File,
            dev: 1,
            ino: 2,
            size,
            mtime_ns,
            ctime_ns: mtime_ns,
            uid: 1000,
        })
    }

    // REQ: R6.1
    #[test]
    fn file_settles_only_after_a_still_window() {
        let t0 = Instant::now();
        let mut t = SettleTracker::new(SETTLE);
        t.touch(key(), "/r/a".into(), None, t0);
        assert_eq!(t.due(t0, 10).len(), 1);
        assert!(t.observe(&key(), file(1, 1), t0).is_none());
        assert!(t.due(t0 + SETTLE / 2, 10).is_empty());
        // Grew during the window: a new window starts.
        assert!(t.observe(&key(), file(2, 2), t0 + SETTLE).is_none());
        assert!(t.due(t0 + SETTLE + SETTLE / 2, 10).is_empty());
        let settled = t.observe(&key(), file(2, 2), t0 + SETTLE * 2).unwrap();
        assert_eq!(settled.seen, file(2, 2));
        assert_eq!(t.len(), 0);
    }

    // REQ: R6.1
    #[test]
    fn activity_pushes_the_window_out() {
        let t0 = Instant::now();
        let mut t = SettleTracker::new(SETTLE);
        t.seed(key(), "/r/a".into(), file(1, 1), t0);
        t.touch(key(), "/r/a".into(), None, t0 + SETTLE / 2);
        assert!(t.due(t0 + SETTLE, 10).is_empty());
        assert_eq!(t.due(t0 + SETTLE + SETTLE / 2, 10).len(), 1);
    }

    // REQ: R6.1
    #[test]
    fn the_next_check_is_the_end_of_the_earliest_window() {
        let t0 = Instant::now();
        let mut t = SettleTracker::new(SETTLE);
        assert_eq!(t.next_check(), None);
        let other = FileKey {
            root: 0,
            rel: "b".into(),
        };
        t.seed(key(), "/r/a".into(), file(1, 1), t0);
        t.seed(other.clone(), "/r/b".into(), file(1, 1), t0 + SETTLE / 2);
        // Nothing is due before the first window ends, and that is the next check.
        assert_eq!(t.next_check(), Some(t0 + SETTLE));
        assert!(t.due(t0 + SETTLE - Duration::from_millis(1), 10).is_empty());
        assert!(t.observe(&key(), file(1, 1), t0 + SETTLE).is_some());
        assert_eq!(t.next_check(), Some(t0 + SETTLE + SETTLE / 2));
        // Activity on the other file pushes its window out, and the next check with it.
        t.touch(other, "/r/b".into(), None, t0 + SETTLE);
        assert_eq!(t.next_check(), Some(t0 + SETTLE * 2));
    }

    #[test]
    fn vanished_file_remembers_its_last_version_unless_renamed() {
        let t0 = Instant::now();
        let mut t = SettleTracker::new(SETTLE);
        t.seed(key(), "/r/a".into(), file(5, 5), t0);
        assert!(t.observe(&key(), Seen::Missing, t0 + SETTLE).is_none());
        t.mark_renamed(&key());
        let s = t.observe(&key(), Seen::Missing, t0 + SETTLE * 2).unwrap();
        assert_eq!(s.seen, Seen::Missing);
        assert!(s.renamed_away);
        assert_eq!(s.last_regular.map(|s| s.size), Some(5));
    }
}
