use std::net::SocketAddr;

use super::*;
use crate::ftp::Mode;
use crate::report::{AnyPort, PinholeJson, PortJson, Proto};
use crate::time::Timestamp;

const C4: &str = "192.0.2.10:40000";
const S4: &str = "198.51.100.20:21";
const C6: &str = "[2001:db8:1::10]:50000";
const S6: &str = "[2001:db8:2::20]:21";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A record of `event` at second `secs` of run `run`, session `session`.
fn rec(event: RecordKind, secs: u64, run: &str, session: u64, client: &str, server: &str) -> AuditRecord {
    let mut r = AuditRecord::new(event, Timestamp::from_unix_nanos(secs * 1_000_000_000), run);
    r.session = Some(session);
    r.client = Some(addr(client));
    r.server = Some(addr(server));
    r
}

/// The pinhole of a passive (`client -> server:port`) or active
/// (`server:20 -> client:port`) negotiation.
fn pinhole(mode: Mode, client: &str, server: &str, port: u16) -> PinholeJson {
    let (c, s) = (addr(client).ip(), addr(server).ip());
    let (src, sport, dst) = match mode {
        Mode::Passive => (c, PortJson::Any(AnyPort::Any), s),
        Mode::Active => (s, PortJson::Port(20), c),
    };
    PinholeJson { proto: Proto::Tcp, src, sport, dst, dport: port, ttl_s: 30, mode }
}

/// A pinhole record (open or outcome).
fn ph(event: RecordKind, secs: u64, run: &str, session: u64, mode: Mode, port: u16) -> AuditRecord {
    let (client, server) = if run.ends_with('6') { (C6, S6) } else { (C4, S4) };
    let mut r = rec(event, secs, run, session, client, server);
    r.pinhole = Some(pinhole(mode, client, server, port));
    if event == RecordKind::PinholeClosed {
        r.reason = Some("session-ended".into());
    }
    r
}

fn refused(secs: u64, run: &str, session: u64, reason: &str, client: &str) -> AuditRecord {
    let mut r = rec(RecordKind::Refused, secs, run, session, client, S4);
    r.reason = Some(reason.into());
    r
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

use Mode::{Active, Passive};
use RecordKind::*;

/// Every kind of record and every outcome, over two runs ("r4" on IPv4,
/// "r6" on IPv6).
fn records() -> Vec<AuditRecord> {
    let mut superseded = ph(PinholeClosed, 14, "r4", 1, Passive, 50001);
    superseded.reason = Some("superseded".into());
    let mut shutdown = ph(PinholeClosed, 90, "r6", 1, Active, 45000);
    shutdown.reason = Some("shutdown".into());
    let mut gap = rec(StreamGap, 15, "r4", 1, C4, S4);
    gap.bytes = Some(1448);
    let mut list_error = AuditRecord::new(BackendError, Timestamp::from_unix_nanos(16_000_000_000), "r4");
    list_error.reason = Some("list".into());
    let mut stop = AuditRecord::new(DaemonStop, Timestamp::from_unix_nanos(95_000_000_000), "r6");
    stop.reason = Some("signal".into());
    vec![
        AuditRecord::new(DaemonStart, Timestamp::from_unix_nanos(10_000_000_000), "r4"),
        rec(SessionOpen, 11, "r4", 1, C4, S4),
        rec(Login, 12, "r4", 1, C4, S4),
        ph(PinholeOpen, 13, "r4", 1, Passive, 50000),
        ph(PinholeConsumed, 13, "r4", 1, Passive, 50000),
        ph(PinholeOpen, 13, "r4", 1, Passive, 50001),
        superseded,
        ph(PinholeOpen, 14, "r4", 1, Passive, 50002),
        gap,
        list_error,
        ph(PinholeExpired, 44, "r4", 1, Passive, 50002),
        // The same port announced twice: renewed, then used once.
        ph(PinholeOpen, 45, "r4", 1, Active, 41000),
        ph(PinholeOpen, 46, "r4", 1, Active, 41000),
        ph(PinholeConsumed, 47, "r4", 1, Active, 41000),
        refused(48, "r4", 1, "third-party-address", C4),
        refused(49, "r4", 1, "privileged-port", C4),
        refused(50, "r4", 2, "privileged-port", "192.0.2.11:41000"),
        ph(PinholeOpen, 51, "r4", 1, Active, 41001),
        ph(PinholeClosed, 52, "r4", 1, Active, 41001),
        rec(SessionClose, 52, "r4", 1, C4, S4),
        // IPv6, another run; the same session number is another session.
        rec(SessionOpen, 60, "r6", 1, C6, S6),
        rec(Encrypted, 61, "r6", 1, C6, S6),
        ph(PinholeOpen, 62, "r6", 1, Active, 45000),
        ph(PinholeOpen, 63, "r6", 1, Passive, 50100),
        shutdown,
        stop,
        // An outcome whose open is not in the records, and an outcome of
        // run r4's port 50000 under run r6: neither matches.
        ph(PinholeConsumed, 96, "r4", 1, Passive, 59999),
        ph(PinholeConsumed, 97, "r6", 1, Passive, 50000),
    ]
}

#[test]
fn every_outcome_is_counted_once() {
    let r = Report::from_records(records(), DEFAULT_TOP);
    let row = |client: &str, server: &str, mode: Mode| {
        r.pinholes
            .iter()
            .find(|p| p.client == ip(client) && p.server == ip(server) && p.mode == mode)
            .map(|p| p.outcomes.clone())
            .unwrap_or_else(|| panic!("no row {client} {server} {mode:?}"))
    };
    assert_eq!(r.pinholes.len(), 4);
    // IPv4 passive: 50000 used, 50001 superseded, 50002 expired.
    let v4p = row("192.0.2.10", "198.51.100.20", Passive);
    assert_eq!((v4p.opened, v4p.used, v4p.expired, v4p.closed, v4p.renewed, v4p.open_at_end), (3, 1, 1, 1, 0, 0));
    assert_eq!(v4p.closed_by_reason, BTreeMap::from([("superseded".to_string(), 1)]));
    // IPv4 active: 41000 twice (renewed, then used), 41001 closed at session end.
    let v4a = row("192.0.2.10", "198.51.100.20", Active);
    assert_eq!((v4a.opened, v4a.used, v4a.expired, v4a.closed, v4a.renewed, v4a.open_at_end), (3, 1, 0, 1, 1, 0));
    assert_eq!(v4a.closed_by_reason, BTreeMap::from([("session-ended".to_string(), 1)]));
    // IPv6: the active one closed at shutdown, the passive one never concluded.
    let v6a = row("2001:db8:1::10", "2001:db8:2::20", Active);
    assert_eq!((v6a.opened, v6a.closed, v6a.open_at_end), (1, 1, 0));
    assert_eq!(v6a.closed_by_reason, BTreeMap::from([("shutdown".to_string(), 1)]));
    let v6p = row("2001:db8:1::10", "2001:db8:2::20", Passive);
    assert_eq!((v6p.opened, v6p.open_at_end), (1, 1));
    // Rows are sorted: IPv4 before IPv6, active before passive.
    assert_eq!(r.pinholes[0].mode, Active);
    assert_eq!(r.pinholes[0].client, ip("192.0.2.10"));
    // Each row adds up.
    for p in &r.pinholes {
        let o = &p.outcomes;
        assert_eq!(o.opened, o.used + o.expired + o.closed + o.renewed + o.open_at_end, "{p:?}");
        assert_eq!(o.closed, o.closed_by_reason.values().sum::<u64>());
    }
    let t = &r.pinholes_total;
    assert_eq!((t.opened, t.used, t.expired, t.closed, t.renewed, t.open_at_end), (8, 2, 1, 3, 1, 1));
}

#[test]
fn refusals_by_reason_and_pair() {
    let r = Report::from_records(records(), DEFAULT_TOP);
    assert_eq!(r.refused.total, 3);
    assert_eq!(
        r.refused.by_reason,
        BTreeMap::from([("privileged-port".to_string(), 2), ("third-party-address".to_string(), 1)])
    );
    let pairs: Vec<(IpAddr, &str, u64)> =
        r.refused.by_pair.iter().map(|p| (p.client, p.reason.as_str(), p.count)).collect();
    assert_eq!(
        pairs,
        [
            (ip("192.0.2.10"), "privileged-port", 1),
            (ip("192.0.2.10"), "third-party-address", 1),
            (ip("192.0.2.11"), "privileged-port", 1),
        ]
    );
}

#[test]
fn top_talkers_by_pinholes_opened_then_refusals() {
    let r = Report::from_records(records(), 2);
    let clients: Vec<(IpAddr, u64, u64)> = r.top_clients.iter().map(|t| (t.address, t.opened, t.refused)).collect();
    assert_eq!(clients, [(ip("192.0.2.10"), 6, 2), (ip("2001:db8:1::10"), 2, 0)]);
    let r = Report::from_records(records(), DEFAULT_TOP);
    assert_eq!(r.top_clients.len(), 3, "192.0.2.11 only had a refusal");
    assert_eq!(r.top_clients[2].address, ip("192.0.2.11"));
    let servers: Vec<(IpAddr, u64, u64)> = r.top_servers.iter().map(|t| (t.address, t.opened, t.refused)).collect();
    assert_eq!(servers, [(ip("198.51.100.20"), 6, 3), (ip("2001:db8:2::20"), 2, 0)]);
    assert!(Report::from_records(records(), 0).top_clients.is_empty());
}

#[test]
fn totals() {
    let t = Report::from_records(records(), DEFAULT_TOP).totals;
    assert_eq!(t.records, 28);
    assert_eq!(t.runs, 2);
    assert_eq!((t.sessions, t.logins, t.encrypted), (2, 1, 1));
    assert_eq!((t.opened, t.refused), (8, 3));
    assert_eq!(t.backend_errors, 1);
    assert_eq!(t.backend_errors_by_op, BTreeMap::from([("list".to_string(), 1)]));
    assert_eq!((t.stream_gaps, t.stream_gap_bytes), (1, 1448));
    assert_eq!(t.unmatched_outcomes, 2);
    assert_eq!(t.first.as_deref(), Some("1970-01-01T00:00:10.000000Z"));
    assert_eq!(t.last.as_deref(), Some("1970-01-01T00:01:37.000000Z"));
    assert_eq!(t.span_s, 87.0);
}

#[test]
fn an_outcome_before_its_open_does_not_match() {
    let r = Report::from_records(
        [ph(PinholeConsumed, 1, "r4", 1, Passive, 50000), ph(PinholeOpen, 2, "r4", 1, Passive, 50000)],
        10,
    );
    assert_eq!(r.totals.unmatched_outcomes, 1);
    assert_eq!(r.pinholes_total.open_at_end, 1);
}

#[test]
fn nothing_makes_an_empty_report() {
    let r = Report::from_records(Vec::<AuditRecord>::new(), DEFAULT_TOP);
    assert!(r.pinholes.is_empty() && r.top_clients.is_empty() && r.refused.by_pair.is_empty());
    assert_eq!(r.totals, Totals::default());
}
