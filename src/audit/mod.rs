//! Stage 6: the audit trail — every data port opened, used, expired, closed
//! or refused, and why, as JSON Lines.
//!
//! - [`record`]: the versioned schema ([`AuditRecord`]) and how pipeline
//!   events become records;
//! - [`ledger`]: which pinholes are open, and whether a pinhole that left
//!   the kernel was consumed or expired (sans-IO: fed with what the kernel
//!   holds);
//! - [`writer`]: the append-only file, fsync policy, reopening on rotation.

pub mod ledger;
pub mod record;
pub mod writer;

pub use ledger::{Ledger, LedgerEvent};
pub use record::{AuditRecord, RecordKind, SCHEMA_VERSION};
pub use writer::{AuditLog, AuditLogError, FsyncPolicy};
