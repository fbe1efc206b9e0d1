//! `FsNotary`: anchors as JSON lines in append-only files under `<data-dir>/anchors/`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};

use crate::error::LocalError;

/// A notary writing one JSON line per anchor to `<dir>/<trail_id>.jsonl`.
///
/// Each anchor is written with one `write` on a file opened with `O_APPEND`, then fsynced, so
/// an acknowledged anchor is durable and earlier lines are never touched. Reading reports any
/// malformed line as [`NotaryError::InvalidAnchor`] with its line number, never skips it.
///
/// **Not WORM**: anyone with write access to the directory can rewrite or delete anchors, so
/// [`worm_posture`](Notary::worm_posture) is `Unenforced` and the relay warns at start-up. It
/// still detects a rewrite of the trail by someone who holds the key but not this directory.
#[derive(Debug, Clone)]
pub struct FsNotary {
    dir: PathBuf,
    // Serializes in-process writers so lines from two anchors can never interleave.
    write_lock: Arc<Mutex<()>>,
}

impl FsNotary {
    /// A notary keeping its files in `dir` (created if needed).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, NotaryError> {
        let dir = dir.into();
        crate::private_fs::create_dir_all_private(&dir)
            .map_err(LocalError::io("create anchor directory", &dir))?;
        Ok(Self {
            dir,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// The directory holding the anchor files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The anchor file of `trail`.
    pub fn anchor_file(&self, trail: &TrailId) -> PathBuf {
        // Trail ids are ASCII letters, digits, '_', '-', '.'; with the suffix the name can never
        // be `.` or `..`, so it always names a file inside the directory.
        self.dir.join(format!("{trail}.jsonl"))
    }
}

fn append_line(dir: &Path, path: &Path, line: &[u8]) -> Result<(), LocalError> {
    let existed = path.exists();
    let mut file = crate::private_fs::private_file_options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(LocalError::io("open anchor file", path))?;
    file.write_all(line)
        .and_then(|()| file.sync_all())
        .map_err(LocalError::io("append anchor", path))?;
    if !existed {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(LocalError::io("fsync directory", dir))?;
    }
    Ok(())
}

/// One line of `trail`'s anchor file, which must be an anchor of that trail; `at` names the
/// line in errors.
fn parse_line(line: &[u8], trail: &TrailId, at: &str) -> Result<Anchor, NotaryError> {
    let anchor: Anchor = serde_json::from_slice(line)
        .map_err(|e| NotaryError::InvalidAnchor(format!("{at}: {e}")))?;
    if anchor.trail_id != *trail {
        return Err(NotaryError::InvalidAnchor(format!(
            "{at}: anchor of trail {} in the file of trail {trail}",
            anchor.trail_id
        )));
    }
    Ok(anchor)
}

fn read_anchors(path: &Path, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(NotaryError::InvalidAnchor(format!(
                "{} is not UTF-8 text",
                path.display()
            )));
        }
        Err(e) => return Err(LocalError::io("read anchors", path)(e).into()),
    };
    let body = text.strip_suffix('\n').unwrap_or(&text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut anchors = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        let at = format!("{} line {}", path.display(), i + 1);
        anchors.push(parse_line(line.as_bytes(), trail, &at)?);
    }
    if !text.ends_with('\n') {
        return Err(NotaryError::InvalidAnchor(format!(
            "{} line {}: the last anchor is not terminated (interrupted write?)",
            path.display(),
            anchors.len()
        )));
    }
    anchors.sort_by_key(|a| (a.seq, a.anchored_at));
    Ok(anchors)
}

/// How much of an anchor file's end [`Notary::newest_anchor`] reads (an anchor line is a few KiB).
pub const TAIL_BYTES: u64 = 256 * 1024;

fn read_newest(path: &Path, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalError::io("open anchors", path)(e).into()),
    };
    let len = file
        .metadata()
        .map_err(LocalError::io("read anchors", path))?
        .len();
    if len <= TAIL_BYTES {
        return Ok(read_anchors(path, trail)?.pop());
    }
    let mut tail = Vec::with_capacity(TAIL_BYTES as usize);
    file.seek(SeekFrom::Start(len - TAIL_BYTES))
        .and_then(|_| file.take(TAIL_BYTES).read_to_end(&mut tail))
        .map_err(LocalError::io("read anchors", path))?;
    if tail.last() != Some(&b'\n') {
        return Err(NotaryError::InvalidAnchor(format!(
            "{}: the last anchor is not terminated (interrupted write?)",
            path.display()
        )));
    }
    // The first line of the window may be cut: skip up to the first newline.
    let Some(start) = tail.iter().position(|b| *b == b'\n') else {
        return Ok(read_anchors(path, trail)?.pop());
    };
    let mut newest: Option<Anchor> = None;
    let at = format!("{} (last lines)", path.display());
    for line in tail[start + 1..]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let anchor = parse_line(line, trail, &at)?;
        if newest
            .as_ref()
            .is_none_or(|n| (anchor.seq, anchor.anchored_at) > (n.seq, n.anchored_at))
        {
            newest = Some(anchor);
        }
    }
    match newest {
        Some(a) => Ok(Some(a)),
        None => Ok(read_anchors(path, trail)?.pop()),
    }
}

#[async_trait]
impl Notary for FsNotary {
    fn kind(&self) -> &'static str {
        "filesystem"
    }

    fn worm_posture(&self) -> WormPosture {
        WormPosture::Unenforced
    }

    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        let mut line = serde_json::to_vec(anchor).map_err(|e| NotaryError::Other {
            message: "could not encode anchor".into(),
            source: Some(Box::new(e)),
        })?;
        line.push(b'\n');
        let path = self.anchor_file(&anchor.trail_id);
        let dir = self.dir.clone();
        let lock = Arc::clone(&self.write_lock);
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            append_line(&dir, &target, &line)
        })
        .await
        .map_err(LocalError::Task)??;
        tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), path = %path.display(), "anchored trail head");
        Ok(AnchorReceipt {
            location: path.display().to_string(),
            retain_until: None,
        })
    }

    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        let path = self.anchor_file(trail);
        let trail = trail.clone();
        tokio::task::spawn_blocking(move || read_anchors(&path, &trail))
            .await
            .map_err(LocalError::Task)?
    }

    /// Reads only the file's last [`TAIL_BYTES`]: anchors are appended as they are made, so
    /// the newest is among the last lines (the whole file is read when it is smaller, or when
    /// the tail holds no complete line). Every complete line read must be an anchor of the
    /// trail, as for [`anchors`](Notary::anchors).
    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        let path = self.anchor_file(trail);
        let trail = trail.clone();
        tokio::task::spawn_blocking(move || read_newest(&path, &trail))
            .await
            .map_err(LocalError::Task)?
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        let dir = self.dir().to_path_buf();
        tokio::task::spawn_blocking(move || list_anchored_trails(&dir))
            .await
            .map_err(LocalError::Task)?
    }
}

/// Trails with an anchor file in `dir`; a file name that is not a valid trail id is reported.
fn list_anchored_trails(dir: &Path) -> Result<Vec<TrailId>, NotaryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LocalError::io("list anchor files", dir)(e).into()),
    };
    let mut trails = Vec::new();
    for entry in entries {
        let entry = entry.map_err(LocalError::io("list anchor files", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        let trail = TrailId::new(stem).map_err(|e| {
            NotaryError::InvalidAnchor(format!(
                "anchor file {} does not name a trail: {e}",
                entry.path().display()
            ))
        })?;
        trails.push(trail);
    }
    trails.sort();
    Ok(trails)
}
