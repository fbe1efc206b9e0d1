//! Reading a package file line by line (or CSV row by row) while hashing every byte, so each
//! file is read once for both its rows and its digest, with a limit on the length of a line.
//!
//! With more than one thread ([`HashedLines::piped`]), a file is read and hashed on a thread of
//! its own, in chunks handed to the walk through a short queue (the chunks go back to be
//! refilled, so nothing is copied or allocated per chunk): the walk's thread, which runs the
//! ordered checks, then does no SHA-256 and no read system call.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest, Sha256};

use super::PackageError;
use crate::export::MAX_LINE_BYTES;
use crate::ids::Checksum;

/// Reads lines of one file, hashing every byte, with a length limit.
pub(super) struct HashedLines<R> {
    /// The file's name in the package.
    file: &'static str,
    /// The file's bytes, hashed here or on a reading thread.
    inner: Source<R>,
    /// Bytes read so far.
    bytes: u64,
    /// Lines (or CSV rows) read so far.
    pub(super) rows: u64,
    /// Set once the file is unreadable line-wise (too long a line); the rest is only hashed.
    pub(super) broken: bool,
}

/// What reading the next line found.
pub(super) enum Line {
    /// A line, in the buffer.
    Some,
    /// The end of the file.
    Eof,
    /// A line longer than [`MAX_LINE_BYTES`] (the file is then [`HashedLines::broken`]).
    TooLong,
}

impl<R: BufRead> HashedLines<R> {
    /// Reads `inner`, the bytes of `file`, hashing them on the calling thread.
    pub(super) fn new(file: &'static str, inner: R) -> Self {
        Self {
            file,
            inner: Source::Direct {
                inner,
                hasher: Sha256::new(),
            },
            bytes: 0,
            rows: 0,
            broken: false,
        }
    }

    /// The error of a failed read of this file.
    fn io(&self, source: io::Error) -> PackageError {
        PackageError::Io {
            file: self.file,
            source,
        }
    }

    /// Appends the next line (with its `\n`) to `buf`.
    fn append_line(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        let start = buf.len();
        let room = (MAX_LINE_BYTES + 1).saturating_sub(start) as u64;
        let n = (&mut self.inner)
            .take(room)
            .read_until(b'\n', buf)
            .map_err(|e| self.io(e))?;
        if let Source::Direct { hasher, .. } = &mut self.inner {
            hasher.update(&buf[start..]);
        }
        self.bytes += n as u64;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if buf.len() > MAX_LINE_BYTES {
            self.broken = true;
            return Ok(Line::TooLong);
        }
        Ok(Line::Some)
    }

    /// The next line (with its `\n`), in `buf`.
    pub(super) fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        buf.clear();
        let line = self.append_line(buf)?;
        if matches!(line, Line::Some) {
            self.rows += 1;
        }
        Ok(line)
    }

    /// The next CSV record, which may span lines inside quotes.
    pub(super) fn next_csv_row(&mut self, buf: &mut Vec<u8>) -> Result<Line, PackageError> {
        buf.clear();
        loop {
            match self.append_line(buf)? {
                Line::Some => {}
                Line::Eof if buf.is_empty() => return Ok(Line::Eof),
                Line::Eof => break,
                Line::TooLong => return Ok(Line::TooLong),
            }
            if buf.iter().filter(|b| **b == b'"').count() % 2 == 0 {
                break;
            }
        }
        self.rows += 1;
        Ok(Line::Some)
    }

    /// Hashes the rest of the file; returns how many more lines it held.
    pub(super) fn drain(&mut self) -> Result<u64, PackageError> {
        let mut extra = 0u64;
        loop {
            match self.inner.skip_chunk() {
                Ok(Some((bytes, lines))) => {
                    self.bytes += bytes;
                    extra += lines;
                }
                Ok(None) => return Ok(extra),
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    /// The file's SHA-256 and length, once it is read to the end.
    pub(super) fn finish(self) -> (Checksum, u64) {
        match self.inner {
            Source::Direct { hasher, .. } => (Checksum(hasher.finalize().into()), self.bytes),
            Source::Piped(piped) => (piped.digest.unwrap_or(Checksum([0; 32])), self.bytes),
        }
    }
}

/// Bytes per chunk read and hashed by a reading thread.
const CHUNK_BYTES: usize = 512 << 10;

/// Chunks a reading thread may have ready ahead of the walk, per file.
const CHUNKS_AHEAD: usize = 8;

/// Where a [`HashedLines`] gets its bytes.
enum Source<R> {
    /// Read and hashed on the calling thread.
    Direct {
        /// The file's bytes.
        inner: R,
        /// SHA-256 of every byte read so far.
        hasher: Sha256,
    },
    /// Read and hashed on a thread of its own ([`HashedLines::piped`]).
    Piped(Piped),
}

/// What a reading thread sends.
enum Piece {
    /// The next bytes of the file (never empty).
    Bytes(Vec<u8>),
    /// The end of the file: its SHA-256.
    End(Checksum),
    /// The read failed here; nothing follows.
    Failed(io::Error),
}

/// The walk's side of a file read and hashed on another thread.
struct Piped {
    /// The pieces, in file order.
    pieces: Receiver<Piece>,
    /// Emptied chunks, sent back to be refilled.
    spare: SyncSender<Vec<u8>>,
    /// The chunk being read, and how much of it is consumed.
    chunk: Vec<u8>,
    /// Position in `chunk`.
    pos: usize,
    /// The file's SHA-256, once its end was reached.
    digest: Option<Checksum>,
}

impl<R: BufRead + Send> HashedLines<R> {
    /// Reads `inner`, the bytes of `file`, on a thread of `scope` that also hashes them, so the
    /// calling thread only splits lines. The thread ends at the end of the file, at a read
    /// error (reported where the walk reaches it), or when this reader is dropped.
    pub(super) fn piped<'scope>(
        file: &'static str,
        inner: R,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Self
    where
        R: 'scope,
    {
        let (piece_tx, pieces) = sync_channel(CHUNKS_AHEAD);
        let (spare, spare_rx) = sync_channel(CHUNKS_AHEAD + 2);
        scope.spawn(move || read_and_hash(inner, &piece_tx, &spare_rx));
        Self {
            file,
            inner: Source::Piped(Piped {
                pieces,
                spare,
                chunk: Vec::new(),
                pos: 0,
                digest: None,
            }),
            bytes: 0,
            rows: 0,
            broken: false,
        }
    }
}

/// The reading thread of [`HashedLines::piped`]: reads `inner` in chunks, hashes each, and
/// sends it; stops at the end, at an error, or when the walk is gone.
fn read_and_hash<R: Read>(mut inner: R, pieces: &SyncSender<Piece>, spare: &Receiver<Vec<u8>>) {
    let mut hasher = Sha256::new();
    loop {
        // A chunk the walk has emptied, or a new one while none is back yet.
        let mut chunk = spare.try_recv().unwrap_or_default();
        // A recycled chunk keeps its length: only a new one is zeroed, once.
        chunk.resize(CHUNK_BYTES, 0);
        let mut filled = 0;
        while filled < CHUNK_BYTES {
            match inner.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The bytes before the failure first, then the failure.
                    chunk.truncate(filled);
                    hasher.update(&chunk);
                    if filled > 0 && pieces.send(Piece::Bytes(chunk)).is_err() {
                        return;
                    }
                    // A failed send means the walk is gone: nothing is left to tell.
                    pieces.send(Piece::Failed(e)).ok();
                    return;
                }
            }
        }
        chunk.truncate(filled);
        if filled == 0 {
            // A failed send means the walk is gone: nothing is left to tell.
            pieces
                .send(Piece::End(Checksum(hasher.finalize().into())))
                .ok();
            return;
        }
        hasher.update(&chunk);
        if pieces.send(Piece::Bytes(chunk)).is_err() {
            return;
        }
    }
}

impl Piped {
    /// The unconsumed bytes of the current chunk, receiving the next one when it is used up;
    /// empty at the end of the file.
    fn fill(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.chunk.len() && self.digest.is_none() {
            match self.pieces.recv() {
                Ok(Piece::Bytes(next)) => {
                    let used = std::mem::replace(&mut self.chunk, next);
                    self.pos = 0;
                    if used.capacity() > 0 {
                        // A full queue of spares only means this one is freed.
                        self.spare.try_send(used).ok();
                    }
                }
                Ok(Piece::End(digest)) => self.digest = Some(digest),
                Ok(Piece::Failed(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other(
                        "the thread reading this file stopped before its end",
                    ));
                }
            }
        }
        Ok(&self.chunk[self.pos.min(self.chunk.len())..])
    }
}

impl<R: BufRead> Source<R> {
    /// Consumes what is buffered (or the next chunk) without splitting it into lines: its
    /// length and its `\n` count, or `None` at the end of the file.
    fn skip_chunk(&mut self) -> io::Result<Option<(u64, u64)>> {
        let (bytes, lines) = match self {
            Source::Direct { inner, hasher } => {
                let buf = inner.fill_buf()?;
                hasher.update(buf);
                (buf.len(), newlines(buf))
            }
            Source::Piped(piped) => {
                let buf = piped.fill()?;
                (buf.len(), newlines(buf))
            }
        };
        if bytes == 0 {
            return Ok(None);
        }
        self.consume(bytes);
        Ok(Some((bytes as u64, lines)))
    }
}

/// How many `\n` bytes `buf` holds.
fn newlines(buf: &[u8]) -> u64 {
    buf.iter().filter(|b| **b == b'\n').count() as u64
}

impl<R: BufRead> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            // Hashed by the caller, per line, as it is consumed.
            Source::Direct { inner, .. } => inner.fill_buf(),
            Source::Piped(piped) => piped.fill(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Source::Direct { inner, .. } => inner.consume(amount),
            Source::Piped(piped) => piped.pos += amount,
        }
    }
}

/// The line without its terminating `\n`, or `None` when it has none (the file's last line,
/// truncated).
pub(super) fn strip_newline(line: &[u8]) -> Option<&[u8]> {
    line.strip_suffix(b"\n")
}
