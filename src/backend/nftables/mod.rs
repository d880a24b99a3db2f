//! The nftables backend: pinholes as set elements, over netlink.
//!
//! [`Nftables::connect`] opens one `NETLINK_NETFILTER` socket, checks that
//! the table and each of its pinhole sets exist and can hold pinholes, and
//! probes what the kernel can do ([`Features`]). Then:
//!
//! - [`Backend::flush`] sends every queued operation as ONE batch in one
//!   `send()`, one message per step, so that an error names its operation by
//!   sequence number. The kernel rolls a batch back whole on any error: the
//!   failed operations get their [`OpError`], or a fallback step (see
//!   `plan.rs`), and the batch is sent again without them, a bounded number
//!   of times. Batches are split only if the socket's buffers cannot hold
//!   them (or an error reply to each of their messages).
//! - [`Backend::list`] dumps the pinhole sets.
//!
//! Files, one job each: `connect.rs` (the checks and probes of `connect`),
//! `keys.rs` (key bytes), `batch.rs` and `request.rs`
//! (messages, pure), `reply.rs` (parsing what the kernel sends, safe),
//! `socket.rs` (the socket), `plan.rs` (fallbacks, pure), `flush.rs` (a
//! verdict's meaning for each operation, pure), `ffi.rs` (all the unsafe
//! code: libnftnl and socket system calls).

mod batch;
mod connect;
mod ffi;
mod flush;
mod keys;
mod plan;
mod reply;
mod request;
mod socket;

use std::fmt;
use std::io;
use std::ops::BitAnd;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use self::batch::Target;
use self::flush::Work;
use self::keys::Key;
use self::plan::Plan;
use self::reply::{attr, Ack, RawElement, Verdict};
use self::socket::{DumpEnd, NfSocket, SocketError};
use super::{
    Backend, BackendError, Element, LiveElement, Op, OpError, Outcome, TableSpec, SETS, SET_ACTIVE6, SET_PASSIVE6,
};
use crate::policy::Pinhole;

/// Times a flush sends its operations again after the kernel rolled a batch
/// back; each round settles at least one operation.
const MAX_ROUNDS: usize = 8;
/// Times a dump is read again when the set changed during it.
const DUMP_TRIES: usize = 3;

/// What the running kernel can do, found by [`Nftables::connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Features {
    /// Re-adding an element with a timeout and an expiration resets its
    /// clock (kernel 6.12 and later). Without it, a refresh is a removal and
    /// a create.
    pub upsert_refreshes: bool,
    /// `DESTROYSETELEM`, a removal that succeeds when the element is absent,
    /// exists (kernel 6.3 and later). Without it, closes use `DELSETELEM` and
    /// take ENOENT as "already gone".
    pub destroy: bool,
    /// The kernel acknowledges a batch's end when, and only when, the batch
    /// committed (6.10 and later). Without it, a batch with no error reply
    /// is committed.
    pub end_ack: bool,
}

impl Features {
    /// Every feature.
    pub const ALL: Features = Features { upsert_refreshes: true, destroy: true, end_ack: true };
    /// None: the paths every kernel supports.
    pub const NONE: Features = Features { upsert_refreshes: false, destroy: false, end_ack: false };
}

impl BitAnd for Features {
    type Output = Features;

    fn bitand(self, o: Features) -> Features {
        Features {
            upsert_refreshes: self.upsert_refreshes && o.upsert_refreshes,
            destroy: self.destroy && o.destroy,
            end_ack: self.end_ack && o.end_ack,
        }
    }
}

/// What the last [`flush`](Backend::flush) took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Operations queued.
    pub ops: usize,
    /// Times the operations still pending were sent (1 when nothing failed).
    pub rounds: usize,
    /// Batches sent, over all rounds (one `send()` each).
    pub batches: usize,
    /// Element messages sent, over all batches.
    pub messages: usize,
    /// Bytes sent.
    pub bytes: usize,
    /// Wall time, from the first message built to the last reply read.
    pub duration: Duration,
}

/// Pinholes in a kernel nftables table, over one netlink socket.
///
/// The socket belongs to the network namespace it was created in: call
/// [`connect`](Nftables::connect) from a thread of the namespace to manage.
pub struct Nftables {
    table: TableSpec,
    target: Target,
    sock: NfSocket,
    features: Features,
    queued: Vec<(Op, Pinhole)>,
    last: FlushStats,
}

impl fmt::Debug for Nftables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nftables")
            .field("table", &self.table)
            .field("features", &self.features)
            .field("buffers", &self.sock.buffers)
            .field("queued", &self.queued.len())
            .finish()
    }
}

/// Whether `set` holds IPv6 pinholes.
fn set_is_v6(set: &str) -> bool {
    set == SET_PASSIVE6 || set == SET_ACTIVE6
}

/// A kernel errno at `stage` as a backend error.
fn kernel_error(errno: i32, stage: &'static str) -> BackendError {
    if errno == libc::EPERM {
        BackendError::Permission
    } else {
        BackendError::Netlink { stage, source: io::Error::from_raw_os_error(errno) }
    }
}

/// A socket failure at `stage` as a backend error.
fn socket_error(e: SocketError, stage: &'static str) -> BackendError {
    match e {
        SocketError::Send(source) => BackendError::Netlink { stage: "send", source },
        SocketError::Receive(source) => BackendError::Netlink { stage: "receive", source },
        SocketError::Timeout => BackendError::Netlink {
            stage,
            source: io::Error::new(io::ErrorKind::TimedOut, "the kernel did not answer in time"),
        },
        SocketError::Malformed(m) => {
            BackendError::Netlink { stage, source: io::Error::new(io::ErrorKind::InvalidData, m) }
        }
    }
}

/// A message that could not be built (a bug, not a kernel answer).
fn build_error(source: io::Error) -> BackendError {
    BackendError::Netlink { stage: "send", source }
}

impl Nftables {
    /// Connects to `table` in this thread's network namespace: checks that
    /// the table and its pinhole sets (those its family holds) exist and can
    /// hold pinholes, and probes the kernel's [`Features`] with an element
    /// no packet can match (unspecified addresses, port 0), removed at once.
    pub fn connect(table: TableSpec) -> Result<Nftables, BackendError> {
        // A name no kernel object can have: no such table.
        let Some(target) = Target::new(&table) else { return Err(BackendError::TableMissing { table }) };
        let sock = NfSocket::open().map_err(BackendError::Socket)?;
        if !sock.buffers.forced {
            warn!(
                send_buffer = sock.buffers.send,
                receive_buffer = sock.buffers.receive,
                "cannot force the netlink buffers past net.core.wmem_max/rmem_max (no CAP_NET_ADMIN in the initial \
                 user namespace): large flushes will be split into several batches"
            );
        }
        let mut nft =
            Nftables { table, target, sock, features: Features::NONE, queued: Vec::new(), last: FlushStats::default() };
        nft.check_table()?;
        for set in nft.sets() {
            nft.check_set(set)?;
        }
        nft.features = nft.probe()?;
        let f = nft.features;
        info!(
            table = %nft.table,
            upsert_refreshes = f.upsert_refreshes,
            destroy = f.destroy,
            end_ack = f.end_ack,
            buffers_forced = nft.sock.buffers.forced,
            send_buffer = nft.sock.buffers.send,
            receive_buffer = nft.sock.buffers.receive,
            "nftables backend connected"
        );
        if !f.upsert_refreshes {
            warn!(
                open = Plan::open(f).as_str(),
                "this kernel cannot reset an element's timeout in place (it needs 6.12): a pinhole opened again is \
                 removed and re-added"
            );
        }
        if !f.destroy {
            warn!("this kernel has no DESTROYSETELEM (it needs 6.3): closes use DELSETELEM and treat ENOENT as closed");
        }
        Ok(nft)
    }

    /// The table it manages.
    pub fn table(&self) -> &TableSpec {
        &self.table
    }

    /// What the kernel can do (after any [`limit_features`](Nftables::limit_features)).
    pub fn features(&self) -> Features {
        self.features
    }

    /// Uses only the features in `allowed`, falling back as on an older
    /// kernel for the others: to exercise and measure the fallbacks.
    pub fn limit_features(&mut self, allowed: Features) {
        self.features = self.features & allowed;
        info!(
            upsert_refreshes = self.features.upsert_refreshes,
            destroy = self.features.destroy,
            end_ack = self.features.end_ack,
            "kernel features limited"
        );
    }

    /// What the last flush took.
    pub fn last_flush(&self) -> FlushStats {
        self.last
    }

    /// The pinhole sets of the table's family.
    fn sets(&self) -> impl Iterator<Item = &'static str> + use<> {
        let family = self.table.family;
        SETS.into_iter().filter(move |s| if set_is_v6(s) { family.has_v6() } else { family.has_v4() })
    }

    /// Dumps one set, handing each element with a pinhole key (the probe's
    /// included) to `each`; elements whose key is not a pinhole's are skipped.
    fn dump(&mut self, set: &'static str, mut each: impl FnMut(Key, &RawElement)) -> Result<(), BackendError> {
        for attempt in 1..=DUMP_TRIES {
            let mut got = Vec::new();
            let seq = self.sock.seqs(1);
            let req = request::dump_elements(&self.target, set, seq).map_err(build_error)?;
            let end = self
                .sock
                .dump(&req, seq, |msg| {
                    got.extend(reply::set_elements(msg)?.1);
                    Ok(())
                })
                .map_err(|e| socket_error(e, "dump"))?;
            match end {
                DumpEnd::Done { interrupted: true } if attempt < DUMP_TRIES => {
                    debug!(set, attempt, "the set changed during the dump; reading it again");
                }
                DumpEnd::Done { .. } => {
                    for raw in &got {
                        match Key::decode(&raw.key) {
                            Ok(k) => each(k, raw),
                            Err(error) => warn!(set, %error, "skipped an element that is not a pinhole key"),
                        }
                    }
                    return Ok(());
                }
                DumpEnd::Refused(ack) => return Err(self.refused_dump(&ack, &req, set)),
            }
        }
        Ok(())
    }

    /// Why a dump of `set` was refused.
    fn refused_dump(&self, ack: &Ack, req: &[u8], set: &'static str) -> BackendError {
        match ack.errno {
            libc::ENOENT if ack.offset.and_then(|o| reply::attr_at(req, o)) == Some(attr::LIST_TABLE) => {
                BackendError::TableMissing { table: self.table.clone() }
            }
            libc::ENOENT => BackendError::SetMissing { table: self.table.clone(), set },
            errno => kernel_error(errno, "dump"),
        }
    }

    /// An operation ready to send, or why it cannot be.
    fn prepare(&self, index: usize, op: Op, pinhole: &Pinhole) -> Result<Work, OpError> {
        if !self.table.family.holds(pinhole.dst) {
            return Err(OpError::FamilyNotInTable {
                table: self.table.clone(),
                family: super::family_name(pinhole.dst),
            });
        }
        let e = Element::of(pinhole);
        let key = Key::new(e.src, e.dst, e.dport)
            .ok_or_else(|| OpError::FamilyNotInTable { table: self.table.clone(), family: "mixed IPv4/IPv6" })?;
        let ttl_ms = flush::ttl_ms(e.timeout);
        let plan = match op {
            Op::Open => Plan::open(self.features),
            Op::Close => Plan::close(self.features),
        };
        Ok(Work { index, op, set: e.set, key, ttl_ms, plan, transitions: 0 })
    }

    /// Sends `work` in as few batches as the socket takes; settles what it can
    /// and queues the rest in `retry`.
    fn send_round(
        &mut self,
        work: &[Work],
        results: &mut [Option<Result<(), OpError>>],
        retry: &mut Vec<Work>,
        stats: &mut FlushStats,
    ) -> Result<(), BackendError> {
        let max = self.sock.buffers.max_batch_messages();
        let mut rest = work;
        while !rest.is_empty() {
            let mut messages = 0;
            let take = rest
                .iter()
                .take_while(|w| {
                    messages += w.plan.steps().len();
                    messages <= max
                })
                .count()
                .max(1);
            let (now, later) = rest.split_at(take.min(rest.len()));
            self.send_batch(now, results, retry, stats)?;
            rest = later;
        }
        Ok(())
    }

    /// Sends `items` as one batch (halved while too big for one `send()`).
    fn send_batch(
        &mut self,
        items: &[Work],
        results: &mut [Option<Result<(), OpError>>],
        retry: &mut Vec<Work>,
        stats: &mut FlushStats,
    ) -> Result<(), BackendError> {
        let (messages, owner) = flush::messages(items);
        let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        let b = batch::build(&self.target, self.sock.seqs(count.saturating_add(2)), &messages).map_err(build_error)?;
        if b.bytes.len() > self.sock.buffers.max_batch_bytes() && items.len() > 1 {
            let (a, z) = items.split_at(items.len() / 2);
            self.send_batch(a, results, retry, stats)?;
            return self.send_batch(z, results, retry, stats);
        }
        stats.batches += 1;
        stats.messages += messages.len();
        stats.bytes += b.bytes.len();
        let out = match self.sock.submit(&b, self.features.end_ack) {
            Ok(out) => out,
            Err(SocketError::Receive(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.sock.drain();
                warn!(messages = messages.len(), "replies to a batch were lost (ENOBUFS): its outcome is unknown");
                return Err(BackendError::OutcomeUnknown);
            }
            Err(e) => return Err(socket_error(e, "receive")),
        };
        if out.stale > 0 {
            debug!(stale = out.stale, "skipped replies to earlier requests");
        }
        let resolution = match out.verdict {
            Verdict::Committed => flush::committed(items),
            Verdict::Rejected(refusals) => flush::rejected(items, &owner, &refusals, self.features),
            Verdict::Failed(errno) => return Err(kernel_error(errno, "commit")),
            Verdict::Unsettled => return Err(socket_error(SocketError::Timeout, "receive")),
        };
        for (index, result) in resolution.settled {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(result);
            }
        }
        retry.extend(resolution.retry);
        Ok(())
    }
}

impl Backend for Nftables {
    fn open(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Open, *pinhole));
    }

    fn close(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Close, *pinhole));
    }

    fn flush(&mut self) -> Result<Vec<Outcome>, BackendError> {
        let started = Instant::now();
        let queued = std::mem::take(&mut self.queued);
        let mut stats = FlushStats { ops: queued.len(), ..FlushStats::default() };
        let mut results: Vec<Option<Result<(), OpError>>> = queued.iter().map(|_| None).collect();
        let mut work = Vec::with_capacity(queued.len());
        for (index, (op, pinhole)) in queued.iter().enumerate() {
            match self.prepare(index, *op, pinhole) {
                Ok(w) => work.push(w),
                Err(e) => {
                    warn!(op = op.as_str(), %pinhole, error = %e, "operation refused before sending");
                    results[index] = Some(Err(e));
                }
            }
        }
        while !work.is_empty() {
            if stats.rounds == MAX_ROUNDS {
                warn!(
                    pending = work.len(),
                    rounds = stats.rounds,
                    "giving up on operations the kernel kept rolling back"
                );
                for w in work.drain(..) {
                    results[w.index] = Some(Err(OpError::RolledBack { attempts: stats.rounds }));
                }
                break;
            }
            stats.rounds += 1;
            let mut retry = Vec::new();
            let sent = self.send_round(&work, &mut results, &mut retry, &mut stats);
            if let Err(e) = sent {
                stats.duration = started.elapsed();
                self.last = stats;
                return Err(e);
            }
            work = retry;
        }
        stats.duration = started.elapsed();
        self.last = stats;
        let failed = results.iter().filter(|r| matches!(r, Some(Err(_)))).count();
        debug!(
            ops = stats.ops,
            failed,
            rounds = stats.rounds,
            batches = stats.batches,
            messages = stats.messages,
            bytes = stats.bytes,
            duration_us = u64::try_from(stats.duration.as_micros()).unwrap_or(u64::MAX),
            "flushed"
        );
        let rounds = stats.rounds;
        Ok(queued
            .into_iter()
            .zip(results)
            .map(|((op, pinhole), result)| Outcome {
                op,
                pinhole,
                result: result.unwrap_or(Err(OpError::RolledBack { attempts: rounds })),
            })
            .collect())
    }

    fn list(&mut self) -> Result<Vec<LiveElement>, BackendError> {
        let mut out = Vec::new();
        for set in self.sets() {
            self.dump(set, |key, raw| {
                if key.is_probe() {
                    return;
                }
                let (src, dst, dport) = key.parts();
                let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(0));
                out.push(LiveElement {
                    element: Element { set, src, dst, dport, timeout },
                    expires: raw.expiration_ms.map(Duration::from_millis),
                });
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Nftables>();
    }

    #[test]
    fn features_combine_by_intersection() {
        let mid = Features { destroy: true, ..Features::NONE };
        assert_eq!(Features::ALL & mid, mid);
        assert_eq!(mid & Features::NONE, Features::NONE);
    }

    #[test]
    fn kernel_errors_map_to_what_a_user_can_act_on() {
        assert!(matches!(kernel_error(libc::EPERM, "commit"), BackendError::Permission));
        let e = kernel_error(libc::ENOMEM, "commit");
        assert_eq!(e.to_string(), format!("netlink commit failed: {}", io::Error::from_raw_os_error(libc::ENOMEM)));
        let t = socket_error(SocketError::Timeout, "dump");
        assert!(
            matches!(&t, BackendError::Netlink { stage: "dump", source } if source.kind() == io::ErrorKind::TimedOut)
        );
    }
}
