//! The rescan walk: lists what is on disk under a root (or one folder of it) without following
//! symbolic links, so the capture task can reconcile disk with the trail (R6.2).

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::paths::{FileKey, Roots, unsafe_ancestor};
use crate::stat::{FileKind, Seen, lstat};

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
    let mut report = ScanReport {
        full,
        ..ScanReport::default()
    };
    for scope in &scopes {
        walk_scope(roots, scope, &mut report);
    }
    report.scopes = scopes;
    report
}

fn walk_scope(roots: &Roots, scope: &ScanScope, report: &mut ScanReport) {
    let Some(root) = roots.get(scope.root) else {
        return;
    };
    match lstat(&root.path) {
        Ok(stat) if stat.kind == FileKind::Dir => {}
        Ok(_) => {
            report.problems.push(ScanProblem {
                root: scope.root,
                rel: String::new(),
                kind: ScanProblemKind::RootUnavailable("root is no longer a directory".into()),
            });
            return;
        }
        Err(e) => {
            report.problems.push(ScanProblem {
                root: scope.root,
                rel: String::new(),
                kind: ScanProblemKind::RootUnavailable(e.to_string()),
            });
            return;
        }
    }
    let start_rel = scope.under.clone().unwrap_or_default();
    let start = if start_rel.is_empty() {
        root.path.clone()
    } else {
        let Some(path) = roots.path_of(&FileKey {
            root: scope.root,
            rel: start_rel.clone(),
        }) else {
            return;
        };
        // The folder must still be a real directory reached through real directories.
        match (lstat(&path), unsafe_ancestor(&root.path, &path)) {
            (Ok(stat), Ok(None)) if stat.kind == FileKind::Dir => path,
            _ => return,
        }
    };
    let mut stack = vec![(start, start_rel)];
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                report.problems.push(ScanProblem {
                    root: scope.root,
                    rel,
                    kind: ScanProblemKind::Unlistable(e),
                });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    report.problems.push(ScanProblem {
                        root: scope.root,
                        rel: rel.clone(),
                        kind: ScanProblemKind::Unlistable(e),
                    });
                    break;
                }
            };
            let name = entry.file_name();
            let child_rel = join(&rel, &name.to_string_lossy());
            if name.to_str().is_none() {
                report.problems.push(ScanProblem {
                    root: scope.root,
                    rel: child_rel,
                    kind: ScanProblemKind::NonUtf8,
                });
                continue;
            }
            let path = entry.path();
            let seen = Seen::observe(&path);
            if let Seen::Present(stat) = &seen
                && stat.kind == FileKind::Dir
            {
                stack.push((path, child_rel));
                continue;
            }
            if seen == Seen::Missing {
                // Removed since it was listed; the watcher reports that separately.
                continue;
            }
            report.items.push(ScanItem {
                key: FileKey {
                    root: scope.root,
                    rel: child_rel,
                },
                path,
                seen,
            });
        }
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
