//! Any bytes, cut into chunks for both directions of one control connection:
//! the FTP stage never panics, and whatever it announces is well formed.
#![no_main]

use ftp_pinhole::ftp::{FtpConfig, FtpEvent, FtpStats, Session};
use ftp_pinhole::track::{ControlConn, Direction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let control = ControlConn {
        client: "192.0.2.10:40000".parse().expect("constant"),
        server: "198.51.100.20:21".parse().expect("constant"),
    };
    let config = FtpConfig { max_line: 256 };
    let mut session = Session::new(control, config);
    let mut stats = FtpStats::default();
    // First byte of each chunk: direction (low bit) and length (the rest).
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let dir = if head & 1 == 0 { Direction::ToServer } else { Direction::ToClient };
        let len = usize::from(head >> 1).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        if head == 0xff {
            session.handle_gap(dir);
        }
        session.handle_data(dir, chunk, &mut stats, &mut |event| {
            if let FtpEvent::Negotiation(n) = event {
                assert!(n.line.len() <= 3 * config.max_line, "lossy UTF-8 at most triples a line");
                if let Ok(ep) = n.announced {
                    assert_ne!(ep.port(), 0);
                }
            }
        });
        rest = tail;
    }
});
