//! The filter on the interpreter: what it accepts, what it drops, and how it
//! compares with libpcap's program for `tcp port 21`.

use super::interp::{check, run, run_as};
use super::*;

// ---- frames -----------------------------------------------------------------

/// An Ethernet frame with in-band tags (TPIDs given, VLAN ids 100, 101, ...).
fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TCP header (no options) and a command line.
fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(b"USER anonymous\r\n");
    t
}

/// A UDP header and four bytes.
fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
    u
}

/// An IPv4 packet with `option_words` 32-bit words of options (IHL 5 + that).
fn ipv4(protocol: u8, option_words: u8, fragment: u16, l4: &[u8]) -> Vec<u8> {
    let ihl = 5 + option_words;
    let total = u16::from(ihl) * 4 + l4.len() as u16;
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&fragment.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0, 192, 0, 2, 2, 198, 51, 100, 2]);
    for _ in 0..option_words {
        h.extend_from_slice(&[1, 1, 1, 1]); // NOPs
    }
    h.extend_from_slice(l4);
    h
}

/// An IPv6 packet, 2001:db8::2 to 2001:db8::3.
fn ipv6(next_header: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next_header, 64]);
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    addr[15] = 2;
    h.extend_from_slice(&addr);
    addr[15] = 3;
    h.extend_from_slice(&addr);
    h.extend_from_slice(rest);
    h
}

/// IPv4 TCP, don't-fragment set.
fn v4_tcp(sport: u16, dport: u16) -> Vec<u8> {
    eth(&[], 0x0800, &ipv4(6, 0, 0x4000, &tcp(sport, dport)))
}

/// IPv6 TCP.
fn v6_tcp(sport: u16, dport: u16) -> Vec<u8> {
    eth(&[], 0x86dd, &ipv6(6, &tcp(sport, dport)))
}

// ---- programs ---------------------------------------------------------------

fn program(ports: &[u16]) -> Vec<Insn> {
    let filter = PortFilter::from_ports(ports.iter().copied()).expect("valid port list");
    let p = filter.program().expect("program builds");
    check(&p).expect("the kernel's checks pass");
    p
}

/// Whether `prog` keeps `frame`; a program of ours returns 0 or ACCEPT_LEN.
fn accepts(prog: &[Insn], frame: &[u8]) -> bool {
    match run(prog, frame).expect("runs") {
        0 => false,
        ACCEPT_LEN => true,
        other => panic!("unexpected return value {other}"),
    }
}

// ---- what is accepted and dropped ---------------------------------------------

#[test]
fn ipv4_either_port_matches() {
    let p = program(&[21]);
    assert!(accepts(&p, &v4_tcp(40000, 21)));
    assert!(accepts(&p, &v4_tcp(21, 40000)));
    assert!(!accepts(&p, &v4_tcp(40000, 20)));
    assert!(!accepts(&p, &v4_tcp(5001, 40000)));
    assert!(!accepts(&p, &v4_tcp(20, 22)));
}

#[test]
fn ipv4_header_length_5_to_15() {
    let p = program(&[21]);
    for option_words in 0..=10u8 {
        let ihl = 5 + option_words;
        assert!(accepts(&p, &eth(&[], 0x0800, &ipv4(6, option_words, 0, &tcp(40000, 21)))), "IHL {ihl}");
        assert!(accepts(&p, &eth(&[], 0x0800, &ipv4(6, option_words, 0, &tcp(21, 40000)))), "IHL {ihl}");
        assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(6, option_words, 0, &tcp(40000, 80)))), "IHL {ihl}");
    }
    // Options that read "ports 21, 21" where a fixed 20-byte header would
    // put the TCP ports must not fool the program.
    let mut ip = ipv4(6, 1, 0, &tcp(40000, 80));
    ip[20..24].copy_from_slice(&[0, 21, 0, 21]);
    assert!(!accepts(&p, &eth(&[], 0x0800, &ip)));
}

#[test]
fn ipv4_fragments() {
    let p = program(&[21]);
    // First fragment (more-fragments set, offset 0) carries the TCP header.
    assert!(accepts(&p, &eth(&[], 0x0800, &ipv4(6, 0, 0x2000, &tcp(40000, 21)))));
    assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(6, 0, 0x2000, &tcp(40000, 80)))));
    // Later fragments have no TCP header, whatever their bytes say.
    for fragment in [0x2001, 0x00b9, 0x1fff, 0x4001] {
        assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(6, 0, fragment, &tcp(21, 21)))), "{fragment:#x}");
    }
}

#[test]
fn udp_icmp_arp_and_other_ethertypes_dropped() {
    let p = program(&[21]);
    assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(17, 0, 0, &udp(40000, 21)))));
    assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(17, 0, 0, &udp(21, 21)))));
    assert!(!accepts(&p, &eth(&[], 0x0800, &ipv4(1, 0, 0, &[8, 0, 0, 0, 0, 21, 0, 21]))));
    assert!(!accepts(&p, &eth(&[], 0x86dd, &ipv6(17, &udp(40000, 21)))));
    assert!(!accepts(&p, &eth(&[], 0x86dd, &ipv6(58, &tcp(21, 21)))));
    // ARP, and a frame of an unknown EtherType, with bytes that look like port 21.
    let bait = [0u8, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21, 0, 21];
    assert!(!accepts(&p, &eth(&[], 0x0806, &bait)));
    assert!(!accepts(&p, &eth(&[], 0x88cc, &bait)));
    // An "IPv4" EtherType with a TCP header at the IPv6 offset, and the reverse.
    assert!(!accepts(&p, &eth(&[], 0x0800, &ipv6(6, &tcp(21, 21)))));
}

#[test]
fn ipv6_tcp_and_opaque_next_headers() {
    let p = program(&[21]);
    assert!(accepts(&p, &v6_tcp(40000, 21)));
    assert!(accepts(&p, &v6_tcp(21, 40000)));
    assert!(!accepts(&p, &v6_tcp(40000, 5001)));
    // ESP (50) and no-next-header (59) are not walked: dropped.
    for next_header in [50u8, 59] {
        assert!(!accepts(&p, &eth(&[], 0x86dd, &ipv6(next_header, &tcp(21, 21)))), "{next_header}");
    }
}

#[test]
fn ipv6_extension_headers_go_to_user_space() {
    let p = program(&[21]);
    // An extension header then TCP to port 80: accepted anyway; the decoder
    // in user space walks the chain and discards it.
    let mut chain = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
    chain.extend_from_slice(&tcp(40000, 80));
    for next_header in IPV6_EXTENSION_HEADERS {
        assert!(accepts(&p, &eth(&[], 0x86dd, &ipv6(next_header as u8, &chain))), "{next_header}");
    }
}

#[test]
fn in_band_vlan_tags() {
    let p = program(&[21]);
    for tags in [&[0x8100u16][..], &[0x88a8], &[0x9100], &[0x88a8, 0x8100], &[0x8100, 0x8100], &[0x9100, 0x8100]] {
        assert!(accepts(&p, &eth(tags, 0x0800, &ipv4(6, 2, 0, &tcp(40000, 21)))), "{tags:x?}");
        assert!(accepts(&p, &eth(tags, 0x86dd, &ipv6(6, &tcp(21, 40000)))), "{tags:x?}");
        assert!(!accepts(&p, &eth(tags, 0x0800, &ipv4(6, 0, 0, &tcp(40000, 80)))), "{tags:x?}");
        assert!(!accepts(&p, &eth(tags, 0x0800, &ipv4(17, 0, 0, &udp(40000, 21)))), "{tags:x?}");
    }
    // A third tag is not looked through (documented limit): dropped.
    assert!(!accepts(&p, &eth(&[0x88a8, 0x8100, 0x8100], 0x0800, &ipv4(6, 0, 0, &tcp(1, 21)))));
    // A tag the kernel moved to metadata is absent from the bytes: a plain frame.
    assert!(accepts(&p, &v4_tcp(1, 21)));
}

#[test]
fn truncated_frames() {
    let p = program(&[21]);
    let full = v4_tcp(40000, 21);
    // Cut anywhere before the end of the destination port: a load runs past
    // the end and the kernel drops the frame.
    for len in 0..38 {
        assert!(!accepts(&p, &full[..len]), "cut at {len}");
    }
    assert!(accepts(&p, &full[..38]));
    // A matching source port alone is enough (the destination is never read).
    assert!(accepts(&p, &v4_tcp(21, 1)[..36]));
    let v6 = v6_tcp(40000, 21);
    for len in 0..58 {
        assert!(!accepts(&p, &v6[..len]), "IPv6 cut at {len}");
    }
    assert!(accepts(&p, &v6[..58]));
}

#[test]
fn one_and_sixteen_ports_seventeen_refused() {
    let one = program(&[2121]);
    assert!(accepts(&one, &v4_tcp(40000, 2121)) && !accepts(&one, &v4_tcp(40000, 21)));

    let ports: Vec<u16> = (0..16).map(|i| 2100 + i * 7).collect();
    let p = program(&ports);
    for &port in &ports {
        assert!(accepts(&p, &v4_tcp(port, 40000)), "{port}");
        assert!(accepts(&p, &v6_tcp(40000, port)), "{port}");
    }
    for port in [21, 2099, 2101, 2206] {
        assert!(!accepts(&p, &v4_tcp(port, 40000)), "{port}");
    }

    let seventeen: Vec<u16> = (1..=17).collect();
    assert_eq!(PortFilter::from_ports(seventeen.clone()), Err(BuildError::TooManyPorts { max: 16, got: 17 }));
    assert!(ControlPorts::new(seventeen).is_err());
    assert_eq!(PortFilter::from_ports([]), Err(BuildError::NoPorts));
    // Duplicates collapse; ControlPorts gives the same program.
    assert_eq!(program(&[21, 21, 2121, 21]), program(&[2121, 21]));
    let from_control = PortFilter::new(&"21,2121".parse().expect("ports")).program().expect("builds");
    assert_eq!(from_control, program(&[21, 2121]));
}

#[test]
fn program_size_and_shape() {
    // 2 instructions a port, 43 for the rest.
    assert_eq!(program(&[21]).len(), 45);
    let sixteen: Vec<u16> = (1..=16).collect();
    let p = program(&sixteen);
    assert_eq!(p.len(), 75);
    assert_eq!(p.last(), Some(&Insn { code: op::RET | op::K, jt: 0, jf: 0, k: 0 }));
    assert!(p.iter().all(|i| i.code & 0x07 != op::LD || i.code & 0xe0 != op::ABS || (i.k as i32) >= 0));
}

// ---- libpcap --------------------------------------------------------------------

/// Parses `tcpdump -dd` output: `{ code, jt, jf, k },` per line, `#` comments.
fn parse_dd(text: &str) -> Vec<Insn> {
    let number = |s: &str| -> u32 {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => s.parse(),
        }
        .unwrap_or_else(|e| panic!("bad number {s:?}: {e}"))
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let inner = l.trim_end_matches(',').trim_start_matches('{').trim_end_matches('}');
            let f: Vec<u32> = inner.split(',').map(number).collect();
            assert_eq!(f.len(), 4, "line {l:?}");
            Insn { code: f[0] as u16, jt: f[1] as u8, jf: f[2] as u8, k: f[3] }
        })
        .collect()
}

fn libpcap_tcp_port_21() -> Vec<Insn> {
    let p = parse_dd(include_str!("tcpdump-tcp-port-21.dd"));
    assert_eq!(p.len(), 20);
    check(&p).expect("libpcap's program passes the kernel's checks");
    p
}

#[test]
fn interpreter_runs_libpcaps_program_as_expected() {
    // libpcap's program is the reference for the interpreter itself.
    let lp = libpcap_tcp_port_21();
    let keep = |f: &[u8]| run(&lp, f).expect("runs") != 0;
    assert!(keep(&v4_tcp(40000, 21)) && keep(&v4_tcp(21, 40000)));
    assert!(keep(&eth(&[], 0x0800, &ipv4(6, 10, 0, &tcp(21, 9)))));
    assert!(keep(&v6_tcp(40000, 21)) && keep(&v6_tcp(21, 1)));
    assert!(!keep(&v4_tcp(40000, 80)) && !keep(&v6_tcp(40000, 80)));
    assert!(!keep(&eth(&[], 0x0800, &ipv4(6, 0, 0x2001, &tcp(21, 21)))));
    assert!(!keep(&eth(&[], 0x0800, &ipv4(17, 0, 0, &udp(21, 21)))));
    assert_eq!(run(&lp, &v4_tcp(40000, 21)), Ok(ACCEPT_LEN));
}

#[test]
fn agrees_with_libpcap_except_where_documented() {
    let lp = libpcap_tcp_port_21();
    let ours = program(&[21]);
    let verdicts = |f: &[u8]| (run(&lp, f).expect("libpcap runs"), run(&ours, f).expect("ours runs"));

    let mut frames = vec![
        eth(&[], 0x0800, &ipv4(17, 0, 0, &udp(21, 21))),
        eth(&[], 0x0800, &ipv4(1, 0, 0, &[8, 0, 0, 0, 0, 21, 0, 21])),
        eth(&[], 0x0806, &[0; 28]),
        eth(&[], 0x86dd, &ipv6(17, &udp(21, 21))),
    ];
    // A deterministic sweep: ports near and at 21, every IHL, fragment
    // fields, truncation points.
    let ports = [0u16, 1, 20, 21, 22, 256 + 21, 5376, 40000, 65535];
    for (i, &sport) in ports.iter().enumerate() {
        for &dport in &ports {
            let option_words = ((i * 3 + usize::from(dport)) % 11) as u8;
            let fragment = [0u16, 0x4000, 0x2000, 0x2001, 0x1fff][(sport as usize + dport as usize) % 5];
            frames.push(eth(&[], 0x0800, &ipv4(6, option_words, fragment, &tcp(sport, dport))));
            frames.push(v6_tcp(sport, dport));
        }
    }
    let cuts: Vec<Vec<u8>> = frames
        .iter()
        .flat_map(|f| [13, 20, 33, 35, 37, 55, 57].into_iter().filter(|&c| c < f.len()).map(|c| f[..c].to_vec()))
        .collect();
    frames.extend(cuts);
    for f in &frames {
        let (theirs, mine) = verdicts(f);
        assert_eq!(theirs, mine, "disagreement on {f:02x?}");
    }

    // Where we differ on purpose: in-band VLAN tags (libpcap needs `vlan`
    // in the expression to look inside) and IPv6 extension headers (left to
    // user space).
    let tagged = eth(&[0x8100], 0x0800, &ipv4(6, 0, 0, &tcp(1, 21)));
    assert_eq!(verdicts(&tagged), (0, ACCEPT_LEN));
    let mut hop_by_hop = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
    hop_by_hop.extend_from_slice(&tcp(1, 80));
    assert_eq!(verdicts(&eth(&[], 0x86dd, &ipv6(0, &hop_by_hop))), (0, ACCEPT_LEN));
}

#[test]
fn outgoing_only_programs_keep_just_the_frames_this_host_sent() {
    let ports: ControlPorts = "21".parse().expect("ports");
    let prog = PortFilter::new(&ports).directions(Directions::Outgoing).program().expect("builds");
    let frame = v4_tcp(40000, 21);
    assert_eq!(run_as(&prog, &frame, PACKET_OUTGOING), Ok(ACCEPT_LEN));
    for other in [0, 1, 2, 3] {
        // host, broadcast, multicast, another host's frame
        assert_eq!(run_as(&prog, &frame, other), Ok(0), "pkttype {other}");
    }
    // Still only control ports, in both families.
    assert_eq!(run_as(&prog, &v4_tcp(40000, 5001), PACKET_OUTGOING), Ok(0));
    assert_eq!(run_as(&prog, &v6_tcp(21, 40000), PACKET_OUTGOING), Ok(ACCEPT_LEN));
    // The default program ignores the packet type.
    let all = PortFilter::new(&ports).program().expect("builds");
    assert_eq!(run_as(&all, &frame, 0), Ok(ACCEPT_LEN));
    assert_eq!(run_as(&all, &frame, PACKET_OUTGOING), Ok(ACCEPT_LEN));
}
