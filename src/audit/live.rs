//! What the kernel holds now, joined with what the audit trail says about
//! it (`ftp-pinhole audit --live`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::ledger::FlowKey;
use super::{AuditRecord, RecordKind};
use crate::backend::{Element, LiveElement};

/// A pinhole in the kernel, and the audit record that opened it if the
/// logs read have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LivePinhole {
    /// The set it is in.
    pub set: &'static str,
    /// `active` or `passive`.
    pub mode: Option<crate::ftp::Mode>,
    /// Who may connect.
    pub src: std::net::IpAddr,
    /// To whom.
    pub dst: std::net::IpAddr,
    /// To which port.
    pub dport: u16,
    /// Seconds left before the kernel removes it.
    pub expires_s: Option<f64>,
    /// The most recent `pinhole-open` record of this pinhole.
    pub opened_by: Option<AuditRecord>,
}

/// The most recent `pinhole-open` record of each pinhole, kept as records
/// stream by (nothing else is kept).
#[derive(Debug, Default)]
pub struct LatestOpens(HashMap<FlowKey, AuditRecord>);

impl LatestOpens {
    /// Look at the next record (in log order).
    pub fn add(&mut self, r: AuditRecord) {
        if r.event != RecordKind::PinholeOpen {
            return;
        }
        if let Some(p) = r.pinhole() {
            self.0.insert(FlowKey::from(&p), r);
        }
    }
}

impl FromIterator<AuditRecord> for LatestOpens {
    fn from_iter<I: IntoIterator<Item = AuditRecord>>(records: I) -> Self {
        let mut latest = LatestOpens::default();
        for r in records {
            latest.add(r);
        }
        latest
    }
}

/// Join `live` elements with the most recent `pinhole-open` of each.
pub fn join(live: &[LiveElement], latest: LatestOpens) -> Vec<LivePinhole> {
    let latest = latest.0;
    live.iter()
        .map(|l| {
            let e: &Element = &l.element;
            let mode = Element::mode_of_set(e.set);
            let opened_by =
                mode.and_then(|mode| latest.get(&FlowKey { mode, src: e.src, dst: e.dst, dport: e.dport }).cloned());
            LivePinhole {
                set: e.set,
                mode,
                src: e.src,
                dst: e.dst,
                dport: e.dport,
                expires_s: l.expires.map(|d: Duration| d.as_secs_f64()),
                opened_by,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SET_PASSIVE4;
    use crate::ftp::Mode;
    use crate::policy::{Pinhole, SourcePort};
    use crate::time::Timestamp;

    fn open(session: u64, port: u16, line: &str) -> AuditRecord {
        let p = Pinhole {
            mode: Mode::Passive,
            src: "192.0.2.10".parse().expect("addr"),
            sport: SourcePort::Any,
            dst: "198.51.100.20".parse().expect("addr"),
            dport: port,
            ttl: Duration::from_secs(30),
        };
        let mut r =
            AuditRecord::new(RecordKind::PinholeOpen, Timestamp::from_unix_nanos(session), "run").with_pinhole(&p);
        r.session = Some(session);
        r.line = Some(line.to_string());
        r
    }

    #[test]
    fn each_live_pinhole_gets_its_latest_open() {
        let live = [
            LiveElement {
                element: Element {
                    set: SET_PASSIVE4,
                    src: "192.0.2.10".parse().expect("addr"),
                    dst: "198.51.100.20".parse().expect("addr"),
                    dport: 50000,
                    timeout: Duration::from_secs(30),
                },
                expires: Some(Duration::from_millis(12_500)),
            },
            LiveElement {
                element: Element {
                    set: SET_PASSIVE4,
                    src: "192.0.2.10".parse().expect("addr"),
                    dst: "198.51.100.20".parse().expect("addr"),
                    dport: 50001,
                    timeout: Duration::from_secs(30),
                },
                expires: None,
            },
        ];
        let opens: LatestOpens =
            [open(1, 50000, "first"), open(2, 50000, "again"), open(3, 50002, "other")].into_iter().collect();
        let joined = join(&live, opens);
        assert_eq!(joined.len(), 2);
        assert_eq!(joined[0].opened_by.as_ref().and_then(|r| r.line.as_deref()), Some("again"));
        assert_eq!(joined[0].expires_s, Some(12.5));
        assert_eq!(joined[0].mode, Some(Mode::Passive));
        assert!(joined[1].opened_by.is_none(), "not in the logs read");
    }
}
