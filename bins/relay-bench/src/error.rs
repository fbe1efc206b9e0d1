//! What stops a `relay-bench` run before or instead of measuring: bad paths and arguments, a
//! missing tool, an unreachable database. Each is printed as one clear line and exits 2; the
//! benches themselves never see a path the user gave that was not checked here first.

use std::path::{Path, PathBuf};

use crate::report::{BEGIN, END};

/// Why `relay-bench` cannot run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// A path given on the command line (or by `BENCH_DOC`) cannot be used.
    #[error("{what} {}: {source}", path.display())]
    Path {
        /// What the path is for, e.g. "cannot read the rows file".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of a `--from` file is not a row written by `--json`.
    #[error("{}:{line}: not a row written by `relay-bench --json`: {source}", file.display())]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The document to write exists but has no report section.
    #[error(
        "{} has no `{BEGIN}` ... `{END}` section to replace; add the two marker lines where the \
         report goes, or point --write / BENCH_DOC at a new file (it is created)",
        doc.display()
    )]
    Markers {
        /// The document.
        doc: PathBuf,
    },
    /// An argument value the bench cannot use.
    #[error("{0}")]
    Usage(String),
    /// A tool or binary the bench runs is missing.
    #[error("{0}")]
    Missing(String),
    /// The Postgres benches cannot reach or prepare their database.
    #[error("postgres ({dsn}): {message}")]
    Postgres {
        /// The admin DSN with its password removed.
        dsn: String,
        /// What failed.
        message: String,
    },
}

impl BenchError {
    /// A [`BenchError::Path`] for `path`.
    pub(crate) fn path(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| BenchError::Path { what, path, source }
    }
}

/// Whether `name` is an executable file in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A binary of this workspace expected next to `relay-bench` (the benches run it as a child).
pub(crate) fn sibling_binary(name: &str) -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Missing(format!("cannot locate relay-bench itself: {e}")))?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::Missing(format!(
            "{} not found next to relay-bench; build it first: `cargo build --release -p {name} -p relay-bench`",
            path.display()
        )))
    }
}
