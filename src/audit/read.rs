//! Reading audit logs back: plain or gzip-compressed (told apart by their
//! first bytes, not their names), one record a line.
//!
//! A [`LogReader`] yields each line as an [`AuditRecord`] or as a
//! [`LineError`] naming the file, the line and why it was skipped: not JSON,
//! an unknown schema version, a field its event needs missing, or a last line
//! cut short by a daemon killed in mid-write. Blank lines are passed over.
//! Only a read error (a damaged gzip stream, an I/O error) ends a file early.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::{AuditRecord, RecordKind, SCHEMA_VERSION};

/// Longest line read; longer ones are skipped (the writer's records are a
/// few hundred bytes).
pub const MAX_LINE: usize = 1 << 20;

/// Bad lines [`LogReader::first_time`] reads past, at most, looking for a
/// record (they are held until yielded).
const LOOKAHEAD: usize = 1024;

/// The first bytes of a gzip file (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The name standard input is reported under.
pub const STDIN_NAME: &str = "<stdin>";

/// A log that could not be opened at all.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Opening, or reading its first bytes, failed.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: io::Error,
    },
    /// The path is a directory.
    #[error("cannot read {file}: it is a directory")]
    Directory {
        /// The path.
        file: String,
    },
}

/// Why a line was skipped.
#[derive(Debug, Error)]
pub enum LineReason {
    /// The last line has no newline and is not valid JSON: the write was
    /// cut short.
    #[error("truncated last line (no newline at the end: a write cut short)")]
    Truncated,
    /// The line is longer than [`MAX_LINE`].
    #[error("longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not JSON (or not UTF-8).
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// No `v` field.
    #[error("no schema version `v`")]
    NoVersion,
    /// A `v` this program does not read.
    #[error("unknown schema version {0} (this ftp-pinhole reads version {SCHEMA_VERSION})")]
    UnknownVersion(String),
    /// The object does not fit the schema (a missing or mistyped common
    /// field, an unknown event).
    #[error("not an audit record: {0}")]
    Schema(serde_json::Error),
    /// A field this event always carries is missing.
    #[error("{event} record without `{field}`")]
    MissingField {
        /// The record's event.
        event: RecordKind,
        /// The missing field.
        field: &'static str,
    },
    /// Reading failed; the rest of the file is not read.
    #[error("read error, the rest of the file is not read: {0}")]
    Read(io::Error),
}

/// A line that is not a usable record, and where it is.
#[derive(Debug, Error)]
#[error("{file}:{line}: {reason}")]
pub struct LineError {
    /// The file (as given; standard input as [`STDIN_NAME`]).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Why it was skipped.
    pub reason: LineReason,
}

impl LineError {
    /// Whether the rest of the file was lost (a read error), not just the
    /// line.
    pub fn is_fatal(&self) -> bool {
        matches!(self.reason, LineReason::Read(_))
    }
}

/// One item of a log: a record, or why a line is not one.
pub type LogItem = Result<AuditRecord, LineError>;

/// The records of one log, in file order.
pub struct LogReader {
    name: String,
    input: Box<dyn BufRead>,
    line: u64,
    buf: Vec<u8>,
    done: bool,
    /// Items read ahead by [`LogReader::first_time`].
    ahead: VecDeque<LogItem>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").field("name", &self.name).field("line", &self.line).finish()
    }
}

impl LogReader {
    /// Open a log file, or standard input for `-`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        if path == Path::new("-") {
            let name = STDIN_NAME.to_string();
            return LogReader::from_reader(name.clone(), io::stdin())
                .map_err(|source| OpenError::Io { file: name, source });
        }
        let file = path.display().to_string();
        let f = File::open(path).map_err(|source| OpenError::Io { file: file.clone(), source })?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(OpenError::Directory { file });
        }
        LogReader::from_reader(file.clone(), f).map_err(|source| OpenError::Io { file, source })
    }

    /// A log read from `input`, reported as `name`; gzip if it starts with
    /// the gzip magic bytes.
    pub fn from_reader(name: String, mut input: impl Read + 'static) -> io::Result<Self> {
        let mut head = [0u8; 2];
        let mut n = 0;
        while n < head.len() {
            match input.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let raw = io::Cursor::new(head[..n].to_vec()).chain(input);
        let input: Box<dyn BufRead> = if head[..n] == GZIP_MAGIC {
            Box::new(BufReader::new(MultiGzDecoder::new(BufReader::new(raw))))
        } else {
            Box::new(BufReader::new(raw))
        };
        Ok(LogReader { name, input, line: 0, buf: Vec::new(), done: false, ahead: VecDeque::new() })
    }

    /// The name lines are reported under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `unix` time of the first record, reading ahead to it (what was
    /// read is still yielded, in order); `None` if the log has no record, or
    /// none within its first 1024 bad lines.
    pub fn first_time(&mut self) -> Option<f64> {
        if let Some(t) = self.ahead.iter().find_map(|item| item.as_ref().ok().map(|r| r.unix)) {
            return Some(t);
        }
        while self.ahead.len() < LOOKAHEAD {
            let item = self.read_item()?;
            let t = item.as_ref().ok().map(|r| r.unix);
            self.ahead.push_back(item);
            if t.is_some() {
                return t;
            }
        }
        None
    }

    /// The next record or bad line, past blank lines.
    fn read_item(&mut self) -> Option<LogItem> {
        while !self.done {
            self.buf.clear();
            let read = (&mut self.input).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut self.buf);
            self.line += 1;
            let reason = match read {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    LineReason::Read(e)
                }
                Ok(_) if self.buf.last() == Some(&b'\n') => match parse_line(&self.buf) {
                    Ok(Some(record)) => return Some(Ok(record)),
                    Ok(None) => continue,
                    Err(reason) => reason,
                },
                Ok(_) if self.buf.len() > MAX_LINE => match self.skip_rest_of_line() {
                    Ok(()) => LineReason::TooLong,
                    Err(e) => {
                        self.done = true;
                        LineReason::Read(e)
                    }
                },
                // The end of the file without a newline.
                Ok(_) => {
                    self.done = true;
                    match parse_line(&self.buf) {
                        Ok(Some(record)) => return Some(Ok(record)),
                        Ok(None) => return None,
                        Err(LineReason::NotJson(_)) => LineReason::Truncated,
                        Err(reason) => reason,
                    }
                }
            };
            return Some(Err(LineError { file: self.name.clone(), line: self.line, reason }));
        }
        None
    }

    /// Discard input up to and including the next newline.
    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.input.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.input.consume(n);
                }
            }
        }
    }
}

impl Iterator for LogReader {
    type Item = LogItem;

    fn next(&mut self) -> Option<LogItem> {
        self.ahead.pop_front().or_else(|| self.read_item())
    }
}

/// Put logs in the order they were written: by the time of their first
/// record (logs without a record first, ties in the order given). Rotated
/// files may then be given in any order.
pub fn sort_oldest_first(logs: Vec<LogReader>) -> Vec<LogReader> {
    let mut keyed: Vec<(f64, LogReader)> =
        logs.into_iter().map(|mut log| (log.first_time().unwrap_or(f64::NEG_INFINITY), log)).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, log)| log).collect()
}

/// One line to a record; `None` for a blank line.
fn parse_line(bytes: &[u8]) -> Result<Option<AuditRecord>, LineReason> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(LineReason::NotJson)?;
    if !value.is_object() {
        return Err(LineReason::NotObject);
    }
    match value.get("v") {
        None => return Err(LineReason::NoVersion),
        Some(v) if v.as_u64() != Some(u64::from(SCHEMA_VERSION)) => {
            return Err(LineReason::UnknownVersion(v.to_string()))
        }
        Some(_) => {}
    }
    let record = AuditRecord::deserialize(value).map_err(LineReason::Schema)?;
    check_fields(&record)?;
    Ok(Some(record))
}

/// The fields each event always carries (as the daemon and `inspect`
/// write them) are there.
fn check_fields(r: &AuditRecord) -> Result<(), LineReason> {
    use RecordKind::*;
    let session = !matches!(r.event, DaemonStart | DaemonStop | BackendError);
    let pinhole = matches!(r.event, PinholeOpen | PinholeConsumed | PinholeExpired | PinholeClosed);
    let reason = matches!(r.event, Refused | PinholeClosed | BackendError);
    let missing = [
        (session && r.session.is_none(), "session"),
        (session && r.client.is_none(), "client"),
        (session && r.server.is_none(), "server"),
        (pinhole && r.pinhole.is_none(), "pinhole"),
        (reason && r.reason.is_none(), "reason"),
    ];
    match missing.iter().find(|(m, _)| *m) {
        Some((_, field)) => Err(LineReason::MissingField { event: r.event, field }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
