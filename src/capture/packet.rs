//! What a capture hands out: packets, the kernel's counters, the interface's health.

use crate::time::Timestamp;

/// One frame, as the kernel gave it to the capture socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'b> {
    /// The frame from its Ethernet header, as much as fit the buffer. A VLAN
    /// tag the kernel moved to metadata is not in it (see `vlan`); an inner
    /// QinQ tag is.
    pub data: &'b [u8],
    /// Length of the frame as the kernel handed it over; more than
    /// `data.len()` when the buffer was too small. A GSO frame (several TCP
    /// segments the kernel keeps together) can be far longer than the MTU.
    pub wire_len: usize,
    /// When the kernel received or sent it (its own clock, `SO_TIMESTAMPNS`).
    pub at: Timestamp,
    /// Whether this host received or sent it.
    pub direction: PacketDirection,
    /// VLAN id of the tag the kernel took off the frame, if any.
    pub vlan: Option<u16>,
}

impl Packet<'_> {
    /// Whether the buffer was too small for the whole frame.
    pub fn is_truncated(&self) -> bool {
        self.wire_len > self.data.len()
    }
}

/// Which way a frame crossed the interface. A frame this host forwards is
/// seen twice: `Incoming` on the interface it arrived on, `Outgoing` on the
/// one it left by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Received, addressed to this host's link address (forwarded frames included).
    Incoming,
    /// Sent by this host.
    Outgoing,
    /// Received but not addressed to this host alone: broadcast, multicast,
    /// or another host's frame seen in promiscuous mode.
    Other,
}

impl PacketDirection {
    /// The direction of a frame whose `sll_pkttype` is `pkttype`.
    pub(super) fn from_pkttype(pkttype: u8) -> PacketDirection {
        match pkttype {
            libc::PACKET_HOST => PacketDirection::Incoming,
            libc::PACKET_OUTGOING => PacketDirection::Outgoing,
            _ => PacketDirection::Other,
        }
    }
}

/// The kernel's counters for one capture socket (`PACKET_STATISTICS`), since
/// the previous read: the kernel resets them each time they are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames that passed the filter, those dropped included. Frames the
    /// filter rejected are counted nowhere.
    pub packets: u64,
    /// Frames that passed the filter but were lost: the socket's receive
    /// buffer was full.
    pub drops: u64,
}

/// Whether the interface a capture is bound to is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The name still has the bound index: keep the capture. If the
    /// interface is down, frames resume by themselves when it comes up.
    Same,
    /// No interface has the name any more: the capture will never receive
    /// again. Close it and open the name again until it exists.
    Gone,
    /// The name belongs to a new interface (deleted and created again): the
    /// capture will never receive again. Close it and open the name again.
    Renumbered(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_from_packet_type() {
        assert_eq!(PacketDirection::from_pkttype(libc::PACKET_HOST), PacketDirection::Incoming);
        assert_eq!(PacketDirection::from_pkttype(libc::PACKET_OUTGOING), PacketDirection::Outgoing);
        for other in [libc::PACKET_BROADCAST, libc::PACKET_MULTICAST, libc::PACKET_OTHERHOST, 5, 255] {
            assert_eq!(PacketDirection::from_pkttype(other), PacketDirection::Other, "{other}");
        }
    }

    #[test]
    fn truncation_is_visible() {
        let bytes = [0u8; 4];
        let p = Packet {
            data: &bytes,
            wire_len: 4,
            at: Timestamp::EPOCH,
            direction: PacketDirection::Incoming,
            vlan: None,
        };
        assert!(!p.is_truncated());
        assert!(Packet { wire_len: 65226, ..p }.is_truncated());
    }
}
