//! `ftp-pinhole open`, `close` and `list` against the generated gateway
//! ruleset in a client/gateway/server topology: a pinhole opened through the
//! backend admits its one connection and no neighbour, and is consumed by it.
//! Needs root; fails without it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::netns::{wait_until, Netns};
use common::topology::{connect, ep, listen, Topology, CLIENT4, CLIENT4_OTHER, CLIENT6, QUICK, SERVER4, SERVER6, SURE};
use common::{binary, jsonl, rules};

fn ftp_pinhole(ns: &Netns, args: &[&str]) -> std::process::Output {
    let mut all = vec![binary()];
    all.extend_from_slice(args);
    ns.run(&all)
}

fn listed(gw: &Netns) -> Vec<serde_json::Value> {
    let out = ftp_pinhole(gw, &["list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    jsonl(&out.stdout)
}

#[test]
fn a_pinhole_opened_by_hand_admits_one_connection_and_no_neighbour() {
    let t = Topology::new("pcli");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let accepted = listen(&t.server, SERVER4, 50000, Duration::from_secs(30));
    let _neighbour = listen(&t.server, SERVER4, 50001, Duration::from_secs(30));
    let open = ftp_pinhole(
        &t.gateway,
        &["open", "--mode", "passive", "--src", CLIENT4, "--dst", SERVER4, "--dport", "50000", "--ttl", "20s"],
    );
    assert!(open.status.success(), "{}", String::from_utf8_lossy(&open.stderr));
    let live = listed(&t.gateway);
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0]["set"].as_str(), live[0]["src"].as_str(), live[0]["dst"].as_str(), live[0]["dport"].as_u64()),
        (Some("passive4"), Some(CLIENT4), Some(SERVER4), Some(50000))
    );
    assert!(live[0]["expires_s"].as_f64().is_some_and(|s| s > 15.0 && s <= 20.0));
    // The same element, read by nft.
    let nft = t.gateway.ok(&["nft", "-j", "list", "set", "inet", "ftp_pinhole", "passive4"]);
    assert!(nft.contains(&format!("\"concat\": [\"{CLIENT4}\", \"{SERVER4}\", 50000]")), "{nft}");
    // Neighbours stay closed; the pinholed connection passes and uses it up.
    assert!(!connect(&t.client, None, ep(SERVER4, 50001), QUICK));
    assert!(!connect(&t.client, Some(ep(CLIENT4_OTHER, 0)), ep(SERVER4, 50000), QUICK));
    assert!(connect(&t.client, None, ep(SERVER4, 50000), SURE));
    assert_eq!(accepted.recv_timeout(Duration::from_secs(2)).ok(), Some(1));
    assert!(listed(&t.gateway).is_empty(), "consumed");
    assert!(!connect(&t.client, None, ep(SERVER4, 50000), QUICK));
}

#[test]
fn close_removes_and_expiry_removes() {
    let t = Topology::new("pcl2");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let args = ["--mode", "active", "--src", SERVER6, "--dst", CLIENT6, "--dport", "40000", "--ttl", "30s"];
    let open = ftp_pinhole(&t.gateway, &[&["open"][..], &args].concat());
    assert!(open.status.success(), "{}", String::from_utf8_lossy(&open.stderr));
    assert_eq!(listed(&t.gateway).len(), 1);
    let close = ftp_pinhole(&t.gateway, &[&["close"][..], &args].concat());
    assert!(close.status.success());
    assert!(listed(&t.gateway).is_empty());
    // Closing what is gone is not an error.
    assert!(ftp_pinhole(&t.gateway, &[&["close"][..], &args].concat()).status.success());
    // A one-second pinhole leaves on its own.
    let short = ["open", "--mode", "passive", "--src", CLIENT4, "--dst", SERVER4, "--dport", "50000", "--ttl", "1s"];
    assert!(ftp_pinhole(&t.gateway, &short).status.success());
    assert!(wait_until(Duration::from_secs(4), || listed(&t.gateway).is_empty()));
}

#[test]
fn clear_errors_without_a_ruleset_and_a_dry_run_without_one() {
    let ns = Netns::new("pcl3");
    let out = ftp_pinhole(&ns, &["open", "--mode", "passive", "--src", CLIENT4, "--dst", SERVER4, "--dport", "50000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nftables table inet ftp_pinhole does not exist"), "{err}");
    assert!(err.contains("ftp-pinhole rules --profile gateway --table ftp_pinhole | nft -f -"), "{err}");
    let dry = ftp_pinhole(
        &ns,
        &["open", "--backend", "dry-run", "--mode", "passive", "--src", CLIENT4, "--dst", SERVER4, "--dport", "50000"],
    );
    assert!(dry.status.success());
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout),
        format!(
            "nft add element inet ftp_pinhole passive4 {{ {CLIENT4} . {SERVER4} . 50000 timeout 30s expires 30s }}\n"
        )
    );
    let mixed = ftp_pinhole(
        &ns,
        &["open", "--backend", "dry-run", "--mode", "passive", "--src", CLIENT4, "--dst", SERVER6, "--dport", "1"],
    );
    assert_eq!(mixed.status.code(), Some(1));
}
