//! Any bytes, as a frame of every link type: decode never panics, and a
//! segment's payload lies within the frame.
#![no_main]

use ftp_pinhole::decode::{decode, LinkType};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

fuzz_target!(|data: &[u8]| {
    for link in LINKS {
        if let Ok(segment) = decode(link, data) {
            assert!(segment.payload.len() <= data.len());
        }
    }
});
