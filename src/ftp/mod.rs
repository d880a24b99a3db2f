//! Stage 3: control-connection bytes to data-connection negotiations.
//!
//! A [`Session`] follows one control connection: it splits each direction
//! into lines, parses commands (PORT, EPRT, LPRT, PASV, EPSV, LPSV, AUTH,
//! USER) and replies (227, 228, 229, 234, multi-line forms), ties each
//! passive reply to the command that asked for it, and reports a
//! [`Negotiation`] for every line that announces a data endpoint, parsed
//! into a validated address or a [`ParseError`] saying why not.

mod command;
mod error;
mod hostport;
mod lines;
mod reply;

pub use error::ParseError;

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::track::{ControlConn, Direction};
use command::{is_announcing_verb, parse_command, split_verb, Command};
use hostport::{scan_227, scan_228, scan_229, Extended};
use lines::{Line, LineSplitter};
use reply::{Replies, Step};

/// Which way a data connection is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The client announces; the server connects from its port 20.
    Active,
    /// The server announces; the client connects to it.
    Passive,
}

/// The command or reply that negotiated a data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NegotiationKind {
    /// `PORT` (RFC 959).
    #[serde(rename = "PORT")]
    Port,
    /// `EPRT` (RFC 2428).
    #[serde(rename = "EPRT")]
    Eprt,
    /// `LPRT` (RFC 1639).
    #[serde(rename = "LPRT")]
    Lprt,
    /// A 227 reply to `PASV`.
    #[serde(rename = "PASV")]
    Pasv,
    /// A 229 reply to `EPSV`.
    #[serde(rename = "EPSV")]
    Epsv,
    /// A 228 reply to `LPSV`.
    #[serde(rename = "LPSV")]
    Lpsv,
}

impl NegotiationKind {
    /// The mode this kind negotiates.
    pub const fn mode(self) -> Mode {
        match self {
            NegotiationKind::Port | NegotiationKind::Eprt | NegotiationKind::Lprt => Mode::Active,
            NegotiationKind::Pasv | NegotiationKind::Epsv | NegotiationKind::Lpsv => Mode::Passive,
        }
    }

    /// The name used in reports: the command, or the command a reply answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            NegotiationKind::Port => "PORT",
            NegotiationKind::Eprt => "EPRT",
            NegotiationKind::Lprt => "LPRT",
            NegotiationKind::Pasv => "PASV",
            NegotiationKind::Epsv => "EPSV",
            NegotiationKind::Lpsv => "LPSV",
        }
    }

    fn from_reply_code(code: u16) -> Option<Self> {
        match code {
            227 => Some(NegotiationKind::Pasv),
            228 => Some(NegotiationKind::Lpsv),
            229 => Some(NegotiationKind::Epsv),
            _ => None,
        }
    }
}

impl fmt::Display for NegotiationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data endpoint announced on a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    /// What announced it.
    pub kind: NegotiationKind,
    /// The line that announced it (lossy UTF-8, at most the line limit).
    pub line: String,
    /// The announced endpoint, or why none could be read. For EPSV's
    /// `(|||port|)` the address is the control connection's server.
    pub announced: Result<SocketAddr, ParseError>,
    /// A passive reply with no matching PASV/EPSV/LPSV outstanding.
    pub unsolicited: bool,
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtpEvent {
    /// A data endpoint was announced.
    Negotiation(Negotiation),
    /// The client sent `USER`.
    Login {
        /// The name, sanitized and bounded.
        user: String,
    },
    /// `AUTH` was accepted (234): the rest of the connection is TLS and
    /// cannot be read; no more negotiations will be seen.
    Encrypted,
}

/// Limits of the FTP stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpConfig {
    /// Longest line kept, CR LF excluded. Longer lines are cut; a cut
    /// negotiation line is refused (`line-too-long`).
    pub max_line: usize,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig { max_line: 2048 }
    }
}

/// Counters of the FTP stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FtpStats {
    /// Lines read, both directions.
    pub lines: u64,
    /// Lines longer than the limit.
    pub long_lines: u64,
    /// Lines from the server that were not part of any reply.
    pub stray_reply_lines: u64,
    /// Commands seen in the server-to-client direction (ignored).
    pub commands_from_server: u64,
    /// Reply lines seen in the client-to-server direction (ignored).
    pub replies_from_client: u64,
    /// Bytes ignored because the session is encrypted.
    pub encrypted_bytes: u64,
}

impl FtpStats {
    /// Add another session set's counters to these.
    pub fn merge(&mut self, o: &FtpStats) {
        let FtpStats {
            lines,
            long_lines,
            stray_reply_lines,
            commands_from_server,
            replies_from_client,
            encrypted_bytes,
        } = self;
        *lines += o.lines;
        *long_lines += o.long_lines;
        *stray_reply_lines += o.stray_reply_lines;
        *commands_from_server += o.commands_from_server;
        *replies_from_client += o.replies_from_client;
        *encrypted_bytes += o.encrypted_bytes;
    }
}

/// Longest user name kept for the audit trail.
const MAX_USER: usize = 64;

/// What a command sent is waiting for, in the order sent: each final reply
/// (2xx-5xx) answers the oldest (RFC 959: replies come in command order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// PASV, EPSV or LPSV: the reply of this kind, if the server agrees.
    Passive(NegotiationKind),
    /// AUTH TLS/SSL: 234 turns the connection into TLS.
    Tls,
    /// Anything else.
    Other,
}

/// Commands sent and not answered yet. Bounded: a client that pipelines more
/// than this loses the oldest, which can only make later replies unsolicited
/// (refused), never the reverse.
const MAX_AWAITING: usize = 64;

/// The passive reply being read: the line with the tuple, once found.
#[derive(Debug)]
struct PassiveReply {
    kind: NegotiationKind,
    /// The first line of the reply, or the first line with a usable tuple.
    line: String,
    announced: Result<SocketAddr, ParseError>,
}

/// The FTP state of one control connection.
#[derive(Debug)]
pub struct Session {
    control: ControlConn,
    commands: LineSplitter,
    reply_lines: LineSplitter,
    replies: Replies,
    passive: Option<PassiveReply>,
    awaiting: std::collections::VecDeque<Awaiting>,
    /// Bytes were lost in a capture hole: commands or replies may be missing,
    /// so replies are no longer paired strictly in order (see `pair`).
    lost_alignment: bool,
    encrypted: bool,
    user: Option<String>,
    max_line: usize,
}

impl Session {
    /// A session for the control connection `control`.
    pub fn new(control: ControlConn, config: FtpConfig) -> Self {
        Session {
            control,
            commands: LineSplitter::new(config.max_line),
            reply_lines: LineSplitter::new(config.max_line),
            replies: Replies::default(),
            passive: None,
            awaiting: std::collections::VecDeque::new(),
            lost_alignment: false,
            encrypted: false,
            user: None,
            max_line: config.max_line,
        }
    }

    /// The login name, once `USER` was seen.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the session went TLS (nothing more can be read).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Feed the next bytes of one direction.
    pub fn handle_data(&mut self, dir: Direction, bytes: &[u8], stats: &mut FtpStats, out: &mut dyn FnMut(FtpEvent)) {
        if self.encrypted {
            stats.encrypted_bytes += bytes.len() as u64;
            return;
        }
        // The splitter borrows `self` mutably while lines are handled, so it
        // is taken out for the duration.
        match dir {
            Direction::ToServer => {
                let mut splitter = std::mem::replace(&mut self.commands, LineSplitter::new(1));
                splitter.push(bytes, &mut |line| self.command_line(line, stats, out));
                self.commands = splitter;
            }
            Direction::ToClient => {
                let mut splitter = std::mem::replace(&mut self.reply_lines, LineSplitter::new(1));
                splitter.push(bytes, &mut |line| self.reply_line(line, stats, out));
                self.reply_lines = splitter;
            }
        }
    }

    /// Bytes of one direction were lost: drop the damaged line and, for
    /// replies, the reply under way.
    pub fn handle_gap(&mut self, dir: Direction) {
        self.lost_alignment = true;
        match dir {
            Direction::ToServer => self.commands.gap(),
            Direction::ToClient => {
                self.reply_lines.gap();
                self.replies.reset();
                self.passive = None;
            }
        }
    }

    fn command_line(&mut self, line: Line<'_>, stats: &mut FtpStats, out: &mut dyn FnMut(FtpEvent)) {
        stats.lines += 1;
        if self.encrypted {
            return;
        }
        if reply::code_line(line.text).is_some() {
            // "227 ..." from the client is not a negotiation.
            stats.replies_from_client += 1;
            return;
        }
        if line.too_long {
            stats.long_lines += 1;
            self.expect(Awaiting::Other);
            let (verb, _) = split_verb(line.text);
            if let Some(kind) = announcing_kind(verb) {
                out(FtpEvent::Negotiation(Negotiation {
                    kind,
                    line: text(line.text),
                    announced: Err(ParseError::LineTooLong(self.max_line)),
                    unsolicited: false,
                }));
            }
            return;
        }
        // A negotiation must end in CRLF, as RFC 959 has it: a bare LF can
        // end a line for us and not for the server, which could then echo
        // what follows it as a reply of its own.
        let crlf = line.crlf;
        let announce = |kind, announced: Result<SocketAddr, ParseError>| {
            let announced = announced.and_then(|a| if crlf { Ok(a) } else { Err(ParseError::BareLineFeed) });
            FtpEvent::Negotiation(Negotiation { kind, line: text(line.text), announced, unsolicited: false })
        };
        let awaiting = match parse_command(line.text) {
            Command::Port(a) => {
                out(announce(NegotiationKind::Port, a));
                Awaiting::Other
            }
            Command::Eprt(a) => {
                out(announce(NegotiationKind::Eprt, a));
                Awaiting::Other
            }
            Command::Lprt(a) => {
                out(announce(NegotiationKind::Lprt, a));
                Awaiting::Other
            }
            Command::Pasv => Awaiting::Passive(NegotiationKind::Pasv),
            Command::Epsv => Awaiting::Passive(NegotiationKind::Epsv),
            Command::Lpsv => Awaiting::Passive(NegotiationKind::Lpsv),
            Command::Auth(mechanism) => {
                let tls = [&b"TLS"[..], b"SSL", b"TLS-C", b"TLS-P"].iter().any(|m| mechanism.eq_ignore_ascii_case(m));
                if tls {
                    Awaiting::Tls
                } else {
                    Awaiting::Other
                }
            }
            Command::User(name) => {
                let user = sanitize_user(name);
                self.user = Some(user.clone());
                out(FtpEvent::Login { user });
                Awaiting::Other
            }
            Command::Other => Awaiting::Other,
        };
        if crlf {
            self.expect(awaiting);
        }
    }

    /// The command a final reply answers: the oldest one waiting. After a
    /// capture hole the queue may hold commands whose replies were lost, so
    /// a passive reply then answers the oldest matching request, and the
    /// requests before it are taken as answered (the queue heals).
    fn pair(&mut self, passive: Option<NegotiationKind>) -> Option<Awaiting> {
        if let (true, Some(kind)) = (self.lost_alignment, passive) {
            let at = self.awaiting.iter().position(|a| *a == Awaiting::Passive(kind))?;
            self.awaiting.drain(..at);
        }
        self.awaiting.pop_front()
    }

    /// Remember that a command waits for its reply. A command line that
    /// ended in a bare LF is not counted: a server that ends lines only at
    /// CRLF reads it with the next one, and counting one command too many
    /// would pair a later reply with the wrong request (one too few only
    /// makes replies unsolicited: refused).
    fn expect(&mut self, awaiting: Awaiting) {
        if self.awaiting.len() == MAX_AWAITING {
            self.awaiting.pop_front();
        }
        self.awaiting.push_back(awaiting);
    }

    fn reply_line(&mut self, line: Line<'_>, stats: &mut FtpStats, out: &mut dyn FnMut(FtpEvent)) {
        stats.lines += 1;
        stats.long_lines += u64::from(line.too_long);
        if self.encrypted {
            return;
        }
        let Step::Line { code, last, text: body } = self.replies.line(line.text) else {
            let (verb, _) = split_verb(line.text);
            if announcing_kind(verb).is_some() {
                // "PORT ..." from the server is not a negotiation.
                stats.commands_from_server += 1;
            } else {
                stats.stray_reply_lines += 1;
            }
            return;
        };
        if let Some(kind) = NegotiationKind::from_reply_code(code) {
            self.passive_line(kind, line, body);
        }
        if !last {
            return;
        }
        // A final reply answers the oldest command waiting; a preliminary one
        // (1xx) and one nobody asked for (the greeting, 421) answer none.
        let passive = self.passive.take();
        let answered = if (200..600).contains(&code) { self.pair(passive.as_ref().map(|p| p.kind)) } else { None };
        if let Some(reply) = passive {
            let unsolicited = answered != Some(Awaiting::Passive(reply.kind));
            out(FtpEvent::Negotiation(Negotiation {
                kind: reply.kind,
                line: reply.line,
                announced: reply.announced,
                unsolicited,
            }));
        }
        if answered == Some(Awaiting::Tls) && code == 234 {
            self.encrypted = true;
            out(FtpEvent::Encrypted);
        }
    }

    /// One line of a 227/228/229 reply: keep the first line whose tuple
    /// parses; until one does, the first line and its error.
    fn passive_line(&mut self, kind: NegotiationKind, line: Line<'_>, body: &[u8]) {
        if self.passive.as_ref().is_some_and(|p| p.announced.is_ok()) {
            return;
        }
        let announced = if line.too_long {
            Err(ParseError::LineTooLong(self.max_line))
        } else if !line.crlf {
            Err(ParseError::BareLineFeed)
        } else {
            match kind {
                NegotiationKind::Pasv => scan_227(body),
                NegotiationKind::Lpsv => scan_228(body),
                _ => scan_229(body).map(|e| match e {
                    Extended::Endpoint(ep) => ep,
                    Extended::PortOnly(port) => SocketAddr::new(self.control.server.ip(), port),
                }),
            }
        };
        if self.passive.is_none() || announced.is_ok() {
            self.passive = Some(PassiveReply { kind, line: text(line.text), announced });
        }
    }
}

fn announcing_kind(verb: &[u8]) -> Option<NegotiationKind> {
    if !is_announcing_verb(verb) {
        None
    } else if verb.eq_ignore_ascii_case(b"PORT") {
        Some(NegotiationKind::Port)
    } else if verb.eq_ignore_ascii_case(b"EPRT") {
        Some(NegotiationKind::Eprt)
    } else {
        Some(NegotiationKind::Lprt)
    }
}

/// A line as text for reports: lossy UTF-8.
fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// A user name fit for logs: printable characters only, bounded.
fn sanitize_user(name: &[u8]) -> String {
    String::from_utf8_lossy(name).chars().map(|c| if c.is_control() { '?' } else { c }).take(MAX_USER).collect()
}

#[cfg(test)]
mod tests;
