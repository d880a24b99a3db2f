//! The live capture in network namespaces: only control-port traffic reaches
//! user space (a bulk transfer through the same interface yields no frame,
//! not even to a capture opened in the middle of it), with kernel timestamps,
//! directions and VLAN tags; GSO frames arrive whole, or flagged when the
//! buffer is short; missing interfaces and missing privileges are named; a
//! capture survives its interface going down and tells when it was deleted
//! or re-created. Needs root (namespaces); fails without it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use ftp_pinhole::capture::{Capture, CaptureError, Health, KernelStats, PacketDirection, BUFFER_LEN};
use ftp_pinhole::decode::{decode, emit, LinkType, Segment, TcpFlags};
use ftp_pinhole::time::Timestamp;
use ftp_pinhole::track::ControlPorts;

use common::netns::{addr, veth, Netns};
use common::topology::{Topology, CLIENT4, CLIENT6, GW_CLIENT_IF, SERVER4, SERVER6};
use common::traffic::{bulk, converse, reply_to};

/// The commands of the test conversations.
const LINES: [&str; 6] = ["USER anonymous", "PASS guest@", "SYST", "PWD", "EPSV", "QUIT"];

// ---- reading a capture ------------------------------------------------------

/// A frame read from a capture, kept.
#[derive(Debug, Clone)]
struct Seen {
    bytes: Vec<u8>,
    wire_len: usize,
    at: Timestamp,
    direction: PacketDirection,
    vlan: Option<u16>,
}

impl Seen {
    /// (source, destination, payload) if the frame decodes to a TCP segment.
    fn tcp(&self) -> Option<(SocketAddr, SocketAddr, &[u8])> {
        decode(LinkType::Ethernet, &self.bytes).ok().map(|s| (s.src, s.dst, s.payload))
    }

    /// An IPv6 packet whose first next header is an extension header (MLD
    /// reports carry hop-by-hop options): the filter passes those by design.
    fn ipv6_extension(&self) -> bool {
        self.bytes.get(12..14) == Some(&[0x86, 0xdd][..])
            && self.bytes.get(20).is_some_and(|nh| [0, 43, 44, 51, 60, 135, 139, 140].contains(nh))
    }
}

/// The bytes `from` sent, reassembled from the captured segments by
/// sequence number: a retransmission (seen now and then under load) counts
/// once, and a gap fails the test.
fn stream(seen: &[Seen], from: SocketAddr) -> Vec<u8> {
    let segments: Vec<Segment<'_>> =
        seen.iter().filter_map(|f| decode(LinkType::Ethernet, &f.bytes).ok()).filter(|s| s.src == from).collect();
    let isn = segments.iter().find(|s| s.flags.syn).unwrap_or_else(|| panic!("no SYN from {from}")).seq;
    let mut by_offset = BTreeMap::new();
    for s in segments.iter().filter(|s| !s.payload.is_empty()) {
        by_offset.entry(s.seq.wrapping_sub(isn).wrapping_sub(1) as usize).or_insert(s.payload);
    }
    let mut bytes = Vec::new();
    for (offset, payload) in by_offset {
        assert!(offset <= bytes.len(), "bytes {}..{offset} from {from} were not captured", bytes.len());
        if let Some(new) = payload.get(bytes.len() - offset..) {
            bytes.extend_from_slice(new);
        }
    }
    bytes
}

/// Waits at most `timeout` for the capture to be readable (or in error).
fn readable(cap: &Capture, timeout: Duration) -> bool {
    let mut p = libc::pollfd { fd: cap.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd, the local `p`, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

/// Everything queued now, and what arrives until `quiet` passes without a
/// frame; at most `max` frames and `limit` in all. An error fails the test.
fn drain(cap: &mut Capture, buf_len: usize, quiet: Duration, limit: Duration, max: usize) -> Vec<Seen> {
    let mut buf = vec![0u8; buf_len];
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < max && start.elapsed() < limit {
        match cap.recv(&mut buf) {
            Ok(Some(p)) => seen.push(Seen {
                bytes: p.data.to_vec(),
                wire_len: p.wire_len,
                at: p.at,
                direction: p.direction,
                vlan: p.vlan,
            }),
            Ok(None) => {
                if !readable(cap, quiet) {
                    break;
                }
            }
            Err(e) => panic!("recv on {}: {e}", cap.interface()),
        }
    }
    seen
}

/// Reads `cap` on a thread until `stop` is set and the queue is empty.
fn reader(mut cap: Capture, buf_len: usize, stop: Arc<AtomicBool>) -> JoinHandle<(Capture, Vec<Seen>)> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) && seen.len() < 1_000_000 {
            let stopping = stop.load(Ordering::SeqCst);
            let got = drain(&mut cap, buf_len, Duration::from_millis(20), Duration::from_secs(5), 100_000);
            let idle = got.is_empty();
            seen.extend(got);
            if stopping && idle {
                break;
            }
        }
        (cap, seen)
    })
}

/// Received plus transmitted packets of `dev` in `ns`, as the interface counts them.
fn link_packets(ns: &Netns, dev: &str) -> u64 {
    let out = ns.ok(&["ip", "-s", "-j", "link", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    let stats = &v[0]["stats64"];
    stats["rx"]["packets"].as_u64().expect("rx packets") + stats["tx"]["packets"].as_u64().expect("tx packets")
}

/// Wall clock now.
fn now() -> Timestamp {
    Timestamp::from_unix_duration(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970"))
}

/// `ip:port`.
fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("address"), port)
}

/// Opens a capture of port 21 on `dev` inside `ns`.
fn open_in(ns: &Netns, dev: &str) -> Result<Capture, CaptureError> {
    let dev = dev.to_string();
    ns.within(move || Capture::open(&dev, &ControlPorts::default()))
}

// ---- (1) control traffic in, bulk out -------------------------------------------

#[test]
fn control_port_frames_reach_user_space_and_bulk_frames_do_not() {
    let topo = Topology::new("cap1");
    let t0 = now();
    let mut cap = open_in(&topo.gateway, GW_CLIENT_IF).expect("open capture on gc0");
    let wire_before = link_packets(&topo.gateway, GW_CLIENT_IF);

    let v4 = converse(&topo.client, &topo.server, sock(SERVER4, 21), &LINES);
    let v6 = converse(&topo.client, &topo.server, sock(SERVER6, 21), &LINES);
    const BULK: usize = 8 << 20;
    assert_eq!(bulk(&topo.client, &topo.server, sock(SERVER4, 5001), BULK), BULK);
    assert_eq!(bulk(&topo.client, &topo.server, sock(SERVER6, 5001), BULK), BULK);
    let t1 = now();
    // Read late: a kernel timestamp is the arrival time, not the read time.
    thread::sleep(Duration::from_millis(300));
    let seen = drain(&mut cap, BUFFER_LEN, Duration::from_millis(200), Duration::from_secs(10), 10_000);
    let t_read = now(); // after the last read
    let stats = cap.stats().expect("stats");
    let wire = link_packets(&topo.gateway, GW_CLIENT_IF) - wire_before;

    let (mut control, mut bulk_frames, mut extension, mut other) = (0, 0, 0, Vec::new());
    for f in &seen {
        assert!(f.at >= t0 && f.at <= t_read, "timestamp {} outside [{t0}, {t_read}]", f.at);
        if f.tcp().is_some() {
            // Read at least 300 ms after t1: stamped on arrival, not on read.
            assert!(f.at <= t1, "TCP frame at {} after the traffic ended at {t1}", f.at);
        }
        assert_eq!(f.vlan, None);
        assert_eq!(f.wire_len, f.bytes.len(), "not truncated");
        match f.tcp() {
            Some((src, dst, _)) if dst.port() == 21 => {
                control += 1;
                assert_eq!(f.direction, PacketDirection::Incoming, "client to server arrives on gc0");
                assert!(src == v4.client || src == v6.client, "from {src}");
            }
            Some((src, dst, _)) if src.port() == 21 => {
                control += 1;
                assert_eq!(f.direction, PacketDirection::Outgoing, "server to client leaves by gc0");
                assert!(dst == v4.client || dst == v6.client, "to {dst}");
            }
            Some((src, dst, _)) if src.port() == 5001 || dst.port() == 5001 => bulk_frames += 1,
            _ if f.ipv6_extension() => {
                // MLD reports: from the client (multicast, Other) or the
                // gateway itself (Outgoing); never addressed to this host alone.
                assert_ne!(f.direction, PacketDirection::Incoming);
                extension += 1;
            }
            _ => other.push(f.bytes.clone()),
        }
    }
    println!(
        "gc0: {wire} frames on the interface; {} in user space: {control} control, {bulk_frames} bulk, \
         {extension} IPv6 with extension headers; kernel stats {stats:?}",
        seen.len()
    );
    assert_eq!(bulk_frames, 0, "no bulk frame may reach user space");
    assert!(other.is_empty(), "unexpected frames: {other:02x?}");
    assert_eq!(stats, KernelStats { packets: seen.len() as u64, drops: 0 }, "the kernel passed exactly what was read");
    assert!(wire > 2 * (BULK as u64 / 65_536), "the bulk transfers crossed gc0 ({wire} frames)");
    let sent: String = LINES.iter().map(|l| format!("{l}\r\n")).collect();
    let replies: String = LINES.iter().map(|l| reply_to(l)).collect();
    for (conversation, server) in [(&v4, sock(SERVER4, 21)), (&v6, sock(SERVER6, 21))] {
        assert_eq!(String::from_utf8_lossy(&stream(&seen, conversation.client)), sent, "{conversation:?}");
        assert_eq!(String::from_utf8_lossy(&stream(&seen, server)), replies, "{conversation:?}");
        assert_eq!((conversation.sent, conversation.received), (sent.len(), replies.len()));
    }
    // Handshake, a segment a line each way, the close: at least 2 * 6 + 3 per connection.
    assert!(control >= 2 * (2 * LINES.len() + 3), "{control} control frames");
}

#[test]
fn captures_opened_during_a_bulk_transfer_never_see_a_bulk_frame() {
    // The socket is created with protocol 0, filtered, then bound: there is
    // no moment when it receives unfiltered. (With bind and filter swapped,
    // this test read 50 to 63 bulk frames over about 40 opens.)
    let topo = Topology::new("cap7");
    let done = Arc::new(AtomicBool::new(false));
    let (opens, frames, bulk_frames) = thread::scope(|s| {
        let finished = done.clone();
        let (client, server) = (&topo.client, &topo.server);
        let transfer = s.spawn(move || {
            let got = bulk(client, server, sock(SERVER4, 5001), 2 << 30);
            finished.store(true, Ordering::SeqCst);
            got
        });
        let stop = done.clone();
        let counts = topo.gateway.within(move || {
            let (start, mut opens, mut frames, mut bulk_frames) = (Instant::now(), 0, 0, 0);
            let mut buf = vec![0u8; BUFFER_LEN];
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(20) && opens < 100_000 {
                let mut cap = Capture::open(GW_CLIENT_IF, &ControlPorts::default()).expect("open");
                opens += 1;
                for _ in 0..1000 {
                    match cap.recv(&mut buf).expect("recv") {
                        Some(p) => {
                            frames += 1;
                            let is_bulk = decode(LinkType::Ethernet, p.data)
                                .is_ok_and(|seg| seg.src.port() == 5001 || seg.dst.port() == 5001);
                            bulk_frames += usize::from(is_bulk);
                        }
                        None => break,
                    }
                }
            }
            (opens, frames, bulk_frames)
        });
        assert_eq!(transfer.join().expect("transfer"), 2 << 30);
        counts
    });
    println!("gc0, 2 GiB to port 5001: {opens} captures opened during it, {frames} frames read, {bulk_frames} bulk");
    assert!(opens >= 20, "only {opens} opens during the transfer");
    assert_eq!(bulk_frames, 0);
}

// ---- (2) GSO frames ---------------------------------------------------------------

#[test]
fn gso_frames_arrive_whole_or_flagged_truncated() {
    const SHORT: usize = 2048;
    let topo = Topology::new("cap2");
    let whole = open_in(&topo.gateway, GW_CLIENT_IF).expect("open");
    let short = open_in(&topo.gateway, GW_CLIENT_IF).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let whole_reader = reader(whole, BUFFER_LEN, stop.clone());
    let short_reader = reader(short, SHORT, stop.clone());

    // 4 MiB through a "control connection": the filter passes all of it.
    const BYTES: usize = 4 << 20;
    assert_eq!(bulk(&topo.client, &topo.server, sock(SERVER4, 21), BYTES), BYTES);
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let (whole, whole_seen) = whole_reader.join().expect("reader");
    let (short, short_seen) = short_reader.join().expect("reader");
    let (whole_stats, short_stats) = (whole.stats().expect("stats"), short.stats().expect("stats"));

    let longest = whole_seen.iter().map(|f| f.wire_len).max().unwrap_or(0);
    let truncated = short_seen.iter().filter(|f| f.wire_len > f.bytes.len()).count();
    println!(
        "gc0, 4 MiB to port 21: {} frames with a {BUFFER_LEN}-byte buffer (longest {longest} bytes, none cut), \
         {} with a {SHORT}-byte buffer ({truncated} flagged truncated); stats {whole_stats:?} / {short_stats:?}",
        whole_seen.len(),
        short_seen.len()
    );
    assert!(longest > 16_384, "GSO frames longer than the MTU expected, longest {longest}");
    assert!(whole_seen.iter().all(|f| f.wire_len == f.bytes.len()), "a full-size buffer never truncates");
    for f in &short_seen {
        if f.wire_len > SHORT {
            assert_eq!(f.bytes.len(), SHORT, "cut to the buffer");
        } else {
            assert_eq!(f.bytes.len(), f.wire_len);
        }
    }
    assert!(truncated > 0);
    assert_eq!(whole_stats.drops + short_stats.drops, 0);
    // Both sockets saw the same TCP frames: the same lengths. (Not always
    // in the same order: frames received and sent on different CPUs reach
    // the two sockets interleaved differently. MLD reports may arrive
    // between the two opens.)
    let lengths = |s: &[Seen]| {
        let mut l: Vec<usize> = s.iter().filter(|f| !f.ipv6_extension()).map(|f| f.wire_len).collect();
        l.sort_unstable();
        l
    };
    assert_eq!(lengths(&whole_seen), lengths(&short_seen));
    // The captured bytes decode and carry the whole transfer.
    let client = whole_seen.iter().find_map(|f| f.tcp().filter(|(_, dst, _)| dst.port() == 21)).expect("a segment").0;
    let sent = stream(&whole_seen, client);
    assert_eq!(sent.len(), BYTES);
    assert!(sent.iter().all(|&b| b == 0x5a));
}

// ---- VLAN tags ------------------------------------------------------------------------------

/// Sends raw Ethernet frames out of `dev` in `ns` (a packet socket, from Python).
fn inject(ns: &Netns, dev: &str, frames: &[Vec<u8>]) {
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
                  s.bind((sys.argv[1], 0))\n\
                  for h in sys.argv[2:]:\n    s.send(bytes.fromhex(h))\n";
    let hex: Vec<String> = frames.iter().map(|f| f.iter().map(|b| format!("{b:02x}")).collect()).collect();
    let mut cmd = vec!["python3", "-c", script, dev];
    cmd.extend(hex.iter().map(String::as_str));
    ns.ok(&cmd);
}

/// The link address of `dev` in `ns`.
fn mac(ns: &Netns, dev: &str) -> [u8; 6] {
    let out = ns.ok(&["ip", "-j", "link", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    let text = v[0]["address"].as_str().expect("address");
    let bytes: Vec<u8> = text.split(':').map(|h| u8::from_str_radix(h, 16).expect("hex")).collect();
    bytes.try_into().expect("six bytes")
}

#[test]
fn vlan_tag_from_metadata_and_inner_qinq_tag_in_the_bytes() {
    let topo = Topology::new("cap8");
    let mut cap = open_in(&topo.gateway, GW_CLIENT_IF).expect("open");
    let gateway_mac = mac(&topo.gateway, GW_CLIENT_IF);
    let mut frames = Vec::new();
    for (client, server) in [(CLIENT4, SERVER4), (CLIENT6, SERVER6)] {
        for tags in [&[][..], &[100], &[200, 300]] {
            for port in [21, 5001] {
                let seg = Segment {
                    src: sock(client, 40000),
                    dst: sock(server, port),
                    seq: 1,
                    ack: 1,
                    flags: TcpFlags { ack: true, ..TcpFlags::default() },
                    payload: b"NOOP\r\n",
                };
                let mut f = emit(LinkType::Ethernet, tags, &seg).expect("emit");
                f[..6].copy_from_slice(&gateway_mac);
                frames.push(f);
            }
        }
    }
    inject(&topo.client, "eth0", &frames);
    let seen = drain(&mut cap, BUFFER_LEN, Duration::from_millis(200), Duration::from_secs(5), 100);
    // The untagged segments are routed on to the server, which answers with
    // a reset that leaves by gc0: keep what arrived.
    let tcp: Vec<&Seen> =
        seen.iter().filter(|f| !f.ipv6_extension() && f.direction == PacketDirection::Incoming).collect();
    let summary: Vec<(Option<u16>, u16)> =
        tcp.iter().map(|f| (f.vlan, u16::from_be_bytes([f.bytes[12], f.bytes[13]]))).collect();
    let shown: Vec<String> = summary.iter().map(|(vlan, et)| format!("{vlan:?}/{et:#06x}")).collect();
    println!(
        "gc0, 12 frames injected (untagged, 802.1Q 100, QinQ 200/300; IPv4, IPv6; ports 21, 5001): \
         {} passed the filter, VLAN/EtherType: {}",
        tcp.len(),
        shown.join(" ")
    );
    // Port 21 only: untagged; the 802.1Q tag in metadata, not in the bytes;
    // the outer QinQ tag in metadata, the inner one still in the bytes.
    let want = [
        (None, 0x0800),
        (Some(100), 0x0800),
        (Some(200), 0x8100),
        (None, 0x86dd),
        (Some(100), 0x86dd),
        (Some(200), 0x8100),
    ];
    assert_eq!(summary, want);
    let others = seen.iter().filter(|f| !f.ipv6_extension() && f.direction != PacketDirection::Incoming);
    assert!(others.into_iter().all(|f| f.tcp().is_some_and(|(src, _, _)| src.port() == 21)), "only replies leave");
    let inner = tcp.iter().find(|f| f.vlan == Some(200)).expect("QinQ frame");
    assert_eq!(inner.bytes[14..16], [0x01, 0x2c], "inner VLAN id 300");
}

// ---- (3) missing interface ------------------------------------------------------------

#[test]
fn an_interface_without_ethernet_framing_is_refused_at_open() {
    let ns = Netns::new("captun");
    ns.ok(&["ip", "tuntap", "add", "mode", "tun", "name", "tun0"]);
    ns.ok(&["ip", "link", "set", "tun0", "up"]);
    match open_in(&ns, "tun0") {
        Err(e @ CaptureError::NotEthernet { .. }) => {
            assert!(e.to_string().contains("tun0") && e.to_string().contains("not an Ethernet interface"), "{e}")
        }
        other => panic!("expected NotEthernet, got {other:?}"),
    }
    // Loopback frames carry an Ethernet header: accepted.
    assert!(open_in(&ns, "lo").is_ok());
}

#[test]
fn a_missing_interface_is_named() {
    let ns = Netns::new("cap3");
    for name in ["fp-nope0", "a-name-far-too-long-for-linux"] {
        match open_in(&ns, name) {
            Err(e @ CaptureError::NoSuchInterface { .. }) => {
                assert_eq!(e.interface(), name);
                assert_eq!(e.to_string(), format!("cannot capture on {name}: no network interface of that name"));
            }
            other => panic!("{name}: expected NoSuchInterface, got {other:?}"),
        }
    }
}

// ---- (4) down, up, deleted, re-created ------------------------------------------------

/// Namespace `gw` with `cap0`, joined to `peer`'s `eth0`, 203.0.113.0/24.
fn pair(gw: &Netns, peer: &Netns) {
    veth(gw, "cap0", peer, "eth0");
    addr(gw, "cap0", "203.0.113.1/24");
    addr(peer, "eth0", "203.0.113.2/24");
}

/// A conversation from `peer` to port 21 on `gw`; the frames `cap` read.
fn talk_and_read(gw: &Netns, peer: &Netns, cap: &mut Capture) -> usize {
    converse(peer, gw, sock("203.0.113.1", 21), &LINES);
    drain(cap, BUFFER_LEN, Duration::from_millis(200), Duration::from_secs(5), 1000)
        .iter()
        .filter(|f| f.tcp().is_some_and(|(s, d, _)| s.port() == 21 || d.port() == 21))
        .count()
}

/// Calls `recv` for `window` (bounded): how many times it reported the interface down.
fn downs_within(cap: &mut Capture, window: Duration) -> usize {
    let mut buf = vec![0u8; BUFFER_LEN];
    let (start, mut downs) = (Instant::now(), 0);
    while start.elapsed() < window {
        match cap.recv(&mut buf) {
            Err(CaptureError::InterfaceDown { name }) => {
                assert_eq!(name, "cap0");
                downs += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    downs
}

#[test]
fn interface_down_is_reported_once_and_capture_resumes_after_up() {
    let gw = Netns::new("cap4g");
    let peer = Netns::new("cap4p");
    pair(&gw, &peer);

    // Opened while down: fine, the first read says so.
    gw.ok(&["ip", "link", "set", "cap0", "down"]);
    let mut cap = open_in(&gw, "cap0").expect("open on a down interface");
    assert_eq!(downs_within(&mut cap, Duration::from_millis(300)), 1);
    gw.ok(&["ip", "link", "set", "cap0", "up"]);
    let first = talk_and_read(&gw, &peer, &mut cap);
    assert!(first >= 15, "{first} frames after the first up");

    gw.ok(&["ip", "link", "set", "cap0", "down"]);
    assert_eq!(downs_within(&mut cap, Duration::from_millis(500)), 1, "reported once");
    assert_eq!(cap.health(), Health::Same);
    gw.ok(&["ip", "link", "set", "cap0", "up"]);
    let again = talk_and_read(&gw, &peer, &mut cap);
    println!("cap0: {first} control frames before down, {again} after up, same socket");
    assert!(again >= 15, "{again} frames after down and up");
    assert_eq!(cap.stats().expect("stats").drops, 0);
}

#[test]
fn deleted_then_recreated_interface_is_renumbered_and_reopens() {
    let gw = Netns::new("cap5g");
    let peer = Netns::new("cap5p");
    pair(&gw, &peer);
    let mut old = open_in(&gw, "cap0").expect("open");
    let old_index = old.ifindex();
    assert!(talk_and_read(&gw, &peer, &mut old) > 0);
    assert_eq!(old.health(), Health::Same);

    gw.ok(&["ip", "link", "del", "cap0"]);
    assert_eq!(downs_within(&mut old, Duration::from_millis(300)), 1, "deletion reported once");
    assert_eq!(old.health(), Health::Gone);
    assert!(matches!(open_in(&gw, "cap0"), Err(CaptureError::NoSuchInterface { .. })));

    pair(&gw, &peer);
    let new_index = match old.health() {
        Health::Renumbered(i) => i,
        other => panic!("expected Renumbered, got {other:?}"),
    };
    assert_ne!(new_index, old_index);
    let mut new = open_in(&gw, "cap0").expect("reopen");
    assert_eq!(new.ifindex(), new_index);
    assert_eq!(new.health(), Health::Same);
    let frames = talk_and_read(&gw, &peer, &mut new);
    let stale = drain(&mut old, BUFFER_LEN, Duration::from_millis(100), Duration::from_secs(2), 1000).len();
    println!("cap0: ifindex {old_index} -> {new_index}; reopened capture {frames} frames, old one {stale}");
    assert!(frames >= 15, "{frames}");
    assert_eq!(stale, 0, "the old socket never receives again");
}

// ---- (5) privileges -----------------------------------------------------------------------

use common::caps::{keep_only_effective, CAP_NET_ADMIN, CAP_NET_RAW};

#[test]
fn without_cap_net_raw_open_is_a_permission_error() {
    let ns = Netns::new("cap6");
    let denied = ns.within(|| {
        keep_only_effective(&[CAP_NET_ADMIN]);
        Capture::open("lo", &ControlPorts::default())
    });
    match denied {
        Err(e @ CaptureError::Permission { .. }) => {
            let message = e.to_string();
            assert!(message.contains("lo") && message.contains("needs CAP_NET_RAW (run as root)"), "{message}");
            println!("{message}");
        }
        other => panic!("expected Permission, got {other:?}"),
    }
    // CAP_NET_RAW alone is enough (the receive buffer then falls back to
    // SO_RCVBUF, which needs no CAP_NET_ADMIN).
    let allowed = ns.within(|| {
        keep_only_effective(&[CAP_NET_RAW]);
        Capture::open("lo", &ControlPorts::default()).map(|c| c.ifindex())
    });
    assert_eq!(allowed.expect("open with CAP_NET_RAW alone"), 1);
    // The loopback capture works like any other: a conversation over lo.
    let mut lo = open_in(&ns, "lo").expect("open lo");
    converse(&ns, &ns, sock("127.0.0.1", 21), &LINES[..1]);
    let seen = drain(&mut lo, BUFFER_LEN, Duration::from_millis(200), Duration::from_secs(5), 100);
    assert!(!seen.is_empty(), "frames on lo");
    assert!(seen.iter().all(|f| f.tcp().is_some_and(|(s, d, _)| s.port() == 21 || d.port() == 21)));
}
