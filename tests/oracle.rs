//! `inspect` against the public captures and what Wireshark's FTP dissector
//! finds in them (`tests/data/public/expected.jsonl`, made by `oracle.py`).
//!
//! Every negotiation of the oracle must be reported at the same frame with the
//! same kind and announced endpoint, except the deviations listed with their
//! reason in `DEVIATIONS.jsonl`; and nothing may be reported beyond the oracle
//! but what those deviations say.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

type Key = (String, u64, String, Option<String>);

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/public")
}

fn key(v: &Value) -> Key {
    (
        v["pcap"].as_str().expect("pcap").to_string(),
        v["frame"].as_u64().expect("frame"),
        v["kind"].as_str().expect("kind").to_string(),
        v["announced"].as_str().map(str::to_string),
    )
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn count(values: &[Value]) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(key(v)).or_default() += 1;
    }
    m
}

/// Run `inspect` over every public capture.
fn inspect_all() -> Vec<Value> {
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(data())
        .expect("test data")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    pcaps.sort();
    assert!(pcaps.len() >= 30, "the public captures are missing");
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-pinhole"))
        .arg("inspect")
        .args(&pcaps)
        .args(["--format", "json", "--quiet"])
        .output()
        .expect("run ftp-pinhole");
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    jsonl(&String::from_utf8(out.stdout).expect("UTF-8 output"))
}

#[test]
fn inspect_finds_every_negotiation_of_the_oracle() {
    let expected = count(&jsonl(&std::fs::read_to_string(data().join("expected.jsonl")).expect("oracle")));
    let got_records = inspect_all();
    let got = count(&got_records);
    let deviations = jsonl(&std::fs::read_to_string(data().join("DEVIATIONS.jsonl")).expect("deviations"));

    let mut missing: BTreeMap<Key, usize> = BTreeMap::new();
    for (k, n) in &expected {
        let have = got.get(k).copied().unwrap_or(0);
        if have < *n {
            missing.insert(k.clone(), n - have);
        }
    }
    let mut beyond: BTreeMap<Key, usize> = BTreeMap::new();
    for (k, n) in &got {
        let want = expected.get(k).copied().unwrap_or(0);
        if *n > want {
            beyond.insert(k.clone(), n - want);
        }
    }
    // Each deviation must still be exactly what it says.
    for d in &deviations {
        let k = key(d);
        assert_eq!(missing.remove(&k), Some(1), "deviation no longer occurs (remove it): {d}");
        if let Some(ours) = d["ours"].as_u64() {
            let ours_key = (k.0.clone(), ours, k.2.clone(), k.3.clone());
            assert_eq!(beyond.remove(&ours_key), Some(1), "deviation's own frame not reported: {d}");
        }
        assert!(d["why"].as_str().is_some_and(|w| w.len() > 40), "a deviation needs its reason: {d}");
    }
    let show = |m: &BTreeMap<Key, usize>| m.keys().map(|k| format!("  {k:?}")).collect::<Vec<_>>().join("\n");
    assert!(missing.is_empty(), "oracle negotiations not found:\n{}", show(&missing));
    assert!(beyond.is_empty(), "negotiations reported beyond the oracle:\n{}", show(&beyond));
    assert_eq!(expected.values().sum::<usize>(), 1267, "the oracle file changed");
}

/// Find one record by capture and frame.
fn record<'a>(records: &'a [Value], pcap: &str, frame: u64) -> &'a Value {
    records
        .iter()
        .find(|r| r["pcap"] == pcap && r["frame"] == frame)
        .unwrap_or_else(|| panic!("no record for {pcap} frame {frame}"))
}

#[test]
fn verdicts_on_the_public_captures() {
    let records = inspect_all();
    // An ordinary active session: server:20 -> client:N.
    let r = record(&records, "zeek-ipv4.pcap", 57);
    assert_eq!(r["verdict"], "open");
    assert_eq!(
        r["pinhole"],
        serde_json::json!({"proto": "tcp", "src": "199.233.217.249", "sport": 20, "dst": "141.142.220.235",
                           "dport": 33582, "ttl_s": 30, "mode": "active"})
    );
    // Passive over IPv6 with EPSV: client:any -> server:P.
    let r = record(&records, "zeek-ipv6.pcap", 28);
    assert_eq!(r["pinhole"]["sport"], "any");
    assert_eq!(r["pinhole"]["dst"], "2001:470:4867:99::21");
    // The bounce attempt: PORT naming a third host, port 80.
    let r = record(&records, "suricata-ftp-bounce.pcap", 27);
    assert_eq!((r["verdict"].as_str(), r["reason"].as_str()), (Some("refuse"), Some("third-party-address")));
    // The same tuple announced by other clients (ippair-leak): third party.
    assert_eq!(record(&records, "suricata-ftp-ippair-leak-5204.pcap", 74)["reason"], "third-party-address");
    assert_eq!(record(&records, "suricata-ftp-ippair-leak-5204.pcap", 18)["verdict"], "open");
    // EPRT naming an IPv6 address on an IPv4 control connection.
    assert_eq!(record(&records, "suricata-ftp-active-dynamic_port-02.pcap", 14)["reason"], "family-mismatch");
    // Malformed and over-long lines are refused with their reason, not parsed.
    assert_eq!(record(&records, "suricata-ftp-mode-02.pcap", 11)["reason"], "malformed");
    assert_eq!(record(&records, "zeek-fake-long-commands.pcap", 24)["reason"], "malformed");
    assert_eq!(record(&records, "suricata-ftp-too-long-response.pcap", 28)["reason"], "line-too-long");
    // A server behind NAT announcing its public address: third party by default.
    assert_eq!(record(&records, "zeek-cwd-navigation.pcap", 843)["reason"], "third-party-address");
    // Nothing at all in the AUTH TLS session.
    assert!(records.iter().all(|r| r["pcap"] != "zeek-ftp-auth-tls.pcap"));
}
