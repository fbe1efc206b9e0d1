//! Reading a package file line by line (or CSV row by row) while hashing every byte, so each
//! file is read once for both its rows and its digest, with a limit on the length of a line.

use std::io::{self, BufRead, Read};

use sha2::{Digest, Sha256};

use super::PackageError;
use crate::export::MAX_LINE_BYTES;
use crate::ids::Checksum;

/// Reads lines of one file, hashing every byte, with a length limit.
pub(super) struct HashedLines<R> {
    /// The file's name in the package.
    file: &'static str,
    /// The file's bytes.
    inner: R,
    /// SHA-256 of every byte read so far.
    hasher: Sha256,
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
    /// Reads `inner`, the bytes of `file`.
    pub(super) fn new(file: &'static str, inner: R) -> Self {
        Self {
            file,
            inner,
            hasher: Sha256::new(),
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
        self.hasher.update(&buf[start..]);
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
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = self.inner.read(&mut chunk).map_err(|e| self.io(e))?;
            if n == 0 {
                return Ok(extra);
            }
            self.hasher.update(&chunk[..n]);
            self.bytes += n as u64;
            extra += chunk[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }

    /// The file's SHA-256 and length, once it is read to the end.
    pub(super) fn finish(self) -> (Checksum, u64) {
        (Checksum(self.hasher.finalize().into()), self.bytes)
    }
}

/// The line without its terminating `\n`, or `None` when it has none (the file's last line,
/// truncated).
pub(super) fn strip_newline(line: &[u8]) -> Option<&[u8]> {
    line.strip_suffix(b"\n")
}
