//! `ftp-pinhole rules`: print a ruleset for `nft -f`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use ftp_pinhole::backend::{TableFamily, TableSpec, DEFAULT_TABLE};
use ftp_pinhole::policy::SourcePort;
use ftp_pinhole::ruleset::{generate, HostRole, OutputPolicy, Profile, RulesetOptions};
use ftp_pinhole::track::ControlPorts;

use super::args::parse_ttl;
use super::EXIT_OK;

/// Ruleset profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileArg {
    /// Complete default-drop forward ruleset for a router between clients and servers.
    Gateway,
    /// Input/output ruleset for an FTP server or client host itself.
    Host,
    /// Only the sets and chains, merged into your existing table; you add the jump.
    Include,
}

/// Host roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Accept control connections coming in.
    Server,
    /// Accept control connections going out.
    Client,
    /// Both.
    Both,
}

/// Output chain policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputPolicyArg {
    /// Do not filter outbound traffic.
    Accept,
    /// Default-drop outbound traffic too.
    Drop,
}

/// Arguments of `rules`.
#[derive(Debug, Args)]
pub(crate) struct RulesArgs {
    /// Which ruleset.
    #[arg(long, value_enum)]
    profile: ProfileArg,
    /// Table name (for `include`: your existing table). Must match `run --table`.
    #[arg(long, default_value = DEFAULT_TABLE, value_name = "NAME")]
    table: String,
    /// Table family: inet (IPv4 and IPv6), ip or ip6. Must match `run --family`.
    #[arg(long, default_value = "inet", value_name = "FAMILY")]
    family: TableFamily,
    /// FTP control ports, comma-separated.
    #[arg(long, default_value = "21", value_name = "PORTS")]
    ports: ControlPorts,
    /// Source port of active-mode data connections (20 or any). Must match `run --active-sport`.
    #[arg(long, default_value = "20", value_name = "PORT|any")]
    active_sport: SourcePort,
    /// Default timeout of the pinhole sets (each pinhole carries its own).
    #[arg(long, default_value = "30s", value_parser = parse_ttl, value_name = "DURATION")]
    ttl: Duration,
    /// Most pinholes per set at once.
    #[arg(long, default_value_t = 65_535, value_name = "N")]
    set_size: u32,
    /// Gateway: interface facing the FTP clients (repeatable; `eth*` patterns allowed).
    #[arg(long = "client-iface", value_name = "IF")]
    client_ifaces: Vec<String>,
    /// Gateway: interface facing the FTP servers (repeatable).
    #[arg(long = "server-iface", value_name = "IF")]
    server_ifaces: Vec<String>,
    /// Host: which end of FTP this host is.
    #[arg(long, value_enum, default_value_t = RoleArg::Both)]
    role: RoleArg,
    /// Host: policy of the output chain.
    #[arg(long, value_enum, default_value_t = OutputPolicyArg::Accept)]
    output_policy: OutputPolicyArg,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl RulesArgs {
    fn to_options(&self) -> anyhow::Result<RulesetOptions> {
        let table = TableSpec::new(self.family, &self.table).context("--table")?;
        Ok(RulesetOptions {
            profile: match self.profile {
                ProfileArg::Gateway => Profile::Gateway,
                ProfileArg::Host => Profile::Host,
                ProfileArg::Include => Profile::Include,
            },
            table,
            ports: self.ports.clone(),
            active_sport: self.active_sport,
            ttl: self.ttl,
            set_size: self.set_size,
            client_ifaces: self.client_ifaces.clone(),
            server_ifaces: self.server_ifaces.clone(),
            role: match self.role {
                RoleArg::Server => HostRole::Server,
                RoleArg::Client => HostRole::Client,
                RoleArg::Both => HostRole::Both,
            },
            output_policy: match self.output_policy {
                OutputPolicyArg::Accept => OutputPolicy::Accept,
                OutputPolicyArg::Drop => OutputPolicy::Drop,
            },
        })
    }
}

/// Print (or write) the ruleset.
pub(crate) fn run(args: RulesArgs) -> anyhow::Result<u8> {
    let ruleset = generate(&args.to_options()?)?;
    match &args.output {
        Some(path) => std::fs::write(path, &ruleset).with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(ruleset.as_bytes()).context("writing standard output")?;
            out.flush().context("writing standard output")?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        rules: RulesArgs,
    }

    fn parse(args: &[&str]) -> Result<RulesArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|w| w.rules)
    }

    #[test]
    fn every_flag_reaches_the_options() -> anyhow::Result<()> {
        let a = parse(&[
            "--profile",
            "gateway",
            "--table",
            "fw",
            "--family",
            "ip",
            "--ports",
            "21,990",
            "--active-sport",
            "any",
            "--ttl",
            "1m",
            "--set-size",
            "100",
            "--client-iface",
            "lan0",
            "--server-iface",
            "dmz0",
        ])?;
        let o = a.to_options()?;
        assert_eq!(o.table.to_string(), "ip fw");
        assert_eq!(o.ports.as_slice(), &[21, 990]);
        assert_eq!(o.active_sport, SourcePort::Any);
        assert_eq!((o.ttl, o.set_size), (Duration::from_secs(60), 100));
        assert_eq!(
            (o.client_ifaces.as_slice(), o.server_ifaces.as_slice()),
            (&["lan0".to_string()][..], &["dmz0".to_string()][..])
        );
        let o = parse(&["--profile", "host", "--role", "client", "--output-policy", "drop"])?.to_options()?;
        assert_eq!((o.profile, o.role, o.output_policy), (Profile::Host, HostRole::Client, OutputPolicy::Drop));
        Ok(())
    }

    #[test]
    fn bad_values_name_their_flag() {
        assert!(parse(&[]).is_err(), "--profile is required");
        let err = parse(&["--profile", "gateway", "--family", "bridge"]).expect_err("family").to_string();
        assert!(err.contains("--family"), "{err}");
        let err = parse(&["--profile", "gateway", "--table", "x y"]).map(|a| a.to_options().map(|_| ()));
        let msg = format!("{:#}", err.expect("parses").expect_err("bad table"));
        assert!(msg.contains("--table"), "{msg}");
    }
}
