//! `ftp-pinhole open`, `close` and `list`: pinholes by hand, through the same
//! backend the daemon uses (for testing a ruleset, or an emergency).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use ftp_pinhole::backend::dry_run::DryRun;
use ftp_pinhole::backend::nftables::Nftables;
use ftp_pinhole::backend::{Backend, Element, LiveElement, TableFamily, TableSpec, DEFAULT_TABLE};
use ftp_pinhole::ftp::Mode;
use ftp_pinhole::policy::{Pinhole, SourcePort};
use ftp_pinhole::report::{write_table, Column};

use super::args::parse_ttl;
use super::{EXIT_FAILURE, EXIT_OK};

/// Where pinholes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendArg {
    /// Set elements over netlink (needs the ruleset loaded and CAP_NET_ADMIN).
    Nftables,
    /// Print the `nft` commands instead of running them.
    DryRun,
}

/// The table, shared by every command that talks to the kernel.
#[derive(Debug, Clone, Args)]
pub(crate) struct TableArgs {
    /// Table holding the pinhole sets (as loaded with `ftp-pinhole rules`).
    #[arg(long, default_value = DEFAULT_TABLE, value_name = "NAME")]
    pub(crate) table: String,
    /// Family of that table: inet, ip or ip6.
    #[arg(long, default_value = "inet", value_name = "FAMILY")]
    pub(crate) family: TableFamily,
}

impl TableArgs {
    /// The table these arguments name.
    pub(crate) fn spec(&self) -> anyhow::Result<TableSpec> {
        TableSpec::new(self.family, &self.table).context("--table")
    }
}

/// Data-connection modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// The server connects to the client (PORT/EPRT).
    Active,
    /// The client connects to the server (PASV/EPSV).
    Passive,
}

/// Arguments of `open` and `close`.
#[derive(Debug, Args)]
pub(crate) struct PinholeArgs {
    /// Active (server:20 -> client:N) or passive (client:any -> server:P).
    #[arg(long, value_enum)]
    mode: ModeArg,
    /// Who opens the data connection: the server (active) or the client (passive).
    #[arg(long, value_name = "IP")]
    src: IpAddr,
    /// Who accepts it: the client (active) or the server (passive).
    #[arg(long, value_name = "IP")]
    dst: IpAddr,
    /// The data port.
    #[arg(long, value_name = "PORT")]
    dport: u16,
    /// How long the pinhole waits for its connection.
    #[arg(long, default_value = "30s", value_parser = parse_ttl, value_name = "DURATION")]
    ttl: Duration,
    /// Where the pinhole goes.
    #[arg(long, value_enum, default_value_t = BackendArg::Nftables)]
    backend: BackendArg,
    #[command(flatten)]
    table: TableArgs,
}

impl PinholeArgs {
    fn pinhole(&self) -> anyhow::Result<Pinhole> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            bail!("--src {} and --dst {} are of different IP families", self.src, self.dst);
        }
        if self.dport == 0 {
            bail!("--dport must be 1-65535");
        }
        let mode = match self.mode {
            ModeArg::Active => Mode::Active,
            ModeArg::Passive => Mode::Passive,
        };
        // The source port is the ruleset's business; the element has none.
        Ok(Pinhole { mode, src: self.src, sport: SourcePort::Any, dst: self.dst, dport: self.dport, ttl: self.ttl })
    }

    fn backend(&self) -> anyhow::Result<Box<dyn Backend>> {
        connect_backend(self.backend, self.table.spec()?)
    }
}

/// The backend a command line asked for: netlink (checked at once: table,
/// sets, privileges) or a dry run printing to standard output.
pub(crate) fn connect_backend(kind: BackendArg, table: TableSpec) -> anyhow::Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendArg::Nftables => Box::new(Nftables::connect(table)?),
        BackendArg::DryRun => Box::new(DryRun::new(table, Box::new(std::io::stdout()))),
    })
}

/// Open (or refresh) one pinhole.
pub(crate) fn open(args: PinholeArgs) -> anyhow::Result<u8> {
    apply(&args, true)
}

/// Close one pinhole.
pub(crate) fn close(args: PinholeArgs) -> anyhow::Result<u8> {
    apply(&args, false)
}

fn apply(args: &PinholeArgs, open: bool) -> anyhow::Result<u8> {
    let pinhole = args.pinhole()?;
    let mut backend = args.backend()?;
    if open {
        backend.open(&pinhole);
    } else {
        backend.close(&pinhole);
    }
    let mut code = EXIT_OK;
    for outcome in backend.flush()? {
        if let Err(e) = outcome.result {
            eprintln!("ftp-pinhole: {} {}: {e}", outcome.op.as_str(), outcome.pinhole);
            code = EXIT_FAILURE;
        }
    }
    Ok(code)
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// One JSON object per pinhole instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    table: TableArgs,
}

/// The pinholes in the kernel now.
pub(crate) fn list(args: ListArgs) -> anyhow::Result<u8> {
    let mut backend = Nftables::connect(args.table.spec()?)?;
    let mut live = backend.list()?;
    live.sort_by_key(|l| (l.element.set, l.element.src, l.element.dst, l.element.dport));
    let mut out = std::io::stdout().lock();
    if args.json {
        use std::io::Write;
        for l in &live {
            writeln!(out, "{}", live_json(l)).context("writing standard output")?;
        }
    } else {
        let rows: Vec<Vec<String>> = live.iter().map(live_row).collect();
        write_table(
            &mut out,
            &[
                Column::left("SET"),
                Column::left("MODE"),
                Column::left("FROM"),
                Column::left("TO"),
                Column::right("PORT"),
                Column::right("LEFT"),
            ],
            &rows,
        )
        .context("writing standard output")?;
    }
    Ok(EXIT_OK)
}

fn mode_name(e: &Element) -> &'static str {
    match Element::mode_of_set(e.set) {
        Some(Mode::Active) => "active",
        Some(Mode::Passive) => "passive",
        None => "?",
    }
}

/// One live pinhole as JSON.
pub(crate) fn live_json(l: &LiveElement) -> serde_json::Value {
    serde_json::json!({
        "set": l.element.set,
        "mode": mode_name(&l.element),
        "src": l.element.src,
        "dst": l.element.dst,
        "dport": l.element.dport,
        "timeout_s": l.element.timeout.as_secs_f64(),
        "expires_s": l.expires.map(|d| d.as_secs_f64()),
    })
}

/// One live pinhole as table cells.
pub(crate) fn live_row(l: &LiveElement) -> Vec<String> {
    vec![
        l.element.set.to_string(),
        mode_name(&l.element).to_string(),
        l.element.src.to_string(),
        l.element.dst.to_string(),
        l.element.dport.to_string(),
        l.expires.map_or_else(|| "-".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
    ]
}
