//! The nftables rulesets that make pinholes work (`ftp-pinhole rules`).
//!
//! The templates live in `rules/templates/`; [`generate`] fills them for a
//! profile and its options, as a pure function. The set and chain names are
//! the backend's ([`crate::backend::SETS`]), so what the daemon adds is what
//! the rules match.

use std::fmt::Write as _;
use std::time::Duration;

use thiserror::Error;

use crate::backend::{TableSpec, SET_ACTIVE4, SET_ACTIVE6, SET_PASSIVE4, SET_PASSIVE6};
use crate::policy::SourcePort;
use crate::track::ControlPorts;

const GATEWAY: &str = include_str!("../rules/templates/gateway.nft.in");
const HOST: &str = include_str!("../rules/templates/host.nft.in");
const INCLUDE: &str = include_str!("../rules/templates/include.nft.in");

/// Chain holding the passive-mode data rules (client -> server).
pub const CHAIN_PASSIVE: &str = "ftp_passive";
/// Chain holding the active-mode data rules (server -> client).
pub const CHAIN_ACTIVE: &str = "ftp_active";
/// Chain an operator's ruleset jumps to: control connections and both.
pub const CHAIN_PINHOLE: &str = "ftp_pinhole";

/// Which ruleset to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A complete default-drop forward ruleset for a router.
    Gateway,
    /// Input/output for an FTP server or client host itself.
    Host,
    /// Only the sets and chains, merged into an existing table.
    Include,
}

impl Profile {
    /// The profile's name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Gateway => "gateway",
            Profile::Host => "host",
            Profile::Include => "include",
        }
    }
}

/// Which end of FTP a host profile protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRole {
    /// An FTP server: control connections come in.
    Server,
    /// An FTP client: control connections go out.
    Client,
    /// Both.
    Both,
}

/// Policy of the host profile's output chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputPolicy {
    /// Outbound traffic is not filtered.
    Accept,
    /// Outbound traffic is default-drop too.
    Drop,
}

/// Everything a ruleset is generated from.
#[derive(Debug, Clone)]
pub struct RulesetOptions {
    /// Which ruleset.
    pub profile: Profile,
    /// The table (for `include`: the operator's existing table).
    pub table: TableSpec,
    /// FTP control ports.
    pub ports: ControlPorts,
    /// Source port of active-mode data connections; must match the daemon's.
    pub active_sport: SourcePort,
    /// Default timeout of the sets (each element carries its own).
    pub ttl: Duration,
    /// Most pinholes per set at once.
    pub set_size: u32,
    /// Gateway: interfaces facing the clients (empty: any).
    pub client_ifaces: Vec<String>,
    /// Gateway: interfaces facing the servers (empty: any).
    pub server_ifaces: Vec<String>,
    /// Host: which end this host is.
    pub role: HostRole,
    /// Host: policy of the output chain.
    pub output_policy: OutputPolicy,
}

impl Default for RulesetOptions {
    fn default() -> Self {
        RulesetOptions {
            profile: Profile::Gateway,
            table: TableSpec::default(),
            ports: ControlPorts::default(),
            active_sport: SourcePort::Port(20),
            ttl: Duration::from_secs(30),
            set_size: 65_535,
            client_ifaces: Vec::new(),
            server_ifaces: Vec::new(),
            role: HostRole::Both,
            output_policy: OutputPolicy::Accept,
        }
    }
}

/// Why options do not make a ruleset.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RulesetError {
    /// An interface name nft would not take.
    #[error("{0:?} is not an interface name (at most 15 of letters, digits, and . _ - : @, or a trailing *)")]
    Interface(String),
    /// Client interfaces without server interfaces, or the reverse.
    #[error("give both --client-iface and --server-iface, or neither")]
    OneSidedInterfaces,
    /// Interfaces only make sense for the gateway profile.
    #[error("--client-iface/--server-iface apply to the gateway profile only")]
    InterfacesNotGateway,
    /// A set size of zero.
    #[error("--set-size must be at least 1")]
    SetSize,
}

/// Generate the ruleset described by `options`.
pub fn generate(options: &RulesetOptions) -> Result<String, RulesetError> {
    validate(options)?;
    let o = options;
    let template = match o.profile {
        Profile::Gateway => GATEWAY,
        Profile::Host => HOST,
        Profile::Include => INCLUDE,
    };
    let family = o.table.family;
    let mut out = template.to_string();
    // A placeholder alone on its line that expands to nothing takes its line along.
    let replace = |out: &mut String, key: &str, value: &str| {
        let marker = format!("{{{{{key}}}}}");
        if value.is_empty() {
            *out = out.replace(&format!("{marker}\n"), "");
        }
        *out = out.replace(&marker, value);
    };
    replace(&mut out, "ARGS", &command_line(o));
    replace(&mut out, "FAMILY", family.keyword());
    replace(&mut out, "TABLE", &o.table.name);
    replace(&mut out, "PORTS", &o.ports.to_string());
    replace(&mut out, "ACTIVE_SPORT", &o.active_sport.to_string());
    replace(&mut out, "SETS", &sets(o));
    replace(&mut out, "DATA_CHAINS", &data_chains(o));
    replace(&mut out, "FORWARD_RULES", &forward_rules(o));
    let role = match o.role {
        HostRole::Server => "server",
        HostRole::Client => "client",
        HostRole::Both => "server or client",
    };
    replace(&mut out, "ROLE", role);
    let policy = match o.output_policy {
        OutputPolicy::Accept => "accept",
        OutputPolicy::Drop => "drop",
    };
    replace(&mut out, "OUTPUT_POLICY", policy);
    let control = control_rule(o, "");
    let server_side = matches!(o.role, HostRole::Server | HostRole::Both);
    let client_side = matches!(o.role, HostRole::Client | HostRole::Both);
    replace(&mut out, "INPUT_RULES", if server_side { &control } else { "" });
    replace(&mut out, "OUTPUT_RULES", if client_side { &control } else { "" });
    let (icmp_in, icmp_out) = if family.has_v6() {
        (
            "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept comment \"IPv6 neighbour discovery (untracked by conntrack)\"\n\
             \t\ticmpv6 type mld-listener-query ip6 hoplimit 1 accept comment \"MLD queries keep ND multicast flowing through snooping switches\"",
            "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, mld-listener-report, mld2-listener-report } accept comment \"IPv6 neighbour discovery\"",
        )
    } else {
        ("", "")
    };
    replace(&mut out, "INPUT_ICMPV6", icmp_in);
    replace(&mut out, "OUTPUT_ICMPV6", icmp_out);
    Ok(out)
}

fn validate(o: &RulesetOptions) -> Result<(), RulesetError> {
    for name in o.client_ifaces.iter().chain(&o.server_ifaces) {
        let body = name.strip_suffix('*').unwrap_or(name);
        let ok = !body.is_empty()
            && name.len() <= 15
            && body.chars().all(|c| c.is_ascii_alphanumeric() || "._-:@".contains(c));
        if !ok {
            return Err(RulesetError::Interface(name.clone()));
        }
    }
    if o.client_ifaces.is_empty() != o.server_ifaces.is_empty() {
        return Err(RulesetError::OneSidedInterfaces);
    }
    if !o.client_ifaces.is_empty() && o.profile != Profile::Gateway {
        return Err(RulesetError::InterfacesNotGateway);
    }
    if o.set_size == 0 {
        return Err(RulesetError::SetSize);
    }
    Ok(())
}

/// The `ftp-pinhole rules ...` arguments that give this ruleset.
fn command_line(o: &RulesetOptions) -> String {
    let mut args = format!("--profile {}", o.profile.name());
    let defaults = RulesetOptions::default();
    if o.table.family != defaults.table.family {
        let _ = write!(args, " --family {}", o.table.family);
    }
    if o.table.name != defaults.table.name {
        let _ = write!(args, " --table {}", o.table.name);
    }
    if o.ports != defaults.ports {
        let _ = write!(args, " --ports {}", o.ports);
    }
    if o.active_sport != defaults.active_sport {
        let _ = write!(args, " --active-sport {}", o.active_sport);
    }
    if o.ttl != defaults.ttl {
        let _ = write!(args, " --ttl {}s", o.ttl.as_secs());
    }
    if o.set_size != defaults.set_size {
        let _ = write!(args, " --set-size {}", o.set_size);
    }
    for i in &o.client_ifaces {
        let _ = write!(args, " --client-iface {i}");
    }
    for i in &o.server_ifaces {
        let _ = write!(args, " --server-iface {i}");
    }
    if o.profile == Profile::Host {
        let role = match o.role {
            HostRole::Server => " --role server",
            HostRole::Client => " --role client",
            HostRole::Both => "",
        };
        args.push_str(role);
        if o.output_policy == OutputPolicy::Drop {
            args.push_str(" --output-policy drop");
        }
    }
    args
}

/// The address families the table holds, with their nft selector and sets.
fn families(o: &RulesetOptions) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    // (address type, match prefix, passive set, active set)
    let mut v = Vec::new();
    if o.table.family.has_v4() {
        v.push(("ipv4_addr", "ip", SET_PASSIVE4, SET_ACTIVE4));
    }
    if o.table.family.has_v6() {
        v.push(("ipv6_addr", "ip6", SET_PASSIVE6, SET_ACTIVE6));
    }
    v
}

fn sets(o: &RulesetOptions) -> String {
    let mut s = String::new();
    let ttl = o.ttl.as_secs();
    for (addr, _, passive, active) in families(o) {
        for (set, what) in
            [(passive, "client . server . port: passive pinholes"), (active, "server . client . port: active pinholes")]
        {
            let _ = writeln!(
                s,
                "\tset {set} {{ type {addr} . {addr} . inet_service; flags dynamic,timeout; timeout {ttl}s; size {}; comment \"{what}, added by ftp-pinhole\"; }}",
                o.set_size
            );
        }
    }
    s.trim_end().to_string()
}

/// The SYN that opens a flow: no ACK, conntrack has not seen it before.
const NEW_SYN: &str = "tcp flags & (syn|ack) == syn ct state new";

fn data_chains(o: &RulesetOptions) -> String {
    let retransmit = format!(
        "\t\t{NEW_SYN} ct status confirmed accept comment \"retransmitted SYN of a connection already let through\""
    );
    let mut passive = format!("\tchain {CHAIN_PASSIVE} {{\n{retransmit}\n");
    let mut active = format!("\tchain {CHAIN_ACTIVE} {{\n{retransmit}\n");
    let sport = match o.active_sport {
        SourcePort::Port(p) => format!("tcp sport {p} "),
        SourcePort::Any => String::new(),
    };
    for (_, ip, pset, aset) in families(o) {
        let key = format!("{ip} saddr . {ip} daddr . tcp dport");
        let _ = writeln!(
            passive,
            "\t\t{NEW_SYN} {key} @{pset} delete @{pset} {{ {key} }} accept comment \"passive: client:any -> server:P, once\""
        );
        let _ = writeln!(
            active,
            "\t\t{sport}{NEW_SYN} {key} @{aset} delete @{aset} {{ {key} }} accept comment \"active: server:{} -> client:N, once\"",
            o.active_sport
        );
    }
    passive.push_str("\t}\n");
    active.push_str("\t}\n");
    let mut pinhole = format!("\tchain {CHAIN_PINHOLE} {{\n");
    if o.profile == Profile::Include {
        pinhole.push_str(&control_rule(o, ""));
        pinhole.push('\n');
    }
    let _ = write!(pinhole, "\t\tjump {CHAIN_PASSIVE}\n\t\tjump {CHAIN_ACTIVE}\n\t}}");
    format!("{passive}\n{active}\n{pinhole}")
}

fn iface_set(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

fn control_rule(o: &RulesetOptions, prefix: &str) -> String {
    let ports: Vec<String> = o.ports.as_slice().iter().map(u16::to_string).collect();
    format!("\t\t{prefix}tcp dport {{ {} }} {NEW_SYN} accept comment \"FTP control connections\"", ports.join(", "))
}

fn forward_rules(o: &RulesetOptions) -> String {
    if o.client_ifaces.is_empty() {
        return format!("{}\n\t\tjump {CHAIN_PINHOLE}", control_rule(o, ""));
    }
    let (c, s) = (iface_set(&o.client_ifaces), iface_set(&o.server_ifaces));
    [
        control_rule(o, &format!("iifname {c} oifname {s} ")),
        format!("\t\tiifname {c} oifname {s} jump {CHAIN_PASSIVE}"),
        format!("\t\tiifname {s} oifname {c} jump {CHAIN_ACTIVE}"),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests;
