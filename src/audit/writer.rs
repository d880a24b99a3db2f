//! The audit log file: append-only JSON Lines, synced by policy, reopened
//! after rotation.
//!
//! Each record is written with one `write(2)` on a file opened `O_APPEND`, so
//! a crash loses no written record, lines never interleave, and logrotate's
//! `copytruncate` is safe (the next write lands at the new end). Rotation by
//! renaming works too: send SIGHUP and the daemon reopens the path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::AuditRecord;

/// When written records are forced to stable storage (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing is lost on power failure; slowest.
    Always,
    /// At most once a second, when something was written: up to a second
    /// of records may be lost on power failure (not on a daemon crash).
    Second,
    /// Never explicitly: the kernel writes back on its own schedule.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "second" => Ok(FsyncPolicy::Second),
            "never" => Ok(FsyncPolicy::Never),
            _ => Err(format!("{s:?} is not an fsync policy (always, second, never)")),
        }
    }
}

/// Why the audit log could not be written.
#[derive(Debug, Error)]
pub enum AuditLogError {
    /// Opening (or reopening) the file failed.
    #[error("cannot open audit log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing or syncing failed.
    #[error("cannot write audit log {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

enum Sink {
    File(File),
    Stdout,
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    sink: Sink,
    policy: FsyncPolicy,
    unsynced: bool,
    last_sync: Instant,
    line: Vec<u8>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).field("policy", &self.policy).finish()
    }
}

impl AuditLog {
    /// Open `path` for appending (created with mode 0640), or standard
    /// output for `-`.
    pub fn open(path: &Path, policy: FsyncPolicy) -> Result<Self, AuditLogError> {
        let sink = if path == Path::new("-") { Sink::Stdout } else { Sink::File(open_append(path)?) };
        Ok(AuditLog {
            path: path.to_path_buf(),
            sink,
            policy,
            unsynced: false,
            last_sync: Instant::now(),
            line: Vec::with_capacity(512),
        })
    }

    /// The path written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record.
    pub fn write(&mut self, record: &AuditRecord) -> Result<(), AuditLogError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(|e| self.write_error(io::Error::other(e)))?;
        self.line.push(b'\n');
        let result = match &mut self.sink {
            Sink::File(f) => f.write_all(&self.line),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.line).and_then(|()| out.flush())
            }
        };
        result.map_err(|e| self.write_error(e))?;
        self.unsynced = true;
        match self.policy {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Second => self.sync_if_due(),
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Sync if the policy says a second has passed since the last one.
    pub fn sync_if_due(&mut self) -> Result<(), AuditLogError> {
        if self.policy == FsyncPolicy::Second && self.unsynced && self.last_sync.elapsed() >= Duration::from_secs(1) {
            self.sync()?;
        }
        Ok(())
    }

    /// Force what was written to stable storage.
    pub fn sync(&mut self) -> Result<(), AuditLogError> {
        if let Sink::File(f) = &self.sink {
            f.sync_data().map_err(|e| self.write_error(e))?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Close and open the path again (after logrotate renamed the file).
    pub fn reopen(&mut self) -> Result<(), AuditLogError> {
        if let Sink::File(f) = &self.sink {
            f.sync_data().map_err(|e| self.write_error(e))?;
            self.sink = Sink::File(open_append(&self.path)?);
        }
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> AuditLogError {
        AuditLogError::Write { path: self.path.clone(), source }
    }
}

/// Open for appending; a file whose last line was cut short (a crash, a full
/// disk) gets a newline first, so that the next record starts a line of its
/// own instead of spoiling both.
fn open_append(path: &Path) -> Result<File, AuditLogError> {
    let open_error = |source| AuditLogError::Open { path: path.to_path_buf(), source };
    let mut file =
        OpenOptions::new().append(true).read(true).create(true).mode(0o640).open(path).map_err(open_error)?;
    if ends_mid_line(&mut file).map_err(open_error)? {
        file.write_all(b"\n").map_err(open_error)?;
    }
    Ok(file)
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_mid_line(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RecordKind;
    use crate::time::Timestamp;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ftp-pinhole-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn record(n: u64) -> AuditRecord {
        let mut r = AuditRecord::new(RecordKind::SessionOpen, Timestamp::from_unix_nanos(n * 1_000_000_000), "run");
        r.session = Some(n);
        r
    }

    #[test]
    fn appends_one_line_per_record_and_survives_rotation() -> Result<(), Box<dyn std::error::Error>> {
        let d = dir("rotate");
        let path = d.join("audit.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n")?;
        let mut log = AuditLog::open(&path, FsyncPolicy::Always)?;
        log.write(&record(1))?;
        // Rotation by rename, then reopen (what SIGHUP does).
        std::fs::rename(&path, d.join("audit.jsonl.1"))?;
        log.write(&record(2))?; // still goes to the renamed file
        log.reopen()?;
        log.write(&record(3))?;
        let old = std::fs::read_to_string(d.join("audit.jsonl.1"))?;
        let new = std::fs::read_to_string(&path)?;
        assert_eq!(old.lines().count(), 3);
        assert_eq!(new.lines().count(), 1);
        let r: AuditRecord = serde_json::from_str(new.trim_end())?;
        assert_eq!(r.session, Some(3));
        // copytruncate: the file is truncated under the open descriptor.
        std::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
        log.write(&record(4))?;
        let after = std::fs::read(&path)?;
        assert!(after.starts_with(b"{\"v\":1"), "no hole of zeros before the next record");
        let _ = std::fs::remove_dir_all(&d);
        Ok(())
    }

    #[test]
    fn a_line_cut_short_by_a_crash_does_not_swallow_the_next_record() -> Result<(), Box<dyn std::error::Error>> {
        let d = dir("cut");
        let path = d.join("audit.jsonl");
        std::fs::write(&path, "{\"v\":1,\"ts\":\"2026-11-25T00:0")?;
        let mut log = AuditLog::open(&path, FsyncPolicy::Never)?;
        log.write(&record(1))?;
        let text = std::fs::read_to_string(&path)?;
        let last = text.lines().last().ok_or("no line")?;
        let r: AuditRecord = serde_json::from_str(last)?;
        assert_eq!(r.session, Some(1));
        assert_eq!(text.lines().count(), 2);
        let _ = std::fs::remove_dir_all(&d);
        Ok(())
    }

    #[test]
    fn unwritable_paths_are_clear_errors() {
        let err = AuditLog::open(Path::new("/nonexistent-dir/audit.jsonl"), FsyncPolicy::Never).expect_err("no dir");
        assert!(err.to_string().starts_with("cannot open audit log /nonexistent-dir/audit.jsonl: "), "{err}");
    }

    #[test]
    fn fsync_policies_parse() {
        assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert_eq!("second".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Second));
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
