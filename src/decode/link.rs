//! Link layers a frame can arrive in, and how to reach the IP header beneath.

use etherparse::{err::packet::SliceError, SlicedPacket};

/// The link-layer framing of a captured frame (pcap `LINKTYPE_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, with any 802.1Q / QinQ tags (`LINKTYPE_ETHERNET`, 1).
    Ethernet,
    /// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113).
    LinuxSll,
    /// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, 276).
    LinuxSll2,
    /// Raw IPv4 or IPv6, told apart by the version nibble (`LINKTYPE_RAW`,
    /// 101), as NFQUEUE hands packets over.
    RawIp,
    /// Raw IPv4 only (`LINKTYPE_IPV4`, 228).
    Ipv4,
    /// Raw IPv6 only (`LINKTYPE_IPV6`, 229).
    Ipv6,
    /// BSD loopback: a 4-byte address family in the capturing host's byte
    /// order (`LINKTYPE_NULL`, 0).
    Null,
    /// OpenBSD loopback: the same family word in network byte order
    /// (`LINKTYPE_LOOP`, 108).
    Loop,
}

impl LinkType {
    /// The link type for a pcap/pcapng `LINKTYPE_*` number, if supported.
    pub fn from_linktype(value: u32) -> Option<Self> {
        Some(match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            // DLT_RAW is 12 on most BSDs and 14 on OpenBSD; both are raw IP.
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Slice `frame` down to its network and transport headers.
    pub(super) fn slice(self, frame: &[u8]) -> Result<SlicedPacket<'_>, LinkError> {
        match self {
            LinkType::Ethernet => SlicedPacket::from_ethernet(frame).map_err(LinkError::Slice),
            LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame).map_err(LinkError::Slice),
            LinkType::LinuxSll2 => {
                let (ether_type, rest) = sll2::split(frame)?;
                SlicedPacket::from_ether_type(ether_type, rest).map_err(LinkError::Slice)
            }
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => SlicedPacket::from_ip(frame).map_err(LinkError::Slice),
            LinkType::Null | LinkType::Loop => {
                let (family, rest) = loopback::split(frame, self == LinkType::Loop)?;
                match family {
                    loopback::Family::Ip => SlicedPacket::from_ip(rest).map_err(LinkError::Slice),
                    loopback::Family::Other => Err(LinkError::NotIp),
                }
            }
        }
    }
}

/// Why a frame's link layer did not lead to an IP packet.
#[derive(Debug)]
pub(super) enum LinkError {
    /// The frame ends inside the link-layer header.
    Truncated,
    /// The link layer carries something other than IP.
    NotIp,
    /// etherparse rejected the headers beneath the link layer.
    Slice(SliceError),
}

/// Linux cooked capture v2: a fixed 20-byte header.
mod sll2 {
    use super::LinkError;
    use etherparse::EtherType;

    /// Header layout, per <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html>.
    mod field {
        use std::ops::Range;
        pub(super) const PROTOCOL: Range<usize> = 0..2;
        pub(super) const HEADER_END: usize = 20;
    }

    pub(super) fn split(frame: &[u8]) -> Result<(EtherType, &[u8]), LinkError> {
        if frame.len() < field::HEADER_END {
            return Err(LinkError::Truncated);
        }
        let proto = &frame[field::PROTOCOL];
        let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
        Ok((ether_type, &frame[field::HEADER_END..]))
    }
}

/// BSD (`NULL`) and OpenBSD (`LOOP`) loopback: a 4-byte address family.
mod loopback {
    use super::LinkError;

    const HEADER_LEN: usize = 4;
    /// `AF_INET` everywhere.
    const AF_INET: u32 = 2;
    /// `AF_INET6` on Linux, NetBSD/OpenBSD, FreeBSD and macOS.
    const AF_INET6: [u32; 4] = [10, 24, 28, 30];

    pub(super) enum Family {
        Ip,
        Other,
    }

    pub(super) fn split(frame: &[u8], network_order: bool) -> Result<(Family, &[u8]), LinkError> {
        let Some((head, rest)) = frame.split_first_chunk::<HEADER_LEN>() else {
            return Err(LinkError::Truncated);
        };
        // NULL is in the capturing host's byte order, which the file does not
        // record: a family value is small, so the order that yields one wins.
        let value = if network_order {
            u32::from_be_bytes(*head)
        } else {
            let le = u32::from_le_bytes(*head);
            if le <= 0xffff {
                le
            } else {
                u32::from_be_bytes(*head)
            }
        };
        let family = if value == AF_INET || AF_INET6.contains(&value) { Family::Ip } else { Family::Other };
        Ok((family, rest))
    }
}
