use super::*;
use crate::decode::TcpFlags;

const CLIENT: &str = "192.0.2.10:40000";
const SERVER: &str = "198.51.100.20:21";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn flags(spec: &str) -> TcpFlags {
    TcpFlags { syn: spec.contains('S'), ack: spec.contains('A'), fin: spec.contains('F'), rst: spec.contains('R') }
}

/// A segment from `from` to the other end.
fn seg<'a>(from_client: bool, seq: u32, spec: &str, payload: &'a [u8]) -> Segment<'a> {
    let (src, dst) = if from_client { (addr(CLIENT), addr(SERVER)) } else { (addr(SERVER), addr(CLIENT)) };
    Segment { src, dst, seq, ack: 0, flags: flags(spec), payload }
}

/// Events rendered as short strings, for readable assertions.
fn feed(tracker: &mut Tracker, t: u64, segs: &[Segment<'_>]) -> Vec<String> {
    let mut log = Vec::new();
    for s in segs {
        tracker.handle_segment(Timestamp::from_unix_nanos(t * 1_000_000_000), s, &mut |e| log.push(render(&e)));
    }
    log
}

fn render(e: &TrackEvent<'_>) -> String {
    match e {
        TrackEvent::Opened { session, midstream, .. } => {
            format!("open {session}{}", if *midstream { " mid" } else { "" })
        }
        TrackEvent::Data { session, dir, bytes } => {
            let d = if *dir == Direction::ToServer { ">" } else { "<" };
            format!("{session}{d}{}", String::from_utf8_lossy(bytes))
        }
        TrackEvent::Gap { session, bytes, .. } => format!("{session} gap {bytes}"),
        TrackEvent::Closed { session, reason } => format!("close {session} {}", reason.code()),
    }
}

fn handshake() -> Vec<Segment<'static>> {
    vec![seg(true, 100, "S", b""), seg(false, 500, "SA", b""), seg(true, 101, "A", b"")]
}

#[test]
fn a_whole_session_in_order() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut segs = handshake();
    segs.extend([
        seg(false, 501, "A", b"220 hi\r\n"),
        seg(true, 101, "A", b"PASV\r\n"),
        seg(true, 107, "FA", b""),
        seg(false, 509, "FA", b""),
    ]);
    let log = feed(&mut t, 1, &segs);
    assert_eq!(log, ["open 1", "1<220 hi\r\n", "1>PASV\r\n", "close 1 fin"]);
    assert_eq!(t.stats().connections, 1);
    assert_eq!(t.stats().midstream, 0);
}

#[test]
fn midstream_data_opens_a_session_but_a_bare_ack_does_not() {
    let mut t = Tracker::new(TrackerConfig::default());
    let log = feed(&mut t, 1, &[seg(true, 7, "A", b""), seg(false, 9, "A", b"227 x\r\n")]);
    assert_eq!(log, ["open 1 mid", "1<227 x\r\n"]);
    assert_eq!(t.stats().midstream, 1);
}

#[test]
fn retransmissions_and_second_interface_copies_count_once() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut segs = Vec::new();
    for s in handshake() {
        segs.push(s);
        segs.push(s); // the same frame, captured on the gateway's other interface
    }
    let port = seg(true, 101, "A", b"PORT 192,0,2,10,200,1\r\n");
    segs.extend([port, port, port]);
    let log = feed(&mut t, 1, &segs);
    assert_eq!(log, ["open 1", "1>PORT 192,0,2,10,200,1\r\n"]);
    assert_eq!(t.stats().duplicates, 2 + 2); // SYN, SYN-ACK copies; two PORT copies
}

#[test]
fn out_of_order_segments_are_reordered() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut segs = handshake();
    segs.extend([seg(true, 106, "A", b"1,2\r\n"), seg(true, 101, "A", b"PORT ")]);
    let log = feed(&mut t, 1, &segs);
    assert_eq!(log, ["open 1", "1>PORT ", "1>1,2\r\n"]);
    assert_eq!(t.stats().held, 1);
}

#[test]
fn rst_closes_but_a_blind_rst_does_not() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut segs = handshake();
    segs.push(seg(false, 501 + (1 << 25), "R", b""));
    let log = feed(&mut t, 1, &segs);
    assert_eq!(log, ["open 1"]);
    assert_eq!(t.stats().rst_ignored, 1);
    let log = feed(&mut t, 2, &[seg(false, 501, "R", b"")]);
    assert_eq!(log, ["close 1 rst"]);
}

#[test]
fn late_segments_after_close_are_ignored_and_a_new_syn_reopens() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut segs = handshake();
    segs.extend([seg(true, 101, "R", b"")]);
    feed(&mut t, 1, &segs);
    let log = feed(&mut t, 2, &[seg(true, 101, "A", b"PORT 1,2,3,4,5,6\r\n"), seg(true, 100, "S", b"")]);
    assert_eq!(log, Vec::<String>::new(), "a late copy of the old SYN is not a new connection");
    assert_eq!(t.stats().after_close, 2);
    let log = feed(&mut t, 3, &[seg(true, 9000, "S", b"")]);
    assert_eq!(log, ["open 2"]);
}

#[test]
fn a_new_isn_on_a_live_tuple_replaces_the_session() {
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, 1, &handshake());
    let log = feed(&mut t, 2, &[seg(true, 7777, "S", b"")]);
    assert_eq!(log, ["close 1 reused", "open 2"]);
}

#[test]
fn idle_connections_expire_and_closed_ones_are_forgotten() {
    let config = TrackerConfig {
        idle_timeout: Duration::from_secs(60),
        closed_linger: Duration::from_secs(5),
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(config);
    feed(&mut t, 0, &handshake());
    let deadline = t.poll_timeout().expect("a sweep is scheduled");
    assert_eq!(deadline, Timestamp::from_unix_nanos(1_000_000_000));
    let mut log = Vec::new();
    t.handle_timeout(Timestamp::from_unix_nanos(59_000_000_000), &mut |e| log.push(render(&e)));
    assert!(log.is_empty());
    t.handle_timeout(Timestamp::from_unix_nanos(60_000_000_000), &mut |e| log.push(render(&e)));
    assert_eq!(log, ["close 1 idle"]);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);

    let mut segs = handshake();
    segs.push(seg(true, 101, "R", b""));
    feed(&mut t, 100, &segs);
    assert_eq!(t.len(), 1, "closed connection lingers");
    t.handle_timeout(Timestamp::from_unix_nanos(106_000_000_000), &mut |_| {});
    assert!(t.is_empty());
}

#[test]
fn a_full_table_evicts_unanswered_connections_but_never_live_sessions() {
    let config = TrackerConfig { max_connections: 2, ..TrackerConfig::default() };
    let mut t = Tracker::new(config);
    let live = |port: u16, seq: u32, payload: &'static [u8], from_client: bool| {
        let c: SocketAddr = SocketAddr::new(addr(CLIENT).ip(), port);
        let (src, dst) = if from_client { (c, addr(SERVER)) } else { (addr(SERVER), c) };
        Segment { src, dst, seq, ack: 0, flags: flags(if payload.is_empty() { "S" } else { "A" }), payload }
    };
    // Session 1 got its greeting: assured. Session 2 is a bare SYN.
    let log = feed(&mut t, 1, &[live(1001, 1, b"", true), live(1001, 1, b"220\r\n", false), live(1002, 1, b"", true)]);
    assert_eq!(log, ["open 1", "1<220\r\n", "open 2"]);
    let log = feed(&mut t, 2, &[live(1003, 1, b"", true)]);
    assert_eq!(log, ["close 2 evicted", "open 3"]);
    assert_eq!(t.stats().evicted, 1);
    // Now 1 is assured; make 3 assured too: nothing may be evicted.
    feed(&mut t, 3, &[live(1003, 1, b"220\r\n", false)]);
    let log = feed(&mut t, 4, &[live(1004, 1, b"", true)]);
    assert!(log.is_empty());
    assert_eq!(t.stats().table_full, 1);
}

#[test]
fn other_ports_are_not_tracked() {
    let mut t = Tracker::new(TrackerConfig::default());
    let s = Segment {
        src: addr("192.0.2.10:40000"),
        dst: addr("198.51.100.20:50000"),
        seq: 1,
        ack: 0,
        flags: flags("A"),
        payload: b"data",
    };
    assert!(feed(&mut t, 1, &[s]).is_empty());
    assert_eq!(t.stats().not_control, 1);
}

#[test]
fn configured_ports_are_control_ports() {
    let config = TrackerConfig { ports: "2121".parse().expect("ports"), ..TrackerConfig::default() };
    let mut t = Tracker::new(config);
    let s = Segment {
        src: addr("[2001:db8:2::20]:2121"),
        dst: addr("[2001:db8:1::10]:40000"),
        seq: 1,
        ack: 0,
        flags: flags("A"),
        payload: b"229 (|||50000|)\r\n",
    };
    assert_eq!(feed(&mut t, 1, &[s]), ["open 1 mid", "1<229 (|||50000|)\r\n"]);
    // Port 21 is no longer one.
    assert!(feed(&mut t, 1, &[seg(true, 1, "S", b"")]).is_empty());
}

#[test]
fn close_all_ends_open_sessions() {
    let mut t = Tracker::new(TrackerConfig::default());
    feed(&mut t, 1, &handshake());
    let mut log = Vec::new();
    t.close_all(&mut |e| log.push(render(&e)));
    assert_eq!(log, ["close 1 shutdown"]);
    assert!(t.is_empty());
}

#[test]
fn a_full_table_takes_room_from_the_client_holding_too_many() {
    let config = TrackerConfig { max_connections: 4, max_per_client: 2, ..TrackerConfig::default() };
    let mut t = Tracker::new(config);
    let session = |client: &str, port: u16, seq: u32, payload: &'static [u8], from_client: bool| {
        let c = SocketAddr::new(client.parse().expect("ip"), port);
        let (src, dst) = if from_client { (c, addr(SERVER)) } else { (addr(SERVER), c) };
        Segment { src, dst, seq, ack: 0, flags: flags(if payload.is_empty() { "S" } else { "A" }), payload }
    };
    // One client fills the table with live, answered sessions.
    for port in 1001..=1004 {
        feed(
            &mut t,
            u64::from(port),
            &[session("192.0.2.66", port, 1, b"", true), session("192.0.2.66", port, 1, b"220\r\n", false)],
        );
    }
    assert_eq!(t.len(), 4);
    // Another client still gets in: the hog's oldest session makes room.
    let log = feed(&mut t, 2000, &[session("192.0.2.10", 5000, 1, b"", true)]);
    assert_eq!(log, ["close 1 evicted", "open 5"]);
    // Were the table full of sessions of clients within their share, the
    // newcomer would be refused.
    let config = TrackerConfig { max_connections: 2, max_per_client: 2, ..TrackerConfig::default() };
    let mut t = Tracker::new(config);
    for (i, client) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
        feed(&mut t, i as u64, &[session(client, 1000, 1, b"", true), session(client, 1000, 1, b"220\r\n", false)]);
    }
    assert!(feed(&mut t, 10, &[session("192.0.2.3", 1000, 1, b"", true)]).is_empty());
    assert_eq!(t.stats().table_full, 1);
}
