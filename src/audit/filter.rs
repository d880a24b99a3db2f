//! Which records a report looks at: a time window, client and server
//! prefixes, data ports.

use ipnet::IpNet;

use super::AuditRecord;
use crate::time::Timestamp;

/// A record is kept when it passes every condition given; an empty list
/// or `None` is no condition. A record without the field a condition looks
/// at (a daemon-start has no client, a login no port) does not pass it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Records at or after this time (`unix`).
    pub since: Option<Timestamp>,
    /// Records before this time (`unix`): the window is half-open, so
    /// `--since DAY --until NEXT-DAY` is one day.
    pub until: Option<Timestamp>,
    /// The control connection's client is in one of these prefixes.
    pub clients: Vec<IpNet>,
    /// The control connection's server is in one of these prefixes.
    pub servers: Vec<IpNet>,
    /// The pinhole's data port (`dport`) or the announced port is one of
    /// these.
    pub ports: Vec<u16>,
}

impl Filter {
    /// Whether `r` passes every condition.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.in_window(r) && self.client_matches(r) && self.server_matches(r) && self.port_matches(r)
    }

    fn in_window(&self, r: &AuditRecord) -> bool {
        self.since.is_none_or(|t| r.unix >= t.unix_secs_f64()) && self.until.is_none_or(|t| r.unix < t.unix_secs_f64())
    }

    fn client_matches(&self, r: &AuditRecord) -> bool {
        self.clients.is_empty() || r.client.is_some_and(|c| self.clients.iter().any(|n| n.contains(&c.ip())))
    }

    fn server_matches(&self, r: &AuditRecord) -> bool {
        self.servers.is_empty() || r.server.is_some_and(|s| self.servers.iter().any(|n| n.contains(&s.ip())))
    }

    fn port_matches(&self, r: &AuditRecord) -> bool {
        if self.ports.is_empty() {
            return true;
        }
        let dport = r.pinhole.as_ref().map(|p| p.dport);
        let announced = r.announced.flatten().map(|a| a.port());
        [dport, announced].into_iter().flatten().any(|p| self.ports.contains(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RecordKind;
    use crate::ftp::Mode;
    use crate::report::{PinholeJson, PortJson, Proto};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_nanos(secs * 1_000_000_000)
    }

    fn session(event: RecordKind, secs: u64, client: &str, server: &str) -> AuditRecord {
        let mut r = AuditRecord::new(event, at(secs), "run");
        r.session = Some(1);
        r.client = Some(client.parse().expect("client"));
        r.server = Some(server.parse().expect("server"));
        r
    }

    fn opened(secs: u64, dport: u16) -> AuditRecord {
        let mut r = session(RecordKind::PinholeOpen, secs, "192.0.2.10:40000", "198.51.100.20:21");
        r.pinhole = Some(PinholeJson {
            proto: Proto::Tcp,
            src: "192.0.2.10".parse().expect("ip"),
            sport: PortJson::Any(crate::report::AnyPort::Any),
            dst: "198.51.100.20".parse().expect("ip"),
            dport,
            ttl_s: 30,
            mode: Mode::Passive,
        });
        r
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().expect("prefix")).collect()
    }

    #[test]
    fn no_condition_keeps_everything() {
        let f = Filter::default();
        assert!(f.matches(&AuditRecord::new(RecordKind::DaemonStart, at(0), "run")));
        assert!(f.matches(&opened(5, 50000)));
    }

    #[test]
    fn the_window_is_half_open() {
        let f = Filter { since: Some(at(100)), until: Some(at(200)), ..Filter::default() };
        assert!(!f.matches(&opened(99, 50000)));
        assert!(f.matches(&opened(100, 50000)));
        assert!(f.matches(&opened(199, 50000)));
        assert!(!f.matches(&opened(200, 50000)));
        // Fractions count.
        let mut r = opened(0, 50000);
        r.unix = 99.999_999;
        assert!(!f.matches(&r));
    }

    #[test]
    fn prefixes_match_the_control_connection_any_of_several() {
        let f = Filter { clients: nets(&["203.0.113.0/24", "192.0.2.0/28"]), ..Filter::default() };
        assert!(f.matches(&opened(1, 50000)));
        assert!(!f.matches(&session(RecordKind::Login, 1, "192.0.2.20:40000", "198.51.100.20:21")));
        // No client at all: not kept.
        assert!(!f.matches(&AuditRecord::new(RecordKind::DaemonStart, at(1), "run")));
        let f = Filter { servers: nets(&["2001:db8:2::/48"]), ..Filter::default() };
        assert!(f.matches(&session(RecordKind::SessionOpen, 1, "[2001:db8:1::10]:5000", "[2001:db8:2::20]:21")));
        assert!(!f.matches(&opened(1, 50000)));
        // Both given: both must match.
        let f = Filter { clients: nets(&["192.0.2.0/24"]), servers: nets(&["198.51.100.21/32"]), ..Filter::default() };
        assert!(!f.matches(&opened(1, 50000)));
    }

    #[test]
    fn ports_match_the_data_port_or_the_announced_port() {
        let f = Filter { ports: vec![50000, 21], ..Filter::default() };
        assert!(f.matches(&opened(1, 50000)));
        assert!(!f.matches(&opened(1, 50001)));
        // A refusal has no pinhole, only what was announced.
        let mut refused = session(RecordKind::Refused, 1, "192.0.2.10:40000", "198.51.100.20:21");
        refused.announced = Some(Some("192.0.2.10:21".parse().expect("addr")));
        assert!(f.matches(&refused));
        refused.announced = Some(None);
        assert!(!f.matches(&refused));
        // The control connection's own port is not a data port.
        assert!(!f.matches(&session(RecordKind::SessionOpen, 1, "192.0.2.10:40000", "198.51.100.20:21")));
    }
}
