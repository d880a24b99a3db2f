//! End-to-end: the nftables backend against the running kernel, each test in
//! a fresh network namespace with its own table, loaded by `nft`; what the
//! backend did is read back both with `nft -j` and with `list()`.
//!
//! These tests need root (network namespaces, CAP_NET_ADMIN) and fail,
//! never skip, without it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::netns::{wait_until, Netns};
use ftp_pinhole::backend::nftables::{Features, Nftables};
use ftp_pinhole::backend::{
    Backend, BackendError, OpError, Outcome, TableFamily, TableSpec, DEFAULT_TABLE, SET_ACTIVE4, SET_ACTIVE6,
    SET_PASSIVE4, SET_PASSIVE6,
};
use ftp_pinhole::ftp::Mode;
use ftp_pinhole::policy::{Pinhole, SourcePort};
use serde_json::Value;

/// A table of `family` named `name` with the four pinhole sets (or, for
/// `ip`/`ip6`, the two of its family). `tweak` rewrites a set's declaration.
fn ruleset(family: &str, name: &str, tweak: impl Fn(&str, String) -> Option<String>) -> String {
    let mut sets = String::new();
    for (set, addr) in [(SET_PASSIVE4, "ipv4"), (SET_ACTIVE4, "ipv4"), (SET_PASSIVE6, "ipv6"), (SET_ACTIVE6, "ipv6")] {
        if (family == "ip" && addr == "ipv6") || (family == "ip6" && addr == "ipv4") {
            continue;
        }
        let body = format!("type {addr}_addr . {addr}_addr . inet_service; flags timeout;");
        if let Some(body) = tweak(set, body) {
            sets.push_str(&format!("  set {set} {{ {body} }}\n"));
        }
    }
    format!("table {family} {name} {{\n{sets}}}\n")
}

/// The default table, `inet ftp_pinhole`, with the four sets as generated.
fn standard() -> String {
    ruleset("inet", DEFAULT_TABLE, |_, body| Some(body))
}

/// A namespace holding `rules`.
fn namespace(tag: &str, rules: &str) -> Netns {
    let ns = Netns::new(tag);
    if !rules.is_empty() {
        ns.nft(rules);
    }
    ns
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn pinhole(mode: Mode, src: &str, dst: &str, dport: u16, ttl: Duration) -> Pinhole {
    Pinhole { mode, src: ip(src), sport: SourcePort::Any, dst: ip(dst), dport, ttl }
}

fn passive(src: &str, dst: &str, dport: u16, ttl_s: u64) -> Pinhole {
    pinhole(Mode::Passive, src, dst, dport, Duration::from_secs(ttl_s))
}

/// An element as `nft -j list set` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NftElem {
    /// `a . b . port`.
    key: String,
    /// Whole seconds.
    timeout: Option<u64>,
    /// Whole seconds left.
    expires: Option<u64>,
}

/// The elements of a set, read with `nft -j`.
fn nft_elements(ns: &Netns, family: &str, table: &str, set: &str) -> Vec<NftElem> {
    let out = ns.ok(&["nft", "-j", "list", "set", family, table, set]);
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j output ({e}): {out}"));
    let mut elems = Vec::new();
    for item in json["nftables"].as_array().expect("nftables array") {
        let Some(list) = item["set"]["elem"].as_array() else { continue };
        for e in list {
            let (val, timeout, expires) = match e.get("elem") {
                Some(inner) => (&inner["val"], inner["timeout"].as_u64(), inner["expires"].as_u64()),
                None => (e, None, None),
            };
            let fields: Vec<String> = val["concat"]
                .as_array()
                .expect("a concatenated key")
                .iter()
                .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_string))
                .collect();
            elems.push(NftElem { key: fields.join(" . "), timeout, expires });
        }
    }
    elems
}

fn all_ok(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(o.result.is_ok(), "{} {} failed: {:?}", o.op.as_str(), o.pinhole, o.result);
    }
}

/// Connects to the default table inside `ns`, runs `f` with the backend.
fn with_backend<T: Send + 'static>(ns: &Netns, f: impl FnOnce(&mut Nftables) -> T + Send + 'static) -> T {
    ns.within(move || {
        let mut nft = Nftables::connect(TableSpec::default()).expect("connect");
        f(&mut nft)
    })
}

#[test]
fn open_adds_elements_nft_sees_with_their_key_and_timeout() {
    let ns = namespace("nft-open", &standard());
    let (outcomes, live) = with_backend(&ns, |nft| {
        nft.open(&passive("192.0.2.10", "198.51.100.20", 50000, 30));
        nft.open(&pinhole(Mode::Active, "2001:db8:2::20", "2001:db8:1::10", 40000, Duration::from_secs(45)));
        let outcomes = nft.flush().expect("flush");
        (outcomes, nft.list().expect("list"))
    });
    all_ok(&outcomes);

    let p4 = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4);
    assert_eq!(p4.len(), 1, "{p4:?}");
    assert_eq!(p4[0].key, "192.0.2.10 . 198.51.100.20 . 50000");
    assert_eq!(p4[0].timeout, Some(30));
    assert!(p4[0].expires.is_some_and(|s| (27..=30).contains(&s)), "{p4:?}");
    let a6 = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_ACTIVE6);
    assert_eq!(a6.len(), 1, "{a6:?}");
    assert_eq!(a6[0].key, "2001:db8:2::20 . 2001:db8:1::10 . 40000");
    assert_eq!(a6[0].timeout, Some(45));
    assert!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_ACTIVE4).is_empty());
    assert!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE6).is_empty());

    // list() reads the same elements back, with the time they have left.
    assert_eq!(live.len(), 2, "{live:?}");
    let l4 = live.iter().find(|l| l.element.set == SET_PASSIVE4).expect("passive4 element");
    assert_eq!(l4.element.nft_key(), "192.0.2.10 . 198.51.100.20 . 50000");
    assert_eq!(l4.element.timeout, Duration::from_secs(30));
    let left = l4.expires.expect("an expiry");
    assert!(left > Duration::from_secs(27) && left <= Duration::from_secs(30), "{left:?}");
    let l6 = live.iter().find(|l| l.element.set == SET_ACTIVE6).expect("active6 element");
    assert_eq!(l6.element.nft_key(), "2001:db8:2::20 . 2001:db8:1::10 . 40000");
    assert_eq!(l6.element.timeout, Duration::from_secs(45));
}

#[test]
fn opening_again_resets_the_expiry() {
    let ns = namespace("nft-refresh", &standard());
    let (before, after, rounds) = with_backend(&ns, |nft| {
        let p = passive("192.0.2.11", "198.51.100.21", 50001, 10);
        nft.open(&p);
        all_ok(&nft.flush().expect("flush"));
        std::thread::sleep(Duration::from_secs(2));
        let before = nft.list().expect("list")[0].expires.expect("expiry");
        nft.open(&p);
        all_ok(&nft.flush().expect("flush"));
        let after = nft.list().expect("list")[0].expires.expect("expiry");
        (before, after, nft.last_flush().rounds)
    });
    assert!(before <= Duration::from_millis(8_100), "2 s after opening: {before:?} left");
    assert!(after >= Duration::from_millis(9_500), "just refreshed: {after:?} left");
    assert_eq!(rounds, 1, "an upsert refreshes in one batch on this kernel");
    let e = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].expires.is_some_and(|s| s >= 9), "{e:?}");
}

#[test]
fn close_removes_and_closing_an_absent_element_is_ok() {
    let ns = namespace("nft-close", &standard());
    let p = passive("192.0.2.12", "198.51.100.22", 50002, 30);
    let (opened, closed, again, never) = with_backend(&ns, move |nft| {
        nft.open(&p);
        let opened = nft.flush().expect("flush");
        nft.close(&p);
        let closed = nft.flush().expect("flush");
        nft.close(&p);
        let again = nft.flush().expect("flush");
        nft.close(&passive("203.0.113.1", "203.0.113.2", 60000, 30));
        let never = nft.flush().expect("flush");
        (opened, closed, again, never)
    });
    for o in [opened, closed, again, never] {
        assert_eq!(o.len(), 1);
        all_ok(&o);
    }
    assert!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).is_empty());
}

#[test]
fn an_element_with_a_one_second_ttl_is_gone_after_about_two_seconds() {
    let ns = namespace("nft-expire", &standard());
    let started = Instant::now();
    with_backend(&ns, |nft| {
        nft.open(&passive("192.0.2.13", "198.51.100.23", 50003, 1));
        all_ok(&nft.flush().expect("flush"));
    });
    assert_eq!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).len(), 1, "present at first");
    let gone =
        wait_until(Duration::from_millis(2_500), || nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).is_empty());
    let took = started.elapsed();
    assert!(gone, "still there after {took:?}");
    assert!(took >= Duration::from_millis(900), "gone too early: {took:?}");
    let live = with_backend(&ns, |nft| nft.list().expect("list"));
    assert!(live.is_empty(), "{live:?}");
}

#[test]
fn ten_thousand_opens_commit_in_one_flush() {
    let ns = namespace("nft-10k", &standard());
    let (outcomes, stats, listed) = with_backend(&ns, |nft| {
        for i in 0..10_000u32 {
            let src = format!("192.0.2.{}", 1 + i % 200);
            let dst = format!("198.51.100.{}", 1 + i / 200);
            nft.open(&passive(&src, &dst, 20000 + (i % 1000) as u16, 300));
        }
        let outcomes = nft.flush().expect("flush");
        (outcomes, nft.last_flush(), nft.list().expect("list").len())
    });
    assert_eq!(outcomes.len(), 10_000);
    all_ok(&outcomes);
    assert_eq!((stats.batches, stats.rounds, stats.messages), (1, 1, 10_000), "{stats:?}");
    assert!(stats.bytes > 64 * 1024, "more than the 64 KiB that page-by-page sending loses: {stats:?}");
    assert_eq!(listed, 10_000);
    assert_eq!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).len(), 10_000);
    eprintln!("10,000 opens in one batch of {} bytes: {:?}", stats.bytes, stats.duration);
}

#[test]
fn a_missing_table_is_named_with_the_command_that_creates_it() {
    let ns = namespace("nft-notable", "");
    let err = ns.within(|| Nftables::connect(TableSpec::default()).expect_err("no table"));
    assert!(matches!(&err, BackendError::TableMissing { table } if *table == TableSpec::default()), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("inet ftp_pinhole"), "{msg}");
    assert!(msg.contains("ftp-pinhole rules") && msg.contains("| nft -f -"), "{msg}");
}

#[test]
fn a_missing_set_is_named() {
    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| (set != SET_ACTIVE6).then_some(body));
    let ns = namespace("nft-noset", &rules);
    let err = ns.within(|| Nftables::connect(TableSpec::default()).expect_err("no active6"));
    assert!(matches!(&err, BackendError::SetMissing { set: SET_ACTIVE6, .. }), "{err:?}");
    assert!(err.to_string().contains("active6"), "{err}");
}

#[test]
fn a_set_that_cannot_hold_pinholes_is_refused_at_connect() {
    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| {
        Some(if set == SET_PASSIVE4 { body.replace(" flags timeout;", "") } else { body })
    });
    let ns = namespace("nft-notimeout", &rules);
    let err = ns.within(|| Nftables::connect(TableSpec::default()).expect_err("no timeout flag"));
    assert!(matches!(&err, BackendError::SetIncompatible { set: SET_PASSIVE4, .. }), "{err:?}");
    assert!(err.to_string().contains("flags timeout"), "{err}");

    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| {
        Some(if set == SET_ACTIVE4 { "type ipv4_addr . inet_service; flags timeout;".into() } else { body })
    });
    let ns = namespace("nft-wrongkey", &rules);
    let err = ns.within(|| Nftables::connect(TableSpec::default()).expect_err("wrong key"));
    assert!(matches!(&err, BackendError::SetIncompatible { set: SET_ACTIVE4, .. }), "{err:?}");
}

#[test]
fn sets_declared_with_typeof_are_accepted() {
    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| {
        Some(match set {
            SET_PASSIVE4 => "typeof ip saddr . ip daddr . tcp dport; flags timeout;".into(),
            SET_PASSIVE6 => "typeof ip6 saddr . ip6 daddr . tcp dport; flags timeout;".into(),
            _ => body,
        })
    });
    let ns = namespace("nft-typeof", &rules);
    let outcomes = with_backend(&ns, |nft| {
        nft.open(&passive("192.0.2.14", "198.51.100.24", 50004, 30));
        nft.flush().expect("flush")
    });
    all_ok(&outcomes);
    let e = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4);
    assert_eq!(e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["192.0.2.14 . 198.51.100.24 . 50004"]);
}

#[test]
fn an_ip_table_refuses_ipv6_pinholes_and_opens_the_ipv4_ones_of_the_same_flush() {
    let ns = namespace("nft-ipfamily", &ruleset("ip", "edge", |_, body| Some(body)));
    let outcomes = ns.within(|| {
        let mut nft = Nftables::connect(TableSpec::new(TableFamily::Ip, "edge").expect("name")).expect("connect");
        nft.open(&passive("192.0.2.15", "198.51.100.25", 50005, 30));
        nft.open(&passive("2001:db8:1::15", "2001:db8:2::25", 50005, 30));
        nft.open(&pinhole(Mode::Active, "198.51.100.25", "192.0.2.15", 50006, Duration::from_secs(30)));
        nft.flush().expect("flush")
    });
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    let err = outcomes[1].result.as_ref().expect_err("IPv6 in an ip table");
    assert!(matches!(err, OpError::FamilyNotInTable { family: "IPv6", .. }), "{err:?}");
    assert_eq!(err.to_string(), "table ip edge has no set for IPv6 pinholes");
    assert!(outcomes[2].result.is_ok(), "{:?}", outcomes[2].result);
    assert_eq!(nft_elements(&ns, "ip", "edge", SET_PASSIVE4)[0].key, "192.0.2.15 . 198.51.100.25 . 50005");
    assert_eq!(nft_elements(&ns, "ip", "edge", SET_ACTIVE4)[0].key, "198.51.100.25 . 192.0.2.15 . 50006");
}

#[test]
fn an_ip6_table_holds_ipv6_pinholes_only() {
    let ns = namespace("nft-ip6family", &ruleset("ip6", "edge6", |_, body| Some(body)));
    let (outcomes, live) = ns.within(|| {
        let mut nft = Nftables::connect(TableSpec::new(TableFamily::Ip6, "edge6").expect("name")).expect("connect");
        nft.open(&passive("2001:db8:1::16", "2001:db8:2::26", 50007, 30));
        nft.open(&passive("192.0.2.16", "198.51.100.26", 50007, 30));
        (nft.flush().expect("flush"), nft.list().expect("list"))
    });
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    assert!(matches!(outcomes[1].result, Err(OpError::FamilyNotInTable { family: "IPv4", .. })));
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].element.nft_key(), "2001:db8:1::16 . 2001:db8:2::26 . 50007");
}

#[test]
fn a_full_set_refuses_the_third_open_and_commits_the_first_two() {
    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| {
        Some(if set == SET_PASSIVE4 { format!("{body} size 2;") } else { body })
    });
    let ns = namespace("nft-full", &rules);
    let (outcomes, stats) = with_backend(&ns, |nft| {
        for i in 1..=3 {
            nft.open(&passive(&format!("192.0.2.{i}"), "198.51.100.30", 50010, 30));
        }
        (nft.flush().expect("flush"), nft.last_flush())
    });
    assert!(outcomes[0].result.is_ok() && outcomes[1].result.is_ok(), "{outcomes:?}");
    let err = outcomes[2].result.as_ref().expect_err("the set holds 2");
    assert!(matches!(err, OpError::SetFull { set: SET_PASSIVE4 }), "{err:?}");
    assert_eq!(stats.rounds, 2, "sent again without the failed open: {stats:?}");
    let keys: Vec<String> = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).into_iter().map(|e| e.key).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"192.0.2.1 . 198.51.100.30 . 50010".to_string()), "{keys:?}");
    assert!(keys.contains(&"192.0.2.2 . 198.51.100.30 . 50010".to_string()), "{keys:?}");
}

#[test]
fn without_cap_net_admin_the_backend_reports_permission() {
    let ns = namespace("nft-eperm", &standard());
    let err = ns.within(|| {
        common::caps::keep_only_effective(&[common::caps::CAP_NET_RAW]);
        Nftables::connect(TableSpec::default()).expect_err("no CAP_NET_ADMIN")
    });
    assert!(matches!(err, BackendError::Permission), "{err:?}");
    assert!(err.to_string().contains("CAP_NET_ADMIN"), "{err}");
}

/// This kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn the_probes_find_this_kernels_features_and_leave_nothing_behind() {
    let ns = namespace("nft-probe", &standard());
    let features = with_backend(&ns, |nft| nft.features());
    let v = kernel_version();
    let want = Features { upsert_refreshes: v >= (6, 12), destroy: v >= (6, 3), end_ack: v >= (6, 10) };
    assert_eq!(features, want, "kernel {v:?}");
    for set in [SET_PASSIVE4, SET_ACTIVE4, SET_PASSIVE6, SET_ACTIVE6] {
        assert!(nft_elements(&ns, "inet", DEFAULT_TABLE, set).is_empty(), "probe left in {set}");
    }
}

#[test]
fn the_fallbacks_for_older_kernels_open_refresh_and_close() {
    let ns = namespace("nft-fallback", &standard());
    let p = passive("192.0.2.17", "198.51.100.27", 50011, 10);
    let q = passive("192.0.2.18", "198.51.100.28", 50012, 10);
    let report = ns.within(move || {
        let mut report = Vec::new();
        for allowed in [Features::NONE, Features { destroy: true, ..Features::NONE }] {
            let mut nft = Nftables::connect(TableSpec::default()).expect("connect");
            nft.limit_features(allowed);
            assert_eq!(nft.features() & allowed, nft.features());
            nft.open(&p);
            all_ok(&nft.flush().expect("create"));
            std::thread::sleep(Duration::from_millis(1_500));
            // Open again: EEXIST, then removal + create in a second round.
            nft.open(&p);
            nft.open(&q);
            all_ok(&nft.flush().expect("refresh"));
            let rounds = nft.last_flush().rounds;
            let left = nft.list().expect("list").iter().find_map(|l| (l.element.dport == 50011).then_some(l.expires));
            // Close twice: the second finds nothing, which is success.
            nft.close(&p);
            nft.close(&q);
            all_ok(&nft.flush().expect("close"));
            nft.close(&p);
            all_ok(&nft.flush().expect("close again"));
            let remaining = nft.list().expect("list").len();
            report.push((allowed, rounds, left.flatten(), remaining));
        }
        report
    });
    for (allowed, rounds, left, remaining) in report {
        // Before 6.3: create, EEXIST, then delete + create. 6.3 to 6.11:
        // destroy + create at once.
        let want = if allowed.destroy { 1 } else { 2 };
        assert_eq!(rounds, want, "{allowed:?}");
        let left = left.expect("refreshed element");
        assert!(left >= Duration::from_millis(9_500), "{allowed:?}: refresh reset the expiry: {left:?}");
        assert_eq!(remaining, 0, "{allowed:?}");
    }
}

#[test]
fn a_failing_open_does_not_undo_the_closes_and_opens_around_it() {
    let rules = ruleset("inet", DEFAULT_TABLE, |set, body| {
        Some(if set == SET_PASSIVE6 { format!("{body} size 1;") } else { body })
    });
    let ns = namespace("nft-mixed", &rules);
    let a = passive("192.0.2.20", "198.51.100.40", 50020, 30);
    let b = passive("2001:db8:1::20", "2001:db8:2::40", 50020, 30);
    let c = passive("2001:db8:1::21", "2001:db8:2::41", 50021, 30);
    let outcomes = with_backend(&ns, move |nft| {
        nft.open(&a);
        all_ok(&nft.flush().expect("flush"));
        nft.close(&a);
        nft.open(&b);
        nft.open(&c);
        nft.open(&a);
        nft.close(&a);
        nft.flush().expect("flush")
    });
    let ok: Vec<bool> = outcomes.iter().map(|o| o.result.is_ok()).collect();
    assert_eq!(ok, [true, true, false, true, true], "{outcomes:?}");
    assert!(matches!(outcomes[2].result, Err(OpError::SetFull { set: SET_PASSIVE6 })));
    assert!(nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE4).is_empty(), "opened then closed");
    let v6: Vec<String> = nft_elements(&ns, "inet", DEFAULT_TABLE, SET_PASSIVE6).into_iter().map(|e| e.key).collect();
    assert_eq!(v6, ["2001:db8:1::20 . 2001:db8:2::40 . 50020"]);
}
