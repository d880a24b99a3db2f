//! How negotiations are reported by `inspect`: one JSON object per line, or
//! an aligned table for people ([`table`]).

pub mod table;

pub use table::{hides_or_moves, printable, write_table, Align, Column};

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ftp::Negotiation;
use crate::pipeline::Stats;
use crate::policy::{Decision, Pinhole, SourcePort};
use crate::time::Timestamp;
use crate::track::{ControlConn, SessionId};

/// The word `"any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnyPort {
    /// `"any"`.
    Any,
}

/// A source port as JSON: a number, or the string `"any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortJson {
    /// A fixed port.
    Port(u16),
    /// Any port.
    Any(AnyPort),
}

impl From<SourcePort> for PortJson {
    fn from(p: SourcePort) -> Self {
        match p {
            SourcePort::Port(n) => PortJson::Port(n),
            SourcePort::Any => PortJson::Any(AnyPort::Any),
        }
    }
}

/// The transport protocol of a pinhole: always TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// `"tcp"`.
    Tcp,
}

/// A pinhole as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinholeJson {
    /// Always `"tcp"`.
    pub proto: Proto,
    /// Who connects.
    pub src: IpAddr,
    /// From which port, or `"any"`.
    pub sport: PortJson,
    /// To whom.
    pub dst: IpAddr,
    /// To which port.
    pub dport: u16,
    /// Lifetime in seconds.
    pub ttl_s: u64,
    /// `"active"` or `"passive"`.
    pub mode: crate::ftp::Mode,
}

impl From<&Pinhole> for PinholeJson {
    fn from(p: &Pinhole) -> Self {
        PinholeJson {
            proto: Proto::Tcp,
            src: p.src,
            sport: p.sport.into(),
            dst: p.dst,
            dport: p.dport,
            ttl_s: p.ttl.as_secs(),
            mode: p.mode,
        }
    }
}

/// One negotiation, as `inspect` prints it (the README documents the schema).
#[derive(Debug, Clone, Serialize)]
pub struct NegotiationRecord<'a> {
    /// File name of the capture.
    pub pcap: &'a str,
    /// 1-based number of the frame that completed the line.
    pub frame: u64,
    /// Capture time of that frame, Unix seconds.
    pub time: f64,
    /// Session number within the capture.
    pub session: SessionId,
    /// Control connection's client end.
    pub client: SocketAddr,
    /// Control connection's server end.
    pub server: SocketAddr,
    /// PORT, EPRT, LPRT, PASV, EPSV or LPSV.
    pub kind: &'static str,
    /// The announcing line.
    pub line: &'a str,
    /// The announced endpoint, `null` if none could be parsed.
    pub announced: Option<SocketAddr>,
    /// `"open"` or `"refuse"`.
    pub verdict: &'static str,
    /// Refusal code, `null` when opened.
    pub reason: Option<&'static str>,
    /// Refusal in words, `null` when opened.
    pub detail: Option<String>,
    /// The pinhole opened, `null` when refused.
    pub pinhole: Option<PinholeJson>,
}

impl<'a> NegotiationRecord<'a> {
    /// The record of `negotiation`, judged `decision`, seen in `pcap` at `frame`.
    pub fn new(
        pcap: &'a str,
        frame: u64,
        at: Timestamp,
        session: SessionId,
        control: &ControlConn,
        negotiation: &'a Negotiation,
        decision: &Decision,
    ) -> Self {
        let (verdict, reason, detail, pinhole) = match decision {
            Decision::Open(p) => ("open", None, None, Some(PinholeJson::from(p))),
            Decision::Refuse(r) => ("refuse", Some(r.reason.code()), Some(r.reason.to_string()), None),
        };
        NegotiationRecord {
            pcap,
            frame,
            time: at.unix_secs_f64(),
            session,
            client: control.client,
            server: control.server,
            kind: negotiation.kind.as_str(),
            line: &negotiation.line,
            announced: negotiation.announced.as_ref().ok().copied(),
            verdict,
            reason,
            detail,
            pinhole,
        }
    }

    /// The cells of this record's row in the text table.
    pub fn cells(&self, at: Timestamp) -> [String; 8] {
        let outcome = match (&self.pinhole, &self.detail) {
            (Some(p), _) => {
                let sport = match p.sport {
                    PortJson::Port(n) => n.to_string(),
                    PortJson::Any(_) => "any".to_string(),
                };
                format!("{} -> {} ttl {}s", SocketAddrText(p.src, &sport), SocketAddrText(p.dst, &p.dport), p.ttl_s)
            }
            (None, Some(detail)) => format!("{}: {detail}", self.reason.unwrap_or("refused")),
            (None, None) => String::new(),
        };
        [
            self.frame.to_string(),
            at.to_rfc3339(),
            self.client.to_string(),
            self.server.to_string(),
            self.kind.to_string(),
            self.announced.map_or_else(|| "-".to_string(), |a| a.to_string()),
            self.verdict.to_string(),
            outcome,
        ]
    }
}

/// `ip:port` with brackets for IPv6, for any displayable port.
struct SocketAddrText<'a>(IpAddr, &'a dyn std::fmt::Display);

impl std::fmt::Display for SocketAddrText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.1),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.1),
        }
    }
}

/// Columns of `inspect`'s text table.
pub const TABLE_COLUMNS: [Column<'static>; 8] = [
    Column::left("FRAME"),
    Column::left("TIME"),
    Column::left("CLIENT"),
    Column::left("SERVER"),
    Column::left("KIND"),
    Column::left("ANNOUNCED"),
    Column::left("VERDICT"),
    Column::left("PINHOLE / REASON"),
];

/// A human summary of one capture's counters, for standard error.
pub fn write_summary(out: &mut dyn Write, name: &str, stats: &Stats) -> io::Result<()> {
    let t = &stats.track;
    writeln!(
        out,
        "{name}: {} frames, {} control connections ({} picked up mid-stream), {} negotiations: {} opened, {} refused",
        stats.frames,
        t.connections,
        t.midstream,
        stats.negotiations,
        stats.opened,
        stats.refused.values().sum::<u64>()
    )?;
    if !stats.refused.is_empty() {
        let parts: Vec<String> = stats.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "  refused by reason: {}", parts.join(", "))?;
    }
    let mut skipped: Vec<String> = stats.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if t.not_control > 0 {
        skipped.push(format!("not-control-port {}", t.not_control));
    }
    if !skipped.is_empty() {
        writeln!(out, "  frames not used: {}", skipped.join(", "))?;
    }
    let stream = [
        ("duplicate", t.duplicates),
        ("trimmed", t.trimmed),
        ("held-out-of-order", t.held),
        ("gaps", t.gaps),
        ("out-of-window", t.out_of_window),
        ("table-full", t.table_full),
        ("evicted", t.evicted),
    ];
    let stream: Vec<String> = stream.iter().filter(|(_, v)| *v > 0).map(|(k, v)| format!("{k} {v}")).collect();
    if !stream.is_empty() {
        writeln!(out, "  control segments: {}", stream.join(", "))?;
    }
    let f = &stats.ftp;
    if f.long_lines + f.commands_from_server + f.replies_from_client + f.encrypted_bytes > 0 {
        writeln!(
            out,
            "  ftp: {} lines over the limit, {} commands from servers, {} replies from clients, {} encrypted bytes",
            f.long_lines, f.commands_from_server, f.replies_from_client, f.encrypted_bytes
        )?;
    }
    Ok(())
}
