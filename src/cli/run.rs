//! `ftp-pinhole run`: the gateway daemon, monitor mode.

use std::path::PathBuf;

use clap::Args;
use tracing::info;

use ftp_pinhole::audit::{AuditLog, FsyncPolicy};
use ftp_pinhole::capture::bpf::{Directions, PortFilter};
use ftp_pinhole::daemon::live::{self, wall_clock, Signals};
use ftp_pinhole::daemon::Daemon;

use super::pinhole::{connect_backend, BackendArg, TableArgs};
use super::{CoreArgs, EXIT_OK};

/// Which frames the daemon believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DirectionArg {
    /// Only frames this host sent: on a gateway, the forwarded copies, which
    /// passed the firewall and conntrack (forged segments never do). Watch
    /// both sides of the gateway.
    Outgoing,
    /// Also frames as they arrive, before any check: for a host that
    /// restricts its own output (`rules --profile host --output-policy drop`).
    All,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Interface to watch for FTP control traffic (repeatable). On a gateway,
    /// one interface is enough; both sides work too (segments seen twice
    /// count once).
    #[arg(long = "interface", short = 'i', required = true, value_name = "IF")]
    interfaces: Vec<String>,
    /// Where pinholes go.
    #[arg(long, value_enum, default_value_t = BackendArg::Nftables)]
    backend: BackendArg,
    /// Which captured frames are believed.
    #[arg(long, value_enum, default_value_t = DirectionArg::Outgoing)]
    capture_direction: DirectionArg,
    #[command(flatten)]
    table: TableArgs,
    /// Append the audit trail to this file (`-` for standard output).
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// When the audit log is forced to disk: always, second, never.
    #[arg(long, default_value = "second", value_name = "POLICY")]
    audit_fsync: FsyncPolicy,
    /// Run under the real-time FIFO scheduler at this priority (1-99; needs
    /// CAP_SYS_NICE). Makes the pinhole win the race against the client's
    /// first SYN far more often (README: "The race").
    #[arg(long, value_name = "PRIORITY", value_parser = clap::value_parser!(i32).range(1..=99))]
    realtime_priority: Option<i32>,
    #[command(flatten)]
    core: CoreArgs,
}

/// Run the daemon until SIGINT/SIGTERM.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<u8> {
    let config = args.core.to_config();
    let table = args.table.spec()?;
    let audit = match &args.audit_log {
        Some(path) => Some(AuditLog::open(path, args.audit_fsync)?),
        None => None,
    };
    // Everything that can fail at start fails here, before any pinhole.
    let directions = match args.capture_direction {
        DirectionArg::Outgoing => Directions::Outgoing,
        DirectionArg::All => Directions::All,
    };
    let filter = PortFilter::new(&config.tracker.ports).directions(directions);
    let captures = live::open_captures(&args.interfaces, &filter)?;
    let mut signals = Signals::install()?;
    if let Some(priority) = args.realtime_priority {
        live::set_realtime(priority)?;
    }
    let started = wall_clock();
    let run_id = format!("{:x}", started.unix_nanos() / 1_000_000_000);
    let info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "interfaces": args.interfaces,
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "table": table.to_string(),
        "ports": config.tracker.ports.to_string(),
        "ttl_s": config.policy.ttl.as_secs(),
        "active_sport": config.policy.active_source_port.to_string(),
        "min_data_port": config.policy.min_data_port,
        "allow_third_party": config.policy.allow_third_party.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "realtime_priority": args.realtime_priority,
        "capture_direction": format!("{:?}", args.capture_direction).to_lowercase(),
    });
    let backend = connect_backend(args.backend, table)?;
    let mut daemon = Daemon::new(config, backend, audit, run_id, wall_clock);
    daemon.started(started, info)?;
    info!("ready");
    live::run(&mut daemon, captures, &filter, directions, &mut signals)?;
    let s = daemon.stats();
    info!(
        opened = s.opened,
        refused = s.refused,
        consumed = s.consumed,
        expired = s.expired,
        closed = s.closed,
        backend_errors = s.backend_errors,
        "stopped"
    );
    Ok(EXIT_OK)
}
