//! Watched roots and the subjects of files under them: a subject is the path relative to its
//! root, `/`-separated, with no `.`, `..` or empty component (R6.4).

use std::fs;
use std::path::{Component, Path, PathBuf};

use relay_domain::Subject;
use relay_domain::ids::IdError;
use thiserror::Error;

use crate::error::CaptureError;

/// Why a path has no subject under a root.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathRejection {
    /// The path does not lie under the root.
    #[error("path lies outside the root")]
    OutsideRoot,
    /// The path is the root itself.
    #[error("path is the root itself")]
    IsRoot,
    /// The path holds `..`, or another component that is not a plain name.
    #[error("path holds a '..' or non-name component")]
    Traversal,
    /// A component is not valid UTF-8.
    #[error("path is not valid UTF-8")]
    NotUtf8,
    /// The subject text is refused (e.g. too long).
    #[error("path cannot be a subject: {0}")]
    BadSubject(#[from] IdError),
}

/// The subject of `path` under `root`: the relative path joined with `/`.
///
/// Lexical only: `path` must start with `root` component by component and continue with plain
/// names. Anything holding `..` is refused rather than normalized, so a subject never names a
/// file outside its root.
pub fn relative_subject(root: &Path, path: &Path) -> Result<Subject, PathRejection> {
    let rest = path
        .strip_prefix(root)
        .map_err(|_| PathRejection::OutsideRoot)?;
    let mut text = String::new();
    for component in rest.components() {
        let Component::Normal(name) = component else {
            return Err(PathRejection::Traversal);
        };
        let name = name.to_str().ok_or(PathRejection::NotUtf8)?;
        if !text.is_empty() {
            text.push('/');
        }
        text.push_str(name);
    }
    if text.is_empty() {
        return Err(PathRejection::IsRoot);
    }
    Ok(Subject::new(text)?)
}

/// The path a subject (as read from a trail) names under `root`, if the subject is a safe
/// relative path: plain `/`-separated names, none empty, `.` or `..`.
pub fn subject_path(root: &Path, subject: &str) -> Result<PathBuf, PathRejection> {
    if subject.is_empty() {
        return Err(PathRejection::IsRoot);
    }
    let mut path = root.to_path_buf();
    for name in subject.split('/') {
        if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
            return Err(PathRejection::Traversal);
        }
        path.push(name);
    }
    Ok(path)
}

/// One watched root, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    /// The canonical path (links resolved once, at start-up).
    pub path: PathBuf,
    /// The canonical path as text, written into payloads as `root`.
    pub label: String,
}

/// A file under a root: the unit capture tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey {
    /// Index into [`Roots`].
    pub root: usize,
    /// The subject text.
    pub rel: String,
}

/// Where a path reported by the watcher lies.
#[derive(Debug)]
pub(crate) enum Located {
    /// A root itself.
    Root(usize),
    /// A file (or folder) under a root.
    Under(FileKey),
    /// Under a root, but unusable; the rejection and the root.
    Rejected(usize, PathRejection),
    /// Under no root.
    Outside,
}

/// Every watched root.
#[derive(Debug)]
pub(crate) struct Roots(Vec<Root>);

impl Roots {
    /// Resolves the configured roots: each must exist, be a directory, be UTF-8, and no root may
    /// lie inside another.
    pub fn resolve(configured: &[PathBuf]) -> Result<Self, CaptureError> {
        if configured.is_empty() {
            return Err(CaptureError::NoRoots);
        }
        let mut roots: Vec<Root> = Vec::with_capacity(configured.len());
        for root in configured {
            let path = fs::canonicalize(root).map_err(|source| CaptureError::RootUnusable {
                root: root.clone(),
                source,
            })?;
            let meta = fs::metadata(&path).map_err(|source| CaptureError::RootUnusable {
                root: root.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(CaptureError::RootNotDirectory { root: root.clone() });
            }
            let label = path
                .to_str()
                .ok_or_else(|| CaptureError::RootNotUtf8 { root: path.clone() })?
                .to_owned();
            for other in &roots {
                if path.starts_with(&other.path) || other.path.starts_with(&path) {
                    let (outer, inner) = if path.starts_with(&other.path) {
                        (other.path.clone(), path.clone())
                    } else {
                        (path.clone(), other.path.clone())
                    };
                    return Err(CaptureError::RootsOverlap { outer, inner });
                }
            }
            roots.push(Root { path, label });
        }
        Ok(Self(roots))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Root> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, i: usize) -> Option<&Root> {
        self.0.get(i)
    }

    /// The root whose label is `label`.
    pub fn by_label(&self, label: &str) -> Option<usize> {
        self.0.iter().position(|r| r.label == label)
    }

    /// The absolute path of a tracked file, if the subject is safe.
    pub fn path_of(&self, key: &FileKey) -> Option<PathBuf> {
        let root = self.0.get(key.root)?;
        subject_path(&root.path, &key.rel).ok()
    }

    /// Which root `path` lies under, and its subject there.
    pub fn locate(&self, path: &Path) -> Located {
        for (i, root) in self.0.iter().enumerate() {
            match relative_subject(&root.path, path) {
                Ok(subject) => {
                    return Located::Under(FileKey {
                        root: i,
                        rel: subject.as_str().to_owned(),
                    });
                }
                Err(PathRejection::IsRoot) => return Located::Root(i),
                Err(PathRejection::OutsideRoot) => {}
                Err(other) => return Located::Rejected(i, other),
            }
        }
        Located::Outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_relative_and_slash_separated() {
        let s = relative_subject(Path::new("/data/nmr"), Path::new("/data/nmr/exp1/fid")).unwrap();
        assert_eq!(s.as_str(), "exp1/fid");
    }

    // REQ: R6.4
    #[test]
    fn traversal_and_siblings_are_refused() {
        let root = Path::new("/data/nmr");
        assert_eq!(
            relative_subject(root, Path::new("/data/nmr/../etc/passwd")),
            Err(PathRejection::Traversal)
        );
        assert_eq!(
            relative_subject(root, Path::new("/data/nmr2/x")),
            Err(PathRejection::OutsideRoot)
        );
        assert_eq!(
            relative_subject(root, Path::new("/data/nmr")),
            Err(PathRejection::IsRoot)
        );
        assert_eq!(
            subject_path(root, "a/../../etc"),
            Err(PathRejection::Traversal)
        );
        assert_eq!(subject_path(root, "/etc"), Err(PathRejection::Traversal));
    }

    #[test]
    fn overlapping_roots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner");
        fs::create_dir(&inner).unwrap();
        let err = Roots::resolve(&[dir.path().to_path_buf(), inner]).unwrap_err();
        assert!(matches!(err, CaptureError::RootsOverlap { .. }));
    }
}
