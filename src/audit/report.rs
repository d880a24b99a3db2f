//! What an audit report says, computed from records alone (no I/O): data
//! ports opened and what became of them, refusals, top talkers, totals.
//!
//! Each outcome record (pinhole-consumed, -expired, -closed) is matched to
//! the pinhole-open before it with the same `run`, `session` and pinhole
//! (mode, src, dst, dport). A pinhole opened again while still open (the same
//! port announced twice) is one pinhole in the kernel, its clock restarted:
//! the earlier open is counted as `renewed`, and the outcome goes to the
//! later one. So for every row, `opened = used + expired + closed + renewed +
//! open_at_end`.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use super::{AuditRecord, RecordKind};
use crate::ftp::Mode;

/// Default number of top talkers.
pub const DEFAULT_TOP: usize = 10;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Data ports opened, per client/server pair and mode (sorted by
    /// client, server, mode).
    pub pinholes: Vec<PairOutcomes>,
    /// The same, over all pairs.
    pub pinholes_total: Outcomes,
    /// Negotiations refused.
    pub refused: Refusals,
    /// The clients with the most pinholes opened.
    pub top_clients: Vec<Talker>,
    /// The servers with the most pinholes opened.
    pub top_servers: Vec<Talker>,
    /// Counts over all records.
    pub totals: Totals,
}

/// What became of the pinholes opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// pinhole-open records.
    pub opened: u64,
    /// Consumed: the data connection came.
    pub used: u64,
    /// Expired unused.
    pub expired: u64,
    /// Closed unused (see `closed_by_reason`).
    pub closed: u64,
    /// `closed`, by the record's reason (session-ended, superseded,
    /// shutdown).
    pub closed_by_reason: BTreeMap<String, u64>,
    /// Opened again while still open; the later open carries the outcome.
    pub renewed: u64,
    /// No outcome by the end of the records read.
    pub open_at_end: u64,
}

/// [`Outcomes`] of one client/server pair in one mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairOutcomes {
    /// The control connection's client address.
    pub client: IpAddr,
    /// The control connection's server address.
    pub server: IpAddr,
    /// Active or passive.
    pub mode: Mode,
    /// What became of its pinholes.
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// Refused negotiations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// All of them.
    pub total: u64,
    /// By reason code.
    pub by_reason: BTreeMap<String, u64>,
    /// By client/server pair and reason (sorted by client, server, reason).
    pub by_pair: Vec<PairRefusals>,
}

/// Refusals of one reason for one client/server pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairRefusals {
    /// The control connection's client address.
    pub client: IpAddr,
    /// The control connection's server address.
    pub server: IpAddr,
    /// The reason code.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// A client or server and how much it negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Talker {
    /// Its address.
    pub address: IpAddr,
    /// Pinholes opened for its sessions.
    pub opened: u64,
    /// Negotiations of its sessions refused.
    pub refused: u64,
}

/// Counts over all records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Records looked at.
    pub records: u64,
    /// Distinct `run`s (daemon runs, captures).
    pub runs: u64,
    /// Control sessions (session-open).
    pub sessions: u64,
    /// Logins (login).
    pub logins: u64,
    /// Sessions that switched to TLS (encrypted).
    pub encrypted: u64,
    /// Pinholes opened.
    pub opened: u64,
    /// Negotiations refused.
    pub refused: u64,
    /// Operations the kernel refused (backend-error).
    pub backend_errors: u64,
    /// `backend_errors` by operation (the record's reason: open, close,
    /// list).
    pub backend_errors_by_op: BTreeMap<String, u64>,
    /// Capture losses on control connections (stream-gap).
    pub stream_gaps: u64,
    /// Bytes those losses took.
    pub stream_gap_bytes: u64,
    /// Outcome records with no pinhole-open before them in what was read
    /// (opened before the window or in a log not given).
    pub unmatched_outcomes: u64,
    /// `ts` of the earliest record.
    pub first: Option<String>,
    /// `ts` of the latest record.
    pub last: Option<String>,
    /// Seconds from the earliest to the latest record.
    pub span_s: f64,
}

/// What identifies one pinhole: its session and its kernel key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PinholeKey {
    run: String,
    session: u64,
    passive: bool,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

/// A pair and mode, ordered for the report (active before passive).
type PairKey = (IpAddr, IpAddr, bool);

/// Counts kept while records come in; [`Tally::finish`] makes the report.
#[derive(Debug, Default)]
pub struct Tally {
    pairs: BTreeMap<PairKey, Outcomes>,
    refusals: BTreeMap<(IpAddr, IpAddr, String), u64>,
    clients: BTreeMap<IpAddr, (u64, u64)>,
    servers: BTreeMap<IpAddr, (u64, u64)>,
    /// Pinholes opened and not yet concluded, and their pair.
    open: HashMap<PinholeKey, PairKey>,
    runs: BTreeSet<String>,
    totals: Totals,
    first: Option<(f64, String)>,
    last: Option<(f64, String)>,
}

impl Tally {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Tally::default()
    }

    /// Count one record. Records are expected in the order they were
    /// written (an outcome after its open).
    pub fn add(&mut self, r: &AuditRecord) {
        let t = &mut self.totals;
        t.records += 1;
        if !self.runs.contains(&r.run) {
            self.runs.insert(r.run.clone());
        }
        if self.first.as_ref().is_none_or(|(u, _)| r.unix < *u) {
            self.first = Some((r.unix, r.ts.clone()));
        }
        if self.last.as_ref().is_none_or(|(u, _)| r.unix >= *u) {
            self.last = Some((r.unix, r.ts.clone()));
        }
        match r.event {
            RecordKind::DaemonStart | RecordKind::DaemonStop | RecordKind::SessionClose => {}
            RecordKind::SessionOpen => t.sessions += 1,
            RecordKind::Login => t.logins += 1,
            RecordKind::Encrypted => t.encrypted += 1,
            RecordKind::BackendError => {
                t.backend_errors += 1;
                *t.backend_errors_by_op.entry(r.reason.clone().unwrap_or_default()).or_default() += 1;
            }
            RecordKind::StreamGap => {
                t.stream_gaps += 1;
                t.stream_gap_bytes += r.bytes.unwrap_or(0);
            }
            RecordKind::PinholeOpen => self.opened(r),
            RecordKind::Refused => self.refused(r),
            RecordKind::PinholeConsumed | RecordKind::PinholeExpired | RecordKind::PinholeClosed => self.outcome(r),
        }
    }

    fn opened(&mut self, r: &AuditRecord) {
        let (Some(key), Some(pair)) = (pinhole_key(r), pair_key(r)) else { return };
        self.totals.opened += 1;
        self.pairs.entry(pair).or_default().opened += 1;
        self.clients.entry(pair.0).or_default().0 += 1;
        self.servers.entry(pair.1).or_default().0 += 1;
        if let Some(earlier) = self.open.insert(key, pair) {
            self.pairs.entry(earlier).or_default().renewed += 1;
        }
    }

    fn refused(&mut self, r: &AuditRecord) {
        let (Some(client), Some(server)) = (r.client, r.server) else { return };
        let (client, server) = (client.ip(), server.ip());
        let reason = r.reason.clone().unwrap_or_default();
        self.totals.refused += 1;
        *self.refusals.entry((client, server, reason)).or_default() += 1;
        self.clients.entry(client).or_default().1 += 1;
        self.servers.entry(server).or_default().1 += 1;
    }

    fn outcome(&mut self, r: &AuditRecord) {
        let Some(pair) = pinhole_key(r).and_then(|key| self.open.remove(&key)) else {
            self.totals.unmatched_outcomes += 1;
            return;
        };
        let o = self.pairs.entry(pair).or_default();
        match r.event {
            RecordKind::PinholeConsumed => o.used += 1,
            RecordKind::PinholeExpired => o.expired += 1,
            _ => {
                o.closed += 1;
                *o.closed_by_reason.entry(r.reason.clone().unwrap_or_default()).or_default() += 1;
            }
        }
    }

    /// The report, with the `top` busiest clients and servers.
    pub fn finish(mut self, top: usize) -> Report {
        for pair in std::mem::take(&mut self.open).into_values() {
            self.pairs.entry(pair).or_default().open_at_end += 1;
        }
        let mut total = Outcomes::default();
        let pinholes: Vec<PairOutcomes> = self
            .pairs
            .into_iter()
            .map(|((client, server, passive), outcomes)| {
                total.add(&outcomes);
                PairOutcomes { client, server, mode: if passive { Mode::Passive } else { Mode::Active }, outcomes }
            })
            .collect();
        let mut refused = Refusals { total: self.totals.refused, ..Refusals::default() };
        for ((client, server, reason), count) in self.refusals {
            *refused.by_reason.entry(reason.clone()).or_default() += count;
            refused.by_pair.push(PairRefusals { client, server, reason, count });
        }
        let mut totals = self.totals;
        totals.runs = self.runs.len() as u64;
        if let (Some((a, first)), Some((b, last))) = (self.first, self.last) {
            totals.first = Some(first);
            totals.last = Some(last);
            totals.span_s = ((b - a) * 1e6).round() / 1e6;
        }
        Report {
            pinholes,
            pinholes_total: total,
            refused,
            top_clients: top_talkers(self.clients, top),
            top_servers: top_talkers(self.servers, top),
            totals,
        }
    }
}

impl Report {
    /// The report over `records`, taken in order, with the `top` busiest
    /// clients and servers.
    pub fn from_records<R: Borrow<AuditRecord>>(records: impl IntoIterator<Item = R>, top: usize) -> Report {
        let mut tally = Tally::new();
        for r in records {
            tally.add(r.borrow());
        }
        tally.finish(top)
    }
}

impl Outcomes {
    fn add(&mut self, other: &Outcomes) {
        self.opened += other.opened;
        self.used += other.used;
        self.expired += other.expired;
        self.closed += other.closed;
        for (reason, n) in &other.closed_by_reason {
            *self.closed_by_reason.entry(reason.clone()).or_default() += n;
        }
        self.renewed += other.renewed;
        self.open_at_end += other.open_at_end;
    }
}

fn pinhole_key(r: &AuditRecord) -> Option<PinholeKey> {
    let p = r.pinhole.as_ref()?;
    Some(PinholeKey {
        run: r.run.clone(),
        session: r.session?,
        passive: p.mode == Mode::Passive,
        src: p.src,
        dst: p.dst,
        dport: p.dport,
    })
}

fn pair_key(r: &AuditRecord) -> Option<PairKey> {
    Some((r.client?.ip(), r.server?.ip(), r.mode()? == Mode::Passive))
}

/// The `top` addresses by pinholes opened, then by refusals, then by
/// address; only those that negotiated anything.
fn top_talkers(counts: BTreeMap<IpAddr, (u64, u64)>, top: usize) -> Vec<Talker> {
    let mut talkers: Vec<Talker> =
        counts.into_iter().map(|(address, (opened, refused))| Talker { address, opened, refused }).collect();
    talkers.sort_by(|a, b| b.opened.cmp(&a.opened).then(b.refused.cmp(&a.refused)).then(a.address.cmp(&b.address)));
    talkers.truncate(top);
    talkers
}

#[cfg(test)]
mod tests;
