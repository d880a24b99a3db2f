//! Which pinholes are open, and what became of those that left the kernel.
//!
//! The kernel removes an element on its own in two cases: its connection
//! came (the ruleset deletes it from the packet path) or its timeout ran out.
//! Neither is announced (`nft monitor` shows neither), so the daemon reads
//! the sets back now and then and the [`Ledger`] tells the two apart by time:
//! gone before its expiry means consumed. To keep a pinhole used at the very
//! end of its life from passing for expired, each one is also looked at
//! shortly before it expires.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::ftp::Mode;
use crate::policy::Pinhole;
use crate::time::Timestamp;
use crate::track::{ControlConn, SessionId};

/// What identifies a pinhole in the kernel: its set and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Active or passive (which set).
    pub mode: Mode,
    /// First key field.
    pub src: IpAddr,
    /// Second key field.
    pub dst: IpAddr,
    /// Third key field.
    pub dport: u16,
}

impl FlowKey {
    /// The key of a set element read back from the kernel; `None` for a set
    /// that is not a pinhole set.
    pub fn of_element(e: &crate::backend::Element) -> Option<FlowKey> {
        let mode = crate::backend::Element::mode_of_set(e.set)?;
        Some(FlowKey { mode, src: e.src, dst: e.dst, dport: e.dport })
    }
}

impl From<&Pinhole> for FlowKey {
    fn from(p: &Pinhole) -> Self {
        FlowKey { mode: p.mode, src: p.src, dst: p.dst, dport: p.dport }
    }
}

/// An open pinhole and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The pinhole.
    pub pinhole: Pinhole,
    /// The session that negotiated it.
    pub session: SessionId,
    /// That session's control connection.
    pub control: ControlConn,
    /// When it was (last) opened.
    pub opened: Timestamp,
    /// When the kernel will remove it if unused.
    pub expires: Timestamp,
    /// It was still there shortly before it expired.
    seen_at_edge: bool,
}

/// What the ledger concluded about a pinhole that left the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEvent {
    /// Gone before its expiry: its connection came. `by` is when it was
    /// found gone; it was used after the previous look.
    Consumed {
        /// The pinhole.
        entry: Entry,
        /// When it was found gone.
        by: Timestamp,
    },
    /// Gone at or after its expiry without having been seen used.
    Expired {
        /// The pinhole.
        entry: Entry,
    },
}

/// How often the sets are read back while pinholes are open.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long before its expiry each pinhole is looked at once more.
pub const EDGE: Duration = Duration::from_millis(200);
/// How long after its expiry the kernel may take to drop an element.
pub const GRACE: Duration = Duration::from_millis(500);

/// The open pinholes.
#[derive(Debug, Default)]
pub struct Ledger {
    open: HashMap<FlowKey, Entry>,
    last_check: Option<Timestamp>,
    /// The earliest edge of the open pinholes, kept up to date on every
    /// change so that asking for the next check is cheap (once per packet).
    first_edge: Option<Timestamp>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Pinholes open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The open pinholes.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.open.values()
    }

    /// The entry of an open pinhole.
    pub fn get(&self, key: &FlowKey) -> Option<&Entry> {
        self.open.get(key)
    }

    /// A pinhole was opened (or re-opened: its clock restarts).
    pub fn opened(&mut self, at: Timestamp, session: SessionId, control: ControlConn, pinhole: Pinhole) {
        let entry = Entry {
            pinhole,
            session,
            control,
            opened: at,
            expires: at.saturating_add(pinhole.ttl),
            seen_at_edge: false,
        };
        self.open.insert(FlowKey::from(&pinhole), entry);
        // Periodic checks start with the first pinhole.
        self.last_check.get_or_insert(at);
        self.update_first_edge();
    }

    /// Forget a pinhole (the caller closes it, or it failed to open).
    pub fn remove(&mut self, key: &FlowKey) -> Option<Entry> {
        let entry = self.open.remove(key);
        self.update_first_edge();
        entry
    }

    /// When the sets should next be read back, if any pinhole is open.
    pub fn next_check(&self) -> Option<Timestamp> {
        let first_edge = self.first_edge?;
        let periodic = self.last_check.map(|t| t.saturating_add(CHECK_INTERVAL));
        Some(periodic.map_or(first_edge, |p| p.min(first_edge)))
    }

    /// Recompute the earliest edge: before expiry for pinholes not yet seen
    /// there, after expiry (with grace) for the others.
    fn update_first_edge(&mut self) {
        self.first_edge = self
            .open
            .values()
            .map(|e| {
                if e.seen_at_edge {
                    e.expires.saturating_add(GRACE)
                } else {
                    Timestamp::from_unix_nanos(e.expires.unix_nanos().saturating_sub(EDGE.as_nanos() as u64))
                }
            })
            .min();
    }

    /// Compare with what the kernel holds now (`live`: the keys present).
    /// Pinholes no longer there are concluded and forgotten.
    pub fn reconcile(&mut self, now: Timestamp, live: &[FlowKey]) -> Vec<LedgerEvent> {
        self.last_check = Some(now);
        let live: HashSet<&FlowKey> = live.iter().collect();
        let mut events = Vec::new();
        self.open.retain(|key, entry| {
            if live.contains(key) {
                if now.saturating_add(EDGE) >= entry.expires {
                    entry.seen_at_edge = true;
                }
                return true;
            }
            let event = if now < entry.expires {
                LedgerEvent::Consumed { entry: entry.clone(), by: now }
            } else {
                LedgerEvent::Expired { entry: entry.clone() }
            };
            events.push(event);
            false
        });
        self.update_first_edge();
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SourcePort;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_unix_nanos(ms * 1_000_000)
    }

    fn pinhole(port: u16) -> Pinhole {
        Pinhole {
            mode: Mode::Passive,
            src: "192.0.2.10".parse().expect("addr"),
            sport: SourcePort::Any,
            dst: "198.51.100.20".parse().expect("addr"),
            dport: port,
            ttl: Duration::from_secs(10),
        }
    }

    fn control() -> ControlConn {
        ControlConn {
            client: "192.0.2.10:40000".parse().expect("addr"),
            server: "198.51.100.20:21".parse().expect("addr"),
        }
    }

    #[test]
    fn gone_before_expiry_is_consumed_gone_after_is_expired() {
        let mut l = Ledger::new();
        l.opened(t(0), SessionId(1), control(), pinhole(50000));
        l.opened(t(0), SessionId(1), control(), pinhole(50001));
        let a = FlowKey::from(&pinhole(50000));
        let b = FlowKey::from(&pinhole(50001));
        assert!(l.reconcile(t(1000), &[a, b]).is_empty());
        let ev = l.reconcile(t(2000), &[b]);
        assert!(
            matches!(&ev[..], [LedgerEvent::Consumed { entry, by }] if entry.pinhole.dport == 50000 && *by == t(2000))
        );
        let ev = l.reconcile(t(10_300), &[]);
        assert!(matches!(&ev[..], [LedgerEvent::Expired { entry }] if entry.pinhole.dport == 50001));
        assert!(l.is_empty());
        assert_eq!(l.next_check(), None);
    }

    #[test]
    fn each_pinhole_is_looked_at_just_before_it_expires() {
        let mut l = Ledger::new();
        l.opened(t(0), SessionId(1), control(), pinhole(50000));
        let key = FlowKey::from(&pinhole(50000));
        // A second after the first pinhole opened.
        assert_eq!(l.next_check(), Some(t(1_000)));
        l.reconcile(t(500), &[key]);
        assert_eq!(l.next_check(), Some(t(1_500)), "periodic checks while open");
        l.reconcile(t(9_800), &[key]);
        // Seen at the edge: the next looks are periodic, then after the
        // expiry with grace.
        assert_eq!(l.next_check(), Some(t(10_500)));
        let mut l = Ledger::new();
        l.opened(t(0), SessionId(1), control(), Pinhole { ttl: Duration::from_millis(1100), ..pinhole(50000) });
        l.reconcile(t(100), &[key]);
        assert_eq!(l.next_check(), Some(t(900)), "the edge comes before the next periodic check");
    }

    #[test]
    fn reopening_restarts_the_clock() {
        let mut l = Ledger::new();
        l.opened(t(0), SessionId(1), control(), pinhole(50000));
        l.opened(t(8_000), SessionId(1), control(), pinhole(50000));
        assert_eq!(l.len(), 1);
        let ev = l.reconcile(t(12_000), &[]);
        assert!(matches!(&ev[..], [LedgerEvent::Consumed { .. }]), "expires at 18 s now: {ev:?}");
    }

    #[test]
    fn remove_forgets() {
        let mut l = Ledger::new();
        l.opened(t(0), SessionId(1), control(), pinhole(50000));
        let key = FlowKey::from(&pinhole(50000));
        assert_eq!(l.remove(&key).map(|e| e.session), Some(SessionId(1)));
        assert!(l.reconcile(t(1), &[]).is_empty());
    }
}
