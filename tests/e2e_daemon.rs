//! The daemon on a gateway between real FTP clients and servers: the
//! acceptance of `ftp-pinhole run`. Client, gateway and server are network
//! namespaces; the gateway loads the generated default-drop ruleset and runs
//! the daemon; vsftpd and pyftpdlib serve a 1 MiB file; curl and ftplib fetch
//! it in every mode over IPv4 and IPv6. With the daemon stopped, the same
//! transfers fail: the ruleset really is default-drop.
//! Needs root; fails without it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::ftp::{
    curl, files, ftplib, lftp, start_pyftpd, start_vsftpd, Files, Mode, Transfer, PYFTPD_PORT, VSFTPD_PORT,
};
use common::netns::{wait_until, Netns};
use common::topology::{Topology, CLIENT4, SERVER4, SERVER6};
use common::{binary, rules, Scratch};
use serde_json::Value;

/// The daemon, running in the gateway namespace.
struct Daemon {
    pid: u32,
    audit: PathBuf,
}

fn start_daemon(gw: &mut Netns, scratch: &Scratch, extra: &[&str]) -> Daemon {
    let audit = scratch.path("audit.jsonl");
    let mut args =
        vec![binary(), "run", "--interface", "gc0", "--interface", "gs0", "--audit-log", audit.to_str().unwrap()];
    if !extra.contains(&"--ttl") {
        args.extend(["--ttl", "3s"]);
    }
    args.extend_from_slice(extra);
    let pid = gw.spawn(&args);
    let ready = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.contains("\"event\":\"daemon-start\""))
    });
    if !ready {
        let child = gw.take_child(pid).map(|mut c| {
            let _ = c.kill();
            c.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default()
        });
        panic!("the daemon did not start: {child:?}");
    }
    Daemon { pid, audit }
}

/// SIGTERM, then wait for a clean exit; its standard error.
fn stop_daemon(gw: &mut Netns, d: &Daemon) -> String {
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe { libc::kill(d.pid as i32, libc::SIGTERM) };
    let child = gw.take_child(d.pid).expect("our daemon");
    let out = child.wait_with_output().expect("daemon exit");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "daemon exit {:?}: {stderr}", out.status);
    stderr
}

fn audit(d: &Daemon) -> Vec<Value> {
    common::jsonl(&std::fs::read(&d.audit).unwrap())
}

fn events(records: &[Value], event: &str) -> Vec<Value> {
    records.iter().filter(|r| r["event"] == event).cloned().collect()
}

/// Every pinhole set of the gateway's table is empty.
fn sets_empty(gw: &Netns) -> bool {
    ["passive4", "active4", "passive6", "active6"].iter().all(|set| {
        let json = gw.ok(&["nft", "-j", "list", "set", "inet", "ftp_pinhole", set]);
        !json.contains("\"elem\"")
    })
}

fn expect_ok(what: &str, t: &Transfer) {
    assert!(t.ok, "{what} failed through the daemon:\n{}", t.log);
}

type Client = fn(&Netns, &str, u16, Mode, &Scratch, &Files, u32) -> Transfer;

#[test]
fn vsftpd_with_curl_and_ftplib_every_mode_and_family() {
    let mut t = Topology::new("evs");
    let scratch = Scratch::new("e2e-vsftpd");
    let f = files(&scratch);
    start_vsftpd(&mut t.server, &scratch);
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let d = start_daemon(&mut t.gateway, &scratch, &[]);

    let clients: [(&str, Client); 2] = [("curl", curl), ("ftplib", ftplib)];
    let mut done = 0;
    for (name, client) in clients {
        for host in [SERVER4, SERVER6] {
            for mode in Mode::ALL {
                if name == "ftplib" && host == SERVER6 && mode == Mode::Port {
                    continue; // PORT cannot carry an IPv6 address: EPRT covers it
                }
                let tr = client(&t.client, host, VSFTPD_PORT, mode, &scratch, &f, 5);
                expect_ok(&format!("{name} {} to {host}", mode.name()), &tr);
                done += 1;
            }
        }
    }
    assert_eq!(done, 15);
    // lftp too, passive and active, on both families.
    for (host, mode) in [(SERVER4, Mode::Pasv), (SERVER4, Mode::Port), (SERVER6, Mode::Epsv), (SERVER6, Mode::Eprt)] {
        expect_ok(
            &format!("lftp {} to {host}", mode.name()),
            &lftp(&t.client, host, VSFTPD_PORT, mode, &scratch, &f, 5),
        );
    }
    let records = audit(&d);
    assert!(events(&records, "refused").is_empty(), "{:?}", events(&records, "refused"));
    assert!(events(&records, "pinhole-open").len() >= 19);
    // Used pinholes are gone from the kernel; after the TTL nothing is left.
    assert!(wait_until(Duration::from_secs(8), || sets_empty(&t.gateway)), "pinholes left after the TTL");
    let stderr = stop_daemon(&mut t.gateway, &d);
    assert!(stderr.contains("stopped"), "{stderr}");
    let records = audit(&d);
    let consumed = events(&records, "pinhole-consumed").len();
    assert!(consumed >= 19, "every transfer's pinhole was used: {consumed}");
    assert_eq!(events(&records, "daemon-stop").len(), 1);

    // The daemon is stopped: the same transfers fail (default drop), in parallel
    // to bound the time (each waits for its connect timeout).
    let handles: Vec<_> = [SERVER4, SERVER6]
        .into_iter()
        .flat_map(|host| Mode::ALL.into_iter().map(move |mode| (host, mode)))
        .map(|(host, mode)| {
            let client = Netns::attach(&t.client.name);
            let scratch_dir = scratch.0.clone();
            let sha = f.sha256.clone();
            std::thread::spawn(move || {
                let scratch = Scratch::borrow(scratch_dir);
                let f = Files { root: scratch.path("root"), sha256: sha };
                (host, mode, curl(&client, host, VSFTPD_PORT, mode, &scratch, &f, 3))
            })
        })
        .collect();
    for h in handles {
        let (host, mode, tr) = h.join().unwrap();
        assert!(!tr.ok, "{} to {host} passed without the daemon: the ruleset is not default-drop", mode.name());
    }
}

#[test]
fn pyftpdlib_active_mode_from_any_source_port() {
    let mut t = Topology::new("epy");
    let scratch = Scratch::new("e2e-pyftpd");
    let f = files(&scratch);
    start_pyftpd(&mut t.server, &scratch);
    // pyftpdlib connects from an ephemeral port, not 20: both the ruleset and
    // the daemon are told so.
    t.gateway.nft(&rules(&["--profile", "gateway", "--ports", "21,2121", "--active-sport", "any"]));
    let d = start_daemon(&mut t.gateway, &scratch, &["--ports", "21,2121", "--active-sport", "any"]);
    for (host, mode) in [
        (SERVER4, Mode::Pasv),
        (SERVER4, Mode::Epsv),
        (SERVER4, Mode::Port),
        (SERVER4, Mode::Eprt),
        (SERVER6, Mode::Epsv),
        (SERVER6, Mode::Eprt),
    ] {
        let tr = ftplib(&t.client, host, PYFTPD_PORT, mode, &scratch, &f, 5);
        expect_ok(&format!("ftplib {} to {host}:2121", mode.name()), &tr);
    }
    stop_daemon(&mut t.gateway, &d);
    let opens = events(&audit(&d), "pinhole-open");
    assert!(opens.iter().any(|r| r["pinhole"]["sport"] == "any" && r["pinhole"]["mode"] == "active"));
}

/// A raw control session: the given commands, one per line, then QUIT.
fn raw_session(client: &Netns, host: &str, commands: &[&str]) {
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{host}',21),5)\ns.recv(4096)\nfor c in {commands:?}+['QUIT']:\n    s.sendall((c+'\\r\\n').encode())\n    time.sleep(0.2)\n    s.recv(4096)\ns.close()\n"
    );
    let out = client.run(&["timeout", "20", "/usr/bin/python3", "-c", &script]);
    assert!(out.status.success(), "raw session: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bounce_and_privileged_port_open_nothing() {
    let mut t = Topology::new("ebn");
    let scratch = Scratch::new("e2e-bounce");
    let _f = files(&scratch);
    start_vsftpd(&mut t.server, &scratch);
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let d = start_daemon(&mut t.gateway, &scratch, &[]);
    let bounce = "PORT 203,0,113,5,0,80";
    let privileged = format!("PORT {},0,22", CLIENT4.replace('.', ","));
    raw_session(&t.client, SERVER4, &["USER anonymous", "PASS x", bounce, &privileged]);
    assert!(wait_until(Duration::from_secs(5), || events(&audit(&d), "refused").len() == 2));
    assert!(sets_empty(&t.gateway), "a refused negotiation opened something");
    stop_daemon(&mut t.gateway, &d);
    let records = audit(&d);
    let reasons: Vec<&str> = events(&records, "refused")
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("?"))
        .map(|s| Box::leak(s.to_string().into_boxed_str()) as &str)
        .collect();
    assert_eq!(reasons, ["third-party-address", "privileged-port"]);
    assert!(events(&records, "pinhole-open").is_empty());
}

#[test]
fn start_up_errors_are_clear_and_early() {
    let ns = Netns::new("estart");
    ns.ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    ns.ok(&["ip", "link", "set", "eth0", "up"]);
    let run_daemon = |prefix: &[&str], args: &[&str]| {
        let mut all: Vec<&str> = prefix.to_vec();
        all.push(binary());
        all.push("run");
        all.extend_from_slice(args);
        let out = ns.run(&["timeout", "10"].iter().copied().chain(all).collect::<Vec<_>>());
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A missing interface.
    let (code, err) = run_daemon(&[], &["-i", "nosuch0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nosuch0"), "{err}");
    // No ruleset loaded.
    let (code, err) = run_daemon(&[], &["-i", "eth0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nftables table inet ftp_pinhole does not exist"), "{err}");
    // Without privilege (nobody, no capabilities).
    let nobody =
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"];
    let (code, err) = run_daemon(&nobody, &["-i", "eth0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    // An unwritable audit log.
    let (code, err) = run_daemon(&[], &["-i", "eth0", "--audit-log", "/nonexistent-dir/audit.jsonl"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot open audit log /nonexistent-dir/audit.jsonl"), "{err}");
}

#[test]
fn the_daemon_recovers_when_its_interface_goes_down_and_up() {
    let mut t = Topology::new("eupd");
    let scratch = Scratch::new("e2e-updown");
    let f = files(&scratch);
    start_vsftpd(&mut t.server, &scratch);
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let d = start_daemon(&mut t.gateway, &scratch, &[]);
    expect_ok("before", &curl(&t.client, SERVER4, VSFTPD_PORT, Mode::Pasv, &scratch, &f, 5));
    t.gateway.ok(&["ip", "link", "set", "gc0", "down"]);
    std::thread::sleep(Duration::from_millis(1500));
    t.gateway.ok(&["ip", "link", "set", "gc0", "up"]);
    // The link needs a moment to carry traffic again; the daemon recovers by
    // itself (no restart).
    let ok =
        wait_until(Duration::from_secs(20), || curl(&t.client, SERVER4, VSFTPD_PORT, Mode::Pasv, &scratch, &f, 3).ok);
    assert!(ok, "no transfer passed after the interface came back");
    let stderr = stop_daemon(&mut t.gateway, &d);
    assert!(stderr.contains("capture interrupted"), "the outage was noticed: {stderr}");
}

#[test]
fn audit_live_joins_the_kernels_pinholes_with_the_trail() {
    let mut t = Topology::new("elive");
    let scratch = Scratch::new("e2e-live");
    let _f = files(&scratch);
    start_vsftpd(&mut t.server, &scratch);
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let d = start_daemon(&mut t.gateway, &scratch, &["--ttl", "20s"]);
    // A client that asks for a passive port and then idles, holding it open.
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{SERVER4}',21),5)\ns.recv(4096)\nfor c in ['USER anonymous','PASS x','PASV']:\n    s.sendall((c+'\\r\\n').encode())\n    time.sleep(0.3)\n    s.recv(4096)\ntime.sleep(8)\ns.close()\n"
    );
    t.client.spawn(&["timeout", "20", "/usr/bin/python3", "-c", &script]);
    let live = || {
        let out = t.gateway.run(&[binary(), "audit", "--live", "--format", "json", d.audit.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        common::jsonl(&out.stdout)
    };
    assert!(wait_until(Duration::from_secs(8), || !live().is_empty()), "the PASV's pinhole never showed");
    let pinholes = live();
    assert_eq!(pinholes.len(), 1);
    let p = &pinholes[0];
    assert_eq!(
        (p["set"].as_str(), p["mode"].as_str(), p["src"].as_str()),
        (Some("passive4"), Some("passive"), Some(CLIENT4))
    );
    assert!(p["expires_s"].as_f64().is_some_and(|s| s > 5.0 && s <= 20.0), "{p}");
    let opened = &p["opened_by"];
    assert_eq!(opened["event"], "pinhole-open");
    assert!(opened["line"].as_str().is_some_and(|l| l.starts_with("227 ")), "{opened}");
    assert_eq!(opened["client"].as_str().map(|c| c.starts_with(CLIENT4)), Some(true));
    // The text table says the same.
    let text = t.gateway.ok(&[binary(), "audit", "--live", d.audit.to_str().unwrap()]);
    assert!(text.lines().next().is_some_and(|h| h.starts_with("MODE")), "{text}");
    assert!(text.contains("passive") && text.contains("227 Entering Passive Mode"), "{text}");
    stop_daemon(&mut t.gateway, &d);
}

#[test]
fn an_unused_pinhole_expires_and_sighup_reopens_the_audit_log() {
    let mut t = Topology::new("eexp");
    let scratch = Scratch::new("e2e-expire");
    let _f = files(&scratch);
    start_vsftpd(&mut t.server, &scratch);
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    let d = start_daemon(&mut t.gateway, &scratch, &["--ttl", "2s"]);
    // Rotate before anything happens: rename, then SIGHUP.
    let rotated = scratch.path("audit.jsonl.1");
    std::fs::rename(&d.audit, &rotated).unwrap();
    // SAFETY: kill(2) on the PID of a child this test started.
    unsafe { libc::kill(d.pid as i32, libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(5), || d.audit.exists()), "the log was not reopened");
    // Ask for a passive port, never connect, hold the session longer than the TTL.
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{SERVER4}',21),5)\ns.recv(4096)\nfor c in ['USER anonymous','PASS x','PASV']:\n    s.sendall((c+'\\r\\n').encode())\n    time.sleep(0.3)\n    s.recv(4096)\ntime.sleep(5)\ns.close()\n"
    );
    t.client.spawn(&["timeout", "20", "/usr/bin/python3", "-c", &script]);
    assert!(
        wait_until(Duration::from_secs(10), || !events(&audit(&d), "pinhole-expired").is_empty()),
        "no pinhole-expired in {:?}",
        audit(&d)
    );
    assert!(sets_empty(&t.gateway));
    stop_daemon(&mut t.gateway, &d);
    let records = audit(&d);
    let expired = &events(&records, "pinhole-expired")[0];
    assert_eq!(expired["pinhole"]["mode"], "passive");
    // The session ended after the expiry: nothing left to close.
    assert!(events(&records, "pinhole-closed").is_empty(), "{records:?}");
    let old = common::jsonl(&std::fs::read(&rotated).unwrap());
    assert_eq!(old.iter().filter(|r| r["event"] == "daemon-start").count(), 1, "the start stayed in the rotated file");
    assert!(records.iter().all(|r| r["event"] != "daemon-start"));
}

/// From the server's side of the gateway, forge a control segment that
/// claims to come from the client, with no handshake: `PORT` naming the
/// client's port 40000, "answered" by the forger's own address as server.
fn forge_port(t: &Topology) {
    let gw_mac = t.gateway.ok(&["cat", "/sys/class/net/gs0/address"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/inject.py");
    t.server.ok(&[
        "/usr/bin/python3",
        script.to_str().unwrap(),
        "eth0",
        gw_mac.trim(),
        CLIENT4,
        SERVER4,
        "40000",
        "21",
        "1000",
        "PORT 192,0,2,2,156,64\\r\\n",
    ]);
}

#[test]
fn a_forged_control_segment_opens_nothing() {
    let mut t = Topology::new("efrg");
    let scratch = Scratch::new("e2e-forged");
    t.gateway.nft(&rules(&["--profile", "gateway"]));
    // The default: only frames the gateway forwarded are believed. The forged
    // segment fails the ruleset (no SYN, no connection) and is never forwarded.
    let d = start_daemon(&mut t.gateway, &scratch, &[]);
    forge_port(&t);
    std::thread::sleep(Duration::from_millis(500));
    assert!(sets_empty(&t.gateway), "a forged PORT opened a pinhole");
    stop_daemon(&mut t.gateway, &d);
    assert!(events(&audit(&d), "pinhole-open").is_empty());
    assert!(events(&audit(&d), "session-open").is_empty(), "{:?}", audit(&d));

    // Believing frames as they arrive is what makes the forgery work: the
    // test would catch a capture that does so by default.
    std::fs::remove_file(&d.audit).unwrap();
    let d = start_daemon(&mut t.gateway, &scratch, &["--capture-direction", "all"]);
    forge_port(&t);
    assert!(wait_until(Duration::from_secs(5), || !events(&audit(&d), "pinhole-open").is_empty()));
    stop_daemon(&mut t.gateway, &d);
}
