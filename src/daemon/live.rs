//! The live loop: capture sockets in, [`Daemon`] decisions out, until a
//! signal says stop.
//!
//! One thread, one `poll(2)` over every capture socket and a self-pipe woken
//! by SIGINT/SIGTERM/SIGHUP. Frames carry the kernel's receive timestamps;
//! the loop itself reads the wall clock only to run timers. Once a second it
//! checks each interface (recovering from down/up and delete/re-create) and
//! the sockets' drop counters (capture loss is logged: a lost segment can
//! hide a negotiation).

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::{error, info, warn};

use super::{Daemon, DaemonError};
use crate::backend::Backend;
use crate::capture::bpf::{Directions, PortFilter};
use crate::capture::{Capture, CaptureError, Health, PacketDirection};
use crate::decode::LinkType;
use crate::time::Timestamp;

/// Frames read from one socket before the others get their turn.
const BATCH: usize = 512;
/// How often interfaces and drop counters are checked.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Why the live loop ended badly.
#[derive(Debug, Error)]
pub enum LiveError {
    /// A capture could not be opened at start.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The daemon must stop (audit trail unwritable).
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Signal handlers or poll(2) failed.
    #[error("{what}: {source}")]
    System {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM.
    Signal,
}

/// SIGINT/SIGTERM/SIGHUP, as flags plus a pipe that wakes `poll`.
#[derive(Debug)]
pub struct Signals {
    stop: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
    wake: UnixStream,
}

impl Signals {
    /// Install the handlers.
    pub fn install() -> Result<Signals, LiveError> {
        let system = |source| LiveError::System { what: "installing signal handlers", source };
        let stop = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        let (wake, notify) = UnixStream::pair().map_err(system)?;
        wake.set_nonblocking(true).map_err(system)?;
        notify.set_nonblocking(true).map_err(system)?;
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(system)?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup)).map_err(system)?;
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            let writer = notify.try_clone().map_err(system)?;
            signal_hook::low_level::pipe::register(signal, writer).map_err(system)?;
        }
        Ok(Signals { stop, hangup, wake })
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
    }
}

pub use crate::time::wall_clock;

/// One watched interface.
struct Slot {
    name: String,
    capture: Option<Capture>,
    /// A problem was logged and not yet resolved (log once, not per poll).
    trouble: bool,
    frames: u64,
    drops: u64,
    /// Frames of a direction not believed, ignored.
    untrusted: u64,
}

/// Open a capture on every interface; any failure is an error at start.
pub fn open_captures(interfaces: &[String], filter: &PortFilter) -> Result<Vec<Capture>, CaptureError> {
    interfaces.iter().map(|name| Capture::open_filtered(name, filter)).collect()
}

/// Whether a frame of this direction is believed. The kernel filter already
/// keeps only the wanted ones; this is the second lock on the door.
fn trusted(direction: PacketDirection, directions: Directions) -> bool {
    match (direction, directions) {
        // Broadcast, multicast, other hosts' frames: never a control segment
        // this host forwards or serves.
        (PacketDirection::Other, _) => false,
        (PacketDirection::Outgoing, _) => true,
        (PacketDirection::Incoming, Directions::All) => true,
        (PacketDirection::Incoming, Directions::Outgoing) => false,
    }
}

/// Run until SIGINT/SIGTERM, then shut the daemon down cleanly.
pub fn run<B: Backend>(
    daemon: &mut Daemon<B>,
    captures: Vec<Capture>,
    filter: &PortFilter,
    directions: Directions,
    signals: &mut Signals,
) -> Result<Stopped, LiveError> {
    let mut slots: Vec<Slot> = captures
        .into_iter()
        .map(|c| Slot {
            name: c.interface().to_string(),
            capture: Some(c),
            trouble: false,
            frames: 0,
            drops: 0,
            untrusted: 0,
        })
        .collect();
    let mut buf = vec![0u8; crate::capture::BUFFER_LEN];
    let mut next_housekeeping = wall_clock().saturating_add(HOUSEKEEPING);
    let mut table_full_seen = 0u64;
    info!(interfaces = ?slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), "watching");
    loop {
        if signals.stop.load(Ordering::SeqCst) {
            let now = wall_clock();
            info!("stopping: closing the pinholes still open");
            daemon.shutdown(now, "signal")?;
            report_totals(&slots);
            return Ok(Stopped::Signal);
        }
        if signals.hangup.swap(false, Ordering::SeqCst) {
            daemon.reopen_audit()?;
        }
        let now = wall_clock();
        let deadline = daemon.poll_timeout().map_or(next_housekeeping, |t| t.min(next_housekeeping));
        let timeout = deadline.saturating_since(now);
        let mut fds: Vec<libc::pollfd> = slots
            .iter()
            .filter_map(|s| s.capture.as_ref())
            .map(|c| libc::pollfd { fd: c.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        fds.push(libc::pollfd { fd: signals.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        poll(&mut fds, timeout).map_err(|source| LiveError::System { what: "poll", source })?;
        signals.drain();

        // Read every ready socket, then feed the frames in the order the
        // kernel stamped them: a command leaving by one interface and its
        // reply leaving by the other sit in two queues, and a reply read
        // before its command would answer nothing. A frame's stamp is taken
        // when it is queued, so anything earlier is already in a queue.
        let mut batch: Vec<Frame> = Vec::new();
        for slot in slots.iter_mut() {
            let Some(capture) = slot.capture.as_mut() else { continue };
            let ready = fds.iter().any(|f| f.fd == capture.as_raw_fd() && f.revents != 0);
            if ready {
                read_socket(slot, &mut buf, directions, &mut batch);
            }
        }
        batch.sort_by_key(|f| f.at);
        for frame in batch {
            daemon.handle_frame(frame.at, LinkType::Ethernet, &frame.data)?;
        }

        let now = wall_clock();
        if now >= next_housekeeping {
            next_housekeeping = now.saturating_add(HOUSEKEEPING);
            for slot in slots.iter_mut() {
                housekeep(slot, filter);
            }
            // Control connections the full session table could not take are
            // not followed: their negotiations open nothing. Say so.
            let table_full = daemon.pipeline().track_stats().table_full;
            if table_full > table_full_seen {
                warn!(
                    refused = table_full - table_full_seen,
                    sessions = daemon.pipeline().sessions(),
                    "session table full: new control connections are not followed (see --max-sessions)"
                );
                table_full_seen = table_full;
            }
        }
        if daemon.poll_timeout().is_some_and(|t| t <= now) {
            daemon.handle_timeout(now)?;
        }
    }
}

/// A frame read, waiting to be fed in timestamp order.
struct Frame {
    at: Timestamp,
    data: Vec<u8>,
}

/// Read what one socket has queued (at most [`BATCH`] frames) into `batch`.
fn read_socket(slot: &mut Slot, buf: &mut [u8], directions: Directions, batch: &mut Vec<Frame>) {
    let Some(capture) = slot.capture.as_mut() else { return };
    for _ in 0..BATCH {
        match capture.recv(buf) {
            Ok(Some(packet)) => {
                if !trusted(packet.direction, directions) {
                    slot.untrusted += 1;
                    continue;
                }
                slot.frames += 1;
                if packet.is_truncated() {
                    warn!(interface = %slot.name, wire_len = packet.wire_len, "frame larger than the buffer; cut");
                }
                batch.push(Frame { at: packet.at, data: packet.data.to_vec() });
                slot.trouble = false;
            }
            Ok(None) => break,
            Err(e) => {
                if !slot.trouble {
                    warn!(interface = %slot.name, error = %e, "capture interrupted; waiting for the interface");
                    slot.trouble = true;
                }
                break;
            }
        }
    }
}

/// Check one interface: recover a vanished or renumbered one, log drops.
fn housekeep(slot: &mut Slot, filter: &PortFilter) {
    if let Some(capture) = &slot.capture {
        match capture.stats() {
            Ok(stats) if stats.drops > 0 => {
                slot.drops += stats.drops;
                warn!(interface = %slot.name, dropped = stats.drops, "the kernel dropped control frames (capture buffer full): negotiations may be missed");
            }
            Ok(_) => {}
            Err(e) => warn!(interface = %slot.name, error = %e, "cannot read capture counters"),
        }
        match capture.health() {
            Health::Same => return,
            Health::Gone => warn!(interface = %slot.name, "interface gone; will reopen when it is back"),
            Health::Renumbered(index) => info!(interface = %slot.name, index, "interface re-created; reopening"),
        }
        slot.capture = None;
    }
    match Capture::open_filtered(&slot.name, filter) {
        Ok(c) => {
            info!(interface = %slot.name, "capture reopened");
            slot.capture = Some(c);
            slot.trouble = false;
        }
        Err(e) => {
            if !slot.trouble {
                error!(interface = %slot.name, error = %e, "cannot reopen the capture; retrying every second");
                slot.trouble = true;
            }
        }
    }
}

fn report_totals(slots: &[Slot]) {
    for s in slots {
        info!(interface = %s.name, frames = s.frames, dropped = s.drops, ignored = s.untrusted, "capture totals");
    }
}

/// Run this process under the real-time FIFO scheduler at `priority`
/// (1-99), so that it is woken ahead of ordinary processes when a
/// negotiation arrives: the client races the pinhole (see README).
pub fn set_realtime(priority: i32) -> Result<(), LiveError> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: sched_setscheduler reads the parameter struct, which lives for
    // the call; pid 0 is this process.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(LiveError::System {
            what: "setting real-time priority (needs CAP_SYS_NICE)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// poll(2), retrying on EINTR.
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ms = i32::try_from(timeout.as_millis().min(60_000)).unwrap_or(60_000);
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of
        // the length passed; poll only writes their `revents`.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_believed_directions_reach_the_pipeline() {
        use PacketDirection::*;
        assert!(trusted(Outgoing, Directions::Outgoing));
        assert!(!trusted(Incoming, Directions::Outgoing));
        assert!(!trusted(Other, Directions::Outgoing));
        assert!(trusted(Incoming, Directions::All) && trusted(Outgoing, Directions::All));
        assert!(!trusted(Other, Directions::All));
    }
}
