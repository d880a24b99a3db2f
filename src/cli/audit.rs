//! `ftp-pinhole audit`: a report over audit logs.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ipnet::IpNet;

use ftp_pinhole::audit::filter::Filter;
use ftp_pinhole::audit::live::{join, LatestOpens, LivePinhole};
use ftp_pinhole::audit::read::{sort_oldest_first, LineError, LogReader};
use ftp_pinhole::audit::report::{Tally, DEFAULT_TOP};
use ftp_pinhole::audit::text::write_text;
use ftp_pinhole::audit::AuditRecord;
use ftp_pinhole::backend::nftables::Nftables;
use ftp_pinhole::backend::Backend;
use ftp_pinhole::report::{printable, write_table, Column};
use ftp_pinhole::time::Timestamp;

use super::pinhole::TableArgs;
use super::{EXIT_BAD_INPUT, EXIT_OK};

/// Where the daemon writes its audit log unless told otherwise.
pub(crate) const DEFAULT_LOG: &str = "/var/log/ftp-pinhole/audit.jsonl";

/// Bad lines reported one by one per file; the rest are counted.
const WARNINGS_PER_FILE: u64 = 20;

/// Output format of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned tables for people.
    Text,
    /// One JSON object with the same content.
    Json,
}

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Audit logs, current and rotated (plain or gzip, told apart by their
    /// first bytes), in any order; `-` for standard input.
    #[arg(value_name = "LOG", default_value = DEFAULT_LOG)]
    logs: Vec<PathBuf>,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Only records at or after TIME: RFC 3339 (2026-11-25T13:00:00Z), a
    /// date (midnight UTC) or Unix seconds.
    #[arg(long, value_name = "TIME")]
    since: Option<Timestamp>,
    /// Only records before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<Timestamp>,
    /// Only control connections from a client in PREFIX (an address or
    /// address/length; repeatable: any).
    #[arg(long = "client", value_name = "PREFIX", value_parser = parse_prefix)]
    clients: Vec<IpNet>,
    /// Only control connections to a server in PREFIX (repeatable: any).
    #[arg(long = "server", value_name = "PREFIX", value_parser = parse_prefix)]
    servers: Vec<IpNet>,
    /// Only pinholes and refusals for data port N, the pinhole's or the
    /// announced one (repeatable: any).
    #[arg(long = "port", value_name = "N")]
    ports: Vec<u16>,
    /// How many clients and servers to list as top talkers.
    #[arg(long, default_value_t = DEFAULT_TOP, value_name = "N")]
    top: usize,
    /// Instead of the report: the pinholes open in the kernel now (read
    /// back over netlink), with the time each has left, joined with the
    /// audit record that opened each (session, mode, line).
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    table: TableArgs,
}

impl AuditArgs {
    /// The record filter these arguments describe.
    fn filter(&self) -> Filter {
        Filter {
            since: self.since,
            until: self.until,
            clients: self.clients.clone(),
            servers: self.servers.clone(),
            ports: self.ports.clone(),
        }
    }
}

/// Report over every log; a log that cannot be read is reported and the
/// others still are.
pub(crate) fn run(args: AuditArgs) -> anyhow::Result<u8> {
    if args.live {
        return live(&args);
    }
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since >= until {
            eprintln!("ftp-pinhole: --since {} is not before --until {}", since.to_rfc3339(), until.to_rfc3339());
            return Ok(EXIT_BAD_INPUT);
        }
    }
    let mut tally = Tally::new();
    let failed = for_each_record(&args.logs, &args.filter(), |r| tally.add(&r));
    let report = tally.finish(args.top);

    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json => {
            // Encoded first, so that a closed pipe is an I/O error, not an
            // encoding one.
            let mut json = serde_json::to_vec_pretty(&report).context("encoding the report")?;
            json.push(b'\n');
            out.write_all(&json).context("writing standard output")?;
        }
        Format::Text => write_text(&mut out, &report, args.top).context("writing standard output")?,
    }
    out.flush().context("writing standard output")?;
    Ok(if failed { EXIT_BAD_INPUT } else { EXIT_OK })
}

/// Hand every record of `logs` that passes `filter` to `each`, oldest log
/// first, one at a time (logs of a busy month need not fit in memory); bad
/// lines are reported on standard error. Whether a log could not be read whole.
fn for_each_record(logs: &[PathBuf], filter: &Filter, mut each: impl FnMut(AuditRecord)) -> bool {
    let mut failed = false;
    let mut readers = Vec::new();
    for path in logs {
        match LogReader::open(path) {
            Ok(log) => readers.push(log),
            Err(e) => {
                failed = true;
                eprintln!("ftp-pinhole: {}", printable(&e.to_string()));
            }
        }
    }
    let mut warnings = Warnings::default();
    for item in sort_oldest_first(readers).into_iter().flatten() {
        match item {
            Ok(record) if filter.matches(&record) => each(record),
            Ok(_) => {}
            Err(e) => {
                failed |= e.is_fatal();
                warnings.report(&e);
            }
        }
    }
    warnings.finish();
    failed
}

/// `--live`: the kernel's pinholes, each with the record that opened it.
fn live(args: &AuditArgs) -> anyhow::Result<u8> {
    let mut backend = Nftables::connect(args.table.spec()?)?;
    let mut elements = backend.list()?;
    elements.sort_by_key(|l| (l.element.set, l.element.src, l.element.dst, l.element.dport));
    let mut opens = LatestOpens::default();
    let failed = for_each_record(&args.logs, &Filter::default(), |r| opens.add(r));
    let pinholes = join(&elements, opens);
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json => {
            for p in &pinholes {
                let mut line = serde_json::to_vec(p).context("encoding a pinhole")?;
                line.push(b'\n');
                out.write_all(&line).context("writing standard output")?;
            }
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = pinholes.iter().map(live_row).collect();
            let columns = [
                Column::left("MODE"),
                Column::left("FROM"),
                Column::left("TO"),
                Column::right("PORT"),
                Column::right("LEFT"),
                Column::left("OPENED"),
                Column::left("RUN"),
                Column::right("SESSION"),
                Column::left("CLIENT"),
                Column::left("SERVER"),
                Column::left("LINE"),
            ];
            write_table(&mut out, &columns, &rows).context("writing standard output")?;
        }
    }
    out.flush().context("writing standard output")?;
    Ok(if failed { EXIT_BAD_INPUT } else { EXIT_OK })
}

fn live_row(p: &LivePinhole) -> Vec<String> {
    let dash = || "-".to_string();
    let r = p.opened_by.as_ref();
    vec![
        p.mode.map_or_else(dash, |m| format!("{m:?}").to_lowercase()),
        p.src.to_string(),
        p.dst.to_string(),
        p.dport.to_string(),
        p.expires_s.map_or_else(dash, |s| format!("{s:.1}s")),
        r.map_or_else(dash, |r| r.ts.clone()),
        r.map_or_else(dash, |r| r.run.clone()),
        r.and_then(|r| r.session).map_or_else(dash, |s| s.to_string()),
        r.and_then(|r| r.client).map_or_else(dash, |c| c.to_string()),
        r.and_then(|r| r.server).map_or_else(dash, |c| c.to_string()),
        r.and_then(|r| r.line.clone()).unwrap_or_else(dash),
    ]
}

/// Bad lines on standard error: each of the first few of a file, then a
/// count of the rest.
#[derive(Debug, Default)]
struct Warnings {
    per_file: BTreeMap<String, u64>,
}

impl Warnings {
    fn report(&mut self, e: &LineError) {
        let n = self.per_file.entry(e.file.clone()).or_default();
        *n += 1;
        if e.is_fatal() {
            eprintln!("ftp-pinhole: {}", printable(&e.to_string()));
        } else if *n <= WARNINGS_PER_FILE {
            eprintln!("ftp-pinhole: warning: {}; skipped", printable(&e.to_string()));
        }
    }

    fn finish(self) {
        for (file, n) in self.per_file {
            if n > WARNINGS_PER_FILE {
                let more = n - WARNINGS_PER_FILE;
                eprintln!("ftp-pinhole: warning: {}: {more} more bad lines skipped", printable(&file));
            }
        }
    }
}

/// A prefix (`192.0.2.0/24`, `2001:db8::/32`) or a single address.
fn parse_prefix(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or prefix such as 192.0.2.0/24"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        audit: AuditArgs,
    }

    fn parse(args: &[&str]) -> Result<AuditArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|w| w.audit)
    }

    #[test]
    fn defaults() -> Result<(), clap::Error> {
        let a = parse(&[])?;
        assert_eq!(a.logs, [PathBuf::from(DEFAULT_LOG)]);
        assert_eq!((a.format, a.top), (Format::Text, DEFAULT_TOP));
        assert_eq!(a.filter(), Filter::default());
        Ok(())
    }

    #[test]
    fn every_flag() -> Result<(), clap::Error> {
        let a = parse(&[
            "a.jsonl",
            "-",
            "--format",
            "json",
            "--since",
            "2026-11-25",
            "--until",
            "1795611600",
            "--client",
            "192.0.2.0/24",
            "--client",
            "2001:db8:1::10",
            "--server",
            "198.51.100.20",
            "--port",
            "50000",
            "--port",
            "21",
            "--top",
            "3",
        ])?;
        assert_eq!(a.logs, [PathBuf::from("a.jsonl"), PathBuf::from("-")]);
        assert_eq!((a.format, a.top), (Format::Json, 3));
        let f = a.filter();
        assert_eq!(f.since, "2026-11-25T00:00:00Z".parse().ok());
        assert_eq!(f.until, "2026-11-25T13:00:00Z".parse().ok());
        let nets = |s: &[&str]| s.iter().map(|n| n.parse::<IpNet>().expect("prefix")).collect::<Vec<_>>();
        assert_eq!(f.clients, nets(&["192.0.2.0/24", "2001:db8:1::10/128"]));
        assert_eq!(f.servers, nets(&["198.51.100.20/32"]));
        assert_eq!(f.ports, [50000, 21]);
        Ok(())
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--since", "yesterday"][..], "--since"),
            (&["--until", "2026-11-25T13:00:00"], "--until"),
            (&["--client", "192.0.2.0/33"], "--client"),
            (&["--server", "example.org"], "--server"),
            (&["--port", "70000"], "--port"),
            (&["--top", "many"], "--top"),
            (&["--format", "csv"], "--format"),
        ] {
            let err = parse(args).expect_err("invalid").to_string();
            assert!(err.contains(flag), "{err}");
        }
        let err = parse(&["--until", "2026-11-25T13:00:00"]).expect_err("no zone").to_string();
        assert!(err.contains("add Z"), "{err}");
    }

    #[test]
    fn messages_are_printable() {
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
