//! Stage 6: the audit trail — every data port opened, used, expired, closed
//! or refused, and why, as JSON Lines.
//!
//! - [`record`]: the versioned schema ([`AuditRecord`]) and how pipeline
//!   events become records;
//! - [`ledger`]: which pinholes are open, and whether a pinhole that left
//!   the kernel was consumed or expired (sans-IO: fed with what the kernel
//!   holds);
//! - [`writer`]: the append-only file, fsync policy, reopening on rotation;
//! - [`live`]: the pinholes in the kernel now, joined with their records;
//! - [`read`]: logs read back, plain or gzip, bad lines reported with their
//!   place;
//! - [`filter`]: which records a report looks at (time window, addresses,
//!   ports);
//! - [`report`]: what a report says, computed from records alone;
//! - [`text`]: that report as tables for people.

pub mod filter;
pub mod ledger;
pub mod live;
pub mod read;
pub mod record;
pub mod report;
pub mod text;
pub mod writer;

pub use ledger::{Ledger, LedgerEvent};
pub use record::{AuditRecord, RecordKind, SCHEMA_VERSION};
pub use writer::{AuditLog, AuditLogError, FsyncPolicy};
