//! The audit trail's schema: one JSON object per line, flat, versioned.
//!
//! Every record has `v` (schema version), `ts` (RFC 3339 UTC), `unix`
//! (seconds, fractional), `event` and `run` (which daemon run or capture it
//! came from). Records about a control session carry `session`, `client` and
//! `server`; the other fields depend on the event (README, "Audit trail").

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ftp::Mode;
use crate::pipeline::{Event, EventKind};
use crate::policy::{Decision, Pinhole, SourcePort};
use crate::report::{PinholeJson, PortJson};
use crate::time::Timestamp;
use crate::track::{Direction, SessionId};

/// Version of the schema written in every record's `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// The daemon started (its configuration in the record).
    DaemonStart,
    /// The daemon stopped.
    DaemonStop,
    /// A control connection is followed.
    SessionOpen,
    /// The client sent USER.
    Login,
    /// AUTH TLS was accepted: the rest of the session cannot be seen.
    Encrypted,
    /// A control connection ended.
    SessionClose,
    /// A negotiation was accepted and its pinhole opened.
    PinholeOpen,
    /// A negotiation was refused: nothing opened.
    Refused,
    /// The pinhole's connection came: the kernel consumed it.
    PinholeConsumed,
    /// The pinhole's TTL ran out unused.
    PinholeExpired,
    /// The pinhole was closed unused (session ended, superseded, shutdown).
    PinholeClosed,
    /// The kernel refused an operation on a pinhole.
    BackendError,
    /// Bytes of a control connection were lost to the capture.
    StreamGap,
}

impl RecordKind {
    /// Every kind, in the order above.
    pub const ALL: [RecordKind; 13] = [
        RecordKind::DaemonStart,
        RecordKind::DaemonStop,
        RecordKind::SessionOpen,
        RecordKind::Login,
        RecordKind::Encrypted,
        RecordKind::SessionClose,
        RecordKind::PinholeOpen,
        RecordKind::Refused,
        RecordKind::PinholeConsumed,
        RecordKind::PinholeExpired,
        RecordKind::PinholeClosed,
        RecordKind::BackendError,
        RecordKind::StreamGap,
    ];

    /// The name written in `event`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::DaemonStart => "daemon-start",
            RecordKind::DaemonStop => "daemon-stop",
            RecordKind::SessionOpen => "session-open",
            RecordKind::Login => "login",
            RecordKind::Encrypted => "encrypted",
            RecordKind::SessionClose => "session-close",
            RecordKind::PinholeOpen => "pinhole-open",
            RecordKind::Refused => "refused",
            RecordKind::PinholeConsumed => "pinhole-consumed",
            RecordKind::PinholeExpired => "pinhole-expired",
            RecordKind::PinholeClosed => "pinhole-closed",
            RecordKind::BackendError => "backend-error",
            RecordKind::StreamGap => "stream-gap",
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the audit trail. Absent fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// When, RFC 3339 UTC with microseconds.
    pub ts: String,
    /// When, Unix seconds.
    pub unix: f64,
    /// What happened.
    pub event: RecordKind,
    /// The daemon run (start time, hex) or capture file the record is from.
    pub run: String,
    /// The control session, unique within `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// The control connection's client end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<SocketAddr>,
    /// The control connection's server end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<SocketAddr>,
    /// Login name (login, session-close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// PORT, EPRT, LPRT, PASV, EPSV, LPSV (pinhole-open, refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The announcing line (pinhole-open, refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// The announced endpoint; `null` in a refusal when none was readable.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub announced: Option<Option<SocketAddr>>,
    /// Why: refusal code, close reason, stop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason in words, or an error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The pinhole (pinhole-*, backend-error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinhole: Option<PinholeJson>,
    /// When an opened pinhole expires unless used, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Microseconds from the packet that negotiated a pinhole to the pinhole
    /// being in the kernel (pinhole-open, live only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Session length in seconds (session-close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Picked up without its SYN (session-open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub midstream: Option<bool>,
    /// Bytes lost (stream-gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Free-form details of daemon-start (configuration) and daemon-stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl AuditRecord {
    /// A record of `event` at `at` in `run`, every other field empty.
    pub fn new(event: RecordKind, at: Timestamp, run: &str) -> Self {
        AuditRecord {
            v: SCHEMA_VERSION,
            ts: at.to_rfc3339(),
            unix: at.unix_secs_f64(),
            event,
            run: run.to_string(),
            session: None,
            client: None,
            server: None,
            user: None,
            kind: None,
            line: None,
            announced: None,
            reason: None,
            detail: None,
            pinhole: None,
            expires: None,
            latency_us: None,
            duration_s: None,
            midstream: None,
            bytes: None,
            info: None,
        }
    }

    /// The same, about a control session.
    pub fn for_session(event: RecordKind, e: &Event, run: &str) -> Self {
        let mut r = AuditRecord::new(event, e.at, run);
        r.session = Some(e.session.0);
        r.client = Some(e.control.client);
        r.server = Some(e.control.server);
        r
    }

    /// A record about one pinhole of a session (opened, consumed, expired,
    /// closed).
    pub fn about_pinhole(
        event: RecordKind,
        at: Timestamp,
        run: &str,
        session: SessionId,
        control: &crate::track::ControlConn,
        pinhole: &Pinhole,
    ) -> Self {
        let mut r = AuditRecord::new(event, at, run);
        r.session = Some(session.0);
        r.client = Some(control.client);
        r.server = Some(control.server);
        r.pinhole = Some(PinholeJson::from(pinhole));
        r
    }

    /// Set the record's time.
    pub fn set_time(&mut self, at: Timestamp) {
        self.ts = at.to_rfc3339();
        self.unix = at.unix_secs_f64();
    }

    /// Set the pinhole field.
    pub fn with_pinhole(mut self, pinhole: &Pinhole) -> Self {
        self.pinhole = Some(PinholeJson::from(pinhole));
        self
    }

    /// The pinhole of a record, back as a [`Pinhole`].
    pub fn pinhole(&self) -> Option<Pinhole> {
        let p = self.pinhole.as_ref()?;
        Some(Pinhole {
            mode: p.mode,
            src: p.src,
            sport: match p.sport {
                PortJson::Port(n) => SourcePort::Port(n),
                PortJson::Any(_) => SourcePort::Any,
            },
            dst: p.dst,
            dport: p.dport,
            ttl: std::time::Duration::from_secs(p.ttl_s),
        })
    }

    /// The record a pipeline event makes, if any. A withdrawal becomes
    /// `pinhole-closed`, which is what a capture can say; the daemon, which
    /// can ask the kernel whether the pinhole was used first, decides
    /// withdrawals itself.
    pub fn from_event(e: &Event, run: &str) -> AuditRecord {
        match &e.kind {
            EventKind::SessionOpened { midstream } => {
                let mut r = AuditRecord::for_session(RecordKind::SessionOpen, e, run);
                r.midstream = Some(*midstream);
                r
            }
            EventKind::Login { user } => {
                let mut r = AuditRecord::for_session(RecordKind::Login, e, run);
                r.user = Some(user.clone());
                r
            }
            EventKind::Encrypted => AuditRecord::for_session(RecordKind::Encrypted, e, run),
            EventKind::Negotiated { negotiation, decision } => {
                let kind = match decision {
                    Decision::Open(_) => RecordKind::PinholeOpen,
                    Decision::Refuse(_) => RecordKind::Refused,
                };
                let mut r = AuditRecord::for_session(kind, e, run);
                r.kind = Some(negotiation.kind.as_str().to_string());
                r.line = Some(negotiation.line.clone());
                r.announced = Some(negotiation.announced.as_ref().ok().copied());
                match decision {
                    Decision::Open(p) => {
                        r.pinhole = Some(PinholeJson::from(p));
                        r.expires = Some(e.at.saturating_add(p.ttl).to_rfc3339());
                    }
                    Decision::Refuse(refusal) => {
                        r.reason = Some(refusal.reason.code().to_string());
                        r.detail = Some(refusal.reason.to_string());
                    }
                }
                r
            }
            EventKind::Withdrawn { pinhole, reason } => {
                let mut r =
                    AuditRecord::about_pinhole(RecordKind::PinholeClosed, e.at, run, e.session, &e.control, pinhole);
                r.reason = Some(reason.code().to_string());
                r
            }
            EventKind::StreamGap { dir, bytes } => {
                let mut r = AuditRecord::for_session(RecordKind::StreamGap, e, run);
                r.bytes = Some(*bytes);
                r.detail = Some(match dir {
                    Direction::ToServer => "client to server".to_string(),
                    Direction::ToClient => "server to client".to_string(),
                });
                r
            }
            EventKind::SessionClosed { reason, user, duration } => {
                let mut r = AuditRecord::for_session(RecordKind::SessionClose, e, run);
                r.reason = Some(reason.code().to_string());
                r.user = user.clone();
                r.duration_s = Some(duration.as_secs_f64());
                r
            }
        }
    }

    /// The mode of the record's pinhole, if any.
    pub fn mode(&self) -> Option<Mode> {
        self.pinhole.as_ref().map(|p| p.mode)
    }

    /// The session as a [`SessionId`].
    pub fn session_id(&self) -> Option<SessionId> {
        self.session.map(SessionId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftp::{Negotiation, NegotiationKind, ParseError};
    use crate::policy::{Refusal, RefusalReason};
    use crate::track::{CloseReason, ControlConn};
    use std::time::Duration;

    fn event(kind: EventKind) -> Event {
        Event {
            at: Timestamp::from_unix_nanos(1_764_072_000_123_456_000),
            session: SessionId(7),
            control: ControlConn {
                client: "192.0.2.10:40000".parse().expect("addr"),
                server: "198.51.100.20:21".parse().expect("addr"),
            },
            kind,
        }
    }

    fn pinhole() -> Pinhole {
        Pinhole {
            mode: Mode::Passive,
            src: "192.0.2.10".parse().expect("addr"),
            sport: SourcePort::Any,
            dst: "198.51.100.20".parse().expect("addr"),
            dport: 50000,
            ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn an_opened_pinhole_record() {
        let n = Negotiation {
            kind: NegotiationKind::Pasv,
            line: "227 Entering Passive Mode (198,51,100,20,195,80)".into(),
            announced: Ok("198.51.100.20:50000".parse().expect("ep")),
            unsolicited: false,
        };
        let e = event(EventKind::Negotiated { negotiation: n, decision: Decision::Open(pinhole()) });
        let r = AuditRecord::from_event(&e, "r1");
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            json,
            r#"{"v":1,"ts":"2025-11-25T12:00:00.123456Z","unix":1764072000.123456,"event":"pinhole-open","run":"r1","session":7,"client":"192.0.2.10:40000","server":"198.51.100.20:21","kind":"PASV","line":"227 Entering Passive Mode (198,51,100,20,195,80)","announced":"198.51.100.20:50000","pinhole":{"proto":"tcp","src":"192.0.2.10","sport":"any","dst":"198.51.100.20","dport":50000,"ttl_s":30,"mode":"passive"},"expires":"2025-11-25T12:00:30.123456Z"}"#
        );
        let back: AuditRecord = serde_json::from_str(&json).expect("parse back");
        assert_eq!(back, r);
        assert_eq!(back.pinhole(), Some(pinhole()));
    }

    #[test]
    fn a_refusal_record_keeps_the_reason_and_a_null_announced() {
        let n = Negotiation {
            kind: NegotiationKind::Port,
            line: "PORT 1234".into(),
            announced: Err(ParseError::FieldCount { expected: 6, found: 1 }),
            unsolicited: false,
        };
        let refusal = Refusal { reason: RefusalReason::Unparsable(ParseError::FieldCount { expected: 6, found: 1 }) };
        let e = event(EventKind::Negotiated { negotiation: n, decision: Decision::Refuse(refusal) });
        let r = AuditRecord::from_event(&e, "r1");
        let v: serde_json::Value = serde_json::to_value(&r).expect("json");
        assert_eq!(v["event"], "refused");
        assert_eq!(v["reason"], "malformed");
        assert_eq!(v["detail"], "expected 6 comma-separated numbers, found 1");
        assert!(v["announced"].is_null() && v.as_object().expect("object").contains_key("announced"));
        assert!(v.get("pinhole").is_none());
        let back: AuditRecord = serde_json::from_value(v).expect("parse back");
        assert_eq!(back.announced, Some(None));
    }

    #[test]
    fn kind_names_are_the_serialized_names() {
        for kind in RecordKind::ALL {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
    }

    #[test]
    fn session_records() {
        let r = AuditRecord::from_event(&event(EventKind::SessionOpened { midstream: true }), "r");
        assert_eq!((r.event, r.midstream, r.session), (RecordKind::SessionOpen, Some(true), Some(7)));
        let r = AuditRecord::from_event(&event(EventKind::Login { user: "alice".into() }), "r");
        assert_eq!(r.user.as_deref(), Some("alice"));
        let r = AuditRecord::from_event(
            &event(EventKind::SessionClosed {
                reason: CloseReason::Fin,
                user: Some("alice".into()),
                duration: Duration::from_millis(1500),
            }),
            "r",
        );
        assert_eq!(
            (r.event, r.reason.as_deref(), r.user.as_deref()),
            (RecordKind::SessionClose, Some("fin"), Some("alice"))
        );
        assert_eq!(r.duration_s, Some(1.5));
        let withdrawn =
            EventKind::Withdrawn { pinhole: pinhole(), reason: crate::pipeline::WithdrawReason::Superseded };
        let r = AuditRecord::from_event(&event(withdrawn), "r");
        assert_eq!(
            (r.event, r.reason.as_deref(), r.pinhole()),
            (RecordKind::PinholeClosed, Some("superseded"), Some(pinhole()))
        );
    }
}
