//! Version evidence: which build is running (version, git commit, build date) and the SHA-256
//! of the running binary, for `--version`, `/healthz`, STARTUP and IQ-01.
//!
//! The commit and date are fixed at build time by `build.rs` ("unknown" for a build outside a
//! git checkout); the build date is the commit's date or `SOURCE_DATE_EPOCH`, never the wall
//! clock, so a rebuild of one commit is byte-identical.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The git commit the relay was built from, or "unknown".
pub const GIT_COMMIT: &str = env!("RELAY_GIT_COMMIT");

/// The build date (RFC 3339 UTC: the commit's date or `SOURCE_DATE_EPOCH`), or "unknown".
pub const BUILD_DATE: &str = env!("RELAY_BUILD_DATE");

/// `--version` text of the relay binaries: version, commit and build date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RELAY_GIT_COMMIT"),
    ", built ",
    env!("RELAY_BUILD_DATE"),
    ")"
);

/// Version, commit and build date of this build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The crate version.
    pub version: String,
    /// The git commit, or "unknown".
    pub git_commit: String,
    /// The build date, or "unknown".
    pub build_date: String,
}

impl BuildInfo {
    /// This build's evidence.
    pub fn current() -> Self {
        Self {
            version: crate::VERSION.into(),
            git_commit: GIT_COMMIT.into(),
            build_date: BUILD_DATE.into(),
        }
    }

    /// As JSON, for posture events and `/healthz`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "git_commit": self.git_commit,
            "build_date": self.build_date,
        })
    }
}

/// The running binary: its path and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningBinary {
    /// The executable's path (`/proc/self/exe` resolved where the OS has it).
    pub path: PathBuf,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

impl RunningBinary {
    /// Hashes the executable of this process. On Linux `/proc/self/exe` is read, which still
    /// names the running image when the file was replaced on disk after start-up.
    pub fn current() -> std::io::Result<Self> {
        let proc_exe = Path::new("/proc/self/exe");
        let (read_from, path) = if proc_exe.exists() {
            (
                proc_exe.to_path_buf(),
                std::fs::read_link(proc_exe).unwrap_or_else(|_| proc_exe.to_path_buf()),
            )
        } else {
            let exe = std::env::current_exe()?;
            (exe.clone(), exe)
        };
        Ok(Self {
            sha256: sha256_file(&read_from)?,
            path,
        })
    }

    /// As JSON for posture events; a binary that cannot be read is recorded with the reason.
    pub fn posture() -> serde_json::Value {
        match Self::current() {
            Ok(b) => {
                serde_json::json!({ "path": b.path.display().to_string(), "sha256": b.sha256 })
            }
            Err(e) => {
                tracing::warn!(error = %e, "the running binary could not be hashed");
                serde_json::json!({ "sha256": null, "error": e.to_string() })
            }
        }
    }
}

/// SHA-256 of a file's bytes, streamed, lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// IQ-01's software identity lines: commit, build date, the running binary's SHA-256 and, when
/// `release_sums` is given, whether that hash is one of the release's (`report(false, ..)` is a
/// failure: a binary that cannot be hashed, an unreadable file, a hash not in the release).
pub fn identify_binary(release_sums: Option<&Path>, mut report: impl FnMut(bool, String)) {
    report(true, format!("git commit: {GIT_COMMIT}"));
    report(true, format!("build date: {BUILD_DATE}"));
    let binary = match RunningBinary::current() {
        Ok(b) => {
            report(
                true,
                format!("binary: {} sha256 {}", b.path.display(), b.sha256),
            );
            b
        }
        Err(e) => {
            report(false, format!("the running binary cannot be hashed: {e}"));
            return;
        }
    };
    let Some(path) = release_sums else {
        report(
            true,
            "no release checksum file given (--release-sums SHA256SUMS): the binary hash is \
             recorded but not compared"
                .into(),
        );
        return;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report(
                false,
                format!("release checksum file {}: {e}", path.display()),
            );
            return;
        }
    };
    let sums = parse_sha256sums(&text);
    match sums.iter().find(|(_, hash)| *hash == binary.sha256) {
        Some((name, _)) => report(
            true,
            format!(
                "sha256 matches the release entry {name} of {}",
                path.display()
            ),
        ),
        None => report(
            false,
            format!(
                "sha256 {} is NOT in the release checksum file {} ({} entries): this is not a \
                 released binary",
                binary.sha256,
                path.display(),
                sums.len()
            ),
        ),
    }
}

/// The checksums of a release's `SHA256SUMS` file (`<hex>  <name>` or `<hex> *<name>` lines),
/// keyed by file name (the last path component).
pub fn parse_sha256sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (hash, name) = line.split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            let file = Path::new(name).file_name()?.to_str()?.to_owned();
            (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (file, hash.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_version_commit_and_date() {
        let b = BuildInfo::current();
        assert_eq!(b.version, crate::VERSION);
        assert!(!b.git_commit.is_empty() && !b.build_date.is_empty());
        assert!(LONG_VERSION.starts_with(crate::VERSION));
        assert!(LONG_VERSION.contains(GIT_COMMIT));
    }

    #[test]
    fn running_binary_hash_matches_the_file() {
        let b = RunningBinary::current().unwrap();
        assert_eq!(b.sha256, sha256_file(&b.path).unwrap());
        assert_eq!(b.sha256.len(), 64);
    }

    #[test]
    fn sha256sums_lines_are_parsed_by_file_name() {
        let h = "ab".repeat(32);
        let text = format!("{h}  relay-edge-x86_64-linux\n{h} *dist/relay-server\nbogus line\n");
        let sums = parse_sha256sums(&text);
        assert_eq!(
            sums,
            vec![
                ("relay-edge-x86_64-linux".to_owned(), h.clone()),
                ("relay-server".to_owned(), h)
            ]
        );
    }
}
