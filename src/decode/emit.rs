//! The way back: build a frame from a [`Segment`].
//!
//! Used to write test captures and, later, to re-emit rewritten packets. The
//! output decodes back to the same [`Segment`] (a round trip the tests check).

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, TcpHeader};
use thiserror::Error;

use super::{LinkType, Segment};

/// Why a segment could not be turned into a frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EmitError {
    /// Source and destination are of different IP families.
    #[error("source {src} and destination {dst} are of different IP families")]
    MixedFamilies {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
    /// The payload does not fit one IP packet.
    #[error("payload of {0} bytes does not fit one IP packet")]
    TooLong(usize),
    /// The link type cannot carry the segment's family, or is not emitted.
    #[error("link type {0:?} cannot carry this segment")]
    Link(LinkType),
}

/// Window advertised in emitted segments; any value decodes the same.
const WINDOW: u16 = 64240;
/// TTL / hop limit of emitted packets.
const TTL: u8 = 64;
/// Ethernet addresses of emitted frames: locally administered, never real.
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Build the IP packet (IP header, TCP header, payload) carrying `seg`.
pub fn emit_ip(seg: &Segment<'_>) -> Result<Vec<u8>, EmitError> {
    let mut tcp = TcpHeader::new(seg.src.port(), seg.dst.port(), seg.seq, WINDOW);
    tcp.acknowledgment_number = seg.ack;
    tcp.syn = seg.flags.syn;
    tcp.ack = seg.flags.ack;
    tcp.fin = seg.flags.fin;
    tcp.rst = seg.flags.rst;
    tcp.psh = !seg.payload.is_empty();
    let tcp_len = tcp.header_len() + seg.payload.len();
    let too_long = |_| EmitError::TooLong(seg.payload.len());
    let mut out = Vec::with_capacity(Ipv6Header::LEN + tcp_len);
    match (seg.src.ip(), seg.dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let len = u16::try_from(tcp_len).map_err(too_long)?;
            let ip = Ipv4Header::new(len, TTL, IpNumber::TCP, src.octets(), dst.octets())
                .map_err(|_| EmitError::TooLong(seg.payload.len()))?;
            tcp.checksum =
                tcp.calc_checksum_ipv4(&ip, seg.payload).map_err(|_| EmitError::TooLong(seg.payload.len()))?;
            write_all(&mut out, |w| ip.write(w));
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: u16::try_from(tcp_len).map_err(too_long)?,
                next_header: IpNumber::TCP,
                hop_limit: TTL,
                source: src.octets(),
                destination: dst.octets(),
            };
            tcp.checksum =
                tcp.calc_checksum_ipv6(&ip, seg.payload).map_err(|_| EmitError::TooLong(seg.payload.len()))?;
            write_all(&mut out, |w| ip.write(w));
        }
        (src, dst) => return Err(EmitError::MixedFamilies { src, dst }),
    }
    write_all(&mut out, |w| tcp.write(w));
    out.extend_from_slice(seg.payload);
    Ok(out)
}

/// Build a frame of link type `link` carrying `seg`, inside the 802.1Q tags
/// `vlans` (outermost first; Ethernet only).
pub fn emit(link: LinkType, vlans: &[u16], seg: &Segment<'_>) -> Result<Vec<u8>, EmitError> {
    let ip = emit_ip(seg)?;
    let ether_type: u16 = if seg.src.is_ipv4() { 0x0800 } else { 0x86dd };
    if !vlans.is_empty() && link != LinkType::Ethernet {
        return Err(EmitError::Link(link));
    }
    let mut out = Vec::with_capacity(ip.len() + 32);
    match link {
        LinkType::Ethernet => {
            out.extend_from_slice(&MAC_DST);
            out.extend_from_slice(&MAC_SRC);
            for (i, vlan) in vlans.iter().enumerate() {
                // QinQ: the outer tag is 802.1ad when more tags follow.
                let tpid = if i + 1 < vlans.len() { ETHERTYPE_QINQ } else { ETHERTYPE_VLAN };
                out.extend_from_slice(&tpid.to_be_bytes());
                out.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
            }
            out.extend_from_slice(&ether_type.to_be_bytes());
        }
        LinkType::LinuxSll => {
            out.extend_from_slice(&0u16.to_be_bytes()); // packet type: to us
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.extend_from_slice(&6u16.to_be_bytes()); // address length
            out.extend_from_slice(&MAC_SRC);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ether_type.to_be_bytes());
        }
        LinkType::LinuxSll2 => {
            out.extend_from_slice(&ether_type.to_be_bytes());
            out.extend_from_slice(&[0, 0]); // reserved
            out.extend_from_slice(&1u32.to_be_bytes()); // interface index
            out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
            out.push(0); // packet type
            out.push(6); // address length
            out.extend_from_slice(&MAC_SRC);
            out.extend_from_slice(&[0, 0]);
        }
        LinkType::Null | LinkType::Loop => {
            let family: u32 = if seg.src.is_ipv4() { 2 } else { 24 };
            if link == LinkType::Null {
                out.extend_from_slice(&family.to_le_bytes());
            } else {
                out.extend_from_slice(&family.to_be_bytes());
            }
        }
        LinkType::RawIp => {}
        LinkType::Ipv4 if seg.src.is_ipv4() => {}
        LinkType::Ipv6 if seg.src.is_ipv6() => {}
        LinkType::Ipv4 | LinkType::Ipv6 => return Err(EmitError::Link(link)),
    }
    out.extend_from_slice(&ip);
    Ok(out)
}

/// Writing headers into a `Vec` cannot fail; this keeps that in one place.
fn write_all(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) {
    // An io::Write into a Vec<u8> only fails on allocation failure, which aborts.
    let _ = write(out);
}
