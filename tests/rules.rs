//! The generated rulesets in the real kernel: every variant loads (`nft -c`,
//! then `nft -f`, twice), and the gateway profile admits a pinholed SYN and
//! only that one: once, with its retransmissions, until it expires.
//! Needs root (network namespaces); fails without it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::netns::{wait_until, Netns};
use common::topology::{connect, ep, listen, Topology, CLIENT4, CLIENT4_OTHER, CLIENT6, QUICK, SERVER4, SERVER6, SURE};
use common::{binary, rules};

/// A ruleset an operator already has, for the include profile.
fn operator_table(family: &str, name: &str) -> String {
    format!(
        "table {family} {name} {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy drop;\n\t\tct state established,related accept\n\t}}\n}}\n"
    )
}

#[test]
fn every_variant_passes_nft_check_and_loads_twice() {
    let ns = Netns::new("rchk");
    let mut variants: Vec<Vec<String>> = Vec::new();
    for family in ["inet", "ip", "ip6"] {
        for sport in ["20", "any"] {
            let base = |profile: &str| -> Vec<String> {
                ["--profile", profile, "--family", family, "--active-sport", sport, "--ports", "21,2121"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            };
            variants.push(base("gateway"));
            let mut with_ifaces = base("gateway");
            with_ifaces.extend(
                ["--client-iface", "lan0", "--client-iface", "wg*", "--server-iface", "dmz0"].map(String::from),
            );
            variants.push(with_ifaces);
            for role in ["server", "client", "both"] {
                for policy in ["accept", "drop"] {
                    let mut host = base("host");
                    host.extend(["--role", role, "--output-policy", policy].map(String::from));
                    variants.push(host);
                }
            }
            let mut include = base("include");
            include.extend(["--table", "filter"].map(String::from));
            variants.push(include);
        }
    }
    assert_eq!(variants.len(), 3 * 2 * 9);
    for args in &variants {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ruleset = rules(&args);
        let family = args[3];
        let include = args[1] == "include";
        let reset = ns.run(&["nft", "flush", "ruleset"]);
        assert!(reset.status.success());
        if include {
            ns.nft(&operator_table(family, "filter"));
        }
        let check = ns.run_with_input(&["nft", "-c", "-f", "-"], &ruleset);
        assert!(check.status.success(), "nft -c rejects {args:?}: {}", String::from_utf8_lossy(&check.stderr));
        ns.nft(&ruleset);
        ns.nft(&ruleset); // reloading is idempotent
        let listing = ns.ok(&["nft", "list", "ruleset"]);
        for set in ["passive4", "active4", "passive6", "active6"] {
            let wanted = match family {
                "ip" => set.ends_with('4'),
                "ip6" => set.ends_with('6'),
                _ => true,
            };
            assert_eq!(listing.contains(&format!("set {set} ")), wanted, "{args:?}: set {set}");
        }
        if include {
            // The operator's chain survived, and the jump can be added.
            assert!(listing.contains("chain forward"));
            ns.ok(&["nft", "add", "rule", family, "filter", "forward", "jump", "ftp_pinhole"]);
            ns.nft(&ruleset); // reloading with the jump in place works too
        }
    }
}

/// Add an element to a set of the gateway's table with nft.
fn add_element(gw: &Netns, set: &str, key: &str, timeout: &str) {
    gw.ok(&["nft", "add", "element", "inet", "ftp_pinhole", set, &format!("{{ {key} timeout {timeout} }}")]);
}

fn elements(gw: &Netns, set: &str) -> String {
    gw.ok(&["nft", "-j", "list", "set", "inet", "ftp_pinhole", set])
}

#[test]
fn gateway_passive_pinhole_admits_one_syn_once() {
    let t = Topology::new("rpas");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let accepted = listen(&t.server, SERVER4, 50000, Duration::from_secs(20));
    let _other = listen(&t.server, SERVER4, 50001, Duration::from_secs(20));
    // Control port open, data port closed.
    assert!(!connect(&t.client, None, ep(SERVER4, 50000), QUICK), "no pinhole: the SYN must be dropped");
    add_element(&t.gateway, "passive4", &format!("{CLIENT4} . {SERVER4} . 50000"), "20s");
    // Neighbours of the pinhole stay closed: another port, another client address.
    assert!(!connect(&t.client, None, ep(SERVER4, 50001), QUICK), "another port");
    assert!(!connect(&t.client, Some(ep(CLIENT4_OTHER, 0)), ep(SERVER4, 50000), QUICK), "another client address");
    assert!(elements(&t.gateway, "passive4").contains("50000"), "neighbours did not consume it");
    // The pinholed SYN passes, and consumes the element.
    assert!(connect(&t.client, None, ep(SERVER4, 50000), SURE), "the pinholed SYN must pass");
    assert_eq!(accepted.recv_timeout(Duration::from_secs(2)).ok(), Some(1));
    assert!(!elements(&t.gateway, "passive4").contains("50000"), "consumed");
    // A second connection to the same server port is dropped.
    assert!(!connect(&t.client, None, ep(SERVER4, 50000), QUICK), "used up");
}

#[test]
fn gateway_active_pinhole_wants_source_port_20() {
    let t = Topology::new("ract");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let accepted = listen(&t.client, CLIENT4, 40000, Duration::from_secs(20));
    add_element(&t.gateway, "active4", &format!("{SERVER4} . {CLIENT4} . 40000"), "20s");
    assert!(!connect(&t.server, Some(ep(SERVER4, 2020)), ep(CLIENT4, 40000), QUICK), "source port must be 20");
    assert!(connect(&t.server, Some(ep(SERVER4, 20)), ep(CLIENT4, 40000), SURE), "server:20 -> client:N");
    assert_eq!(accepted.recv_timeout(Duration::from_secs(2)).ok(), Some(1));
    assert!(!connect(&t.server, Some(ep(SERVER4, 20)), ep(CLIENT4, 40000), QUICK), "used up");
}

#[test]
fn gateway_ipv6_pinholes() {
    let t = Topology::new("rv6");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let _p = listen(&t.server, SERVER6, 50000, Duration::from_secs(20));
    let _a = listen(&t.client, CLIENT6, 40000, Duration::from_secs(20));
    assert!(!connect(&t.client, None, ep(SERVER6, 50000), QUICK));
    add_element(&t.gateway, "passive6", &format!("{CLIENT6} . {SERVER6} . 50000"), "20s");
    add_element(&t.gateway, "active6", &format!("{SERVER6} . {CLIENT6} . 40000"), "20s");
    assert!(connect(&t.client, None, ep(SERVER6, 50000), SURE), "passive IPv6");
    assert!(connect(&t.server, Some(ep(SERVER6, 20)), ep(CLIENT6, 40000), SURE), "active IPv6");
    assert!(!connect(&t.client, None, ep(SERVER6, 50000), QUICK), "used up");
}

#[test]
fn a_retransmitted_syn_of_the_consuming_connection_still_passes() {
    let t = Topology::new("rsyn");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let accepted = listen(&t.server, SERVER4, 50000, Duration::from_secs(20));
    // The server drops the first SYNs it gets: the client must retransmit,
    // after the first SYN consumed the pinhole on the gateway.
    t.server.nft("table inet lossy {\n\tchain input {\n\t\ttype filter hook input priority -10;\n\t\ttcp dport 50000 tcp flags syn counter drop\n\t}\n}\n");
    add_element(&t.gateway, "passive4", &format!("{CLIENT4} . {SERVER4} . 50000"), "20s");
    let client = t.client.name.clone();
    let attempt = std::thread::spawn(move || {
        let ns = common::netns::Netns::attach(&client);
        connect(&ns, None, ep(SERVER4, 50000), Duration::from_secs(8))
    });
    // Wait until the first SYN was dropped by the server, then stop dropping.
    assert!(wait_until(Duration::from_secs(5), || t
        .server
        .ok(&["nft", "list", "table", "inet", "lossy"])
        .contains("packets 1 ")));
    assert!(!elements(&t.gateway, "passive4").contains("50000"), "the first SYN consumed the pinhole");
    t.server.ok(&["nft", "delete", "table", "inet", "lossy"]);
    assert!(attempt.join().unwrap(), "the retransmitted SYN must pass the gateway");
    assert_eq!(accepted.recv_timeout(Duration::from_secs(2)).ok(), Some(1));
}

#[test]
fn an_unused_pinhole_expires() {
    let t = Topology::new("rexp");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let _l = listen(&t.server, SERVER4, 50000, Duration::from_secs(20));
    add_element(&t.gateway, "passive4", &format!("{CLIENT4} . {SERVER4} . 50000"), "1s");
    assert!(elements(&t.gateway, "passive4").contains("50000"));
    assert!(wait_until(Duration::from_secs(5), || !elements(&t.gateway, "passive4").contains("50000")), "expired");
    assert!(!connect(&t.client, None, ep(SERVER4, 50000), QUICK), "nothing left open");
}

#[test]
fn interface_restricted_gateway_only_admits_each_direction_from_its_side() {
    let t = Topology::new("rifs");
    t.gateway.nft(&rules(&["--profile", "gateway", "--client-iface", "gc0", "--server-iface", "gs0"]));
    let _c = listen(&t.client, CLIENT4, 50000, Duration::from_secs(20));
    // A passive-looking element for a flow from the server side: not admitted,
    // passive pinholes are only for connections from the client side.
    add_element(&t.gateway, "passive4", &format!("{SERVER4} . {CLIENT4} . 50000"), "20s");
    assert!(!connect(&t.server, None, ep(CLIENT4, 50000), QUICK));
    let _s = listen(&t.server, SERVER4, 50001, Duration::from_secs(20));
    add_element(&t.gateway, "passive4", &format!("{CLIENT4} . {SERVER4} . 50001"), "20s");
    assert!(connect(&t.client, None, ep(SERVER4, 50001), SURE));
    let _ = binary();
}
