//! Stage 2: TCP segments to the ordered byte streams of FTP control connections.
//!
//! The [`Tracker`] keeps one entry per control connection (client ip:port <->
//! server ip:port, where the server's port is a configured control port) and
//! reassembles each direction by sequence number: in order, once each,
//! out-of-order segments held within bounds. It reports through
//! [`TrackEvent`]s; it reads no clock (every call takes `now`) and allocates
//! only for out-of-order segments and new connections.

mod ports;
mod stream;

pub use ports::{ControlPorts, PortsError};

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::decode::Segment;
use crate::time::Timestamp;
use stream::{Chunk, Limits, Stream};

/// Identifies one control session in events, logs and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The two ends of an FTP control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlConn {
    /// The client's address and (ephemeral) port.
    pub client: SocketAddr,
    /// The server's address and control port.
    pub server: SocketAddr,
}

/// Which way bytes flow on a control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: commands.
    ToServer,
    /// Server to client: replies.
    ToClient,
}

impl Direction {
    /// The other way.
    pub const fn reverse(self) -> Self {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// Why a tracked connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloseReason {
    /// Both sides sent FIN.
    Fin,
    /// One side sent RST.
    Rst,
    /// No segment for the idle timeout.
    Idle,
    /// Dropped to make room in a full connection table.
    Evicted,
    /// A new SYN reused the same addresses and ports.
    Reused,
    /// The input ended or the daemon stopped.
    Shutdown,
}

impl CloseReason {
    /// Stable code for summaries and the audit trail.
    pub const fn code(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::Rst => "rst",
            CloseReason::Idle => "idle",
            CloseReason::Evicted => "evicted",
            CloseReason::Reused => "reused",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// What the tracker reports, in the order things happened.
#[derive(Debug, PartialEq, Eq)]
pub enum TrackEvent<'a> {
    /// A control connection is tracked from now on.
    Opened {
        /// Its session.
        session: SessionId,
        /// Its ends.
        control: ControlConn,
        /// Picked up without seeing its SYN (capture or daemon started late).
        midstream: bool,
    },
    /// The next bytes of one direction, in order.
    Data {
        /// The session they belong to.
        session: SessionId,
        /// Which way they flow.
        dir: Direction,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Bytes of one direction were lost for good (capture drops, a hole
    /// held too long); what comes next does not continue what came before.
    Gap {
        /// The session.
        session: SessionId,
        /// The direction with the hole.
        dir: Direction,
        /// How many bytes are missing.
        bytes: u64,
    },
    /// The connection ended; no more events for this session.
    Closed {
        /// The session.
        session: SessionId,
        /// Why.
        reason: CloseReason,
    },
}

/// Bounds and timeouts of the tracker.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Server ports that identify control connections.
    pub ports: ControlPorts,
    /// Most connections tracked at once.
    pub max_connections: usize,
    /// When the table is full, a client with more sessions than this loses
    /// its least recently active one to a newcomer.
    pub max_per_client: usize,
    /// Most out-of-order bytes held per direction before a hole is given up.
    pub max_held_bytes: usize,
    /// Most out-of-order segments held per direction.
    pub max_held_segments: usize,
    /// A connection with no segment for this long is closed.
    pub idle_timeout: Duration,
    /// A closed connection is remembered this long, so that late
    /// retransmissions do not revive it as a new session.
    pub closed_linger: Duration,
    /// The first session id handed out. Ids are unique within one run; the
    /// audit trail pairs them with the run's id (its start time).
    pub first_session: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            ports: ControlPorts::default(),
            max_connections: 4096,
            max_per_client: 64,
            max_held_bytes: 16 * 1024,
            max_held_segments: 32,
            idle_timeout: Duration::from_secs(2 * 60 * 60),
            closed_linger: Duration::from_secs(10),
            first_session: 1,
        }
    }
}

/// Counters of what the tracker saw and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackStats {
    /// TCP segments offered.
    pub segments: u64,
    /// Segments of no control connection (neither port is a control port).
    pub not_control: u64,
    /// Segments of control connections.
    pub control_segments: u64,
    /// Segments whose every byte had been seen (retransmissions, the same
    /// segment captured on a second interface).
    pub duplicates: u64,
    /// Segments partly seen before, trimmed.
    pub trimmed: u64,
    /// Segments held out of order.
    pub held: u64,
    /// Holes given up, and the bytes in them.
    pub gaps: u64,
    /// Bytes lost in given-up holes.
    pub gap_bytes: u64,
    /// Segments too far ahead of their stream, dropped.
    pub out_of_window: u64,
    /// RSTs ignored because their sequence number was implausible.
    pub rst_ignored: u64,
    /// Segments of connections that ended, ignored.
    pub after_close: u64,
    /// Control connections opened (`midstream` of them without a SYN seen).
    pub connections: u64,
    /// Connections picked up mid-stream.
    pub midstream: u64,
    /// New connections refused because the table was full of live sessions.
    pub table_full: u64,
    /// Connections evicted to make room.
    pub evicted: u64,
}

impl TrackStats {
    /// Add another tracker's counters to these.
    pub fn merge(&mut self, o: &TrackStats) {
        let TrackStats {
            segments,
            not_control,
            control_segments,
            duplicates,
            trimmed,
            held,
            gaps,
            gap_bytes,
            out_of_window,
            rst_ignored,
            after_close,
            connections,
            midstream,
            table_full,
            evicted,
        } = self;
        *segments += o.segments;
        *not_control += o.not_control;
        *control_segments += o.control_segments;
        *duplicates += o.duplicates;
        *trimmed += o.trimmed;
        *held += o.held;
        *gaps += o.gaps;
        *gap_bytes += o.gap_bytes;
        *out_of_window += o.out_of_window;
        *rst_ignored += o.rst_ignored;
        *after_close += o.after_close;
        *connections += o.connections;
        *midstream += o.midstream;
        *table_full += o.table_full;
        *evicted += o.evicted;
    }
}

/// How close to the expected sequence number a RST must be to be believed.
const RST_WINDOW: u32 = 1 << 20;

/// How often idle connections are swept, at most.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum State {
    Open,
    /// Ended at the given time; kept for `closed_linger`.
    Closed(Timestamp),
}

#[derive(Debug)]
struct Conn {
    session: SessionId,
    state: State,
    last_seen: Timestamp,
    to_server: Stream,
    to_client: Stream,
    /// Payload was seen in both directions (a real session, not a probe).
    assured: bool,
}

/// Hand a stream's output on as tracker events.
fn forward(
    session: SessionId,
    dir: Direction,
    chunk: Chunk<'_>,
    stats: &mut TrackStats,
    out: &mut dyn FnMut(TrackEvent<'_>),
) {
    match chunk {
        Chunk::Data(bytes) => out(TrackEvent::Data { session, dir, bytes }),
        Chunk::Gap(bytes) => {
            stats.gaps += 1;
            out(TrackEvent::Gap { session, dir, bytes })
        }
        // Both FINs are checked after the segment; nothing to say per FIN.
        Chunk::Fin => {}
    }
}

/// The ISN seen for one direction of `conn`.
fn stream_isn(conn: &Conn, dir: Direction) -> Option<u32> {
    match dir {
        Direction::ToServer => conn.to_server.isn(),
        Direction::ToClient => conn.to_client.isn(),
    }
}

impl Conn {
    fn stream(&mut self, dir: Direction) -> &mut Stream {
        match dir {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// The connection table and reassembly of all control connections.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    conns: HashMap<ControlConn, Conn>,
    next_session: u64,
    next_sweep: Option<Timestamp>,
    stats: TrackStats,
}

impl Tracker {
    /// An empty tracker.
    pub fn new(config: TrackerConfig) -> Self {
        let next_session = config.first_session;
        Tracker { config, conns: HashMap::new(), next_session, next_sweep: None, stats: TrackStats::default() }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &TrackStats {
        &self.stats
    }

    /// Connections in the table (open or lingering after close).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Which control connection and direction `seg` belongs to, if any.
    pub fn classify(&self, seg: &Segment<'_>) -> Option<(ControlConn, Direction)> {
        if self.config.ports.contains(seg.dst.port()) {
            Some((ControlConn { client: seg.src, server: seg.dst }, Direction::ToServer))
        } else if self.config.ports.contains(seg.src.port()) {
            Some((ControlConn { client: seg.dst, server: seg.src }, Direction::ToClient))
        } else {
            None
        }
    }

    /// Feed one segment captured at `now`.
    pub fn handle_segment(&mut self, now: Timestamp, seg: &Segment<'_>, out: &mut dyn FnMut(TrackEvent<'_>)) {
        self.stats.segments += 1;
        let Some((control, dir)) = self.classify(seg) else {
            self.stats.not_control += 1;
            return;
        };
        self.stats.control_segments += 1;
        self.sweep_if_due(now, out);

        let opens = seg.flags.syn && !seg.flags.rst;
        let session = match self.conns.get_mut(&control) {
            Some(conn) => match conn.state {
                State::Open => {
                    let isn = stream_isn(conn, dir);
                    if seg.flags.syn && isn.is_some_and(|isn| isn != seg.seq) {
                        // Same ports, new ISN: the old connection is gone.
                        let old = conn.session;
                        self.conns.remove(&control);
                        out(TrackEvent::Closed { session: old, reason: CloseReason::Reused });
                        self.open(now, control, false, out)
                    } else {
                        Some(conn.session)
                    }
                }
                // A SYN with the ISN of the connection that just closed is a
                // late copy (second interface), not a new connection.
                State::Closed(_) if opens && stream_isn(conn, dir) != Some(seg.seq) => {
                    self.conns.remove(&control);
                    self.open(now, control, false, out)
                }
                State::Closed(_) => {
                    self.stats.after_close += 1;
                    return;
                }
            },
            None if opens || !seg.payload.is_empty() => self.open(now, control, !opens, out),
            None => return, // a bare ACK/FIN/RST of a connection never seen: nothing to track
        };
        let Some(session) = session else { return };
        let Some(conn) = self.conns.get_mut(&control) else {
            return;
        };
        conn.last_seen = now;

        if seg.flags.rst {
            // Believe a RST only near where the stream is (RFC 5961 spirit):
            // a blind RST must not close our view of a live session.
            if conn.stream(dir).near(seg.seq, RST_WINDOW) {
                conn.state = State::Closed(now);
                out(TrackEvent::Closed { session, reason: CloseReason::Rst });
            } else {
                self.stats.rst_ignored += 1;
            }
            return;
        }

        let limits = Limits { max_bytes: self.config.max_held_bytes, max_segments: self.config.max_held_segments };
        let stats = &mut self.stats;
        if seg.flags.ack {
            // The ACK speaks for the other direction's stream.
            let back = dir.reverse();
            let lost = conn.stream(back).acked(seg.ack, &mut |chunk| forward(session, back, chunk, stats, out));
            stats.gap_bytes += lost;
        }
        let outcome = conn
            .stream(dir)
            .receive(seg.seq, seg.flags, seg.payload, limits, &mut |chunk| forward(session, dir, chunk, stats, out));
        self.stats.duplicates += u64::from(outcome.duplicate);
        self.stats.trimmed += u64::from(outcome.trimmed);
        self.stats.held += u64::from(outcome.buffered);
        self.stats.out_of_window += u64::from(outcome.out_of_window);
        self.stats.gap_bytes += outcome.gap_bytes;
        if !seg.payload.is_empty() && dir == Direction::ToClient {
            conn.assured = true;
        }
        if conn.to_server.finished() && conn.to_client.finished() {
            conn.state = State::Closed(now);
            out(TrackEvent::Closed { session, reason: CloseReason::Fin });
        }
    }

    /// Start tracking `control`; `None` if the table is full of live sessions.
    fn open(
        &mut self,
        now: Timestamp,
        control: ControlConn,
        midstream: bool,
        out: &mut dyn FnMut(TrackEvent<'_>),
    ) -> Option<SessionId> {
        if self.conns.len() >= self.config.max_connections && !self.make_room(out) {
            self.stats.table_full += 1;
            return None;
        }
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.stats.connections += 1;
        self.stats.midstream += u64::from(midstream);
        self.conns.insert(
            control,
            Conn {
                session,
                state: State::Open,
                last_seen: now,
                to_server: Stream::default(),
                to_client: Stream::default(),
                assured: false,
            },
        );
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now.saturating_add(SWEEP_INTERVAL));
        }
        out(TrackEvent::Opened { session, control, midstream });
        Some(session)
    }

    /// Free one slot: a closed connection, else the least recently seen one
    /// that never got a reply, else the least recently seen session of a
    /// client holding more than its share (`max_per_client`). Other live
    /// sessions are never evicted: one client cannot crowd out the rest.
    fn make_room(&mut self, out: &mut dyn FnMut(TrackEvent<'_>)) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Closed(_)) || !c.assured)
            .min_by_key(|(_, c)| (matches!(c.state, State::Open), c.last_seen))
            .map(|(k, _)| *k)
            .or_else(|| self.hog_victim());
        let Some(key) = victim else { return false };
        if let Some(conn) = self.conns.remove(&key) {
            if matches!(conn.state, State::Open) {
                self.stats.evicted += 1;
                out(TrackEvent::Closed { session: conn.session, reason: CloseReason::Evicted });
            }
        }
        true
    }

    /// The least recently seen session of the client with the most
    /// sessions, if it holds more than `max_per_client`.
    fn hog_victim(&self) -> Option<ControlConn> {
        let mut per_client: HashMap<IpAddr, usize> = HashMap::new();
        for key in self.conns.keys() {
            *per_client.entry(key.client.ip()).or_default() += 1;
        }
        let (hog, count) = per_client.into_iter().max_by_key(|(_, n)| *n)?;
        if count <= self.config.max_per_client {
            return None;
        }
        self.conns.iter().filter(|(k, _)| k.client.ip() == hog).min_by_key(|(_, c)| c.last_seen).map(|(k, _)| *k)
    }

    /// When [`Tracker::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_sweep
    }

    /// Expire idle connections and forget closed ones whose linger passed.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut dyn FnMut(TrackEvent<'_>)) {
        let idle = self.config.idle_timeout;
        let linger = self.config.closed_linger;
        self.conns.retain(|_, conn| match conn.state {
            State::Closed(at) => now.saturating_since(at) < linger,
            State::Open if now.saturating_since(conn.last_seen) >= idle => {
                out(TrackEvent::Closed { session: conn.session, reason: CloseReason::Idle });
                false
            }
            State::Open => true,
        });
        self.next_sweep = (!self.conns.is_empty()).then(|| now.saturating_add(SWEEP_INTERVAL));
    }

    fn sweep_if_due(&mut self, now: Timestamp, out: &mut dyn FnMut(TrackEvent<'_>)) {
        if self.next_sweep.is_some_and(|at| now >= at) {
            self.handle_timeout(now, out);
        }
    }

    /// Close every open connection (end of input, daemon stop).
    pub fn close_all(&mut self, out: &mut dyn FnMut(TrackEvent<'_>)) {
        for (_, conn) in self.conns.drain() {
            if matches!(conn.state, State::Open) {
                out(TrackEvent::Closed { session: conn.session, reason: CloseReason::Shutdown });
            }
        }
        self.next_sweep = None;
    }
}

#[cfg(test)]
mod tests;
