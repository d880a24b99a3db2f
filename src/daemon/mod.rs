//! The daemon's decisions turned into actions: pinholes into the kernel,
//! records into the audit trail.
//!
//! [`Daemon`] wraps the sans-IO [`Pipeline`] and acts on its events through
//! a [`Backend`] (nftables or dry run) and an [`AuditLog`]: an accepted
//! negotiation becomes a set element, a withdrawn pinhole is closed unless
//! the kernel already consumed it, and the [`Ledger`] tells from the sets
//! read back which pinholes were used and which expired. It is fed frames
//! and timestamps by the capture loop ([`live`]), or by tests.

pub mod live;

use std::collections::HashMap;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::audit::ledger::{Entry, FlowKey};
use crate::audit::{AuditLog, AuditLogError, AuditRecord, Ledger, LedgerEvent, RecordKind};
use crate::backend::{Backend, BackendError, Element, Op, Outcome};
use crate::decode::LinkType;
use crate::pipeline::{Event, EventKind, Pipeline, PipelineConfig, WithdrawReason};
use crate::policy::{Decision, Pinhole, RefusalReason};
use crate::time::Timestamp;
use crate::track::SessionId;

/// Counters of what the daemon did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonStats {
    /// Pinholes put into the kernel.
    pub opened: u64,
    /// Negotiations refused.
    pub refused: u64,
    /// Pinholes found consumed.
    pub consumed: u64,
    /// Pinholes found expired unused.
    pub expired: u64,
    /// Pinholes closed unused (session end, superseded, shutdown).
    pub closed: u64,
    /// Rate-limited refusals not written to the audit trail (at most one a
    /// second per session is).
    pub suppressed: u64,
    /// Operations the kernel refused, and flushes that failed.
    pub backend_errors: u64,
}

/// Why the daemon must stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The audit trail cannot be written: a gateway that must prove what it
    /// opened stops rather than open unrecorded pinholes.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
}

/// A negotiation waiting for its pinhole to reach the kernel.
struct PendingOpen {
    event: Event,
    pinhole: Pinhole,
}

/// Pipeline, backend, ledger and audit trail together.
pub struct Daemon<B> {
    pipeline: Pipeline,
    backend: B,
    ledger: Ledger,
    audit: Option<AuditLog>,
    run: String,
    events: Vec<Event>,
    pending: Vec<PendingOpen>,
    stats: DaemonStats,
    /// When each session last had a rate-limited refusal recorded.
    rate_limited: HashMap<SessionId, Timestamp>,
    /// Reads the time a pinhole reached the kernel (the wall clock live, a
    /// fake one in tests), to record how long that took after its packet.
    clock: fn() -> Timestamp,
}

impl<B> std::fmt::Debug for Daemon<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("run", &self.run).field("stats", &self.stats).finish()
    }
}

impl<B: Backend> Daemon<B> {
    /// A daemon run named `run` (written in every audit record). `clock`
    /// says when a flush completed, for the latency recorded with each
    /// pinhole.
    pub fn new(
        config: PipelineConfig,
        backend: B,
        audit: Option<AuditLog>,
        run: String,
        clock: fn() -> Timestamp,
    ) -> Self {
        Daemon {
            pipeline: Pipeline::new(config),
            backend,
            ledger: Ledger::new(),
            audit,
            run,
            events: Vec::new(),
            pending: Vec::new(),
            stats: DaemonStats::default(),
            rate_limited: HashMap::new(),
            clock,
        }
    }

    /// What the daemon did so far.
    pub fn stats(&self) -> DaemonStats {
        self.stats
    }

    /// The pipeline (its counters, its configuration).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The pinholes believed open.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The backend.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Record the start of the run with its configuration.
    pub fn started(&mut self, now: Timestamp, info: serde_json::Value) -> Result<(), DaemonError> {
        let mut r = AuditRecord::new(RecordKind::DaemonStart, now, &self.run);
        r.info = Some(info);
        self.write(&r)
    }

    /// Feed one captured frame.
    pub fn handle_frame(&mut self, now: Timestamp, link: LinkType, frame: &[u8]) -> Result<(), DaemonError> {
        let mut events = std::mem::take(&mut self.events);
        self.pipeline.handle_frame(now, link, frame, &mut events);
        let result = self.act(now, &mut events);
        self.events = events;
        result
    }

    /// When [`Daemon::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.pipeline.poll_timeout(), self.ledger.next_check()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run what is due at `now`: idle sessions, reading back the sets.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        let mut events = std::mem::take(&mut self.events);
        self.pipeline.handle_timeout(now, &mut events);
        let mut result = self.act(now, &mut events);
        self.events = events;
        if result.is_ok() && self.ledger.next_check().is_some_and(|t| t <= now) {
            result = self.reconcile(now);
        }
        if let Some(log) = &mut self.audit {
            log.sync_if_due()?;
        }
        result
    }

    /// Stop: close every pinhole still open, end every session, record why.
    pub fn shutdown(&mut self, now: Timestamp, reason: &str) -> Result<(), DaemonError> {
        self.reconcile(now)?;
        let open: Vec<Entry> = self.ledger.entries().cloned().collect();
        for entry in &open {
            self.backend.close(&entry.pinhole);
        }
        let closed = self.flush(now)?;
        for entry in open {
            let key = FlowKey::from(&entry.pinhole);
            if closed.contains(&key) {
                self.ledger.remove(&key);
                self.record_closed(now, &entry, "shutdown")?;
            }
        }
        let mut events = std::mem::take(&mut self.events);
        self.pipeline.finish(now, &mut events);
        let result = self.act(now, &mut events);
        self.events = events;
        result?;
        let mut r = AuditRecord::new(RecordKind::DaemonStop, now, &self.run);
        r.reason = Some(reason.to_string());
        r.info = Some(serde_json::json!({
            "opened": self.stats.opened, "refused": self.stats.refused, "consumed": self.stats.consumed,
            "expired": self.stats.expired, "closed": self.stats.closed, "backend_errors": self.stats.backend_errors,
            "rate_limited_unrecorded": self.stats.suppressed,
        }));
        self.write(&r)?;
        if let Some(log) = &mut self.audit {
            log.sync()?;
        }
        Ok(())
    }

    /// Reopen the audit log (after rotation).
    pub fn reopen_audit(&mut self) -> Result<(), DaemonError> {
        if let Some(log) = &mut self.audit {
            log.reopen()?;
            info!(path = %log.path().display(), "audit log reopened");
        }
        Ok(())
    }

    /// Act on the pipeline's events, in order.
    fn act(&mut self, now: Timestamp, events: &mut Vec<Event>) -> Result<(), DaemonError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut reconciled = false;
        for event in events.drain(..) {
            match &event.kind {
                EventKind::Negotiated { decision: Decision::Open(pinhole), negotiation } => {
                    debug!(session = %event.session, kind = %negotiation.kind, pinhole = %pinhole, "open");
                    self.backend.open(pinhole);
                    let pinhole = *pinhole;
                    self.pending.push(PendingOpen { event, pinhole });
                }
                EventKind::Negotiated { decision: Decision::Refuse(refusal), negotiation } => {
                    self.stats.refused += 1;
                    if let RefusalReason::RateLimited { .. } = refusal.reason {
                        // A flood: one record a second per session is enough.
                        let last = self.rate_limited.get(&event.session);
                        if last.is_some_and(|t| now.saturating_since(*t) < Duration::from_secs(1)) {
                            self.stats.suppressed += 1;
                            continue;
                        }
                        self.rate_limited.insert(event.session, now);
                    }
                    info!(session = %event.session, client = %event.control.client, server = %event.control.server,
                          kind = %negotiation.kind, reason = refusal.reason.code(), detail = %refusal.reason, "refused");
                    self.write(&AuditRecord::from_event(&event, &self.run))?;
                }
                EventKind::Withdrawn { pinhole, reason } => {
                    let (pinhole, reason, session) = (*pinhole, *reason, event.session);
                    // Opens queued before it go first (it may be one of them).
                    self.flush(now)?;
                    if !reconciled {
                        // Was it used already? Read the sets back once per batch.
                        self.reconcile(now)?;
                        reconciled = true;
                    }
                    self.withdraw(now, &pinhole, reason, session)?;
                }
                _ => {
                    if let EventKind::SessionClosed { .. } = event.kind {
                        self.rate_limited.remove(&event.session);
                    }
                    self.write(&AuditRecord::from_event(&event, &self.run))?;
                }
            }
        }
        self.flush(now).map(|_| ())
    }

    /// Close a pinhole that `session` no longer wants, unless it is gone
    /// already, or another session has opened the same flow since (two
    /// sessions between the same hosts, a small passive port range).
    fn withdraw(
        &mut self,
        now: Timestamp,
        pinhole: &Pinhole,
        reason: WithdrawReason,
        session: SessionId,
    ) -> Result<(), DaemonError> {
        let key = FlowKey::from(pinhole);
        let Some(entry) = self.ledger.get(&key).filter(|e| e.session == session).cloned() else { return Ok(()) };
        self.backend.close(pinhole);
        if self.flush(now)?.contains(&key) {
            self.ledger.remove(&key);
            self.record_closed(now, &entry, reason.code())?;
        }
        Ok(())
    }

    /// Send what is queued; record each outcome. Returns the pinholes
    /// that were closed.
    fn flush(&mut self, now: Timestamp) -> Result<Vec<FlowKey>, DaemonError> {
        let pending = std::mem::take(&mut self.pending);
        let outcomes = match self.backend.flush() {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.stats.backend_errors += 1;
                error!(error = %e, "backend flush failed");
                // Part of it may have reached the kernel (a batch that
                // committed before a later one failed, replies lost): what
                // is there now is open, the rest failed.
                let present = self.present_keys();
                let done = (self.clock)();
                for p in pending {
                    if present.as_ref().is_some_and(|keys| keys.contains(&FlowKey::from(&p.pinhole))) {
                        self.record_opened(now, done, &p)?;
                    } else {
                        self.record_backend_error(now, Some(&p.event), &p.pinhole, Op::Open, &e.to_string())?;
                    }
                }
                return Ok(Vec::new());
            }
        };
        let done = (self.clock)();
        let mut closed = Vec::new();
        let mut pending = pending.into_iter();
        for Outcome { op, pinhole, result } in outcomes {
            let origin = if op == Op::Open { pending.next() } else { None };
            match (op, result) {
                (Op::Open, Ok(())) => {
                    if let Some(p) = &origin {
                        self.record_opened(now, done, p)?;
                    }
                }
                (Op::Close, Ok(())) => closed.push(FlowKey::from(&pinhole)),
                (op, Err(e)) => {
                    self.stats.backend_errors += 1;
                    warn!(op = op.as_str(), pinhole = %pinhole, error = %e, "the kernel refused");
                    self.record_backend_error(now, origin.as_ref().map(|p| &p.event), &pinhole, op, &e.to_string())?;
                }
            }
        }
        Ok(closed)
    }

    /// A pinhole reached the kernel: into the ledger and the audit trail.
    fn record_opened(&mut self, now: Timestamp, done: Timestamp, p: &PendingOpen) -> Result<(), DaemonError> {
        self.stats.opened += 1;
        let pinhole = p.pinhole;
        self.ledger.opened(now, p.event.session, p.event.control, pinhole);
        // From the packet that negotiated it to the kernel.
        let latency = done.saturating_since(p.event.at);
        let mut r = AuditRecord::from_event(&p.event, &self.run);
        r.latency_us = Some(latency.as_micros() as u64);
        self.write(&r)?;
        info!(session = %p.event.session, pinhole = %pinhole, set = Element::of(&pinhole).set,
              latency_us = latency.as_micros() as u64, "pinhole open");
        Ok(())
    }

    /// The keys of the pinhole elements in the kernel now; `None` if the
    /// sets cannot be read.
    fn present_keys(&mut self) -> Option<Vec<FlowKey>> {
        match self.backend.list() {
            Ok(live) => Some(live.iter().filter_map(|l| FlowKey::of_element(&l.element)).collect()),
            Err(e) => {
                warn!(error = %e, "cannot read the pinhole sets back");
                None
            }
        }
    }

    /// Read the sets back; record what was consumed or expired.
    fn reconcile(&mut self, now: Timestamp) -> Result<(), DaemonError> {
        if self.ledger.is_empty() {
            return Ok(());
        }
        let keys = match self.backend.list() {
            Ok(live) => live.iter().filter_map(|l| FlowKey::of_element(&l.element)).collect::<Vec<_>>(),
            Err(e) => {
                self.stats.backend_errors += 1;
                warn!(error = %e, "cannot read the pinhole sets back");
                return self.record_backend_error_plain(now, &e);
            }
        };
        for event in self.ledger.reconcile(now, &keys) {
            let (kind, entry, at) = match event {
                LedgerEvent::Consumed { entry, by } => {
                    self.stats.consumed += 1;
                    (RecordKind::PinholeConsumed, entry, by)
                }
                LedgerEvent::Expired { entry } => {
                    self.stats.expired += 1;
                    let at = entry.expires;
                    (RecordKind::PinholeExpired, entry, at)
                }
            };
            info!(session = %entry.session, pinhole = %entry.pinhole, outcome = ?kind, "pinhole gone");
            self.write(&about(kind, at, &self.run, &entry))?;
        }
        Ok(())
    }

    fn record_closed(&mut self, now: Timestamp, entry: &Entry, reason: &str) -> Result<(), DaemonError> {
        self.stats.closed += 1;
        info!(session = %entry.session, pinhole = %entry.pinhole, reason, "pinhole closed unused");
        let mut r = about(RecordKind::PinholeClosed, now, &self.run, entry);
        r.reason = Some(reason.to_string());
        self.write(&r)
    }

    fn record_backend_error(
        &mut self,
        now: Timestamp,
        origin: Option<&Event>,
        pinhole: &Pinhole,
        op: Op,
        detail: &str,
    ) -> Result<(), DaemonError> {
        let mut r = match origin {
            Some(e) => {
                let mut r = AuditRecord::for_session(RecordKind::BackendError, e, &self.run);
                r.set_time(now);
                if let EventKind::Negotiated { negotiation, .. } = &e.kind {
                    r.kind = Some(negotiation.kind.as_str().to_string());
                    r.line = Some(negotiation.line.clone());
                }
                r
            }
            None => AuditRecord::new(RecordKind::BackendError, now, &self.run),
        };
        r.pinhole = Some(pinhole.into());
        r.reason = Some(op.as_str().to_string());
        r.detail = Some(detail.to_string());
        self.write(&r)
    }

    fn record_backend_error_plain(&mut self, now: Timestamp, e: &BackendError) -> Result<(), DaemonError> {
        let mut r = AuditRecord::new(RecordKind::BackendError, now, &self.run);
        r.reason = Some("list".to_string());
        r.detail = Some(e.to_string());
        self.write(&r)
    }

    fn write(&mut self, record: &AuditRecord) -> Result<(), DaemonError> {
        if let Some(log) = &mut self.audit {
            log.write(record)?;
        }
        Ok(())
    }
}

/// A record about the session of a ledger entry.
fn about(kind: RecordKind, at: Timestamp, run: &str, entry: &Entry) -> AuditRecord {
    AuditRecord::about_pinhole(kind, at, run, entry.session, &entry.control, &entry.pinhole)
}

#[cfg(test)]
mod tests;
