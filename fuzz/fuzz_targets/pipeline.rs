//! Any bytes as a sequence of Ethernet frames through the whole core: it never
//! panics, stays within its session bound, and every pinhole is between the
//! two ends of the control connection it was negotiated on.
#![no_main]

use ftp_pinhole::decode::LinkType;
use ftp_pinhole::ftp::Mode;
use ftp_pinhole::pipeline::{EventKind, Pipeline, PipelineConfig};
use ftp_pinhole::policy::Decision;
use ftp_pinhole::time::Timestamp;
use ftp_pinhole::track::TrackerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = PipelineConfig {
        tracker: TrackerConfig { max_connections: 4, max_held_segments: 4, max_held_bytes: 512, ..TrackerConfig::default() },
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(config);
    let mut events = Vec::new();
    let mut now = 1_700_000_000_000_000_000u64;
    // Each frame: a 2-byte big-endian length, then the frame.
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        now += 1_000_000;
        pipeline.handle_frame(Timestamp::from_unix_nanos(now), LinkType::Ethernet, frame, &mut events);
        for e in events.drain(..) {
            if let EventKind::Negotiated { decision: Decision::Open(p), .. } = e.kind {
                let (c, s) = (e.control.client.ip(), e.control.server.ip());
                match p.mode {
                    Mode::Active => assert_eq!((p.src, p.dst), (s, c)),
                    Mode::Passive => assert_eq!((p.src, p.dst), (c, s)),
                }
                assert!(p.dport >= 1024);
            }
        }
        assert!(pipeline.sessions() <= 4);
        rest = tail;
    }
    pipeline.finish(Timestamp::from_unix_nanos(now), &mut events);
    assert_eq!(pipeline.sessions(), 0);
});
