use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::*;

const OPEN: &str = r#"{"v":1,"ts":"2026-11-25T13:00:00.000000Z","unix":1795611600.0,"event":"session-open","run":"r","session":1,"client":"192.0.2.10:40000","server":"198.51.100.20:21"}"#;
const LATER: &str = r#"{"v":1,"ts":"2026-11-25T14:00:00.000000Z","unix":1795615200.0,"event":"daemon-stop","run":"r","reason":"signal"}"#;

fn reader(name: &str, bytes: Vec<u8>) -> LogReader {
    LogReader::from_reader(name.to_string(), io::Cursor::new(bytes)).expect("in memory")
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(text.as_bytes()).expect("compress");
    gz.finish().expect("compress")
}

/// Each item as `Ok(event)` or `Err((line, reason))`.
fn items(log: LogReader) -> Vec<Result<String, (u64, String)>> {
    log.map(|item| item.map(|r| r.event.to_string()).map_err(|e| (e.line, e.reason.to_string()))).collect()
}

#[test]
fn plain_lines_become_records() {
    let log = reader("a", format!("{OPEN}\n\n{LATER}\n").into_bytes());
    assert_eq!(items(log), vec![Ok("session-open".to_string()), Ok("daemon-stop".to_string())]);
}

#[test]
fn gzip_is_told_by_its_magic_bytes_not_its_name() {
    let text = format!("{OPEN}\n{LATER}\n");
    let log = reader("audit.jsonl.1", gzip(&text));
    assert_eq!(items(log).len(), 2);
    // Concatenated members (`cat a.gz b.gz`) are one stream.
    let mut two = gzip(&format!("{OPEN}\n"));
    two.extend(gzip(&format!("{LATER}\n")));
    assert_eq!(items(reader("x.gz", two)).len(), 2);
    // A plain file named .gz is read as plain.
    assert_eq!(items(reader("plain.gz", text.into_bytes())).len(), 2);
}

#[test]
fn bad_lines_are_skipped_with_their_line_numbers() {
    let v2 = OPEN.replace(r#""v":1"#, r#""v":2"#);
    let no_v = OPEN.replace(r#""v":1,"#, "");
    let no_run = OPEN.replace(r#","run":"r""#, "");
    let no_client = OPEN.replace(r#","client":"192.0.2.10:40000""#, "");
    let unknown_event = OPEN.replace("session-open", "session-reopened");
    let open_without_pinhole = OPEN.replace("session-open", "pinhole-open");
    let text = [
        OPEN,
        "garbage, not JSON",
        "[1,2,3]",
        &v2,
        &no_v,
        &no_run,
        &no_client,
        &unknown_event,
        &open_without_pinhole,
        LATER,
    ]
    .join("\n");
    let got = items(reader("a", text.into_bytes()));
    let errors: Vec<(u64, String)> = got.iter().filter_map(|i| i.clone().err()).collect();
    let lines: Vec<u64> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9]);
    let reasons: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
    assert!(reasons[0].starts_with("not JSON: "), "{}", reasons[0]);
    assert_eq!(reasons[1], "not a JSON object");
    assert_eq!(reasons[2], "unknown schema version 2 (this ftp-pinhole reads version 1)");
    assert_eq!(reasons[3], "no schema version `v`");
    assert!(reasons[4].contains("missing field `run`"), "{}", reasons[4]);
    assert_eq!(reasons[5], "session-open record without `client`");
    assert!(reasons[6].contains("unknown variant `session-reopened`"), "{}", reasons[6]);
    assert_eq!(reasons[7], "pinhole-open record without `pinhole`");
    // The good lines around them are kept, the last one without a newline.
    assert_eq!(got.first(), Some(&Ok("session-open".to_string())));
    assert_eq!(got.last(), Some(&Ok("daemon-stop".to_string())));
}

#[test]
fn a_cut_last_line_is_reported_as_truncated() {
    let cut = &LATER[..40];
    let log = reader("audit.jsonl", format!("{OPEN}\n{cut}").into_bytes());
    let got: Vec<LogItem> = log.collect();
    assert_eq!(got.len(), 2);
    let err = got[1].as_ref().expect_err("truncated");
    assert!(matches!(err.reason, LineReason::Truncated));
    assert!(!err.is_fatal());
    assert_eq!(err.to_string(), "audit.jsonl:2: truncated last line (no newline at the end: a write cut short)");
    // Cut in the middle of the file, the same bytes are just not JSON.
    let log = reader("a", format!("{cut}\n{OPEN}\n").into_bytes());
    let got: Vec<LogItem> = log.collect();
    assert!(matches!(&got[0], Err(LineError { line: 1, reason: LineReason::NotJson(_), .. })));
}

#[test]
fn overlong_lines_are_skipped_whole() {
    let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LINE + 10));
    let log = reader("a", format!("{long}\n{OPEN}\n").into_bytes());
    let got = items(log);
    assert_eq!(got, vec![Err((1, format!("longer than {MAX_LINE} bytes"))), Ok("session-open".to_string())]);
}

#[test]
fn a_damaged_gzip_stream_ends_the_file_with_a_fatal_error() {
    let text = format!("{OPEN}\n").repeat(200);
    let mut gz = gzip(&text);
    gz.truncate(gz.len() / 2);
    let got: Vec<LogItem> = reader("old.gz", gz).collect();
    let last = got.last().expect("items").as_ref().expect_err("read error");
    assert!(last.is_fatal(), "{last}");
    assert!(got[..got.len() - 1].iter().all(Result::is_ok));
}

#[test]
fn logs_are_put_oldest_first_and_nothing_read_ahead_is_lost() {
    let newer = reader("new", format!("garbage\n{LATER}\n").into_bytes());
    let older = reader("old", format!("{OPEN}\n").into_bytes());
    let empty = reader("empty", Vec::new());
    let logs = sort_oldest_first(vec![newer, older, empty]);
    let names: Vec<&str> = logs.iter().map(LogReader::name).collect();
    assert_eq!(names, ["empty", "old", "new"]);
    let all: Vec<Result<String, (u64, String)>> = logs.into_iter().flat_map(items).collect();
    assert_eq!(all.len(), 3);
    assert!(matches!(&all[1], Err((1, _))), "the bad line read ahead is still reported: {all:?}");
}

#[test]
fn opening_reports_the_file() {
    let err = LogReader::open(Path::new("/nonexistent/audit.jsonl")).expect_err("no such file");
    assert!(err.to_string().starts_with("cannot read /nonexistent/audit.jsonl: "), "{err}");
    let err = LogReader::open(Path::new("/")).expect_err("a directory");
    assert_eq!(err.to_string(), "cannot read /: it is a directory");
}

#[test]
fn reading_ahead_stops_after_so_many_bad_lines() {
    let text = format!("{}{OPEN}\n", "garbage\n".repeat(LOOKAHEAD + 5));
    let mut log = reader("a", text.into_bytes());
    assert_eq!(log.first_time(), None, "no record within the look-ahead");
    let all: Vec<LogItem> = log.collect();
    assert_eq!(all.len(), LOOKAHEAD + 6, "everything is still yielded once");
    assert!(all.last().is_some_and(Result::is_ok));
}
