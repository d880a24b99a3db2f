//! Invariants of the core under damaged input: real conversations with
//! segments dropped, repeated, reordered, cut or corrupted, fed through the
//! pipeline with a seeded generator (reproducible: the seed is in the name).
//!
//! - nothing panics;
//! - no pinhole opens without a negotiation on a tracked control connection,
//!   and every pinhole's ends are that connection's own addresses;
//! - a pinhole's port is one that was actually announced in the conversation;
//! - the session table never exceeds its bound.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::IpAddr;

use ftp_pinhole::decode::LinkType;
use ftp_pinhole::ftp::Mode;
use ftp_pinhole::pipeline::{Event, EventKind, Pipeline, PipelineConfig};
use ftp_pinhole::policy::Decision;
use ftp_pinhole::synth::{Conversation, SynthFrame};
use ftp_pinhole::time::Timestamp;
use ftp_pinhole::track::TrackerConfig;

/// xorshift64*: small, seedable, good enough to shuffle test input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const CLIENT: &str = "192.0.2.10";
const SERVER: &str = "198.51.100.20";

/// A busy session: every negotiation form, some split over segments.
fn conversation(port: u16) -> Vec<SynthFrame> {
    let mut c = Conversation::new(
        format!("{CLIENT}:{port}").parse().unwrap(),
        format!("{SERVER}:21").parse().unwrap(),
        Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
    );
    c.handshake().unwrap();
    c.server(b"220 ready\r\n").unwrap();
    c.client(b"USER anonymous\r\nPASS x\r\n").unwrap();
    c.server(b"331 ok\r\n230 in\r\n").unwrap();
    c.client(b"PASV\r\n").unwrap();
    c.server(b"227 Entering Passive Mode (198,51,").unwrap();
    c.server(b"100,20,195,80).\r\n").unwrap();
    c.client(b"PORT 192,0,2,10,195,81\r\n").unwrap();
    c.server(b"200 ok\r\n").unwrap();
    c.client(b"EPSV\r\n").unwrap();
    c.server(b"229 Entering Extended Passive Mode (|||50002|)\r\n").unwrap();
    c.client(b"EPRT |1|192.0.2.10|50003|\r\nLPSV\r\n").unwrap();
    c.server(b"200 ok\r\n228 Entering Long Passive Mode (4,4,198,51,100,20,2,195,84)\r\n").unwrap();
    c.client(b"PORT 203,0,113,5,0,80\r\n").unwrap();
    c.close().unwrap();
    c.into_frames()
}

/// Ports announced in `conversation`, the only ones a pinhole may name.
const ANNOUNCED: [u16; 5] = [50000, 50001, 50002, 50003, 50004];

fn damage(rng: &mut Rng, frames: &[SynthFrame]) -> Vec<SynthFrame> {
    let mut out: Vec<SynthFrame> = Vec::new();
    for f in frames {
        match rng.below(10) {
            0 => {} // dropped
            1 => {
                out.push(f.clone());
                out.push(f.clone()); // duplicated
            }
            2 if !out.is_empty() => {
                let at = rng.below(out.len());
                out.insert(at, f.clone()); // reordered
            }
            3 => {
                let mut g = f.clone();
                let cut = rng.below(g.bytes.len().max(1));
                g.bytes.truncate(cut); // truncated
                out.push(g);
            }
            4 => {
                let mut g = f.clone();
                // One bit flipped in the headers (Ethernet, IPv4, TCP: 54
                // bytes). A flip in the payload changes what was said, which
                // no reassembler can tell (TCP checksums are not verified:
                // captures of offloading hosts carry partial ones).
                let i = rng.below(g.bytes.len().min(54));
                g.bytes[i] ^= 1 << rng.below(8);
                out.push(g);
            }
            _ => out.push(f.clone()),
        }
    }
    out
}

fn check(events: &[Event], tracked: &HashSet<u64>) {
    let client: IpAddr = CLIENT.parse().unwrap();
    let server: IpAddr = SERVER.parse().unwrap();
    for e in events {
        if let EventKind::Negotiated { decision: Decision::Open(p), .. } = &e.kind {
            assert!(tracked.contains(&e.session.0), "pinhole on an untracked session: {e:?}");
            // The damaged copies may carry other addresses (a flipped bit in
            // an IP header yields another connection); the pinhole must still
            // be between that connection's own ends.
            let (c, s) = (e.control.client.ip(), e.control.server.ip());
            match p.mode {
                Mode::Active => assert_eq!((p.src, p.dst), (s, c), "{e:?}"),
                Mode::Passive => assert_eq!((p.src, p.dst), (c, s), "{e:?}"),
            }
            if (c, s) == (client, server) {
                assert!(ANNOUNCED.contains(&p.dport), "port never announced: {e:?}");
            }
            assert!(p.dport >= 1024);
        }
    }
}

#[test]
fn damaged_conversations_keep_the_invariants() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let config = PipelineConfig {
            tracker: TrackerConfig { max_connections: 8, ..TrackerConfig::default() },
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::new(config);
        let mut tracked = HashSet::new();
        let mut events = Vec::new();
        // Several sessions interleaved, more than the table holds.
        let mut frames = Vec::new();
        for i in 0..12u16 {
            frames.extend(damage(&mut rng, &conversation(40000 + i)));
        }
        for i in (1..frames.len()).rev() {
            if rng.below(4) == 0 {
                let j = rng.below(i + 1);
                frames.swap(i, j);
            }
        }
        for f in &frames {
            p.handle_frame(f.at, LinkType::Ethernet, &f.bytes, &mut events);
            // In event order: a pinhole only after its session was opened,
            // and never after it was closed.
            for e in &events {
                match e.kind {
                    EventKind::SessionOpened { .. } => {
                        tracked.insert(e.session.0);
                    }
                    EventKind::SessionClosed { .. } => {
                        tracked.remove(&e.session.0);
                    }
                    _ => check(std::slice::from_ref(e), &tracked),
                }
            }
            events.clear();
            assert!(p.sessions() <= 8, "seed {seed}: session bound exceeded");
        }
        p.finish(Timestamp::from_unix_nanos(u64::MAX / 2), &mut events);
        assert_eq!(p.sessions(), 0, "seed {seed}");
    }
}

#[test]
fn undamaged_conversation_opens_exactly_what_was_announced() {
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut events = Vec::new();
    for f in conversation(40000) {
        p.handle_frame(f.at, LinkType::Ethernet, &f.bytes, &mut events);
    }
    let mut ports: Vec<u16> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Negotiated { decision: Decision::Open(p), .. } => Some(p.dport),
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, ANNOUNCED);
    let refused = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Negotiated { decision: Decision::Refuse(_), .. }))
        .count();
    assert_eq!(refused, 1, "the bounce");
}
