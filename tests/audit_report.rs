//! `ftp-pinhole audit` end to end, over the hand-written logs in
//! tests/data/audit/ (see its README for what each record is there for):
//! three daemon runs, a current log, a plain rotated `.1` and a gzip `.2.gz`,
//! a garbage line, a record of an unknown schema version, a record missing a
//! field, and a last line cut short.
//!
//! The expected reports were checked by hand against the records; the
//! numbers that matter are recomputed in the comments below.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{assert_lines, assert_text_eq, binary, run, Scratch};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/audit")
}

fn data(file: &str) -> String {
    dir().join(file).to_string_lossy().into_owned()
}

/// The three logs, newest first (as a shell glob lists them).
fn logs() -> Vec<String> {
    ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2.gz"].iter().map(|f| data(f)).collect()
}

fn audit(logs: &[String], extra: &[&str]) -> Output {
    let mut args = vec!["audit"];
    args.extend(logs.iter().map(String::as_str));
    args.extend(extra);
    run(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}

/// The JSON report, after checking the exit status.
fn json(logs: &[String], extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend(extra);
    let out = audit(logs, &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// `[opened, used, expired, closed, renewed, open_at_end]` of an outcomes
/// object.
fn outcomes(o: &Value) -> [u64; 6] {
    ["opened", "used", "expired", "closed", "renewed", "open_at_end"].map(|k| o[k].as_u64().expect(k))
}

/// The row of a client/server pair and mode.
fn row<'a>(report: &'a Value, client: &str, server: &str, mode: &str) -> &'a Value {
    report["pinholes"]
        .as_array()
        .expect("pinholes")
        .iter()
        .find(|r| r["client"] == client && r["server"] == server && r["mode"] == mode)
        .unwrap_or_else(|| panic!("no row {client} {server} {mode} in {:#}", report["pinholes"]))
}

/// The warnings for the bad lines of the three logs.
const WARNINGS: [&str; 4] = [
    "audit.jsonl.1:5: not JSON: expected ident at line 1 column 2; skipped",
    "audit.jsonl.1:9: unknown schema version 2 (this ftp-pinhole reads version 1); skipped",
    "audit.jsonl.1:13: pinhole-open record without `pinhole`; skipped",
    "audit.jsonl:15: truncated last line (no newline at the end: a write cut short); skipped",
];

fn warnings_for(dir: &str) -> Vec<String> {
    WARNINGS.iter().map(|w| format!("ftp-pinhole: warning: {dir}/{w}")).collect()
}

#[test]
fn text_report_over_rotated_logs_matches_the_expected_file() {
    let out = audit(&logs(), &[]);
    assert_eq!(out.status.code(), Some(0), "bad lines are warnings, not failures");
    let want = std::fs::read_to_string(dir().join("expected.txt")).expect("expected.txt");
    assert_text_eq(&stdout(&out), &want, "text report");
    // By hand, from the records (README of tests/data/audit):
    // 192.0.2.10 -> 198.51.100.20 passive: run A opened 50000 (used), 50001
    // (closed, superseded), 50002 (expired); run C opened 50400 (used) and
    // 50401 (no outcome before the log ends): 5 opened, 2 used, 1 expired,
    // 1 closed, 1 open at end.
    assert!(want.contains(
        "192.0.2.10      198.51.100.20   passive       5     2        1       1        0            1  superseded 1"
    ));
    // 192.0.2.11 -> 198.51.100.20 active: 41001 announced twice in run B (the
    // first renewed, the second used), 41501 in run C with no outcome. The
    // PORT for 41010 failed in the kernel (backend-error): never opened.
    assert!(
        want.contains("192.0.2.11      198.51.100.20   active        3     1        0       0        1            1")
    );
    // Six refusals, one of each reason; 13 opened = 5 used + 2 expired +
    // 3 closed + 1 renewed + 2 open at end.
    assert!(want.contains("total                    6\n"));
    assert!(
        want.contains("total                                        13     5        2       3        1            2")
    );
}

#[test]
fn json_report_matches_the_expected_file() {
    let out = audit(&logs(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let want = std::fs::read_to_string(dir().join("expected.json")).expect("expected.json");
    assert_text_eq(&stdout(&out), &want, "JSON report");
    let report: Value = serde_json::from_str(&want).expect("JSON");
    let t = &report["totals"];
    // 20 records in .2.gz, 25 of the 28 lines of .1, 14 of the 15 of the
    // current log.
    assert_eq!(t["records"], 59);
    // Sessions: 2 in run A, 3 in run B, 3 in run C; logins: alice and
    // anonymous in A, bob and alice in B (carol's session went TLS first),
    // anonymous and alice in C.
    assert_eq!((t["runs"].as_u64(), t["sessions"].as_u64(), t["logins"].as_u64()), (Some(3), Some(8), Some(6)));
    assert_eq!(t["encrypted"], 1);
    assert_eq!(t["backend_errors_by_op"], serde_json::json!({"list": 1, "open": 1}));
    // 1448 bytes lost in run B, 536 in run C.
    assert_eq!((t["stream_gaps"].as_u64(), t["stream_gap_bytes"].as_u64()), (Some(2), Some(1984)));
    // The consumption of 50300 (current log) matched its open in `.1`.
    assert_eq!(t["unmatched_outcomes"], 0);
    assert_eq!(t["first"], "2026-11-23T08:00:00.000000Z");
    assert_eq!(t["last"], "2026-11-25T00:11:03.000000Z");
    // 2026-11-23T08:00:00 to 2026-11-25T00:11:03: 1 day, 16 h, 11 min, 3 s.
    assert_eq!(t["span_s"], 86_400.0 + 16.0 * 3600.0 + 11.0 * 60.0 + 3.0);
}

#[test]
fn bad_lines_are_reported_on_stderr_with_file_and_line() {
    let out = audit(&logs(), &[]);
    assert_lines(
        &stderr_lines(&out),
        &warnings_for(&dir().to_string_lossy()).iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

#[test]
fn many_bad_lines_are_counted_after_the_first_twenty() {
    let s = Scratch::new("audit-garbage");
    let path = s.path("garbage.jsonl");
    std::fs::write(&path, "not a record\n".repeat(25)).unwrap();
    let out = audit(&[path.to_string_lossy().into_owned()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 21, "{err:?}");
    assert!(err[19].contains("garbage.jsonl:20: not JSON"), "{}", err[19]);
    assert_eq!(err[20], format!("ftp-pinhole: warning: {}: 5 more bad lines skipped", path.display()));
}

#[test]
fn the_order_the_logs_are_given_in_does_not_matter() {
    let want = stdout(&audit(&logs(), &[]));
    let mut oldest_first = logs();
    oldest_first.reverse();
    assert_text_eq(&stdout(&audit(&oldest_first, &[])), &want, "oldest first");
    let shuffled = [logs()[1].clone(), logs()[0].clone(), logs()[2].clone()];
    assert_text_eq(&stdout(&audit(&shuffled, &[])), &want, "shuffled");
}

#[test]
fn gzip_is_told_by_its_content_not_its_name() {
    let s = Scratch::new("audit-names");
    let (gz, plain) = (s.path("old-log"), s.path("audit.jsonl.1.gz"));
    std::fs::copy(dir().join("audit.jsonl.2.gz"), &gz).unwrap();
    std::fs::copy(dir().join("audit.jsonl.1"), &plain).unwrap();
    let logs = [data("audit.jsonl"), plain.to_string_lossy().into_owned(), gz.to_string_lossy().into_owned()];
    let want = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    assert_text_eq(&stdout(&audit(&logs, &[])), &want, "renamed logs");
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let mut child = Command::new(binary())
        .args(["audit", "-", &data("audit.jsonl"), &data("audit.jsonl.1")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ftp-pinhole");
    let gz = std::fs::read(dir().join("audit.jsonl.2.gz")).unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let want = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    assert_text_eq(&stdout(&out), &want, "gzip on standard input");
}

#[test]
fn an_unreadable_log_exits_2_and_the_others_are_still_reported() {
    let mut logs = logs();
    logs.insert(1, "/nonexistent/audit.jsonl.3.gz".to_string());
    let out = audit(&logs, &[]);
    assert_eq!(out.status.code(), Some(2));
    let want = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    assert_text_eq(&stdout(&out), &want, "report without the missing log");
    let err = stderr_lines(&out);
    assert!(
        err[0].starts_with("ftp-pinhole: cannot read /nonexistent/audit.jsonl.3.gz: No such file or directory"),
        "{err:?}"
    );
}

#[test]
fn a_damaged_gzip_log_exits_2_after_reporting_what_it_held() {
    let s = Scratch::new("audit-damaged");
    let path = s.path("audit.jsonl.2.gz");
    let gz = std::fs::read(dir().join("audit.jsonl.2.gz")).unwrap();
    // Keep the header and part of the deflate stream.
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let out = audit(&[path.to_string_lossy().into_owned()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit.jsonl.2.gz:") && err.contains("read error, the rest of the file is not read"), "{err}");
    assert!(stdout(&out).starts_with("Data ports opened"), "the report is still printed");
}

#[test]
fn the_current_log_alone_leaves_an_outcome_without_its_open() {
    let r = json(&[data("audit.jsonl")], &[]);
    // Run C's 50300 was opened in `.1` and consumed in the current log.
    assert_eq!(r["totals"]["unmatched_outcomes"], 1);
    // Opened here: 46000 (expired), 50400 (used), 50401 and 41501 (no outcome).
    assert_eq!(outcomes(&r["pinholes_total"]), [4, 1, 1, 0, 0, 2]);
    assert_eq!(r["totals"]["runs"], 1);
}

#[test]
fn a_time_window_selects_records_by_their_time() {
    // 2026-11-24 (UTC) is the `.1` log: runs B and C up to 23:59:50.
    let r = json(&logs(), &["--since", "2026-11-24", "--until", "2026-11-25T00:00:00Z"]);
    // Opened: 41001 twice (renewed, used), 50200 (closed at shutdown), 50300
    // (its consumption at 00:00:05 on the 25th is after the window).
    assert_eq!(outcomes(&r["pinholes_total"]), [4, 1, 0, 1, 1, 1]);
    assert_eq!(outcomes(row(&r, "2001:db8:1::10", "2001:db8:2::20", "passive")), [1, 0, 0, 0, 0, 1]);
    assert_eq!(r["refused"]["total"], 3);
    assert_eq!(r["totals"]["records"], 25);
    assert_eq!(r["totals"]["first"], "2026-11-24T09:00:00.000000Z");
    // Unix seconds and RFC 3339 with an offset say the same.
    let same = json(&logs(), &["--since", "1795478400", "--until", "2026-11-25T01:00:00+01:00"]);
    assert_eq!(same, r);
    // From the 25th on: the current log, where 50300's consumption has no
    // open any more.
    let r = json(&logs(), &["--since", "2026-11-25"]);
    assert_eq!(r["totals"]["unmatched_outcomes"], 1);
    assert_eq!(r["totals"]["opened"], 4);
    // Before the 24th: run A only, 5 opened and 1 refused.
    let r = json(&logs(), &["--until", "2026-11-24"]);
    assert_eq!((r["totals"]["opened"].as_u64(), r["totals"]["refused"].as_u64()), (Some(5), Some(1)));
    assert_eq!(r["totals"]["runs"], 1);
}

#[test]
fn client_and_server_prefixes_select_control_connections() {
    let r = json(&logs(), &["--client", "2001:db8::/32"]);
    // The IPv6 client's sessions: run A session 2 and run C session 1.
    assert_eq!(r["pinholes"].as_array().unwrap().len(), 2);
    assert_eq!(outcomes(&r["pinholes_total"]), [4, 2, 1, 1, 0, 0]);
    assert_eq!(r["refused"]["by_reason"], serde_json::json!({"family-mismatch": 1}));
    assert_eq!((r["totals"]["sessions"].as_u64(), r["totals"]["logins"].as_u64()), (Some(2), Some(2)));
    // Daemon records have no client: not counted under a client filter.
    assert_eq!(r["totals"]["backend_errors"], 0);
    // Two prefixes: either.
    let r = json(&logs(), &["--client", "2001:db8::/32", "--client", "192.0.2.11"]);
    assert_eq!(r["totals"]["opened"], 4 + 3);
    // The server 198.51.100.21: carol's encrypted session and alice's in run B.
    let r = json(&logs(), &["--server", "198.51.100.21/32"]);
    assert_eq!(outcomes(&r["pinholes_total"]), [1, 0, 0, 1, 0, 0]);
    assert_eq!(r["pinholes_total"]["closed_by_reason"], serde_json::json!({"shutdown": 1}));
    assert_eq!(r["refused"]["by_reason"], serde_json::json!({"unsolicited-reply": 1}));
    assert_eq!((r["totals"]["sessions"].as_u64(), r["totals"]["encrypted"].as_u64()), (Some(2), Some(1)));
    // Client and server together: both must match.
    let r = json(&logs(), &["--client", "192.0.2.10", "--server", "198.51.100.20"]);
    assert_eq!(outcomes(&r["pinholes_total"]), [5, 2, 1, 1, 0, 1]);
    assert_eq!(r["refused"]["total"], 2);
}

#[test]
fn ports_select_pinholes_and_refusals() {
    let r = json(&logs(), &["--port", "50000", "--port", "41001"]);
    // 50000 (run A, used) and 41001 (run B, twice: renewed then used).
    assert_eq!(outcomes(&r["pinholes_total"]), [3, 2, 0, 0, 1, 0]);
    assert_eq!(r["refused"]["total"], 0);
    assert_eq!(r["totals"]["sessions"], 0, "sessions have no data port");
    // A refusal matches by its announced port: PORT ...,0,21 in run B.
    let r = json(&logs(), &["--port", "21"]);
    assert_eq!(r["refused"]["by_reason"], serde_json::json!({"privileged-port": 1}));
    assert_eq!(r["totals"]["opened"], 0);
}

#[test]
fn top_limits_the_talkers() {
    let r = json(&logs(), &["--top", "1"]);
    // 192.0.2.10 opened 3 in run A, 1 in run B (to 198.51.100.21) and 2 in
    // run C; refused: third-party-address (A), unsolicited-reply (B),
    // out-of-range (C). 198.51.100.20: 3 (A) + 2 (B, 41001 twice) + 3 (C).
    assert_eq!(r["top_clients"], serde_json::json!([{"address": "192.0.2.10", "opened": 6, "refused": 3}]));
    assert_eq!(r["top_servers"], serde_json::json!([{"address": "198.51.100.20", "opened": 8, "refused": 4}]));
}

#[test]
fn since_must_be_before_until() {
    let out = audit(&logs(), &["--since", "2026-11-25", "--until", "2026-11-24"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since 2026-11-25T00:00:00.000000Z is not before --until"));
    let out = audit(&logs(), &["--since", "2026-11-25T13:00"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

#[test]
fn without_logs_the_default_path_is_read() {
    let default = std::path::Path::new("/var/log/ftp-pinhole/audit.jsonl");
    if default.exists() {
        return; // a gateway running the daemon: nothing to check here
    }
    let out = run(&["audit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /var/log/ftp-pinhole/audit.jsonl"));
}

#[test]
fn a_log_written_by_inspect_counts_14_opened_and_1_refused() {
    let s = Scratch::new("audit-inspect");
    let log = s.path("audit.jsonl");
    let mut pcaps: Vec<String> =
        std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/recorded"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
    pcaps.sort();
    let mut args = vec!["inspect", "--ports", "21,2121", "--quiet", "--audit-log", log.to_str().unwrap()];
    args.extend(pcaps.iter().map(String::as_str));
    assert!(run(&args).status.success());
    let r = json(&[log.to_string_lossy().into_owned()], &[]);
    // 13 control connections (one per capture, each its own run); lftp
    // announced twice in each of its two sessions, so 2 of the 14 pinholes
    // were superseded and the other 12 closed when their session ended (a
    // capture cannot tell whether one was used). The refusal is pyftpdlib's
    // IPv4-style 227 on an IPv6 session.
    assert_eq!(outcomes(&r["pinholes_total"]), [14, 0, 0, 14, 0, 0]);
    assert_eq!(r["pinholes_total"]["closed_by_reason"], serde_json::json!({"session-ended": 12, "superseded": 2}));
    assert_eq!(r["refused"]["total"], 1);
    assert_eq!(r["refused"]["by_reason"], serde_json::json!({"malformed": 1}));
    assert_eq!((r["totals"]["runs"].as_u64(), r["totals"]["sessions"].as_u64()), (Some(13), Some(13)));
}
