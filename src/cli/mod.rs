//! Command-line interface: arguments (clap, no system calls) and the step that
//! turns them into configuration (`*::from_args`, with errors naming the flag).

mod args;
mod audit;
mod inspect;
mod pinhole;
mod rules;
mod run;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use args::{CoreArgs, LogFormat};

/// Exit status: everything worked.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status: the command failed (the message says why).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit status: bad usage, or some input could not be read (the others were
/// still processed).
pub(crate) const EXIT_BAD_INPUT: u8 = 2;

/// Opens exactly one short-lived nftables pinhole per FTP data connection.
#[derive(Debug, Parser)]
#[command(name = "ftp-pinhole", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Log level: error, warn, info, debug, trace (or a tracing filter such
    /// as `ftp_pinhole=debug`); RUST_LOG overrides it. Default: info for
    /// `run`, warn otherwise.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report the data connections negotiated in pcap/pcapng captures and
    /// what ftp-pinhole would open for each.
    Inspect(inspect::InspectArgs),
    /// Print an nftables ruleset (sets, chains, rules) for `nft -f`.
    Rules(rules::RulesArgs),
    /// Open (or refresh) one pinhole by hand.
    Open(pinhole::PinholeArgs),
    /// Close one pinhole by hand.
    Close(pinhole::PinholeArgs),
    /// List the pinholes in the kernel now, with the time each has left.
    List(pinhole::ListArgs),
    /// Watch FTP control traffic on a gateway and open pinholes as data
    /// connections are negotiated.
    Run(run::RunArgs),
    /// Report over audit logs: data ports opened and what became of them,
    /// refusals, top talkers, totals.
    Audit(audit::AuditArgs),
}

/// Parse, run, print the error chain once, map it to an exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) { "info" } else { "warn" };
    let level = cli.log_level.as_deref().unwrap_or(default_level);
    if let Err(e) = args::init_logging(level, cli.log_format) {
        eprintln!("ftp-pinhole: {e:#}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Rules(a) => rules::run(a),
        Command::Open(a) => pinhole::open(a),
        Command::Close(a) => pinhole::close(a),
        Command::List(a) => pinhole::list(a),
        Command::Run(a) => run::run(a),
        Command::Audit(a) => audit::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            let _ = writeln!(io::stderr(), "ftp-pinhole: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A closed stdout (`| head`) is how the reader says it has enough.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}
