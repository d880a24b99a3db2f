//! Pinhole set keys on the wire: `src . dst . dport`, each field in its own
//! 4-byte register.
//!
//! nf_tables stores a concatenation field by field, each padded to 4 bytes:
//! an `ipv4_addr` is 4 bytes and an `ipv6_addr` 16, both in network order;
//! an `inet_service` is the port big-endian in the FIRST two bytes of its slot,
//! then two zero bytes (`2121` is `08 49 00 00`). The kernel accepts any bytes
//! of the right length, so a port in the wrong half of its slot is stored and
//! never matches a packet: decoding therefore rejects non-zero padding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use nftnl::set::SetKey;
use thiserror::Error;

/// nft datatype id of `ipv4_addr`.
const TYPE_IPV4_ADDR: u32 = 7;
/// nft datatype id of `ipv6_addr`.
const TYPE_IPV6_ADDR: u32 = 8;
/// nft datatype id of `inet_service`.
const TYPE_INET_SERVICE: u32 = 13;
/// Bits each field takes in a concatenated key type.
const CONCAT_TYPE_BITS: u32 = 6;

/// Byte ranges of the fields of an IPv4 key.
mod v4 {
    use std::ops::Range;
    /// The opener's address.
    pub(super) const SRC: Range<usize> = 0..4;
    /// The acceptor's address.
    pub(super) const DST: Range<usize> = 4..8;
    /// The port slot.
    pub(super) const PORT: Range<usize> = 8..12;
    /// Whole key.
    pub(super) const LEN: usize = PORT.end;
}

/// Byte ranges of the fields of an IPv6 key.
mod v6 {
    use std::ops::Range;
    /// The opener's address.
    pub(super) const SRC: Range<usize> = 0..16;
    /// The acceptor's address.
    pub(super) const DST: Range<usize> = 16..32;
    /// The port slot.
    pub(super) const PORT: Range<usize> = 32..36;
    /// Whole key.
    pub(super) const LEN: usize = PORT.end;
}

/// The nft type of a concatenation of datatypes, first field highest.
const fn concat_type(fields: [u32; 3]) -> u32 {
    (((fields[0] << CONCAT_TYPE_BITS) | fields[1]) << CONCAT_TYPE_BITS) | fields[2]
}

/// A port as its 4-byte concatenation slot.
fn port_slot(port: u16) -> [u8; 4] {
    let [hi, lo] = port.to_be_bytes();
    [hi, lo, 0, 0]
}

/// The port in a slot; an error when its padding is not zero.
fn port_from_slot(slot: [u8; 4]) -> Result<u16, KeyError> {
    match slot {
        [hi, lo, 0, 0] => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(KeyError::PortPadding(slot)),
    }
}

/// Why key bytes read from the kernel are not a pinhole key.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Neither 12 (IPv4) nor 36 (IPv6) bytes.
    #[error("a pinhole key is 12 or 36 bytes, this one is {0}")]
    Length(usize),
    /// The port's slot has non-zero padding: it can never match a packet.
    #[error("the port slot {0:02x?} has non-zero padding")]
    PortPadding([u8; 4]),
}

/// `ipv4_addr . ipv4_addr . inet_service` (sets passive4 and active4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V4Key {
    /// Who opens the data connection.
    pub(crate) src: Ipv4Addr,
    /// Who accepts it.
    pub(crate) dst: Ipv4Addr,
    /// The destination port.
    pub(crate) port: u16,
}

impl SetKey for V4Key {
    const TYPE: u32 = concat_type([TYPE_IPV4_ADDR, TYPE_IPV4_ADDR, TYPE_INET_SERVICE]);
    const LEN: u32 = v4::LEN as u32;

    fn data(&self) -> Box<[u8]> {
        let mut b = [0u8; v4::LEN];
        b[v4::SRC].copy_from_slice(&self.src.octets());
        b[v4::DST].copy_from_slice(&self.dst.octets());
        b[v4::PORT].copy_from_slice(&port_slot(self.port));
        Box::new(b)
    }
}

/// `ipv6_addr . ipv6_addr . inet_service` (sets passive6 and active6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V6Key {
    /// Who opens the data connection.
    pub(crate) src: Ipv6Addr,
    /// Who accepts it.
    pub(crate) dst: Ipv6Addr,
    /// The destination port.
    pub(crate) port: u16,
}

impl SetKey for V6Key {
    const TYPE: u32 = concat_type([TYPE_IPV6_ADDR, TYPE_IPV6_ADDR, TYPE_INET_SERVICE]);
    const LEN: u32 = v6::LEN as u32;

    fn data(&self) -> Box<[u8]> {
        let mut b = [0u8; v6::LEN];
        b[v6::SRC].copy_from_slice(&self.src.octets());
        b[v6::DST].copy_from_slice(&self.dst.octets());
        b[v6::PORT].copy_from_slice(&port_slot(self.port));
        Box::new(b)
    }
}

/// The key of one pinhole element, of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// In passive4 or active4.
    V4(V4Key),
    /// In passive6 or active6.
    V6(V6Key),
}

/// What a pinhole set's key must look like (nft type and length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyShape {
    /// `NFTA_SET_KEY_TYPE`.
    pub(crate) ty: u32,
    /// `NFTA_SET_KEY_LEN`.
    pub(crate) len: u32,
}

impl Key {
    /// The key `src . dst . port`; `None` when the addresses are of different families.
    pub(crate) fn new(src: IpAddr, dst: IpAddr, port: u16) -> Option<Key> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Key::V4(V4Key { src, dst, port })),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Key::V6(V6Key { src, dst, port })),
            _ => None,
        }
    }

    /// The key the backend writes to probe the kernel: unspecified addresses
    /// and port 0, which no TCP packet can carry, so it never admits traffic.
    pub(crate) fn probe(v6: bool) -> Key {
        if v6 {
            Key::V6(V6Key { src: Ipv6Addr::UNSPECIFIED, dst: Ipv6Addr::UNSPECIFIED, port: 0 })
        } else {
            Key::V4(V4Key { src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, port: 0 })
        }
    }

    /// Whether this is the [`probe`](Key::probe) key.
    pub(crate) fn is_probe(&self) -> bool {
        *self == Key::probe(matches!(self, Key::V6(_)))
    }

    /// The shape of the keys of an IPv6 (`true`) or IPv4 set.
    pub(crate) const fn shape(v6: bool) -> KeyShape {
        if v6 {
            KeyShape { ty: V6Key::TYPE, len: V6Key::LEN }
        } else {
            KeyShape { ty: V4Key::TYPE, len: V4Key::LEN }
        }
    }

    /// The bytes the kernel stores.
    pub(crate) fn bytes(&self) -> Box<[u8]> {
        match self {
            Key::V4(k) => k.data(),
            Key::V6(k) => k.data(),
        }
    }

    /// `src`, `dst` and the port.
    pub(crate) fn parts(&self) -> (IpAddr, IpAddr, u16) {
        match *self {
            Key::V4(k) => (k.src.into(), k.dst.into(), k.port),
            Key::V6(k) => (k.src.into(), k.dst.into(), k.port),
        }
    }

    /// Reads key bytes from the kernel; the length says the family.
    pub(crate) fn decode(b: &[u8]) -> Result<Key, KeyError> {
        let length = || KeyError::Length(b.len());
        match b.len() {
            v4::LEN => Ok(Key::V4(V4Key {
                src: field::<4>(b, v4::SRC).ok_or_else(length)?.into(),
                dst: field::<4>(b, v4::DST).ok_or_else(length)?.into(),
                port: port_from_slot(field::<4>(b, v4::PORT).ok_or_else(length)?)?,
            })),
            v6::LEN => Ok(Key::V6(V6Key {
                src: field::<16>(b, v6::SRC).ok_or_else(length)?.into(),
                dst: field::<16>(b, v6::DST).ok_or_else(length)?.into(),
                port: port_from_slot(field::<4>(b, v6::PORT).ok_or_else(length)?)?,
            })),
            n => Err(KeyError::Length(n)),
        }
    }
}

/// The bytes of one field, if `b` holds them.
fn field<const N: usize>(b: &[u8], range: Range<usize>) -> Option<[u8; N]> {
    b.get(range)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn concatenated_types_are_what_nft_declares() {
        assert_eq!(V4Key::TYPE, (7 << 12) | (7 << 6) | 13);
        assert_eq!(V6Key::TYPE, (8 << 12) | (8 << 6) | 13);
        assert_eq!(Key::shape(false), KeyShape { ty: V4Key::TYPE, len: 12 });
        assert_eq!(Key::shape(true), KeyShape { ty: V6Key::TYPE, len: 36 });
    }

    #[test]
    fn ipv4_key_puts_the_port_big_endian_in_the_first_two_bytes_of_its_slot() {
        let k = Key::new(ip("192.0.2.10"), ip("198.51.100.20"), 2121).expect("same family");
        let b = k.bytes();
        // Read back from the kernel by the lab: c000020a c6336414 08490000.
        assert_eq!(hex(&b), "c000020ac633641408490000");
        assert_eq!(Key::decode(&b), Ok(k));
        assert_eq!(k.parts(), (ip("192.0.2.10"), ip("198.51.100.20"), 2121));
    }

    #[test]
    fn ipv6_key_is_36_bytes_with_the_port_slot_last() {
        let k = Key::new(ip("2001:db8:1::10"), ip("2001:db8:2::20"), 50000).expect("same family");
        let b = k.bytes();
        assert_eq!(b.len(), 36);
        assert_eq!(hex(&b[..16]), "20010db8000100000000000000000010");
        assert_eq!(hex(&b[16..32]), "20010db8000200000000000000000020");
        assert_eq!(&b[32..], &[0xc3, 0x50, 0, 0]);
        assert_eq!(Key::decode(&b), Ok(k));
    }

    #[test]
    fn port_extremes_round_trip() {
        for port in [0, 1, 255, 256, 65535] {
            let k = Key::new(ip("203.0.113.1"), ip("203.0.113.2"), port).expect("same family");
            assert_eq!(Key::decode(&k.bytes()), Ok(k));
        }
    }

    #[test]
    fn non_zero_port_padding_is_rejected() {
        // The port in the second half of its slot: stored by the kernel, never matched.
        let mut b = Key::new(ip("192.0.2.1"), ip("198.51.100.2"), 0).expect("same family").bytes().to_vec();
        b[10] = 0x08;
        b[11] = 0x49;
        assert_eq!(Key::decode(&b), Err(KeyError::PortPadding([0, 0, 0x08, 0x49])));
        let mut b6 = Key::new(ip("2001:db8::1"), ip("2001:db8::2"), 21).expect("same family").bytes().to_vec();
        b6[35] = 1;
        assert!(matches!(Key::decode(&b6), Err(KeyError::PortPadding(_))));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for n in [0, 4, 11, 13, 16, 35, 37, 64] {
            assert_eq!(Key::decode(&vec![0u8; n]), Err(KeyError::Length(n)), "{n} bytes");
        }
    }

    #[test]
    fn mixed_families_make_no_key() {
        assert_eq!(Key::new(ip("192.0.2.1"), ip("2001:db8::1"), 21), None);
    }

    #[test]
    fn the_probe_key_is_recognised_and_matches_no_traffic() {
        for v6 in [false, true] {
            let k = Key::probe(v6);
            assert!(k.is_probe());
            assert_eq!(k.parts().2, 0, "port 0 is never a TCP destination");
            assert!(k.parts().0.is_unspecified() && k.parts().1.is_unspecified());
        }
        assert!(!Key::new(ip("192.0.2.1"), ip("192.0.2.2"), 0).expect("same family").is_probe());
    }
}
