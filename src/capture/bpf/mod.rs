//! The kernel filter: a classic BPF program that accepts TCP segments whose
//! source or destination port is a control port, and nothing else.
//!
//! Pure code: [`PortFilter::program`] returns instructions; `sys` hands them to
//! the kernel with `SO_ATTACH_FILTER`. The unit tests run every program on an
//! interpreter with the kernel's semantics and compare it with libpcap's own
//! program for `tcp port 21`.
//!
//! Offsets count from the Ethernet header, which is what a `SOCK_RAW` packet
//! socket on an Ethernet device sees. The program (X holds the network, then
//! the transport header offset):
//!
//! ```text
//!     [ld #pkttype; == PACKET_OUTGOING ? go on : drop]            (outgoing only)
//!     ldh [12]; 0x8100|0x88a8|0x9100 ? ldh [16]; again ? ldh [20]   X = 14 / 18 / 22
//!     0x0800 -> v4 ; 0x86dd -> v6 ; else drop
//! v4: protocol 6 ; fragment offset 0 ; X += 4 * IHL               -> ports
//! v6: next header 6 -> X += 40 -> ports ; an extension header -> accept ; drop
//! ports: ldh [x+0] a control port -> accept ; ldh [x+2] a control port -> accept ; drop
//! ```
//!
//! Decisions (taken in the capture lab, `capture-lab/REPORT.md`):
//! - Up to two in-band VLAN tags (802.1Q, 802.1ad, 0x9100) are skipped. A tag
//!   the kernel moved to packet metadata is absent from the bytes; on receive
//!   that is always the outer tag, so the same code matches.
//! - IPv4 options are honoured (IHL 5 to 15). Non-first fragments carry no TCP
//!   header and are dropped; a first fragment is judged on its ports.
//! - IPv6 packets whose first next header is an extension header (hop-by-hop,
//!   routing, fragment, AH, destination options, mobility, HIP, shim6) are
//!   accepted and left to user space: cBPF cannot walk a chain of unknown
//!   length cheaply, and such packets are rare (MLD reports, fragments).
//! - An accepted packet is copied whole, up to [`ACCEPT_LEN`] bytes (GSO and
//!   BIG TCP frames exceed 64 KiB). A load past the end of a short packet makes
//!   the kernel drop it.

mod asm;
#[cfg(test)]
mod interp;
#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::track::ControlPorts;
use asm::Asm;
use op::*;

/// Bytes copied of an accepted packet: the whole packet, up to 256 KiB.
pub const ACCEPT_LEN: u32 = 262_144;

/// Most ports one program tests (each costs two instructions; jumps stay short).
pub const MAX_PORTS: usize = ControlPorts::MAX;

/// Longest program the kernel takes (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// EtherType of IPv4.
const ETHERTYPE_IPV4: u32 = 0x0800;
/// EtherType of IPv6.
const ETHERTYPE_IPV6: u32 = 0x86dd;
/// Tag protocol identifiers skipped: 802.1Q, 802.1ad (QinQ outer), pre-standard QinQ.
const VLAN_TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];
/// Most in-band VLAN tags looked through.
const MAX_TAGS: u32 = 2;
/// Length of an Ethernet header without tags, and of one tag.
const ETH_HEADER_LEN: u32 = 14;
/// Length of one in-band VLAN tag.
const VLAN_TAG_LEN: u32 = 4;
/// Where classic BPF reads the packet's type (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
pub(crate) const SKF_PKTTYPE: u32 = 0xffff_f000 + 4;
/// `PACKET_OUTGOING`: a frame this host transmitted.
pub(crate) const PACKET_OUTGOING: u32 = 4;
/// IP protocol number of TCP.
const IPPROTO_TCP: u32 = 6;
/// IPv6 next-header values that are extension headers (RFC 8200, IANA list;
/// ESP is opaque and not among them).
const IPV6_EXTENSION_HEADERS: [u32; 8] = [0, 43, 44, 51, 60, 135, 139, 140];
/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: u32 = 40;

/// Offsets inside the headers the program reads.
mod field {
    /// IPv4: version and IHL (low nibble, in 32-bit words).
    pub(super) const IPV4_VERSION_IHL: u32 = 0;
    /// IPv4: flags and fragment offset.
    pub(super) const IPV4_FRAGMENT: u32 = 6;
    /// IPv4: protocol.
    pub(super) const IPV4_PROTOCOL: u32 = 9;
    /// IPv4: fragment offset bits of `IPV4_FRAGMENT`.
    pub(super) const IPV4_OFFSET_MASK: u32 = 0x1fff;
    /// IPv6: next header.
    pub(super) const IPV6_NEXT_HEADER: u32 = 6;
    /// TCP: source port.
    pub(super) const TCP_SOURCE: u32 = 0;
    /// TCP: destination port.
    pub(super) const TCP_DESTINATION: u32 = 2;
}

/// Classic BPF instruction encoding (`linux/bpf_common.h`, `linux/filter.h`).
#[allow(dead_code)] // The interpreter and the tests use the whole set.
mod op {
    pub(super) const LD: u16 = 0x00;
    pub(super) const LDX: u16 = 0x01;
    pub(super) const ST: u16 = 0x02;
    pub(super) const STX: u16 = 0x03;
    pub(super) const ALU: u16 = 0x04;
    pub(super) const JMP: u16 = 0x05;
    pub(super) const RET: u16 = 0x06;
    pub(super) const MISC: u16 = 0x07;
    pub(super) const W: u16 = 0x00;
    pub(super) const H: u16 = 0x08;
    pub(super) const B: u16 = 0x10;
    pub(super) const IMM: u16 = 0x00;
    pub(super) const ABS: u16 = 0x20;
    pub(super) const IND: u16 = 0x40;
    pub(super) const MEM: u16 = 0x60;
    pub(super) const LEN: u16 = 0x80;
    pub(super) const MSH: u16 = 0xa0;
    pub(super) const ADD: u16 = 0x00;
    pub(super) const SUB: u16 = 0x10;
    pub(super) const MUL: u16 = 0x20;
    pub(super) const DIV: u16 = 0x30;
    pub(super) const OR: u16 = 0x40;
    pub(super) const AND: u16 = 0x50;
    pub(super) const LSH: u16 = 0x60;
    pub(super) const RSH: u16 = 0x70;
    pub(super) const NEG: u16 = 0x80;
    pub(super) const JA: u16 = 0x00;
    pub(super) const JEQ: u16 = 0x10;
    pub(super) const JGT: u16 = 0x20;
    pub(super) const JGE: u16 = 0x30;
    pub(super) const JSET: u16 = 0x40;
    pub(super) const K: u16 = 0x00;
    pub(super) const X: u16 = 0x08;
    pub(super) const A: u16 = 0x10;
    pub(super) const TAX: u16 = 0x00;
    pub(super) const TXA: u16 = 0x80;
}

/// One classic BPF instruction, as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Operation.
    pub code: u16,
    /// Forward jump if true (conditional jumps).
    pub jt: u8,
    /// Forward jump if false (conditional jumps).
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

/// Why no program could be built.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BuildError {
    /// The port list is empty.
    #[error("the capture filter needs at least one port")]
    NoPorts,
    /// More ports than one program tests.
    #[error("the capture filter tests at most {max} ports, got {got}")]
    TooManyPorts {
        /// The limit.
        max: usize,
        /// How many distinct ports were given.
        got: usize,
    },
    /// A conditional jump spans more than 255 instructions (a builder bug).
    #[error("capture filter: the jump at instruction {at} spans {distance} instructions (at most 255)")]
    JumpTooFar {
        /// Index of the jump.
        at: usize,
        /// Instructions skipped.
        distance: usize,
    },
    /// A jump to a label that was never placed (a builder bug).
    #[error("capture filter: instruction {at} jumps to a label never placed")]
    UnboundLabel {
        /// Index of the jump.
        at: usize,
    },
    /// The program is longer than the kernel takes.
    #[error("capture filter has {len} instructions, the kernel takes at most {MAX_INSNS}")]
    TooLong {
        /// Instructions.
        len: usize,
    },
}

/// Which frames of an interface the filter considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directions {
    /// Only frames this host transmitted: forwarded ones, which passed the
    /// firewall, conntrack's sequence checks and reverse-path filtering, and
    /// its own. A forged segment the gateway drops is never seen.
    Outgoing,
    /// Every frame, as it arrives, before any check (the host profile with a
    /// default-drop output needs the replies it receives).
    All,
}

/// "TCP with a control port on either side", for one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFilter {
    /// Sorted, distinct, 1 to [`MAX_PORTS`] of them.
    ports: Vec<u16>,
    /// Which frames count.
    directions: Directions,
}

impl PortFilter {
    /// The filter for these control ports, on frames in both directions.
    pub fn new(ports: &ControlPorts) -> PortFilter {
        PortFilter { ports: ports.as_slice().to_vec(), directions: Directions::All }
    }

    /// The same filter, on frames in `directions` only.
    pub fn directions(mut self, directions: Directions) -> PortFilter {
        self.directions = directions;
        self
    }

    /// The filter for any list of ports: duplicates collapse; empty or more
    /// than [`MAX_PORTS`] distinct ports are refused.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> Result<PortFilter, BuildError> {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        match ports.len() {
            0 => Err(BuildError::NoPorts),
            n if n > MAX_PORTS => Err(BuildError::TooManyPorts { max: MAX_PORTS, got: n }),
            _ => Ok(PortFilter { ports, directions: Directions::All }),
        }
    }

    /// The ports, ascending.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The program (module documentation has its layout).
    pub fn program(&self) -> Result<Vec<Insn>, BuildError> {
        if self.ports.is_empty() {
            return Err(BuildError::NoPorts);
        }
        if self.ports.len() > MAX_PORTS {
            return Err(BuildError::TooManyPorts { max: MAX_PORTS, got: self.ports.len() });
        }
        let mut a = Asm::new();
        let (accept, drop) = (a.label(), a.label());
        let (network, v4, v6, v6_tcp, transport) = (a.label(), a.label(), a.label(), a.label(), a.label());

        if self.directions == Directions::Outgoing {
            // The kernel's packet type, an ancillary load: only frames sent.
            let sent = a.label();
            a.stmt(LD | W | ABS, SKF_PKTTYPE);
            a.jump(JEQ, PACKET_OUTGOING, Some(sent), Some(drop));
            a.bind(sent);
        }
        // Link layer: A = EtherType, X = network header offset.
        a.stmt(LD | H | ABS, ETH_HEADER_LEN - 2);
        for tag in 0..MAX_TAGS {
            let next = a.label();
            let untagged = a.label();
            for (i, tpid) in VLAN_TPIDS.iter().enumerate() {
                let last = i + 1 == VLAN_TPIDS.len();
                a.jump(JEQ, *tpid, Some(next), if last { Some(untagged) } else { None });
            }
            a.bind(untagged);
            a.stmt(LDX | W | IMM, ETH_HEADER_LEN + tag * VLAN_TAG_LEN);
            a.goto(network);
            a.bind(next);
            a.stmt(LD | H | ABS, ETH_HEADER_LEN - 2 + (tag + 1) * VLAN_TAG_LEN);
        }
        // After two tags A is the EtherType that follows them (a third tag
        // matches neither IPv4 nor IPv6 and is dropped).
        a.stmt(LDX | W | IMM, ETH_HEADER_LEN + MAX_TAGS * VLAN_TAG_LEN);

        a.bind(network);
        a.jump(JEQ, ETHERTYPE_IPV4, Some(v4), None);
        a.jump(JEQ, ETHERTYPE_IPV6, Some(v6), Some(drop));

        a.bind(v4);
        a.stmt(LD | B | IND, field::IPV4_PROTOCOL);
        a.jump(JEQ, IPPROTO_TCP, None, Some(drop));
        a.stmt(LD | H | IND, field::IPV4_FRAGMENT);
        a.jump(JSET, field::IPV4_OFFSET_MASK, Some(drop), None);
        a.stmt(LD | B | IND, field::IPV4_VERSION_IHL);
        a.stmt(ALU | AND | K, 0x0f);
        a.stmt(ALU | LSH | K, 2);
        a.stmt(ALU | ADD | X, 0);
        a.stmt(MISC | TAX, 0);
        a.goto(transport);

        a.bind(v6);
        a.stmt(LD | B | IND, field::IPV6_NEXT_HEADER);
        a.jump(JEQ, IPPROTO_TCP, Some(v6_tcp), None);
        for (i, next_header) in IPV6_EXTENSION_HEADERS.iter().enumerate() {
            let last = i + 1 == IPV6_EXTENSION_HEADERS.len();
            a.jump(JEQ, *next_header, Some(accept), if last { Some(drop) } else { None });
        }
        a.bind(v6_tcp);
        a.stmt(MISC | TXA, 0);
        a.stmt(ALU | ADD | K, IPV6_HEADER_LEN);
        a.stmt(MISC | TAX, 0);

        // Transport: X = TCP header offset.
        a.bind(transport);
        for offset in [field::TCP_SOURCE, field::TCP_DESTINATION] {
            a.stmt(LD | H | IND, offset);
            for (i, port) in self.ports.iter().enumerate() {
                let last = offset == field::TCP_DESTINATION && i + 1 == self.ports.len();
                a.jump(JEQ, u32::from(*port), Some(accept), if last { Some(drop) } else { None });
            }
        }
        a.bind(accept);
        a.stmt(RET | K, ACCEPT_LEN);
        a.bind(drop);
        a.stmt(RET | K, 0);
        a.assemble()
    }
}
