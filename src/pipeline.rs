//! The sans-IO core assembled: frames in, [`Event`]s out.
//!
//! [`Pipeline`] runs decode -> track -> ftp -> policy for every frame it is
//! fed and appends what happened to a caller-owned `Vec<Event>`, in order.
//! It reads no clock and does no I/O: `inspect` feeds it a pcap, `run` feeds
//! it live frames; both then act on the same events (print them, open
//! pinholes in a backend, write the audit trail).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::decode::{decode, LinkType, Segment, Skip};
use crate::ftp::{FtpConfig, FtpEvent, FtpStats, Negotiation, Session};
use crate::policy::{Bucket, Decision, Pinhole, Policy, Refusal, RefusalReason};
use crate::time::Timestamp;
use crate::track::{CloseReason, ControlConn, Direction, SessionId, TrackEvent, TrackStats, Tracker, TrackerConfig};

/// Everything the core is configured with.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    /// Connection tracking and reassembly bounds.
    pub tracker: TrackerConfig,
    /// FTP parsing limits.
    pub ftp: FtpConfig,
    /// How negotiations are judged.
    pub policy: Policy,
}

/// Why a pinhole is withdrawn before its TTL ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WithdrawReason {
    /// The session negotiated a newer data connection; a conforming peer
    /// will not use the older one.
    Superseded,
    /// The control connection ended.
    SessionEnded,
}

impl WithdrawReason {
    /// Stable code for logs and the audit trail.
    pub const fn code(self) -> &'static str {
        match self {
            WithdrawReason::Superseded => "superseded",
            WithdrawReason::SessionEnded => "session-ended",
        }
    }
}

/// What happened, for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A control connection is followed from now on.
    SessionOpened {
        /// Picked up without its SYN.
        midstream: bool,
    },
    /// The client logged in as `user`.
    Login {
        /// The name given with USER.
        user: String,
    },
    /// The session switched to TLS: no more negotiations can be seen.
    Encrypted,
    /// A data endpoint was announced and judged.
    Negotiated {
        /// What was announced.
        negotiation: Negotiation,
        /// Open a pinhole, or refuse.
        decision: Decision,
    },
    /// A pinhole opened earlier in this session should be closed, if unused.
    Withdrawn {
        /// The pinhole.
        pinhole: Pinhole,
        /// Why.
        reason: WithdrawReason,
    },
    /// Bytes of the control connection were lost to the capture: a
    /// negotiation may have been missed (its data connection then fails
    /// closed).
    StreamGap {
        /// Which direction lost bytes.
        dir: Direction,
        /// How many.
        bytes: u64,
    },
    /// The control connection ended.
    SessionClosed {
        /// Why.
        reason: CloseReason,
        /// The login name, if one was seen.
        user: Option<String>,
        /// How long the session was followed.
        duration: Duration,
    },
}

/// One event of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When (the timestamp of the input that caused it).
    pub at: Timestamp,
    /// Which session.
    pub session: SessionId,
    /// The session's control connection.
    pub control: ControlConn,
    /// What.
    pub kind: EventKind,
}

/// Counters over everything fed to a pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Frames fed.
    pub frames: u64,
    /// Frames skipped, by [`Skip`] code.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Tracker counters.
    pub track: TrackStats,
    /// FTP counters.
    pub ftp: FtpStats,
    /// Negotiations seen.
    pub negotiations: u64,
    /// Pinholes decided open.
    pub opened: u64,
    /// Refusals, by reason code.
    pub refused: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Frames skipped for any reason.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Add another run's counters to these (totals over several captures).
    pub fn merge(&mut self, other: &Stats) {
        self.frames += other.frames;
        self.negotiations += other.negotiations;
        self.opened += other.opened;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        for (k, v) in &other.refused {
            *self.refused.entry(k).or_default() += v;
        }
        self.track.merge(&other.track);
        self.ftp.merge(&other.ftp);
    }
}

#[derive(Debug)]
struct SessionState {
    control: ControlConn,
    opened: Timestamp,
    ftp: Session,
    /// The last pinhole opened and not yet withdrawn.
    open: Option<Pinhole>,
    /// Negotiations left before the rate limit refuses them.
    bucket: Bucket,
}

/// The mutable parts a tracker event needs, borrowed apart from the tracker.
struct Core<'p> {
    sessions: &'p mut HashMap<SessionId, SessionState>,
    config: &'p PipelineConfig,
    ftp_stats: &'p mut FtpStats,
    negotiations: &'p mut u64,
    opened: &'p mut u64,
    refused: &'p mut BTreeMap<&'static str, u64>,
}

/// decode -> track -> ftp -> policy, as one sans-IO state machine.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    tracker: Tracker,
    sessions: HashMap<SessionId, SessionState>,
    stats: Stats,
}

impl Pipeline {
    /// A pipeline with nothing tracked yet.
    pub fn new(config: PipelineConfig) -> Self {
        let tracker = Tracker::new(config.tracker.clone());
        Pipeline { config, tracker, sessions: HashMap::new(), stats: Stats::default() }
    }

    /// The configuration in force.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Counters so far (tracker counters included).
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        stats.track = self.tracker.stats().clone();
        stats
    }

    /// The tracker's counters (cheap: no copy of the rest).
    pub fn track_stats(&self) -> &TrackStats {
        self.tracker.stats()
    }

    /// Sessions being followed.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Feed one captured frame of link type `link`, seen at `now`.
    pub fn handle_frame(&mut self, now: Timestamp, link: LinkType, frame: &[u8], out: &mut Vec<Event>) {
        self.stats.frames += 1;
        match decode(link, frame) {
            Ok(segment) => self.handle_segment(now, &segment, out),
            Err(skip) => self.skip(skip),
        }
    }

    /// Count a frame that could not be fed (for example an unsupported link
    /// type, which the caller detects before decoding).
    pub fn skip(&mut self, skip: Skip) {
        *self.stats.skipped.entry(skip.code()).or_default() += 1;
    }

    /// Feed one decoded TCP segment.
    pub fn handle_segment(&mut self, now: Timestamp, segment: &Segment<'_>, out: &mut Vec<Event>) {
        let (tracker, mut core) = self.split();
        tracker.handle_segment(now, segment, &mut |ev| core.on_track_event(now, ev, out));
    }

    /// When [`Pipeline::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.tracker.poll_timeout()
    }

    /// Run the timers due at `now` (idle sessions).
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let (tracker, mut core) = self.split();
        tracker.handle_timeout(now, &mut |ev| core.on_track_event(now, ev, out));
    }

    /// End every session (end of input, shutdown).
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let (tracker, mut core) = self.split();
        tracker.close_all(&mut |ev| core.on_track_event(now, ev, out));
    }

    fn split(&mut self) -> (&mut Tracker, Core<'_>) {
        let Pipeline { config, tracker, sessions, stats } = self;
        let core = Core {
            sessions,
            config,
            ftp_stats: &mut stats.ftp,
            negotiations: &mut stats.negotiations,
            opened: &mut stats.opened,
            refused: &mut stats.refused,
        };
        (tracker, core)
    }
}

impl Core<'_> {
    fn on_track_event(&mut self, now: Timestamp, ev: TrackEvent<'_>, out: &mut Vec<Event>) {
        match ev {
            TrackEvent::Opened { session, control, midstream } => {
                let ftp = Session::new(control, self.config.ftp);
                let bucket = Bucket::full(now, self.config.policy.rate);
                self.sessions.insert(session, SessionState { control, opened: now, ftp, open: None, bucket });
                out.push(Event { at: now, session, control, kind: EventKind::SessionOpened { midstream } });
            }
            TrackEvent::Data { session, dir, bytes } => {
                let Some(state) = self.sessions.get_mut(&session) else {
                    return;
                };
                let SessionState { control, ftp, open, bucket, .. } = state;
                let (config, negotiations, opened, refused) =
                    (self.config, &mut *self.negotiations, &mut *self.opened, &mut *self.refused);
                ftp.handle_data(dir, bytes, self.ftp_stats, &mut |fev| {
                    let kind = match fev {
                        FtpEvent::Login { user } => EventKind::Login { user },
                        FtpEvent::Encrypted => EventKind::Encrypted,
                        FtpEvent::Negotiation(negotiation) => {
                            *negotiations += 1;
                            let rate = config.policy.rate;
                            let decision = if bucket.take(now, rate) {
                                config.policy.decide(control, &negotiation)
                            } else {
                                Decision::Refuse(Refusal {
                                    reason: RefusalReason::RateLimited {
                                        per_second: rate.per_second,
                                        burst: rate.burst,
                                    },
                                })
                            };
                            match &decision {
                                Decision::Open(pinhole) => {
                                    *opened += 1;
                                    if let Some(old) = open.replace(*pinhole).filter(|old| !old.same_flow(pinhole)) {
                                        out.push(Event {
                                            at: now,
                                            session,
                                            control: *control,
                                            kind: EventKind::Withdrawn {
                                                pinhole: old,
                                                reason: WithdrawReason::Superseded,
                                            },
                                        });
                                    }
                                }
                                Decision::Refuse(r) => *refused.entry(r.reason.code()).or_default() += 1,
                            }
                            EventKind::Negotiated { negotiation, decision }
                        }
                    };
                    out.push(Event { at: now, session, control: *control, kind });
                });
            }
            TrackEvent::Gap { session, dir, bytes } => {
                if let Some(state) = self.sessions.get_mut(&session) {
                    state.ftp.handle_gap(dir);
                    out.push(Event {
                        at: now,
                        session,
                        control: state.control,
                        kind: EventKind::StreamGap { dir, bytes },
                    });
                }
            }
            TrackEvent::Closed { session, reason } => {
                let Some(state) = self.sessions.remove(&session) else {
                    return;
                };
                let control = state.control;
                if let Some(pinhole) = state.open {
                    let kind = EventKind::Withdrawn { pinhole, reason: WithdrawReason::SessionEnded };
                    out.push(Event { at: now, session, control, kind });
                }
                let user = state.ftp.user().map(str::to_owned);
                let duration = now.saturating_since(state.opened);
                out.push(Event {
                    at: now,
                    session,
                    control,
                    kind: EventKind::SessionClosed { reason, user, duration },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
