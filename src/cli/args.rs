//! Arguments shared by several commands, and their conversion to the core's
//! configuration.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ipnet::IpNet;

use ftp_pinhole::ftp::FtpConfig;
use ftp_pinhole::pipeline::PipelineConfig;
use ftp_pinhole::policy::{Policy, RateLimit, SourcePort};
use ftp_pinhole::track::{ControlPorts, TrackerConfig};

/// Format of log lines on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the core looks at and how it judges: shared by `inspect` and `run`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CoreArgs {
    /// Server ports of FTP control connections, comma-separated.
    #[arg(long, default_value = "21", value_name = "PORTS")]
    pub(crate) ports: ControlPorts,
    /// Allow announced addresses in this prefix even when they are not the
    /// control connection's peer (repeatable). Default: none (bounce attempts
    /// and third-party transfers are refused).
    #[arg(long = "allow-third-party", value_name = "PREFIX")]
    pub(crate) allow_third_party: Vec<IpNet>,
    /// Lowest data port accepted; lower ones are refused.
    #[arg(long, default_value_t = 1024, value_name = "PORT")]
    pub(crate) min_data_port: u16,
    /// Source port of active-mode data connections: `20` (RFC 959), another
    /// port, or `any` for servers that do not bind port 20.
    #[arg(long, default_value = "20", value_name = "PORT|any")]
    pub(crate) active_sport: SourcePort,
    /// How long a pinhole waits for its connection (e.g. `30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = parse_ttl, value_name = "DURATION")]
    pub(crate) ttl: Duration,
    /// Longest control line kept, in bytes (64 or more); longer negotiation
    /// lines are refused as `line-too-long`.
    #[arg(long, default_value_t = 2048, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub(crate) max_line: u32,
    /// Most control connections followed at once.
    #[arg(long, default_value_t = 4096, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_sessions: u32,
    /// When the session table is full, a client holding more sessions than
    /// this gives its least recently active one up to a newcomer.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_sessions_per_client: u32,
    /// Negotiations allowed per session and second on average (0: no limit);
    /// more are refused as `rate-limited`.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(crate) negotiation_rate: u32,
    /// Negotiations allowed per session at once.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) negotiation_burst: u32,
    /// Close a control connection idle this long (e.g. `2h`).
    #[arg(long, default_value = "2h", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) idle_timeout: Duration,
}

impl CoreArgs {
    /// The core configuration these arguments describe.
    /// (Every value was checked by clap: a bad one is a usage error.)
    pub(crate) fn to_config(&self) -> PipelineConfig {
        PipelineConfig {
            tracker: TrackerConfig {
                ports: self.ports.clone(),
                max_connections: self.max_sessions as usize,
                max_per_client: self.max_sessions_per_client as usize,
                idle_timeout: self.idle_timeout,
                ..TrackerConfig::default()
            },
            ftp: FtpConfig { max_line: self.max_line as usize },
            policy: Policy {
                allow_third_party: self.allow_third_party.clone(),
                min_data_port: self.min_data_port,
                active_source_port: self.active_sport,
                ttl: self.ttl,
                rate: RateLimit { per_second: self.negotiation_rate, burst: self.negotiation_burst },
            },
        }
    }
}

/// A duration: a number with a unit (`ms`, `s`, `m`, `h`), or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 30s, 2m or 500ms"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s, m or h)")),
    };
    Ok(d)
}

/// A pinhole TTL: whole seconds, 1 s to 1 day (nftables timeouts are
/// milliseconds, but the audit trail and set elements speak seconds).
pub(crate) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 || d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
        return Err(format!("{s:?}: a TTL is whole seconds between 1s and 24h"));
    }
    Ok(d)
}

/// Install the tracing subscriber on standard error.
pub(crate) fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(&env).with_context(|| format!("RUST_LOG={env:?}"))?,
        _ => EnvFilter::try_new(level).with_context(|| format!("--log-level {level:?}"))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        core: CoreArgs,
    }

    fn parse(args: &[&str]) -> Result<CoreArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|w| w.core)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn ttl_is_whole_seconds_within_a_day() {
        assert_eq!(parse_ttl("45"), Ok(Duration::from_secs(45)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("1500ms").is_err());
        assert!(parse_ttl("25h").is_err());
    }

    #[test]
    fn defaults() -> anyhow::Result<()> {
        let config = parse(&[])?.to_config();
        assert_eq!(config.tracker.ports.as_slice(), &[21]);
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.ftp.max_line, 2048);
        Ok(())
    }

    #[test]
    fn each_flag_reaches_the_config() -> anyhow::Result<()> {
        let core = parse(&[
            "--ports",
            "21,2121",
            "--allow-third-party",
            "203.0.113.0/24",
            "--allow-third-party",
            "2001:db8:3::/48",
            "--min-data-port",
            "2000",
            "--active-sport",
            "any",
            "--ttl",
            "2m",
            "--max-line",
            "512",
            "--max-sessions",
            "10",
            "--idle-timeout",
            "10m",
        ])?;
        let c = core.to_config();
        assert_eq!(c.tracker.ports.as_slice(), &[21, 2121]);
        assert_eq!(c.policy.allow_third_party.len(), 2);
        assert_eq!(c.policy.min_data_port, 2000);
        assert_eq!(c.policy.active_source_port, SourcePort::Any);
        assert_eq!(c.policy.ttl, Duration::from_secs(120));
        assert_eq!(c.ftp.max_line, 512);
        assert_eq!(c.tracker.max_connections, 10);
        assert_eq!(c.tracker.idle_timeout, Duration::from_secs(600));
        Ok(())
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--ports", "21,x"][..], "--ports"),
            (&["--allow-third-party", "300.0.0.0/8"], "--allow-third-party"),
            (&["--active-sport", "0"], "--active-sport"),
            (&["--ttl", "0s"], "--ttl"),
            (&["--min-data-port", "70000"], "--min-data-port"),
        ] {
            let err = parse(args).expect_err("invalid").to_string();
            assert!(err.contains(flag), "{err}");
        }
        for (args, flag) in [(&["--max-line", "10"][..], "--max-line"), (&["--max-sessions", "0"], "--max-sessions")] {
            let err = parse(args).expect_err("out of range").to_string();
            assert!(err.contains(flag), "{err}");
        }
    }
}
