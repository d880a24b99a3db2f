//! ftp-pinhole: FTP data connections through a default-drop nftables firewall,
//! one exact, short-lived pinhole at a time.
//!
//! The pipeline (see README): `decode` frames into TCP segments, `track` each
//! control connection's byte streams, parse them in `ftp` into negotiations,
//! judge each in `policy`, then open pinholes in a `backend` and record it all
//! in an `audit` trail. Everything from `decode` to `policy` is sans-IO: plain
//! state machines fed with bytes and [`time::Timestamp`]s, with no sockets, no
//! clock reads and no global state. Frames come from a pcap file (`pcap`) or,
//! live, from `capture`: packet sockets filtered in the kernel.

pub mod audit;
pub mod backend;
pub mod capture;
pub mod daemon;
pub mod decode;
pub mod ftp;
pub mod pcap;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod ruleset;
pub mod synth;
pub mod time;
pub mod track;
