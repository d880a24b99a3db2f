use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::audit::FsyncPolicy;
use crate::backend::{LiveElement, OpError};
use crate::synth::Conversation;

/// A kernel in memory: elements with expiry times, a clock the test moves.
#[derive(Default)]
struct Kernel {
    now: Timestamp,
    elements: HashMap<(&'static str, IpAddr, IpAddr, u16), Timestamp>,
    refuse_opens: bool,
    /// Apply the batch, then lose the replies: the outcome looks unknown.
    lose_replies: bool,
}

#[derive(Clone, Default)]
struct FakeBackend {
    kernel: Rc<RefCell<Kernel>>,
    queued: Vec<(Op, Pinhole)>,
}

impl FakeBackend {
    fn key(p: &Pinhole) -> (&'static str, IpAddr, IpAddr, u16) {
        (Element::of(p).set, p.src, p.dst, p.dport)
    }
}

impl Backend for FakeBackend {
    fn open(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Open, *pinhole));
    }
    fn close(&mut self, pinhole: &Pinhole) {
        self.queued.push((Op::Close, *pinhole));
    }
    fn flush(&mut self) -> Result<Vec<Outcome>, BackendError> {
        if self.queued.is_empty() {
            // Like the netlink backend: nothing to send, nothing to fail.
            return Ok(Vec::new());
        }
        let mut k = self.kernel.borrow_mut();
        let now = k.now;
        let lose = k.lose_replies;
        let outcomes: Vec<Outcome> = std::mem::take(&mut self.queued)
            .into_iter()
            .map(|(op, pinhole)| {
                let result = match op {
                    Op::Open if k.refuse_opens => Err(OpError::SetFull { set: Element::of(&pinhole).set }),
                    Op::Open => {
                        k.elements.insert(Self::key(&pinhole), now.saturating_add(pinhole.ttl));
                        Ok(())
                    }
                    Op::Close => {
                        k.elements.remove(&Self::key(&pinhole));
                        Ok(())
                    }
                };
                Outcome { op, pinhole, result }
            })
            .collect();
        if lose {
            return Err(BackendError::OutcomeUnknown);
        }
        Ok(outcomes)
    }
    fn list(&mut self) -> Result<Vec<LiveElement>, BackendError> {
        let mut k = self.kernel.borrow_mut();
        let now = k.now;
        k.elements.retain(|_, expires| *expires > now);
        Ok(k.elements
            .iter()
            .map(|(&(set, src, dst, dport), expires)| LiveElement {
                element: Element { set, src, dst, dport, timeout: Duration::from_secs(30) },
                expires: Some(expires.saturating_since(now)),
            })
            .collect())
    }
}

const T0: u64 = 1_700_000_000_000_000_000;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_nanos(T0 + ms * 1_000_000)
}

struct Harness {
    daemon: Daemon<FakeBackend>,
    kernel: Rc<RefCell<Kernel>>,
    log: std::path::PathBuf,
    /// Frames of the conversation fed so far.
    fed: usize,
}

impl Harness {
    fn new(name: &str) -> Harness {
        let backend = FakeBackend::default();
        let kernel = backend.kernel.clone();
        let log = std::env::temp_dir().join(format!("ftp-pinhole-daemon-{}-{name}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let audit = AuditLog::open(&log, FsyncPolicy::Never).expect("audit log");
        let daemon = Daemon::new(PipelineConfig::default(), backend, Some(audit), "run1".into(), || at(0));
        Harness { daemon, kernel, log, fed: 0 }
    }

    /// Feed the conversation's frames not fed yet, the clock following them.
    fn feed(&mut self, c: &Conversation) {
        let new = &c.frames()[self.fed..];
        self.fed = c.frames().len();
        for f in new {
            self.kernel.borrow_mut().now = f.at;
            self.daemon.handle_frame(f.at, c.link_type(), &f.bytes).expect("frame");
        }
    }

    fn tick(&mut self, now: Timestamp) {
        self.kernel.borrow_mut().now = now;
        self.daemon.handle_timeout(now).expect("timeout");
    }

    /// The audit trail as `event reason` lines.
    fn trail(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .expect("audit log")
            .lines()
            .map(|l| {
                let r: AuditRecord = serde_json::from_str(l).expect("record");
                let event = serde_json::to_value(r.event).expect("event");
                let mut s = event.as_str().unwrap_or("?").to_string();
                if let Some(reason) = &r.reason {
                    s.push(' ');
                    s.push_str(reason);
                }
                if let Some(p) = r.pinhole() {
                    s.push_str(&format!(" :{}", p.dport));
                }
                s
            })
            .collect()
    }

    fn elements(&self) -> usize {
        self.kernel.borrow().elements.len()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn conversation() -> Conversation {
    Conversation::new("192.0.2.10:40000".parse().expect("addr"), "198.51.100.20:21".parse().expect("addr"), at(0))
}

#[test]
fn an_unused_pinhole_is_closed_with_its_session() {
    let mut h = Harness::new("close");
    let mut c = conversation();
    c.handshake().unwrap().client(b"PASV\r\n").unwrap().server(b"227 (198,51,100,20,195,80)\r\n").unwrap();
    h.feed(&c);
    assert_eq!(h.elements(), 1, "in the kernel once the 227 is seen");
    c.close().unwrap();
    h.feed(&c);
    assert_eq!(h.elements(), 0, "closed with the session");
    assert_eq!(
        h.trail(),
        ["session-open", "pinhole-open :50000", "pinhole-closed session-ended :50000", "session-close fin"]
    );
    assert_eq!(h.daemon.stats().closed, 1);
}

#[test]
fn a_used_pinhole_is_recorded_consumed_not_closed() {
    let mut h = Harness::new("consumed");
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    h.feed(&c);
    // The server's data connection comes: the ruleset deletes the element.
    h.kernel.borrow_mut().elements.clear();
    h.tick(at(500));
    c.wait(Duration::from_secs(1));
    c.close().unwrap();
    h.feed(&c);
    assert_eq!(h.trail(), ["session-open", "pinhole-open :50000", "pinhole-consumed :50000", "session-close fin"]);
    assert_eq!(h.daemon.stats().consumed, 1);
}

#[test]
fn an_unused_pinhole_expires_on_its_own() {
    let mut h = Harness::new("expired");
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    h.feed(&c);
    // The ledger looks before expiry and after it: the kernel dropped it.
    let mut steps = 0;
    while let Some(next) = h.daemon.poll_timeout() {
        if next > at(40_000) || steps > 100 {
            break;
        }
        h.tick(next);
        steps += 1;
    }
    assert!(h.trail().contains(&"pinhole-expired :50000".to_string()), "{:?}", h.trail());
    assert_eq!(h.daemon.stats().expired, 1);
    assert!(h.daemon.ledger().is_empty());
}

#[test]
fn a_refused_open_is_a_backend_error_not_an_open_pinhole() {
    let mut h = Harness::new("refused");
    h.kernel.borrow_mut().refuse_opens = true;
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    h.feed(&c);
    assert_eq!(h.trail(), ["session-open", "backend-error open :50000"]);
    assert!(h.daemon.ledger().is_empty());
    assert_eq!(h.daemon.stats().backend_errors, 1);
}

#[test]
fn refusals_are_recorded_and_open_nothing() {
    let mut h = Harness::new("bounce");
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 203,0,113,5,0,80\r\n").unwrap();
    h.feed(&c);
    assert_eq!(h.trail(), ["session-open", "refused third-party-address"]);
    assert_eq!(h.elements(), 0);
}

#[test]
fn a_superseded_pinhole_in_the_same_segment_is_opened_then_closed() {
    let mut h = Harness::new("superseded");
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\nPORT 192,0,2,10,195,81\r\n").unwrap();
    h.feed(&c);
    assert_eq!(
        h.trail(),
        ["session-open", "pinhole-open :50000", "pinhole-closed superseded :50000", "pinhole-open :50001"]
    );
    assert_eq!(h.elements(), 1);
}

#[test]
fn shutdown_closes_what_is_open_and_says_so() {
    let mut h = Harness::new("shutdown");
    let mut c = conversation();
    c.handshake().unwrap().client(b"USER alice\r\nEPRT |1|192.0.2.10|50000|\r\n").unwrap();
    h.feed(&c);
    h.daemon.started(at(0), serde_json::json!({"test": true})).expect("start record");
    h.kernel.borrow_mut().now = at(1000);
    h.daemon.shutdown(at(1000), "signal").expect("shutdown");
    assert_eq!(h.elements(), 0);
    assert_eq!(
        h.trail(),
        [
            "session-open",
            "login",
            "pinhole-open :50000",
            "daemon-start",
            "pinhole-closed shutdown :50000",
            "session-close shutdown",
            "daemon-stop signal"
        ]
    );
}

#[test]
fn a_flush_whose_replies_were_lost_records_what_is_in_the_kernel() {
    let mut h = Harness::new("unknown");
    h.kernel.borrow_mut().lose_replies = true;
    let mut c = conversation();
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    h.feed(&c);
    // The element reached the kernel although the flush failed: it is open.
    assert_eq!(h.trail(), ["session-open", "pinhole-open :50000"]);
    assert_eq!(h.daemon.ledger().len(), 1);
    assert_eq!(h.daemon.stats().backend_errors, 1);
}

#[test]
fn ending_one_session_does_not_close_another_sessions_pinhole() {
    let mut h = Harness::new("twosessions");
    let server = "198.51.100.20:21".parse().expect("addr");
    let mut a = Conversation::new("192.0.2.10:40000".parse().expect("addr"), server, at(0));
    let mut b = Conversation::new("192.0.2.10:40001".parse().expect("addr"), server, at(0));
    // Both get the same passive port (a small range): one element, now B's.
    a.handshake().unwrap().client(b"PASV\r\n").unwrap().server(b"227 (198,51,100,20,195,80)\r\n").unwrap();
    b.handshake().unwrap().client(b"PASV\r\n").unwrap().server(b"227 (198,51,100,20,195,80)\r\n").unwrap();
    a.close().unwrap(); // after B's 227: the frames interleave by time
    let mut frames: Vec<_> = a.frames().iter().chain(b.frames()).cloned().collect();
    frames.sort_by_key(|f| f.at);
    for f in &frames {
        h.kernel.borrow_mut().now = f.at;
        h.daemon.handle_frame(f.at, LinkType::Ethernet, &f.bytes).expect("frame");
    }
    assert_eq!(h.elements(), 1, "B's pinhole survives A's end");
    let entry = h.daemon.ledger().entries().next().cloned().expect("open");
    assert_eq!(entry.control.client.port(), 40001);
    assert!(!h.trail().iter().any(|t| t.starts_with("pinhole-closed")), "{:?}", h.trail());
}

#[test]
fn a_dry_run_reports_unused_pinholes_expired_never_consumed() {
    let log = std::env::temp_dir().join(format!("ftp-pinhole-daemon-{}-dry.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let audit = AuditLog::open(&log, FsyncPolicy::Never).expect("audit log");
    let config = PipelineConfig {
        policy: crate::policy::Policy { ttl: Duration::from_secs(1), ..Default::default() },
        ..PipelineConfig::default()
    };
    let backend = crate::backend::dry_run::DryRun::new(crate::backend::TableSpec::default(), Box::new(std::io::sink()));
    let mut daemon = Daemon::new(config, backend, Some(audit), "dry".into(), super::live::wall_clock);
    let start = super::live::wall_clock();
    let mut c =
        Conversation::new("192.0.2.10:40000".parse().expect("addr"), "198.51.100.20:21".parse().expect("addr"), start);
    c.handshake().unwrap().client(b"PORT 192,0,2,10,195,80\r\n").unwrap();
    for f in c.frames() {
        daemon.handle_frame(f.at, LinkType::Ethernet, &f.bytes).expect("frame");
    }
    // Half a second in, it is still there: not consumed.
    std::thread::sleep(Duration::from_millis(500));
    daemon.handle_timeout(super::live::wall_clock()).expect("timeout");
    assert_eq!(daemon.stats().consumed, 0);
    std::thread::sleep(Duration::from_millis(1200));
    daemon.handle_timeout(super::live::wall_clock()).expect("timeout");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("\"event\":\"pinhole-expired\""), "{text}");
    assert!(!text.contains("pinhole-consumed"), "{text}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_negotiation_flood_is_rate_limited_and_recorded_once_a_second() {
    let mut h = Harness::new("flood");
    let mut c = conversation();
    c.handshake().unwrap();
    let mut lines = Vec::new();
    for i in 0..100u32 {
        lines.extend_from_slice(format!("PORT 192,0,2,10,{},{}\r\n", 196 + i / 256, i % 256).as_bytes());
    }
    c.client(&lines).unwrap();
    h.feed(&c);
    let trail = h.trail();
    let refused: Vec<&String> = trail.iter().filter(|t| t.starts_with("refused")).collect();
    assert_eq!(refused, ["refused rate-limited"], "one record for the flood");
    let s = h.daemon.stats();
    assert_eq!((s.refused, s.suppressed), (36, 35), "burst of 64 opened, 36 refused");
    assert_eq!(trail.iter().filter(|t| t.starts_with("pinhole-open")).count(), 64);
    // One pinhole is left open: each newer one superseded the one before.
    assert_eq!(h.elements(), 1);
}
