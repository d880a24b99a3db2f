//! Helpers shared by the end-to-end tests.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub(crate) mod caps;
pub(crate) mod ftp;
pub(crate) mod netns;
pub(crate) mod topology;
pub(crate) mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ftp_pinhole::decode::LinkType;
use ftp_pinhole::synth::SynthFrame;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use serde_json::Value;

/// The binary under test.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ftp-pinhole")
}

/// A scratch directory unique to this test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf, bool);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ftp-pinhole-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir, true)
    }

    /// A handle on a directory owned by another `Scratch` (not removed on drop).
    pub(crate) fn borrow(dir: PathBuf) -> Self {
        Scratch(dir, false)
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn datalink(link: LinkType) -> DataLink {
    match link {
        LinkType::Ethernet => DataLink::ETHERNET,
        LinkType::LinuxSll => DataLink::LINUX_SLL,
        LinkType::LinuxSll2 => DataLink::LINUX_SLL2,
        LinkType::RawIp => DataLink::RAW,
        LinkType::Ipv4 => DataLink::IPV4,
        LinkType::Ipv6 => DataLink::IPV6,
        LinkType::Null => DataLink::NULL,
        LinkType::Loop => DataLink::LOOP,
    }
}

/// Write frames of one link type as a pcap file (nanosecond timestamps).
pub(crate) fn write_pcap(path: &Path, link: LinkType, frames: &[SynthFrame]) {
    let header =
        PcapHeader { datalink: datalink(link), ts_resolution: TsResolution::NanoSecond, ..PcapHeader::default() };
    let file = std::fs::File::create(path).expect("create pcap");
    let mut w = PcapWriter::with_header(file, header).expect("pcap header");
    for f in frames {
        let ts = Duration::from_nanos(f.at.unix_nanos());
        w.write_packet(&PcapPacket::new(ts, f.bytes.len() as u32, &f.bytes)).expect("write packet");
    }
}

/// Run the binary with `args`.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run ftp-pinhole")
}

/// The ruleset `ftp-pinhole rules ARGS` prints.
pub(crate) fn rules(args: &[&str]) -> String {
    let mut all = vec!["rules"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "rules {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Parse JSON lines.
pub(crate) fn jsonl(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Compare two lists of strings and show both sides when they differ.
pub(crate) fn assert_lines(got: &[String], want: &[&str]) {
    if got.iter().map(String::as_str).ne(want.iter().copied()) {
        let mut msg = String::from("lines differ\n--- want\n");
        for w in want {
            msg.push_str(&format!("  {w}\n"));
        }
        msg.push_str("--- got\n");
        for g in got {
            msg.push_str(&format!("  {g}\n"));
        }
        panic!("{msg}");
    }
}

/// Compare two texts; on a difference, panic with a side-by-side diff
/// (want on the left, got on the right; `|` changed, `<` only wanted,
/// `>` only got) and the line numbers of both.
pub(crate) fn assert_text_eq(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    // Longest common subsequence of lines, to line up what is unchanged.
    let mut lcs = vec![vec![0usize; g.len() + 1]; w.len() + 1];
    for i in (0..w.len()).rev() {
        for j in (0..g.len()).rev() {
            lcs[i][j] = if w[i] == g[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let width = w.iter().map(|l| l.chars().count()).max().unwrap_or(0).clamp(20, 100);
    let mut rows = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < w.len() || j < g.len() {
        if i < w.len() && j < g.len() && w[i] == g[j] {
            rows.push((Some(i), ' ', Some(j)));
            (i, j) = (i + 1, j + 1);
        } else if i < w.len() && j < g.len() && lcs[i + 1][j] == lcs[i][j + 1] {
            rows.push((Some(i), '|', Some(j)));
            (i, j) = (i + 1, j + 1);
        } else if j >= g.len() || (i < w.len() && lcs[i + 1][j] >= lcs[i][j + 1]) {
            rows.push((Some(i), '<', None));
            i += 1;
        } else {
            rows.push((None, '>', Some(j)));
            j += 1;
        }
    }
    let mut msg = format!("{what} differs (left: want, right: got)\n");
    for (wi, mark, gi) in rows {
        let left = wi.map_or(String::new(), |i| format!("{:>4} {}", i + 1, w[i]));
        let right = gi.map_or(String::new(), |j| format!("{:>4} {}", j + 1, g[j]));
        msg.push_str(&format!("{left:<width$} {mark} {right}\n", width = width + 5));
    }
    if want.ends_with('\n') != got.ends_with('\n') {
        msg.push_str("(the texts differ in their final newline)\n");
    }
    panic!("{msg}");
}
