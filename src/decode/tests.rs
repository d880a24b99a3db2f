use super::*;

fn seg<'a>(src: &str, dst: &str, payload: &'a [u8]) -> Segment<'a> {
    Segment {
        src: src.parse().expect("test address"),
        dst: dst.parse().expect("test address"),
        seq: 1000,
        ack: 2000,
        flags: TcpFlags { ack: true, ..TcpFlags::default() },
        payload,
    }
}

const PORT_LINE: &[u8] = b"PORT 192,0,2,10,195,80\r\n";

#[test]
fn ethernet_ipv4_round_trip() {
    let s = seg("192.0.2.10:40000", "198.51.100.20:21", PORT_LINE);
    let frame = emit(LinkType::Ethernet, &[], &s).expect("emit");
    assert_eq!(decode(LinkType::Ethernet, &frame), Ok(s));
}

#[test]
fn every_link_type_round_trips_v4_and_v6() {
    let v4 = seg("192.0.2.10:40000", "198.51.100.20:21", PORT_LINE);
    let v6 = seg("[2001:db8:1::10]:40000", "[2001:db8:2::20]:21", PORT_LINE);
    for link in
        [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null, LinkType::Loop]
    {
        for s in [v4, v6] {
            let frame = emit(link, &[], &s).expect("emit");
            assert_eq!(decode(link, &frame), Ok(s), "link {link:?}, {}", s.src);
        }
    }
    let frame = emit(LinkType::Ipv4, &[], &v4).expect("emit");
    assert_eq!(decode(LinkType::Ipv4, &frame), Ok(v4));
    let frame = emit(LinkType::Ipv6, &[], &v6).expect("emit");
    assert_eq!(decode(LinkType::Ipv6, &frame), Ok(v6));
    assert_eq!(emit(LinkType::Ipv4, &[], &v6), Err(EmitError::Link(LinkType::Ipv4)));
}

#[test]
fn vlan_and_qinq_tags_are_skipped() {
    let s = seg("[2001:db8:1::10]:40000", "[2001:db8:2::20]:21", PORT_LINE);
    for tags in [&[100u16][..], &[200, 300][..]] {
        let frame = emit(LinkType::Ethernet, tags, &s).expect("emit");
        assert_eq!(decode(LinkType::Ethernet, &frame), Ok(s), "tags {tags:?}");
    }
}

#[test]
fn ethernet_padding_is_not_payload() {
    let s = seg("192.0.2.10:40000", "198.51.100.20:21", b"");
    let mut frame = emit(LinkType::Ethernet, &[], &s).expect("emit");
    assert_eq!(frame.len(), 54);
    frame.resize(60, 0); // minimum Ethernet frame, zero-padded
    assert_eq!(decode(LinkType::Ethernet, &frame).map(|d| d.payload.len()), Ok(0));
}

#[test]
fn null_link_in_big_endian_host_order() {
    let s = seg("192.0.2.10:40000", "198.51.100.20:21", PORT_LINE);
    let mut frame = emit(LinkType::Null, &[], &s).expect("emit");
    frame[..4].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(decode(LinkType::Null, &frame), Ok(s));
    frame[..4].copy_from_slice(&7u32.to_le_bytes()); // AF_IMPLINK: not IP
    assert_eq!(decode(LinkType::Null, &frame), Err(Skip::NotIp));
}

#[test]
fn every_prefix_of_a_frame_is_refused_without_panic() {
    let s = seg("[2001:db8:1::10]:40000", "[2001:db8:2::20]:21", PORT_LINE);
    for link in [LinkType::Ethernet, LinkType::LinuxSll2, LinkType::Null] {
        let frame = emit(link, &[7], &s).or_else(|_| emit(link, &[], &s)).expect("emit");
        for len in 0..frame.len() {
            let got = decode(link, &frame[..len]);
            assert!(
                matches!(got, Err(Skip::Truncated | Skip::Malformed | Skip::NotIp)),
                "{link:?} prefix {len}: {got:?}"
            );
        }
    }
}

#[test]
fn ipv4_fragments_are_skipped() {
    let s = seg("192.0.2.10:40000", "198.51.100.20:21", PORT_LINE);
    let mut ip = emit_ip(&s).expect("emit");
    ip[6] |= 0x20; // more fragments
    fix_ipv4_checksum(&mut ip);
    assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::Ipv4Fragment));
    ip[6] = 0;
    ip[7] = 3; // offset 24 bytes: a later fragment
    fix_ipv4_checksum(&mut ip);
    assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::Ipv4Fragment));
}

fn fix_ipv4_checksum(ip: &mut [u8]) {
    ip[10] = 0;
    ip[11] = 0;
    let mut sum = 0u32;
    for pair in ip[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Insert an 8-byte IPv6 extension header of type `ext` before the TCP header.
fn with_ipv6_extension(ip: &[u8], ext: u8, body: [u8; 6]) -> Vec<u8> {
    let mut out = ip[..40].to_vec();
    let tcp_next = out[6];
    out[6] = ext;
    let plen = u16::from_be_bytes([out[4], out[5]]) + 8;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out.push(tcp_next);
    if ext == 44 {
        out.push(0); // fragment header: reserved byte, not a length
    } else {
        out.push(0); // hdr ext len: 8 octets in all
    }
    out.extend_from_slice(&body);
    out.extend_from_slice(&ip[40..]);
    out
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let s = seg("[2001:db8:1::10]:40000", "[2001:db8:2::20]:21", PORT_LINE);
    let ip = emit_ip(&s).expect("emit");
    // Hop-by-hop options with a PadN option filling the 6 bytes.
    let hop = with_ipv6_extension(&ip, 0, [1, 4, 0, 0, 0, 0]);
    assert_eq!(decode(LinkType::RawIp, &hop), Ok(s));
    // Destination options.
    let dst = with_ipv6_extension(&ip, 60, [1, 4, 0, 0, 0, 0]);
    assert_eq!(decode(LinkType::RawIp, &dst), Ok(s));
}

#[test]
fn ipv6_fragments_are_skipped() {
    let s = seg("[2001:db8:1::10]:40000", "[2001:db8:2::20]:21", PORT_LINE);
    let ip = emit_ip(&s).expect("emit");
    // Fragment header: offset 0, M flag set, identification 1.
    let frag = with_ipv6_extension(&ip, 44, [0, 1, 0, 0, 0, 1]);
    assert_eq!(decode(LinkType::RawIp, &frag), Err(Skip::Ipv6Fragment));
}

#[test]
fn non_tcp_and_non_ip_are_told_apart() {
    let s = seg("192.0.2.10:40000", "198.51.100.20:21", b"");
    let mut ip = emit_ip(&s).expect("emit");
    ip[9] = 17; // claim UDP: etherparse then reads a UDP header
    fix_ipv4_checksum(&mut ip);
    assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::NotTcp));
    ip[9] = 132; // SCTP: no transport slice at all
    fix_ipv4_checksum(&mut ip);
    assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::NotTcp));

    let mut arp = emit(LinkType::Ethernet, &[], &s).expect("emit");
    arp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    assert_eq!(decode(LinkType::Ethernet, &arp), Err(Skip::NotIp));
}

#[test]
fn linktype_numbers() {
    assert_eq!(LinkType::from_linktype(1), Some(LinkType::Ethernet));
    assert_eq!(LinkType::from_linktype(113), Some(LinkType::LinuxSll));
    assert_eq!(LinkType::from_linktype(276), Some(LinkType::LinuxSll2));
    assert_eq!(LinkType::from_linktype(101), Some(LinkType::RawIp));
    assert_eq!(LinkType::from_linktype(0), Some(LinkType::Null));
    assert_eq!(LinkType::from_linktype(105), None); // 802.11
}

#[test]
fn skip_table_is_indexed_by_the_enum() {
    for (i, skip) in Skip::ALL.iter().enumerate() {
        assert_eq!(skip.index(), i);
        assert!(!skip.code().is_empty());
    }
}
