//! What [`Nftables::connect`] checks before the backend is used: that the
//! table and its pinhole sets exist and can hold pinholes, and what the
//! kernel can do, probed with an element no packet can match.

use std::io;

use tracing::{debug, warn};

use super::batch::{self, Message, Step};
use super::keys::Key;
use super::reply::{SetInfo, Verdict};
use super::{build_error, kernel_error, request, set_is_v6, socket_error, Features, Nftables};
use crate::backend::BackendError;

/// The probe element's timeout, ms.
const PROBE_TIMEOUT_MS: u64 = 60_000;
/// The expiration the probe upsert asks for, ms; a kernel that honours it
/// on an existing element reports at most this much time left.
const PROBE_EXPIRATION_MS: u64 = 1_000;
/// Time left above which the probe upsert is taken as ignored, ms.
const PROBE_IGNORED_ABOVE_MS: u64 = PROBE_TIMEOUT_MS / 2;

impl Nftables {
    /// The table exists.
    pub(super) fn check_table(&mut self) -> Result<(), BackendError> {
        let seq = self.sock.seqs(1);
        let req = request::get_table(&self.target, seq).map_err(build_error)?;
        let (_, ack) = self.sock.request(&req, seq).map_err(|e| socket_error(e, "receive"))?;
        match ack.errno {
            0 => Ok(()),
            libc::ENOENT => Err(BackendError::TableMissing { table: self.table.clone() }),
            errno => Err(kernel_error(errno, "receive")),
        }
    }

    /// The set exists and is a timeout set of pinhole keys.
    pub(super) fn check_set(&mut self, set: &'static str) -> Result<(), BackendError> {
        let seq = self.sock.seqs(1);
        let req = request::get_set(&self.target, set, seq).map_err(build_error)?;
        let (answer, ack) = self.sock.request(&req, seq).map_err(|e| socket_error(e, "receive"))?;
        match ack.errno {
            0 => {}
            libc::ENOENT => return Err(BackendError::SetMissing { table: self.table.clone(), set }),
            errno => return Err(kernel_error(errno, "receive")),
        }
        let info = answer.iter().find_map(|m| SetInfo::parse(m).ok()).ok_or_else(|| BackendError::Netlink {
            stage: "receive",
            source: io::Error::new(io::ErrorKind::InvalidData, "the kernel described no set"),
        })?;
        let v6 = set_is_v6(set);
        let shape = Key::shape(v6);
        let refused = (libc::NFT_SET_INTERVAL | libc::NFT_SET_MAP | libc::NFT_SET_CONSTANT) as u32;
        let reason = if (info.key_type, info.key_len) != (shape.ty, shape.len) {
            let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
            Some(format!(
                "its key is not `{addr} . {addr} . inet_service` (type {:#x}, {} bytes)",
                info.key_type, info.key_len
            ))
        } else if info.flags & libc::NFT_SET_TIMEOUT as u32 == 0 {
            Some("it lacks `flags timeout`".to_string())
        } else if info.flags & refused != 0 {
            Some(format!("it is an interval set, a map or constant (flags {:#x})", info.flags))
        } else {
            None
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(BackendError::SetIncompatible { table: self.table.clone(), set, reason }),
        }
    }

    /// Sends one probe message alone; committed or refused.
    fn probe_step(&mut self, m: Message, end_ack: bool) -> Result<Verdict, BackendError> {
        let seq = self.sock.seqs(3);
        let b = batch::build(&self.target, seq, &[m]).map_err(build_error)?;
        let out = self.sock.submit(&b, end_ack).map_err(|e| socket_error(e, "receive"))?;
        match out.verdict {
            Verdict::Failed(errno) => Err(kernel_error(errno, "commit")),
            v => Ok(v),
        }
    }

    /// Finds the kernel's features, leaving no probe element behind.
    pub(super) fn probe(&mut self) -> Result<Features, BackendError> {
        let Some(set) = self.sets().next() else { return Ok(Features::NONE) };
        let key = Key::probe(set_is_v6(set));

        // An empty batch: kernels >= 6.10 acknowledge its end.
        let seq = self.sock.seqs(2);
        let empty = batch::build(&self.target, seq, &[]).map_err(build_error)?;
        let out = self.sock.submit(&empty, false).map_err(|e| socket_error(e, "receive"))?;
        if let Verdict::Failed(errno) = out.verdict {
            return Err(kernel_error(errno, "commit"));
        }
        let end_ack = out.end_acked;

        // DESTROYSETELEM of the probe (absent, or left by a crash): kernels
        // without it refuse the message type.
        let destroy = match self.probe_step(Message::new(Step::Destroy, set, key, 0), end_ack)? {
            Verdict::Committed => true,
            other => {
                debug!(verdict = ?other, "no DESTROYSETELEM");
                false
            }
        };
        let removal = Message::new(if destroy { Step::Destroy } else { Step::Delete }, set, key, 0);
        if !destroy {
            // A probe left by a crash; ENOENT (none) is the usual answer.
            self.probe_step(removal, end_ack)?;
        }

        // Create the probe, then upsert it with a shorter expiration.
        let create = Message::new(Step::Create, set, key, PROBE_TIMEOUT_MS);
        if let Verdict::Rejected(r) = self.probe_step(create, end_ack)? {
            let errno = r.first().map(|r| r.errno);
            warn!(
                set,
                errno,
                "cannot add the probe element (is the set full?): assuming elements cannot be refreshed in place"
            );
            return Ok(Features { upsert_refreshes: false, destroy, end_ack });
        }
        let upsert = Message {
            expiration_ms: Some(PROBE_EXPIRATION_MS),
            ..Message::new(Step::Upsert, set, key, PROBE_TIMEOUT_MS)
        };
        let left = match self.probe_step(upsert, end_ack) {
            Ok(Verdict::Committed) => self.probe_time_left(set),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        // Remove the probe whatever happened above, then report.
        self.probe_step(removal, end_ack)?;
        let left = left?;
        let upsert_refreshes = left.is_some_and(|ms| ms <= PROBE_IGNORED_ABOVE_MS);
        debug!(set, time_left_ms = left, upsert_refreshes, "probed the refresh of an existing element");
        Ok(Features { upsert_refreshes, destroy, end_ack })
    }

    /// The time left of the probe element in `set`, ms.
    fn probe_time_left(&mut self, set: &'static str) -> Result<Option<u64>, BackendError> {
        let mut left = None;
        self.dump(set, |k, raw| {
            if k.is_probe() {
                left = raw.expiration_ms;
            }
        })?;
        Ok(left)
    }
}
