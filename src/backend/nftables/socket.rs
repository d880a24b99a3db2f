//! The netlink socket: one datagram out per request or batch, replies read
//! back and matched by sequence number.
//!
//! The kernel handles a batch inside `send()`: when it returns, every reply
//! is queued. So a batch's replies are read without waiting until the queue
//! is empty, and only an unsettled batch waits (bounded) for more.
//! Sequence numbers never repeat within [`SEQ_WRAP`] requests, so a reply
//! left over from an earlier request is recognised and skipped.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::ffi;
use super::reply::{messages, Ack, BatchReplies, Header, Malformed, Verdict};

/// Buffer size asked for with `SO_SNDBUFFORCE`/`SO_RCVBUFFORCE`; the kernel
/// doubles it. Enough for a batch of tens of thousands of elements, and for
/// an error reply to each of them.
const FORCED_BUFFER: i32 = 16 << 20;
/// What a queued error reply costs in the receive buffer at most (its skb's
/// truesize), to size batches so that even all-failing ones lose no reply.
pub(crate) const REPLY_COST: usize = 1024;
/// Netlink's own overhead of a send (`sk_sndbuf - 32` is the largest message).
const SEND_OVERHEAD: usize = 32;
/// Receive buffer: dump datagrams are at most 32 KiB.
const RX_LEN: usize = 64 * 1024;
/// How long the kernel may stay silent while an answer is incomplete.
pub(crate) const REPLY_WAIT: Duration = Duration::from_secs(2);
/// How long reading the whole answer to one batch, request or dump may take.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Sequence numbers restart at 1 before they would wrap.
const SEQ_WRAP: u32 = 0x7fff_ffff;

/// The socket's buffers, as the kernel set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffers {
    /// Whether `SO_*BUFFORCE` worked (it needs CAP_NET_ADMIN in the initial
    /// user namespace); otherwise the sysctl caps `wmem_max`/`rmem_max` apply.
    pub(crate) forced: bool,
    /// Send buffer, bytes.
    pub(crate) send: usize,
    /// Receive buffer, bytes.
    pub(crate) receive: usize,
}

impl Buffers {
    /// The largest batch one `send()` takes.
    pub(crate) fn max_batch_bytes(&self) -> usize {
        self.send.saturating_sub(SEND_OVERHEAD)
    }

    /// The most messages a batch may hold so that an error reply to every
    /// one of them still fits in the receive buffer.
    pub(crate) fn max_batch_messages(&self) -> usize {
        (self.receive / REPLY_COST).saturating_sub(2).max(1)
    }
}

/// How a dump ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DumpEnd {
    /// `NLMSG_DONE`; `interrupted` if the set changed during the dump
    /// (`NLM_F_DUMP_INTR`) and it should be read again.
    Done {
        /// The dump may be inconsistent.
        interrupted: bool,
    },
    /// The kernel refused it.
    Refused(Ack),
}

/// What the kernel said about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchOutcome {
    /// How it ended.
    pub(crate) verdict: Verdict,
    /// Whether its end was acknowledged (kernels >= 6.10, on commit).
    pub(crate) end_acked: bool,
    /// Replies skipped because they answered earlier requests.
    pub(crate) stale: usize,
}

/// Why talking to the kernel failed.
#[derive(Debug)]
pub(crate) enum SocketError {
    /// `send()` failed.
    Send(io::Error),
    /// Receiving failed (ENOBUFS: replies were lost).
    Receive(io::Error),
    /// No answer before the deadline.
    Timeout,
    /// An answer did not parse.
    Malformed(Malformed),
}

/// A `NETLINK_NETFILTER` socket.
#[derive(Debug)]
pub(crate) struct NfSocket {
    fd: OwnedFd,
    rx: Vec<u8>,
    next_seq: u32,
    /// Replies may still be queued from an abandoned request: drain first.
    dirty: bool,
    /// The buffers it got.
    pub(crate) buffers: Buffers,
}

impl NfSocket {
    /// Opens the socket, asks for extended ACKs (the offending attribute's
    /// offset) and capped ACKs (errors carry the request header only), and
    /// raises its buffers as far as the process may.
    pub(crate) fn open() -> io::Result<NfSocket> {
        let fd = ffi::netfilter_socket()?;
        ffi::set_int_option(fd.as_fd(), libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1)?;
        ffi::set_int_option(fd.as_fd(), libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1)?;
        let buffers = raise_buffers(&fd)?;
        Ok(NfSocket { fd, rx: vec![0; RX_LEN], next_seq: 1, dirty: false, buffers })
    }

    /// Reserves `count` consecutive sequence numbers; the first.
    pub(crate) fn seqs(&mut self, count: u32) -> u32 {
        if self.next_seq.saturating_add(count) >= SEQ_WRAP {
            self.next_seq = 1;
        }
        let first = self.next_seq;
        self.next_seq = first.saturating_add(count);
        first
    }

    /// Sends one datagram, after discarding replies left from an abandoned request.
    fn send(&mut self, bytes: &[u8]) -> Result<(), SocketError> {
        if self.dirty {
            self.drain();
        }
        match ffi::send(self.fd.as_fd(), bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(SocketError::Send(io::Error::other(format!("sent {n} of {} bytes", bytes.len())))),
            Err(e) => Err(SocketError::Send(e)),
        }
    }

    /// Receives one datagram into the buffer, waiting until `deadline` if
    /// one is given; its length, `None` if nothing came.
    fn receive(&mut self, deadline: Option<Instant>) -> Result<Option<usize>, SocketError> {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            if !ffi::wait_readable(self.fd.as_fd(), ms).map_err(SocketError::Receive)? {
                return Ok(None);
            }
        }
        match ffi::recv(self.fd.as_fd(), &mut self.rx) {
            Ok(n) if n > self.rx.len() => {
                self.dirty = true;
                Err(SocketError::Malformed(Malformed("a reply was longer than the receive buffer")))
            }
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => {
                self.dirty = true;
                Err(SocketError::Receive(e))
            }
        }
    }

    /// Discards every queued datagram (and a pending ENOBUFS).
    pub(crate) fn drain(&mut self) {
        // Bounded: the queue is finite, and the limit guards against a peer
        // that keeps sending.
        for _ in 0..1_000_000 {
            match ffi::recv(self.fd.as_fd(), &mut self.rx) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => break,
            }
        }
        self.dirty = false;
    }

    /// Sends a batch and reads the kernel's verdict on it. `end_ack`: the
    /// kernel acknowledges a committed batch's end (>= 6.10).
    pub(crate) fn submit(&mut self, batch: &Batch, end_ack: bool) -> Result<BatchOutcome, SocketError> {
        self.send(&batch.bytes)?;
        let limit = Instant::now() + ANSWER_LIMIT;
        let mut replies = BatchReplies::new(batch.seqs);
        let mut deadline = None;
        loop {
            if Instant::now() > limit {
                self.dirty = true;
                return Err(SocketError::Timeout);
            }
            let Some(n) = self.receive(deadline)? else {
                if replies.settled(end_ack) {
                    break;
                }
                match deadline {
                    // Everything queued was read and the batch is not settled:
                    // wait a little for anything late before giving up.
                    None => deadline = Some(Instant::now() + REPLY_WAIT),
                    Some(_) => {
                        self.dirty = true;
                        return Err(SocketError::Timeout);
                    }
                }
                continue;
            };
            for msg in messages(&self.rx[..n]) {
                replies.feed(msg.map_err(SocketError::Malformed)?);
            }
            if replies.settled(end_ack) {
                // Other replies may be queued (errors of other messages):
                // keep reading without waiting.
                deadline = None;
            }
        }
        Ok(BatchOutcome { verdict: replies.verdict(end_ack), end_acked: replies.end_acked(), stale: replies.stale })
    }

    /// Sends an acknowledged request; the messages answering it and its ACK.
    pub(crate) fn request(&mut self, bytes: &[u8], seq: u32) -> Result<(Vec<Vec<u8>>, Ack), SocketError> {
        self.send(bytes)?;
        let deadline = Instant::now() + REPLY_WAIT;
        let mut answer = Vec::new();
        loop {
            let Some(n) = self.receive(Some(deadline))? else {
                self.dirty = true;
                return Err(SocketError::Timeout);
            };
            for msg in messages(&self.rx[..n]) {
                let msg = msg.map_err(SocketError::Malformed)?;
                if Header::parse(msg).is_none_or(|h| h.seq != seq) {
                    continue;
                }
                match Ack::parse(msg) {
                    Some(ack) => return Ok((answer, ack)),
                    None => answer.push(msg.to_vec()),
                }
            }
        }
    }

    /// Sends a dump request and hands each data message answering it to `each`.
    pub(crate) fn dump(
        &mut self,
        bytes: &[u8],
        seq: u32,
        mut each: impl FnMut(&[u8]) -> Result<(), Malformed>,
    ) -> Result<DumpEnd, SocketError> {
        self.send(bytes)?;
        let limit = Instant::now() + ANSWER_LIMIT;
        let mut interrupted = false;
        loop {
            let deadline = (Instant::now() + REPLY_WAIT).min(limit);
            let Some(n) = self.receive(Some(deadline))? else {
                self.dirty = true;
                return Err(SocketError::Timeout);
            };
            for msg in messages(&self.rx[..n]) {
                let msg = msg.map_err(SocketError::Malformed)?;
                let Some(h) = Header::parse(msg).filter(|h| h.seq == seq) else { continue };
                interrupted |= h.flags & libc::NLM_F_DUMP_INTR as u16 != 0;
                if h.ty == libc::NLMSG_DONE as u16 {
                    return Ok(DumpEnd::Done { interrupted });
                }
                if let Some(ack) = Ack::parse(msg) {
                    if ack.errno != 0 {
                        return Ok(DumpEnd::Refused(ack));
                    }
                    continue;
                }
                if let Err(e) = each(msg) {
                    self.dirty = true;
                    return Err(SocketError::Malformed(e));
                }
            }
        }
    }
}

/// Raises both buffers: forced past the sysctl caps if permitted, else as
/// far as the caps allow. What the kernel then reports.
fn raise_buffers(fd: &OwnedFd) -> io::Result<Buffers> {
    let fd = fd.as_fd();
    let forced = ffi::set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, FORCED_BUFFER)
        .and_then(|()| ffi::set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, FORCED_BUFFER))
        .is_ok();
    if !forced {
        ffi::set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, FORCED_BUFFER)?;
        ffi::set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, FORCED_BUFFER)?;
    }
    let size = |name| ffi::int_option(fd, libc::SOL_SOCKET, name).map(|v| usize::try_from(v).unwrap_or(0));
    Ok(Buffers { forced, send: size(libc::SO_SNDBUF)?, receive: size(libc::SO_RCVBUF)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sized_to_the_buffers() {
        let b = Buffers { forced: true, send: 32 << 20, receive: 32 << 20 };
        assert_eq!(b.max_batch_bytes(), (32 << 20) - 32);
        assert!(b.max_batch_messages() >= 30_000);
        let capped = Buffers { forced: false, send: 425_984, receive: 425_984 };
        assert_eq!(capped.max_batch_messages(), 414);
        let tiny = Buffers { forced: false, send: 0, receive: 0 };
        assert_eq!((tiny.max_batch_bytes(), tiny.max_batch_messages()), (0, 1));
    }
}
