//! `notify` plumbing: turns file-system events into signals for the capture task. Events only say
//! *where to look*; what is recorded is always decided from `lstat` and the trail, so a lost or
//! reordered event costs latency, never correctness (the rescan catches up).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{Config, Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::warn;

use crate::error::CaptureError;
use crate::paths::Roots;

/// How many signals may wait for the capture task before the watcher reports an overflow.
pub(crate) const SIGNAL_QUEUE: usize = 8192;

/// What the watcher tells the capture task.
#[derive(Debug)]
pub(crate) enum WatchSignal {
    /// Something happened at these paths.
    Activity(Vec<PathBuf>),
    /// `from` was renamed to `to`.
    Renamed { from: PathBuf, to: PathBuf },
    /// Events were lost or the watcher failed: everything must be rescanned.
    Rescan { why: String },
}

/// A running recursive watch of every root. Dropping it stops the watch.
pub(crate) struct FolderWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher").finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Watches every root recursively, never following symbolic links. Signals go to `tx`; when
    /// `tx` is full, `overflow` is raised instead and the capture task rescans.
    pub fn start(
        roots: &Roots,
        tx: mpsc::Sender<WatchSignal>,
        overflow: Arc<AtomicBool>,
    ) -> Result<Self, CaptureError> {
        let handler = move |result: notify::Result<Event>| {
            let Some(signal) = to_signal(result) else {
                return;
            };
            match tx.try_send(signal) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => overflow.store(true, Ordering::SeqCst),
                // The capture task has stopped; nothing is listening any more.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        };
        let config = Config::default().with_follow_symlinks(false);
        let mut watcher =
            RecommendedWatcher::new(handler, config).map_err(|source| CaptureError::Watch {
                root: roots
                    .iter()
                    .next()
                    .map(|r| r.path.clone())
                    .unwrap_or_default(),
                source,
            })?;
        for root in roots.iter() {
            watcher
                .watch(&root.path, RecursiveMode::Recursive)
                .map_err(|source| CaptureError::Watch {
                    root: root.path.clone(),
                    source,
                })?;
        }
        Ok(Self { _watcher: watcher })
    }
}

fn to_signal(result: notify::Result<Event>) -> Option<WatchSignal> {
    let event = match result {
        Ok(event) => event,
        Err(e) => {
            warn!(error = %e, paths = ?e.paths, "file watcher error; rescanning");
            return Some(WatchSignal::Rescan {
                why: format!("watcher error: {e}"),
            });
        }
    };
    if event.need_rescan() {
        return Some(WatchSignal::Rescan {
            why: "watcher queue overflowed".into(),
        });
    }
    match event.kind {
        // Opens and reads (including capture's own) change nothing.
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            let mut paths = event.paths.into_iter();
            match (paths.next(), paths.next()) {
                (Some(from), Some(to)) => Some(WatchSignal::Renamed { from, to }),
                _ => None,
            }
        }
        _ if event.paths.is_empty() => None,
        _ => Some(WatchSignal::Activity(event.paths)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, Flag};

    // REQ: R6.2
    #[test]
    fn reads_are_ignored_and_overflow_rescans() {
        let read = Event::new(EventKind::Access(AccessKind::Any)).add_path("/r/a".into());
        assert!(to_signal(Ok(read)).is_none());
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(matches!(
            to_signal(Ok(overflow)),
            Some(WatchSignal::Rescan { .. })
        ));
        let err = notify::Error::generic("boom");
        assert!(matches!(
            to_signal(Err(err)),
            Some(WatchSignal::Rescan { .. })
        ));
        let create = Event::new(EventKind::Create(CreateKind::File)).add_path("/r/a".into());
        assert!(matches!(to_signal(Ok(create)), Some(WatchSignal::Activity(p)) if p.len() == 1));
    }
}
