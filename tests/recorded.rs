//! `inspect` over captures of real FTP software (vsftpd, pyftpdlib; curl,
//! ftplib, lftp) recorded by the project: see tests/data/recorded/README.md.
//!
//! Two checks: the records equal `expected.jsonl`; and every expectation the
//! kernel's own FTP helper created for the same sessions (recorded with
//! `conntrack -E expect` on the gateway) is matched by one of our pinholes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{jsonl, run};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded")
}

fn inspect() -> Vec<Value> {
    let mut pcaps: Vec<String> = std::fs::read_dir(dir())
        .expect("recorded captures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    pcaps.sort();
    assert_eq!(pcaps.len(), 13);
    let mut args = vec!["inspect", "--ports", "21,2121", "--quiet"];
    args.extend(pcaps.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    jsonl(&out.stdout)
}

#[test]
fn records_match_the_expected_file() {
    let got = inspect();
    let want = jsonl(&std::fs::read(dir().join("expected.jsonl")).expect("expected.jsonl"));
    assert_eq!(got.len(), want.len(), "record count");
    for (g, w) in got.iter().zip(&want) {
        for field in w.as_object().expect("object").keys() {
            assert_eq!(g[field], w[field], "field {field} of {}\n got: {g}\nwant: {w}", w["pcap"]);
        }
    }
}

/// `(src, dst, dport)` of each expectation the kernel helper created.
fn kernel_expectations(pcap: &str) -> Vec<(String, String, u64)> {
    let path = dir().join(pcap.replace(".pcap", ".kernel-expect.txt"));
    let text = std::fs::read_to_string(&path).expect("kernel expectations");
    text.lines()
        .filter(|l| l.contains("[NEW]"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap_or_else(|| panic!("{name} in {l}"))
                    .to_string()
            };
            (field("src="), field("dst="), field("dport=").parse().expect("port"))
        })
        .collect()
}

#[test]
fn every_kernel_helper_expectation_has_our_pinhole() {
    let got = inspect();
    let mut pcaps: Vec<&str> = got.iter().map(|r| r["pcap"].as_str().expect("pcap")).collect();
    pcaps.dedup();
    let mut matched = 0;
    for pcap in pcaps {
        let ours: Vec<(String, String, u64)> = got
            .iter()
            .filter(|r| r["pcap"] == pcap && r["verdict"] == "open")
            .map(|r| {
                let p = &r["pinhole"];
                (
                    p["src"].as_str().unwrap().to_string(),
                    p["dst"].as_str().unwrap().to_string(),
                    p["dport"].as_u64().unwrap(),
                )
            })
            .collect();
        let kernel = kernel_expectations(pcap);
        for k in &kernel {
            assert!(ours.contains(k), "{pcap}: the kernel helper expected {k:?}; ours: {ours:?}");
            matched += 1;
        }
        // Ours beyond the kernel's: only vsftpd's 227 (0,0,0,0,...) on IPv6,
        // which the kernel helper cannot use (README of the captures).
        if ours.len() > kernel.len() {
            assert_eq!(pcap, "vsftpd-ftplib-pasv-v6.pcap", "unexpected extra pinholes: {ours:?} vs {kernel:?}");
        }
    }
    assert_eq!(matched, 13, "kernel expectations compared");
}
