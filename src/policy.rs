//! Stage 4: negotiations to decisions, a [`Pinhole`] to open or a [`Refusal`].
//!
//! The policy is a plain value: what third-party addresses may be announced,
//! which data ports are too low, which source port an active-mode server
//! uses, how long a pinhole lives. [`Policy::decide`] is a pure function.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use thiserror::Error;

use crate::ftp::{Mode, Negotiation, ParseError};
use crate::time::Timestamp;
use crate::track::ControlConn;

/// The source port a server's active-mode data connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourcePort {
    /// Exactly this port (20, ftp-data, by default).
    Port(u16),
    /// Any port: servers that do not bind port 20, and every passive client.
    Any,
}

impl fmt::Display for SourcePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePort::Port(p) => write!(f, "{p}"),
            SourcePort::Any => f.write_str("any"),
        }
    }
}

impl FromStr for SourcePort {
    type Err = String;

    /// `20` (or another port) or `any`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("any") {
            return Ok(SourcePort::Any);
        }
        match s.parse::<u16>() {
            Ok(p) if p != 0 => Ok(SourcePort::Port(p)),
            _ => Err(format!("{s:?} is neither a port (1-65535) nor \"any\"")),
        }
    }
}

/// One new TCP flow the firewall should let through, once, for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pinhole {
    /// Active (server connects to client) or passive (client to server).
    pub mode: Mode,
    /// Who opens the data connection.
    pub src: IpAddr,
    /// From which port.
    pub sport: SourcePort,
    /// To whom.
    pub dst: IpAddr,
    /// To which port.
    pub dport: u16,
    /// How long the pinhole waits for its connection.
    pub ttl: Duration,
}

impl Pinhole {
    /// Whether two pinholes admit the same flow (their TTLs may differ).
    pub fn same_flow(&self, other: &Pinhole) -> bool {
        (self.mode, self.src, self.sport, self.dst, self.dport)
            == (other.mode, other.src, other.sport, other.dst, other.dport)
    }
}

impl fmt::Display for Pinhole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |ip: IpAddr, port: &dyn fmt::Display| match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        write!(f, "tcp {} -> {}", ep(self.src, &self.sport), ep(self.dst, &self.dport))
    }
}

/// Why a negotiation opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RefusalReason {
    /// The line could not be parsed into an address and port.
    #[error("{0}")]
    Unparsable(ParseError),
    /// A passive reply that no PASV/EPSV/LPSV asked for.
    #[error("passive reply without a pending request")]
    Unsolicited,
    /// IPv6 announced on an IPv4 control connection, or the reverse.
    #[error("announced {announced} on a control connection of the other IP family")]
    FamilyMismatch {
        /// The announced address.
        announced: IpAddr,
    },
    /// The announced address is not the control connection's peer (FTP
    /// bounce, RFC 2577; or a third-party transfer) and not allowed.
    #[error("announced address {announced} is not the control connection's {expected}")]
    ThirdParty {
        /// The address the control connection says it should be.
        expected: IpAddr,
        /// The address announced.
        announced: IpAddr,
    },
    /// The session negotiated more data connections than the rate limit
    /// allows (a client flooding PORT lines).
    #[error("more negotiations than {per_second}/s (burst {burst}) on this session")]
    RateLimited {
        /// The sustained rate allowed.
        per_second: u32,
        /// The burst allowed.
        burst: u32,
    },
    /// A data port below the configured minimum (1024 by default).
    #[error("data port {port} is below {min}")]
    PrivilegedPort {
        /// The announced port.
        port: u16,
        /// The configured minimum.
        min: u16,
    },
}

impl RefusalReason {
    /// The stable code of the reason, for JSON output and the audit trail.
    pub const fn code(&self) -> &'static str {
        match self {
            RefusalReason::Unparsable(e) => e.code(),
            RefusalReason::Unsolicited => "unsolicited-reply",
            RefusalReason::FamilyMismatch { .. } => "family-mismatch",
            RefusalReason::ThirdParty { .. } => "third-party-address",
            RefusalReason::PrivilegedPort { .. } => "privileged-port",
            RefusalReason::RateLimited { .. } => "rate-limited",
        }
    }

    /// Every code a refusal can carry, for documentation and reports.
    pub const CODES: [&'static str; 9] = [
        "malformed",
        "out-of-range",
        "line-too-long",
        "unsupported-family",
        "unsolicited-reply",
        "family-mismatch",
        "third-party-address",
        "privileged-port",
        "rate-limited",
    ];
}

/// A negotiation that opens nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
}

/// What the policy makes of a negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open this pinhole.
    Open(Pinhole),
    /// Open nothing.
    Refuse(Refusal),
}

/// The rules negotiations are judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Announced addresses that may differ from the control connection's
    /// peer (a server behind NAT announcing its public address, FXP).
    pub allow_third_party: Vec<IpNet>,
    /// Lowest data port accepted (1024: no privileged ports).
    pub min_data_port: u16,
    /// Source port of active-mode data connections.
    pub active_source_port: SourcePort,
    /// Lifetime of a pinhole that is not used.
    pub ttl: Duration,
    /// Negotiations allowed per session (token bucket).
    pub rate: RateLimit,
}

/// A token bucket's size and refill: `burst` at once, `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained negotiations per second (0: no limit).
    pub per_second: u32,
    /// Negotiations allowed in a burst.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 16 a second, 64 at once: far above what a client does (a directory
    /// walk negotiates one per file), far below a flood.
    fn default() -> Self {
        RateLimit { per_second: 16, burst: 64 }
    }
}

/// The tokens one session has left, refilled by the timestamps it is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Credit in nanoseconds of refill; one token costs `1e9 / per_second`.
    credit_ns: u64,
    last: Timestamp,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(now: Timestamp, limit: RateLimit) -> Self {
        Bucket { credit_ns: Self::capacity(limit), last: now }
    }

    fn token(limit: RateLimit) -> u64 {
        1_000_000_000 / u64::from(limit.per_second.max(1))
    }

    fn capacity(limit: RateLimit) -> u64 {
        Self::token(limit).saturating_mul(u64::from(limit.burst.max(1)))
    }

    /// Spend one token at `now`; false if none is left.
    pub fn take(&mut self, now: Timestamp, limit: RateLimit) -> bool {
        if limit.per_second == 0 {
            return true;
        }
        let elapsed = u64::try_from(now.saturating_since(self.last).as_nanos()).unwrap_or(u64::MAX);
        self.last = self.last.max(now);
        self.credit_ns = self.credit_ns.saturating_add(elapsed).min(Self::capacity(limit));
        match self.credit_ns.checked_sub(Self::token(limit)) {
            Some(left) => {
                self.credit_ns = left;
                true
            }
            None => false,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_third_party: Vec::new(),
            min_data_port: 1024,
            active_source_port: SourcePort::Port(20),
            ttl: Duration::from_secs(30),
            rate: RateLimit::default(),
        }
    }
}

impl Policy {
    /// Judge a negotiation seen on `control`.
    pub fn decide(&self, control: &ControlConn, negotiation: &Negotiation) -> Decision {
        match self.check(control, negotiation) {
            Ok(pinhole) => Decision::Open(pinhole),
            Err(reason) => Decision::Refuse(Refusal { reason }),
        }
    }

    fn check(&self, control: &ControlConn, negotiation: &Negotiation) -> Result<Pinhole, RefusalReason> {
        let announced: SocketAddr = negotiation.announced.clone().map_err(RefusalReason::Unparsable)?;
        if negotiation.unsolicited {
            return Err(RefusalReason::Unsolicited);
        }
        let mode = negotiation.kind.mode();
        let (peer, other) = match mode {
            Mode::Active => (control.client.ip(), control.server.ip()),
            Mode::Passive => (control.server.ip(), control.client.ip()),
        };
        // No canonicalising: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
        // not valid on the wire, and an IPv4 pinhole must not come of one.
        let mut ip = announced.ip();
        if mode == Mode::Passive && ip.is_unspecified() {
            // "227 (0,0,0,0,p1,p2)": the server does not know its address
            // (vsftpd on IPv6, servers behind NAT); clients connect to the
            // control connection's server, so that is the only host to open.
            ip = peer;
        }
        if ip.is_ipv4() != peer.is_ipv4() {
            return Err(RefusalReason::FamilyMismatch { announced: ip });
        }
        if ip != peer && !self.allow_third_party.iter().any(|net| net.contains(&ip)) {
            return Err(RefusalReason::ThirdParty { expected: peer, announced: ip });
        }
        if announced.port() < self.min_data_port {
            return Err(RefusalReason::PrivilegedPort { port: announced.port(), min: self.min_data_port });
        }
        let (src, sport) = match mode {
            Mode::Active => (other, self.active_source_port),
            Mode::Passive => (other, SourcePort::Any),
        };
        Ok(Pinhole { mode, src, sport, dst: ip, dport: announced.port(), ttl: self.ttl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftp::NegotiationKind;

    fn control() -> ControlConn {
        ControlConn {
            client: "192.0.2.10:40000".parse().expect("addr"),
            server: "198.51.100.20:21".parse().expect("addr"),
        }
    }

    fn neg(kind: NegotiationKind, announced: &str) -> Negotiation {
        Negotiation {
            kind,
            line: String::new(),
            announced: Ok(announced.parse().expect("endpoint")),
            unsolicited: false,
        }
    }

    fn refusal(d: Decision) -> RefusalReason {
        match d {
            Decision::Refuse(r) => r.reason,
            Decision::Open(p) => panic!("expected a refusal, got {p}"),
        }
    }

    #[test]
    fn active_opens_server_20_to_client_port() {
        let d = Policy::default().decide(&control(), &neg(NegotiationKind::Port, "192.0.2.10:50000"));
        let Decision::Open(p) = d else { panic!("expected a pinhole: {d:?}") };
        assert_eq!(p.to_string(), "tcp 198.51.100.20:20 -> 192.0.2.10:50000");
        assert_eq!((p.mode, p.ttl), (Mode::Active, Duration::from_secs(30)));
    }

    #[test]
    fn passive_opens_client_any_to_server_port() {
        let d = Policy::default().decide(&control(), &neg(NegotiationKind::Pasv, "198.51.100.20:50000"));
        let Decision::Open(p) = d else { panic!("expected a pinhole: {d:?}") };
        assert_eq!(p.to_string(), "tcp 192.0.2.10:any -> 198.51.100.20:50000");
        assert_eq!(p.mode, Mode::Passive);
    }

    #[test]
    fn active_source_port_policy() {
        let policy = Policy { active_source_port: SourcePort::Any, ..Policy::default() };
        let Decision::Open(p) = policy.decide(&control(), &neg(NegotiationKind::Eprt, "192.0.2.10:50000")) else {
            panic!("expected a pinhole")
        };
        assert_eq!(p.sport, SourcePort::Any);
        assert_eq!("any".parse::<SourcePort>(), Ok(SourcePort::Any));
        assert_eq!("20".parse::<SourcePort>(), Ok(SourcePort::Port(20)));
        assert!("0".parse::<SourcePort>().is_err() && "x".parse::<SourcePort>().is_err());
    }

    #[test]
    fn bounce_is_refused_unless_allowed() {
        let n = neg(NegotiationKind::Port, "203.0.113.5:50000");
        let r = refusal(Policy::default().decide(&control(), &n));
        assert_eq!(r.code(), "third-party-address");
        assert_eq!(r.to_string(), "announced address 203.0.113.5 is not the control connection's 192.0.2.10");
        let policy = Policy { allow_third_party: vec!["203.0.113.0/24".parse().expect("net")], ..Policy::default() };
        let Decision::Open(p) = policy.decide(&control(), &n) else { panic!("allowed third party") };
        assert_eq!(p.dst.to_string(), "203.0.113.5");
        // A passive reply naming another host is the same refusal.
        let r = refusal(Policy::default().decide(&control(), &neg(NegotiationKind::Pasv, "192.0.2.99:50000")));
        assert_eq!(r.code(), "third-party-address");
    }

    #[test]
    fn an_unspecified_passive_address_means_the_control_server() {
        let Decision::Open(p) = Policy::default().decide(&control(), &neg(NegotiationKind::Pasv, "0.0.0.0:50000"))
        else {
            panic!("0.0.0.0 is the control connection's server")
        };
        assert_eq!(p.dst.to_string(), "198.51.100.20");
        // On IPv6 control connections too (vsftpd answers PASV so).
        let control6 = ControlConn {
            client: "[2001:db8:1::10]:40000".parse().expect("addr"),
            server: "[2001:db8:2::20]:21".parse().expect("addr"),
        };
        let Decision::Open(p) = Policy::default().decide(&control6, &neg(NegotiationKind::Pasv, "0.0.0.0:50000"))
        else {
            panic!("0.0.0.0 is the control connection's server")
        };
        assert_eq!(p.dst.to_string(), "2001:db8:2::20");
        // Not for active mode: the server must be told a real address.
        let r = refusal(Policy::default().decide(&control(), &neg(NegotiationKind::Port, "0.0.0.0:50000")));
        assert_eq!(r.code(), "third-party-address");
    }

    #[test]
    fn privileged_ports_are_refused() {
        let r = refusal(Policy::default().decide(&control(), &neg(NegotiationKind::Port, "192.0.2.10:22")));
        assert_eq!(r, RefusalReason::PrivilegedPort { port: 22, min: 1024 });
        let policy = Policy { min_data_port: 1, ..Policy::default() };
        assert!(matches!(policy.decide(&control(), &neg(NegotiationKind::Port, "192.0.2.10:22")), Decision::Open(_)));
    }

    #[test]
    fn family_mismatch_is_refused() {
        let r = refusal(Policy::default().decide(&control(), &neg(NegotiationKind::Eprt, "[2001:db8::1]:50000")));
        assert_eq!(r.code(), "family-mismatch");
    }

    #[test]
    fn unparsable_and_unsolicited_are_refused() {
        let mut n = neg(NegotiationKind::Pasv, "198.51.100.20:50000");
        n.unsolicited = true;
        assert_eq!(refusal(Policy::default().decide(&control(), &n)), RefusalReason::Unsolicited);
        n.announced = Err(ParseError::OctetRange(300));
        assert_eq!(refusal(Policy::default().decide(&control(), &n)).code(), "out-of-range");
        n.announced = Err(ParseError::LineTooLong(2048));
        assert_eq!(refusal(Policy::default().decide(&control(), &n)).code(), "line-too-long");
        n.announced = Err(ParseError::NoTuple);
        assert_eq!(refusal(Policy::default().decide(&control(), &n)).code(), "malformed");
    }

    #[test]
    fn ipv4_mapped_control_addresses_never_give_an_ipv4_pinhole() {
        let control = ControlConn {
            client: "[::ffff:192.0.2.10]:40000".parse().expect("addr"),
            server: "[::ffff:198.51.100.20]:21".parse().expect("addr"),
        };
        let r = refusal(Policy::default().decide(&control, &neg(NegotiationKind::Port, "192.0.2.10:50000")));
        assert_eq!(r.code(), "family-mismatch");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let limit = RateLimit { per_second: 10, burst: 3 };
        let t = |ms: u64| Timestamp::from_unix_nanos(ms * 1_000_000);
        let mut b = Bucket::full(t(0), limit);
        assert!(b.take(t(0), limit) && b.take(t(0), limit) && b.take(t(0), limit));
        assert!(!b.take(t(0), limit), "burst spent");
        assert!(!b.take(t(50), limit), "half a token back");
        assert!(b.take(t(100), limit), "one token per 100 ms");
        assert!(!b.take(t(100), limit));
        // Refill stops at the burst.
        assert!((0..3).all(|_| b.take(t(10_000), limit)));
        assert!(!b.take(t(10_000), limit));
        // No limit.
        let off = RateLimit { per_second: 0, burst: 0 };
        assert!((0..1000).all(|_| b.take(t(10_000), off)));
    }

    #[test]
    fn every_code_is_listed() {
        for code in [
            RefusalReason::Unsolicited.code(),
            RefusalReason::PrivilegedPort { port: 1, min: 2 }.code(),
            RefusalReason::RateLimited { per_second: 1, burst: 1 }.code(),
            ParseError::NoTuple.code(),
            ParseError::PortRange(0).code(),
            ParseError::LineTooLong(1).code(),
            ParseError::Family(String::new()).code(),
        ] {
            assert!(RefusalReason::CODES.contains(&code), "{code}");
        }
    }
}
