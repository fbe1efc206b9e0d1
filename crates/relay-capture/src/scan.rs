//! The rescan walk: lists what is on disk under a root (or one folder of it) without following
//! symbolic links, so the capture task can reconcile disk with the trail (R6.2). Folders are
//! opened and entries stat'ed relative to their parent's descriptor (see [`crate::beneath`]): a
//! folder swapped for a link mid-walk is reported as a link, never listed through.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::Dir;

use crate::beneath::{self, BeneathError, ChildDirError};
use crate::paths::{FileKey, Roots};
use crate::stat::{FileKind, Seen};

/// What to scan: a whole root, or one folder (a subject) under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ScanScope {
    pub root: usize,
    pub under: Option<String>,
}

/// One non-directory entry found.
#[derive(Debug)]
pub(crate) struct ScanItem {
    pub key: FileKey,
    pub path: PathBuf,
    pub seen: Seen,
}

/// A path that could not be listed or named.
#[derive(Debug)]
pub(crate) struct ScanProblem {
    pub root: usize,
    /// The subject of the folder or entry (lossy for non-UTF-8 names).
    pub rel: String,
    pub kind: ScanProblemKind,
}

/// What went wrong with a [`ScanProblem`].
#[derive(Debug)]
pub(crate) enum ScanProblemKind {
    /// A folder could not be listed: nothing below it can be judged missing.
    Unlistable(io::Error),
    /// A name is not UTF-8.
    NonUtf8,
    /// The root itself is missing or not a directory: nothing under it can be judged missing.
    RootUnavailable(String),
}

/// What one walk found.
#[derive(Debug, Default)]
pub(crate) struct ScanReport {
    pub scopes: Vec<ScanScope>,
    pub items: Vec<ScanItem>,
    pub problems: Vec<ScanProblem>,
    pub full: bool,
}

impl ScanReport {
    /// Whether nothing at or below the folder `rel` of `root` could be listed, so a file there
    /// missing from `items` is not evidence that it is gone.
    pub fn blind_to(&self, root: usize, rel: &str) -> bool {
        self.problems.iter().any(|p| {
            p.root == root
                && match &p.kind {
                    ScanProblemKind::RootUnavailable(_) => true,
                    ScanProblemKind::Unlistable(_) => {
                        p.rel.is_empty()
                            || rel
                                .strip_prefix(p.rel.as_str())
                                .is_some_and(|rest| rest.starts_with('/'))
                    }
                    ScanProblemKind::NonUtf8 => false,
                }
        })
    }
}

/// Walks every scope. Blocking: run it on a blocking thread.
pub(crate) fn walk(roots: &Roots, scopes: Vec<ScanScope>, full: bool) -> ScanReport {
    walk_with(roots, scopes, full, &mut |_| {})
}

/// [`walk`] with a hook called with a folder's subject just before the folder is opened, after
/// its parent listed it as a directory: tests swap the folder for a link there to make the race
/// deterministic.
pub(crate) fn walk_with(
    roots: &Roots,
    scopes: Vec<ScanScope>,
    full: bool,
    before_open: &mut dyn FnMut(&str),
) -> ScanReport {
    let mut report = ScanReport {
        full,
        ..ScanReport::default()
    };
    for scope in &scopes {
        walk_scope(roots, scope, &mut report, before_open);
    }
    report.scopes = scopes;
    report
}

/// A folder found by the walk and not listed yet: opened relative to its parent's descriptor,
/// so only the parents of pending folders stay open (at most the depth of the tree).
struct PendingDir {
    parent: Arc<OwnedFd>,
    name: OsString,
    rel: String,
}

fn walk_scope(
    roots: &Roots,
    scope: &ScanScope,
    report: &mut ScanReport,
    before_open: &mut dyn FnMut(&str),
) {
    let Some(root) = roots.get(scope.root) else {
        return;
    };
    let start_rel = scope.under.clone().unwrap_or_default();
    before_open(&start_rel);
    let start = match beneath::open_dir(&root.path, &start_rel) {
        Ok(fd) => fd,
        Err(e) if start_rel.is_empty() => {
            let why = match e {
                BeneathError::Io(e) if e.raw_os_error() != Some(libc::ENOTDIR) => e.to_string(),
                _ => "root is no longer a directory".to_owned(),
            };
            report.problems.push(ScanProblem {
                root: scope.root,
                rel: String::new(),
                kind: ScanProblemKind::RootUnavailable(why),
            });
            return;
        }
        // The folder must still be a real directory reached through real directories; if it
        // is not, the events about it are handled by the capture task.
        Err(_) => return,
    };
    let mut walk = ScopeWalk {
        root: scope.root,
        root_path: &root.path,
        report,
        stack: Vec::new(),
    };
    walk.list(start, start_rel);
    while let Some(PendingDir { parent, name, rel }) = walk.stack.pop() {
        before_open(&rel);
        match beneath::open_child_dir(parent.as_ref(), &name) {
            Ok(dir) => {
                drop(parent);
                walk.list(dir, rel);
            }
            // Swapped for a link or a file since it was listed: report what it is now.
            Err(ChildDirError::NotADirectory) => walk.entry(&parent, &name, rel),
            Err(ChildDirError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(ChildDirError::Io(e)) => walk.report.problems.push(ScanProblem {
                root: scope.root,
                rel,
                kind: ScanProblemKind::Unlistable(e),
            }),
        }
    }
}

/// The walk of one scope: what it found so far and the folders still to list.
struct ScopeWalk<'a> {
    root: usize,
    root_path: &'a Path,
    report: &'a mut ScanReport,
    stack: Vec<PendingDir>,
}

impl ScopeWalk<'_> {
    /// Lists the open folder `dir` (subject `rel`); every entry is stat'ed relative to `dir`.
    fn list(&mut self, dir: OwnedFd, rel: String) {
        let entries = match Dir::read_from(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(rel, ScanProblemKind::Unlistable(e.into()));
                return;
            }
        };
        let dir = Arc::new(dir);
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.problem(rel, ScanProblemKind::Unlistable(e.into()));
                    return;
                }
            };
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let name = OsStr::from_bytes(bytes);
            let child_rel = join(&rel, &name.to_string_lossy());
            if name.to_str().is_none() {
                self.problem(child_rel, ScanProblemKind::NonUtf8);
                continue;
            }
            self.entry(&dir, name, child_rel);
        }
    }

    /// Stats the entry `name` of `dir`: a folder is queued for listing, anything else is an item.
    fn entry(&mut self, dir: &Arc<OwnedFd>, name: &OsStr, rel: String) {
        let seen =
            Seen::from_result(beneath::stat_at(dir.as_ref(), name).map_err(BeneathError::Io));
        match &seen {
            Seen::Present(stat) if stat.kind == FileKind::Dir => self.stack.push(PendingDir {
                parent: dir.clone(),
                name: name.to_owned(),
                rel,
            }),
            // Removed since it was listed; the watcher reports that separately.
            Seen::Missing => {}
            _ => self.report.items.push(ScanItem {
                path: self.root_path.join(&rel),
                key: FileKey {
                    root: self.root,
                    rel,
                },
                seen,
            }),
        }
    }

    fn problem(&mut self, rel: String, kind: ScanProblemKind) {
        self.report.problems.push(ScanProblem {
            root: self.root,
            rel,
            kind,
        });
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walk_lists_files_and_links_but_does_not_enter_linked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f"), b"f").unwrap();
        fs::write(dir.path().join("top"), b"t").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/out")).unwrap();
        let roots = Roots::resolve(&[dir.path().to_path_buf()]).unwrap();
        let report = walk(
            &roots,
            vec![ScanScope {
                root: 0,
                under: None,
            }],
            true,
        );
        let mut names: Vec<_> = report.items.iter().map(|i| i.key.rel.clone()).collect();
        names.sort();
        assert_eq!(names, vec!["a/b/f", "a/out", "top"]);
        let link = report.items.iter().find(|i| i.key.rel == "a/out").unwrap();
        assert!(matches!(link.seen, Seen::Present(s) if s.kind == FileKind::Symlink));
        assert!(report.problems.is_empty());

        let sub = walk(
            &roots,
            vec![ScanScope {
                root: 0,
                under: Some("a".into()),
            }],
            false,
        );
        assert_eq!(sub.items.len(), 2);
    }

    #[test]
    fn a_folder_swapped_for_a_link_mid_walk_leaks_nothing_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        // Stands for /etc/shadow: a size and an mtime nothing inside the root has.
        let secret = outside.path().join("shadow");
        fs::write(&secret, vec![b's'; 4242]).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        fs::File::options()
            .write(true)
            .open(&secret)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let secret_stat = crate::stat::lstat(&secret).unwrap();
        fs::create_dir_all(dir.path().join("a/d")).unwrap();
        fs::write(dir.path().join("a/d/shadow"), b"inside").unwrap();
        let roots = Roots::resolve(&[dir.path().to_path_buf()]).unwrap();
        for swap_at in ["a", "a/d"] {
            let moved = dir.path().join(format!("{swap_at}.moved"));
            let mut swapped = false;
            let report = walk_with(
                &roots,
                vec![ScanScope {
                    root: 0,
                    under: None,
                }],
                true,
                // Between the parent listing the folder as a directory and the folder's open.
                &mut |rel| {
                    if rel == swap_at {
                        fs::rename(dir.path().join(swap_at), &moved).unwrap();
                        std::os::unix::fs::symlink(outside.path(), dir.path().join(swap_at))
                            .unwrap();
                        swapped = true;
                    }
                },
            );
            assert!(swapped, "the hook ran for {swap_at}");
            for item in &report.items {
                if let Seen::Present(s) = &item.seen {
                    assert!(
                        s.ino != secret_stat.ino
                            && s.size != secret_stat.size
                            && s.mtime_ns != secret_stat.mtime_ns,
                        "{swap_at}: outside metadata leaked as {}: {s:?}",
                        item.key.rel
                    );
                }
            }
            let link = report
                .items
                .iter()
                .find(|i| i.key.rel == swap_at)
                .expect("the swapped folder is reported");
            assert!(matches!(link.seen, Seen::Present(s) if s.kind == FileKind::Symlink));
            // Put the tree back for the next round.
            fs::remove_file(dir.path().join(swap_at)).unwrap();
            fs::rename(&moved, dir.path().join(swap_at)).unwrap();
        }
    }

    #[test]
    fn blind_spots_cover_folders_below_unlistable_ones() {
        let report = ScanReport {
            problems: vec![ScanProblem {
                root: 0,
                rel: "a".into(),
                kind: ScanProblemKind::Unlistable(io::Error::from(io::ErrorKind::PermissionDenied)),
            }],
            ..ScanReport::default()
        };
        assert!(report.blind_to(0, "a/x"));
        assert!(!report.blind_to(0, "ab/x"));
        assert!(!report.blind_to(1, "a/x"));
    }
}
