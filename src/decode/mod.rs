//! Stage 1: frames to TCP segments.
//!
//! [`decode`] turns one captured frame into a borrowed [`Segment`], or says in a
//! [`Skip`] why the frame carries no usable TCP segment. It allocates nothing
//! and never panics on input: every header is length-checked by etherparse
//! before it is read.

mod emit;
mod link;

pub use emit::{emit, emit_ip, EmitError};
pub use link::LinkType;

use std::net::{IpAddr, SocketAddr};

use etherparse::{err::packet::SliceError, NetSlice, TransportSlice};

use link::LinkError;

/// The TCP flags the tracker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    /// SYN: opens a direction; consumes one sequence number.
    pub syn: bool,
    /// ACK: the acknowledgement number is valid.
    pub ack: bool,
    /// FIN: closes a direction; consumes one sequence number.
    pub fin: bool,
    /// RST: aborts the connection.
    pub rst: bool,
}

/// One TCP segment, borrowed from the frame it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender's address and port.
    pub src: SocketAddr,
    /// Receiver's address and port.
    pub dst: SocketAddr,
    /// Sequence number of the first byte (of the SYN, if set).
    pub seq: u32,
    /// Acknowledgement number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// TCP payload; IP and Ethernet padding already cut off.
    pub payload: &'a [u8],
}

/// Why a frame yielded no TCP segment. Counted per reason in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The frame ends before the headers it announces (snap length, corruption).
    Truncated,
    /// A header is invalid (bad version, impossible length field).
    Malformed,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP, but not TCP.
    NotTcp,
    /// A fragment of an IPv4 datagram: the TCP header may not be in it, so it
    /// is skipped (see README, limits).
    Ipv4Fragment,
    /// A fragment of an IPv6 datagram (fragment extension header).
    Ipv6Fragment,
    /// The capture's link type is not one this tool decodes.
    UnsupportedLink,
}

impl Skip {
    /// Every reason, in the order the summary prints them.
    pub const ALL: [Skip; 7] = [
        Skip::Truncated,
        Skip::Malformed,
        Skip::NotIp,
        Skip::NotTcp,
        Skip::Ipv4Fragment,
        Skip::Ipv6Fragment,
        Skip::UnsupportedLink,
    ];

    /// Stable code used in summaries and logs.
    pub const fn code(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::Malformed => "malformed",
            Skip::NotIp => "not-ip",
            Skip::NotTcp => "not-tcp",
            Skip::Ipv4Fragment => "ipv4-fragment",
            Skip::Ipv6Fragment => "ipv6-fragment",
            Skip::UnsupportedLink => "unsupported-link",
        }
    }

    /// Position in [`Skip::ALL`], for counter tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Decode one frame of link type `link` into a TCP segment.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let packet = link.slice(frame).map_err(|e| match e {
        LinkError::Truncated => Skip::Truncated,
        LinkError::NotIp => Skip::NotIp,
        LinkError::Slice(SliceError::Len(_)) => Skip::Truncated,
        LinkError::Slice(_) => Skip::Malformed,
    })?;
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &packet.net {
        Some(NetSlice::Ipv4(v4)) => {
            if v4.is_payload_fragmented() {
                return Err(Skip::Ipv4Fragment);
            }
            let h = v4.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(NetSlice::Ipv6(v6)) => {
            if v6.is_payload_fragmented() {
                return Err(Skip::Ipv6Fragment);
            }
            let h = v6.header();
            (h.source_addr().into(), h.destination_addr().into())
        }
        Some(NetSlice::Arp(_)) | None => return Err(Skip::NotIp),
    };
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return Err(Skip::NotTcp);
    };
    Ok(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst() },
        payload: tcp.payload(),
    })
}

#[cfg(test)]
mod tests;
