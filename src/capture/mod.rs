//! Source: live capture of control-port traffic on one interface.
//!
//! A [`Capture`] is one `AF_PACKET` socket bound to one interface, with a
//! classic BPF program in the kernel ([`bpf`]) so that only TCP segments to or
//! from a control port reach user space: a bulk transfer through the same
//! interface costs no copy and no wake-up. The daemon opens one capture per
//! interface, polls their descriptors, and feeds each [`Packet`] (with its
//! kernel timestamp) to the sans-IO pipeline.
//!
//! This module does not use `pnet`, on purpose. Measured in the capture lab
//! (`capture-lab/REPORT.md`): pnet 0.35 drops the packet's direction,
//! interface and VLAN tag (it discards the `sockaddr_ll` and has no control
//! messages), silently cuts frames longer than its read buffer, and after
//! `ENETDOWN` reports every read as an error at once, forever once the
//! interface is deleted. One `recvmsg` here gives the bytes, the true length,
//! the direction, a nanosecond kernel timestamp and the VLAN tag.
//!
//! How a capture is opened, so that no unfiltered packet is ever queued: the
//! socket is created with protocol 0 (hooked nowhere, it receives nothing),
//! timestamps (`SO_TIMESTAMPNS`) and `PACKET_AUXDATA` are switched on, the
//! filter is attached, and only then is the socket bound to the interface
//! index with `ETH_P_ALL`. (A socket created with `ETH_P_ALL` receives from
//! every interface, unfiltered, until it is bound: the lab counted 6 to 8 bulk
//! frames leaking through that window; `tests/capture.rs` opens captures in
//! the middle of a bulk transfer to hold the order.) The interface is not put in
//! promiscuous mode: a gateway receives what it forwards anyway.
//!
//! Reading: `poll(2)` the descriptor ([`AsFd`]), then call [`Capture::recv`]
//! until it returns `Ok(None)`. Give it a buffer of [`BUFFER_LEN`] bytes: the
//! kernel hands over GSO frames of 64 KiB and more, and a smaller buffer
//! truncates them (reported, never silent: [`Packet::is_truncated`]).
//!
//! When the interface goes away (recovery, as measured in the lab):
//! - `ip link set dev X down`: `recv` returns [`CaptureError::InterfaceDown`]
//!   once, then nothing; after `up` the same socket receives again, with no
//!   action. ([`Capture::health`] says [`Health::Same`].)
//! - deleted, or deleted and created again: also `InterfaceDown` once, then
//!   the socket never receives again. [`Capture::health`] says
//!   [`Health::Gone`] or [`Health::Renumbered`]: drop the capture and open the
//!   name again (retrying while it is gone). Check health after every
//!   `InterfaceDown` and now and then (a second) besides.
//!
//! A frame this host forwards is seen on both interfaces (`Incoming` on one,
//! `Outgoing` on the other); the tracker counts such copies once.

// Every unsafe block lives in `sys`, which allows it for itself alone.
#![deny(unsafe_code)]

pub mod bpf;
mod error;
mod packet;
mod sys;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use tracing::{debug, warn};

use crate::time::Timestamp;
use crate::track::ControlPorts;
use bpf::PortFilter;
pub use error::CaptureError;
pub use packet::{Health, KernelStats, Packet, PacketDirection};

/// A receive buffer this long never truncates a frame the filter accepted.
pub const BUFFER_LEN: usize = bpf::ACCEPT_LEN as usize;

/// Socket receive buffer asked for (the kernel doubles it; without
/// `CAP_NET_ADMIN` it is capped at `net.core.rmem_max`).
const SOCKET_BUFFER: i32 = 4 << 20;

/// VLAN id bits of a tag control information field.
const VLAN_ID_MASK: u16 = 0x0fff;

/// One capture socket, bound to one interface, filtered in the kernel.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    interface: String,
    ifindex: u32,
    /// Whether a frame without a kernel timestamp was already reported.
    warned_no_stamp: bool,
}

impl Capture {
    /// Opens a capture of the control-port traffic on `interface`, in the
    /// calling thread's network namespace. An interface that is down is
    /// fine: the first [`recv`](Capture::recv) reports it, and frames flow
    /// once it is up.
    pub fn open(interface: &str, ports: &ControlPorts) -> Result<Capture, CaptureError> {
        Capture::open_filtered(interface, &PortFilter::new(ports))
    }

    /// Open a capture on `interface` with `filter` (control ports, and which
    /// directions count).
    pub fn open_filtered(interface: &str, filter: &PortFilter) -> Result<Capture, CaptureError> {
        let ports = filter.ports();
        let program =
            filter.program().map_err(|source| CaptureError::Filter { name: interface.to_string(), source })?;
        let os = |step| move |e| CaptureError::os(interface, step, e);

        let fd = sys::packet_socket().map_err(os("socket(AF_PACKET)"))?;
        let ifindex = sys::ifindex(fd.as_fd(), interface).map_err(os("SIOCGIFINDEX"))?;
        // Ethernet and loopback frames start with an Ethernet header; others
        // would pass no filter and decode as nothing, silently.
        let hardware_type = sys::hardware_type(fd.as_fd(), interface).map_err(os("SIOCGIFHWADDR"))?;
        if hardware_type != libc::ARPHRD_ETHER && hardware_type != libc::ARPHRD_LOOPBACK {
            return Err(CaptureError::NotEthernet { name: interface.to_string(), hardware_type });
        }
        let forced = match sys::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER) {
            Ok(()) => true,
            // Without CAP_NET_ADMIN: the ordinary option, capped by rmem_max.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                sys::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, SOCKET_BUFFER).map_err(os("SO_RCVBUF"))?;
                false
            }
            Err(e) => return Err(os("SO_RCVBUFFORCE")(e)),
        };
        let buffer = sys::get_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).map_err(os("SO_RCVBUF"))?;
        sys::set_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).map_err(os("SO_TIMESTAMPNS"))?;
        sys::set_int(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1).map_err(os("PACKET_AUXDATA"))?;
        sys::attach_filter(fd.as_fd(), &program).map_err(os("SO_ATTACH_FILTER"))?;
        sys::bind_all(fd.as_fd(), ifindex).map_err(os("bind"))?;

        debug!(interface, ifindex, ports = ?ports, filter_insns = program.len(), buffer, forced, "capture opened");
        Ok(Capture { fd, interface: interface.to_string(), ifindex, warned_no_stamp: false })
    }

    /// The interface name the capture was opened on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The next queued frame, without waiting; `Ok(None)` when none is queued.
    /// [`CaptureError::InterfaceDown`] reports that the interface went down or
    /// away (once per event); the capture stays usable.
    pub fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<Packet<'b>>, CaptureError> {
        let got = match sys::receive(self.fd.as_fd(), buf) {
            Ok(Some(got)) => got,
            Ok(None) => return Ok(None),
            // Nothing was read; the caller polls again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(CaptureError::os(&self.interface, "recvmsg", e)),
        };
        let at = match got.stamp.and_then(timestamp) {
            Some(at) => at,
            None => {
                // Not expected: the kernel stamps every frame once
                // SO_TIMESTAMPNS is on. Better a late time than none.
                if !self.warned_no_stamp {
                    self.warned_no_stamp = true;
                    warn!(interface = %self.interface, "a frame came without a kernel timestamp; using the clock");
                }
                crate::time::wall_clock()
            }
        };
        let wire_len = got.queued.max(got.original.map_or(0, |len| len as usize));
        let buf: &'b [u8] = buf;
        Ok(Some(Packet {
            data: &buf[..got.copied.min(buf.len())],
            wire_len,
            at,
            direction: PacketDirection::from_pkttype(got.pkttype),
            vlan: got.vlan_tci.map(|tci| tci & VLAN_ID_MASK),
        }))
    }

    /// The kernel's counters since the previous call (reading resets them).
    pub fn stats(&self) -> Result<KernelStats, CaptureError> {
        let (packets, drops) =
            sys::statistics(self.fd.as_fd()).map_err(|e| CaptureError::os(&self.interface, "PACKET_STATISTICS", e))?;
        Ok(KernelStats { packets: u64::from(packets), drops: u64::from(drops) })
    }

    /// Whether the interface name still means the interface the socket is
    /// bound to, looked up in the socket's own network namespace.
    pub fn health(&self) -> Health {
        match sys::ifindex(self.fd.as_fd(), &self.interface) {
            Ok(index) if index == self.ifindex => Health::Same,
            Ok(index) => Health::Renumbered(index),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Health::Gone,
            Err(e) => {
                // Not expected for a valid name on an open socket; reopening
                // will report what is wrong.
                warn!(interface = %self.interface, error = %e, "interface lookup failed");
                Health::Gone
            }
        }
    }
}

impl AsFd for Capture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Capture {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A kernel `timespec` as a [`Timestamp`]; `None` if it is before the epoch
/// or malformed.
fn timestamp((secs, nanos): (i64, i64)) -> Option<Timestamp> {
    let secs = u64::try_from(secs).ok()?;
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Timestamp::from_unix_duration(Duration::new(secs, nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_timespecs() {
        assert_eq!(timestamp((1_700_000_000, 5)), Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_005)));
        assert_eq!(timestamp((0, 0)), Some(Timestamp::EPOCH));
        assert_eq!(timestamp((-1, 0)), None);
        assert_eq!(timestamp((1, -1)), None);
        assert_eq!(timestamp((1, 1_000_000_000)), None);
    }
}
