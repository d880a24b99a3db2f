//! Stage 5: pinholes into the kernel, behind a small trait.
//!
//! A pinhole is one element of a named nftables set with its own timeout; the
//! static ruleset (`rules/`, `ftp-pinhole rules`) holds the rules that match
//! those sets. A [`Backend`] queues opens and closes and applies them in one
//! batch on [`Backend::flush`]:
//!
//! - [`dry_run::DryRun`] prints the equivalent `nft` commands;
//! - [`nftables::Nftables`] talks netlink to the kernel (nftnl).
//!
//! What goes where is decided here, purely: [`Element::of`] maps a pinhole to
//! its set and key, the same names the ruleset generator uses.

pub mod dry_run;
pub mod nftables;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::ftp::Mode;
use crate::policy::Pinhole;

/// Passive IPv4 pinholes: `client . server . port`.
pub const SET_PASSIVE4: &str = "passive4";
/// Passive IPv6 pinholes: `client . server . port`.
pub const SET_PASSIVE6: &str = "passive6";
/// Active IPv4 pinholes: `server . client . port`.
pub const SET_ACTIVE4: &str = "active4";
/// Active IPv6 pinholes: `server . client . port`.
pub const SET_ACTIVE6: &str = "active6";
/// Every pinhole set, in the order rulesets declare them.
pub const SETS: [&str; 4] = [SET_PASSIVE4, SET_ACTIVE4, SET_PASSIVE6, SET_ACTIVE6];
/// Default table name.
pub const DEFAULT_TABLE: &str = "ftp_pinhole";

/// The address family of an nftables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFamily {
    /// `inet`: IPv4 and IPv6 sets side by side.
    Inet,
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
}

impl TableFamily {
    /// The nft keyword.
    pub const fn keyword(self) -> &'static str {
        match self {
            TableFamily::Inet => "inet",
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
        }
    }

    /// Whether a table of this family holds pinholes of `ip`'s family.
    pub fn holds(self, ip: IpAddr) -> bool {
        match self {
            TableFamily::Inet => true,
            TableFamily::Ip => ip.is_ipv4(),
            TableFamily::Ip6 => ip.is_ipv6(),
        }
    }

    /// Whether this family has IPv4 sets.
    pub const fn has_v4(self) -> bool {
        matches!(self, TableFamily::Inet | TableFamily::Ip)
    }

    /// Whether this family has IPv6 sets.
    pub const fn has_v6(self) -> bool {
        matches!(self, TableFamily::Inet | TableFamily::Ip6)
    }
}

impl fmt::Display for TableFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl FromStr for TableFamily {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inet" => Ok(TableFamily::Inet),
            "ip" => Ok(TableFamily::Ip),
            "ip6" => Ok(TableFamily::Ip6),
            _ => Err(format!("{s:?} is not a table family (inet, ip or ip6)")),
        }
    }
}

/// The table the pinhole sets live in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableSpec {
    /// Its family.
    pub family: TableFamily,
    /// Its name.
    pub name: String,
}

impl Default for TableSpec {
    fn default() -> Self {
        TableSpec { family: TableFamily::Inet, name: DEFAULT_TABLE.to_string() }
    }
}

impl fmt::Display for TableSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// Why a table name was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not a valid nftables table name (letters, digits, _ and -, starting with a letter, at most 64)")]
pub struct TableNameError(pub String);

impl TableSpec {
    /// A table spec, with the name checked so it can go into a ruleset and
    /// a netlink message unquoted.
    pub fn new(family: TableFamily, name: &str) -> Result<Self, TableNameError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(TableSpec { family, name: name.to_string() })
        } else {
            Err(TableNameError(name.to_string()))
        }
    }
}

/// "IPv4" or "IPv6", for messages.
pub fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// A set element: which set, which key, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Element {
    /// The set it belongs in (one of [`SETS`]).
    pub set: &'static str,
    /// Who opens the data connection (client for passive, server for active).
    pub src: IpAddr,
    /// Who accepts it.
    pub dst: IpAddr,
    /// The destination port.
    pub dport: u16,
    /// Its timeout.
    pub timeout: Duration,
}

impl Element {
    /// The element that makes `pinhole` real. Both set layouts are
    /// `opener . acceptor . port`: `client . server . port` for passive and
    /// `server . client . port` for active, which is `src . dst . dport`.
    pub fn of(pinhole: &Pinhole) -> Self {
        let set = match (pinhole.mode, pinhole.dst.is_ipv4()) {
            (Mode::Passive, true) => SET_PASSIVE4,
            (Mode::Passive, false) => SET_PASSIVE6,
            (Mode::Active, true) => SET_ACTIVE4,
            (Mode::Active, false) => SET_ACTIVE6,
        };
        Element { set, src: pinhole.src, dst: pinhole.dst, dport: pinhole.dport, timeout: pinhole.ttl }
    }

    /// The mode a set holds.
    pub fn mode_of_set(set: &str) -> Option<Mode> {
        match set {
            SET_PASSIVE4 | SET_PASSIVE6 => Some(Mode::Passive),
            SET_ACTIVE4 | SET_ACTIVE6 => Some(Mode::Active),
            _ => None,
        }
    }

    /// The key as nft writes it: `192.0.2.10 . 198.51.100.20 . 50000`.
    pub fn nft_key(&self) -> String {
        format!("{} . {} . {}", self.src, self.dst, self.dport)
    }
}

/// A pinhole element read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveElement {
    /// The set and key (its `timeout` is the element's timeout, zero if none).
    pub element: Element,
    /// Time left before the kernel removes it, if it has a timeout.
    pub expires: Option<Duration>,
}

/// What a [`Backend`] was asked to do with one pinhole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add it, or reset its timeout if it is there.
    Open,
    /// Remove it if it is still there.
    Close,
}

impl Op {
    /// Stable name for logs and the audit trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Close => "close",
        }
    }
}

/// How one queued operation ended.
#[derive(Debug)]
pub struct Outcome {
    /// The operation.
    pub op: Op,
    /// Its pinhole.
    pub pinhole: Pinhole,
    /// `Ok` when the kernel's set now says what was asked (for a close:
    /// the element is gone, whether it was there or not).
    pub result: Result<(), OpError>,
}

/// Why one operation failed while others in the batch may have succeeded.
#[derive(Debug, Error)]
pub enum OpError {
    /// The table holds no set of this pinhole's family (an `ip` table and an
    /// IPv6 pinhole, say).
    #[error("table {table} has no set for {family} pinholes")]
    FamilyNotInTable {
        /// The table.
        table: TableSpec,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The set is full (its `size`).
    #[error("set {set} is full")]
    SetFull {
        /// The set.
        set: &'static str,
    },
    /// Not applied: the kernel rolled back every batch it was in because of
    /// other operations' errors, and the backend stopped retrying.
    #[error("not applied: the kernel rolled back the batch {attempts} times because of other operations")]
    RolledBack {
        /// Batches sent with it.
        attempts: usize,
    },
    /// The kernel refused it for another reason.
    #[error("the kernel refused {op} in set {set}: {source}")]
    Kernel {
        /// What was asked.
        op: &'static str,
        /// In which set.
        set: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
}

/// Why a backend cannot work at all (as opposed to one operation failing).
#[derive(Debug, Error)]
pub enum BackendError {
    /// No netlink socket could be opened or configured.
    #[error("cannot open a netlink socket to nftables: {0}")]
    Socket(#[source] io::Error),
    /// The process lacks CAP_NET_ADMIN.
    #[error(
        "permission denied by the kernel: ftp-pinhole needs CAP_NET_ADMIN (run it as root or grant the capability)"
    )]
    Permission,
    /// The table does not exist.
    #[error("nftables table {table} does not exist: load a ruleset first, e.g. `ftp-pinhole rules --profile gateway --table {name} | nft -f -`", name = table.name)]
    TableMissing {
        /// The table looked for.
        table: TableSpec,
    },
    /// The table exists but lacks a pinhole set.
    #[error("nftables table {table} has no set {set}: load a ruleset generated by `ftp-pinhole rules` into it")]
    SetMissing {
        /// The table.
        table: TableSpec,
        /// The set looked for.
        set: &'static str,
    },
    /// The set exists but cannot hold pinholes (another key type, no
    /// `flags timeout`, an interval set or a map).
    #[error("nftables set {set} in table {table} cannot hold pinholes: {reason}; load a ruleset generated by `ftp-pinhole rules`")]
    SetIncompatible {
        /// The table.
        table: TableSpec,
        /// The set.
        set: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Sending to or receiving from the kernel failed.
    #[error("netlink {stage} failed: {source}")]
    Netlink {
        /// `send`, `receive`, `dump`, or `commit` (the kernel refused a whole batch).
        stage: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Replies were lost (ENOBUFS): the batch may or may not have committed.
    #[error("the kernel's replies were lost (ENOBUFS); whether the change was applied is unknown")]
    OutcomeUnknown,
    /// Writing the dry-run output failed.
    #[error("writing the dry-run output failed: {0}")]
    Output(#[source] io::Error),
}

/// Where pinholes go. Operations are queued by [`open`](Backend::open) and
/// [`close`](Backend::close) and applied, in order, by [`flush`](Backend::flush).
pub trait Backend {
    /// Queue: add the pinhole's element with its TTL, or reset the TTL of
    /// an element that is already there.
    fn open(&mut self, pinhole: &Pinhole);
    /// Queue: remove the pinhole's element; an element already consumed or
    /// expired is not an error.
    fn close(&mut self, pinhole: &Pinhole);
    /// Apply everything queued as one batch; one outcome per operation, in
    /// the order queued. An `Err` means nothing could be said about any.
    fn flush(&mut self) -> Result<Vec<Outcome>, BackendError>;
    /// Every pinhole element in the kernel now, with its time left.
    fn list(&mut self) -> Result<Vec<LiveElement>, BackendError>;
}

/// A boxed backend is a backend: the command line picks one at run time.
impl<B: Backend + ?Sized> Backend for Box<B> {
    fn open(&mut self, pinhole: &Pinhole) {
        (**self).open(pinhole)
    }
    fn close(&mut self, pinhole: &Pinhole) {
        (**self).close(pinhole)
    }
    fn flush(&mut self) -> Result<Vec<Outcome>, BackendError> {
        (**self).flush()
    }
    fn list(&mut self) -> Result<Vec<LiveElement>, BackendError> {
        (**self).list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SourcePort;

    fn pinhole(mode: Mode, src: &str, dst: &str) -> Pinhole {
        Pinhole {
            mode,
            src: src.parse().expect("addr"),
            sport: SourcePort::Any,
            dst: dst.parse().expect("addr"),
            dport: 50000,
            ttl: Duration::from_secs(30),
        }
    }

    #[test]
    fn elements_go_to_the_set_of_their_mode_and_family() {
        let e = Element::of(&pinhole(Mode::Passive, "192.0.2.10", "198.51.100.20"));
        assert_eq!((e.set, e.nft_key().as_str()), (SET_PASSIVE4, "192.0.2.10 . 198.51.100.20 . 50000"));
        let e = Element::of(&pinhole(Mode::Active, "198.51.100.20", "192.0.2.10"));
        assert_eq!((e.set, e.nft_key().as_str()), (SET_ACTIVE4, "198.51.100.20 . 192.0.2.10 . 50000"));
        assert_eq!(Element::of(&pinhole(Mode::Passive, "2001:db8:1::1", "2001:db8:2::1")).set, SET_PASSIVE6);
        assert_eq!(Element::of(&pinhole(Mode::Active, "2001:db8:2::1", "2001:db8:1::1")).set, SET_ACTIVE6);
        for set in SETS {
            assert!(Element::mode_of_set(set).is_some());
        }
    }

    #[test]
    fn table_names_are_checked() {
        assert!(TableSpec::new(TableFamily::Inet, "ftp_pinhole").is_ok());
        assert!(TableSpec::new(TableFamily::Ip, "filter-2").is_ok());
        for bad in ["", "2x", "a b", "x;flush ruleset", &"a".repeat(65)] {
            assert!(TableSpec::new(TableFamily::Inet, bad).is_err(), "{bad:?}");
        }
        assert_eq!("ip6".parse::<TableFamily>(), Ok(TableFamily::Ip6));
        assert!("bridge".parse::<TableFamily>().is_err());
    }

    #[test]
    fn families_hold_their_addresses() {
        let v4: IpAddr = "192.0.2.1".parse().expect("addr");
        let v6: IpAddr = "2001:db8::1".parse().expect("addr");
        assert!(TableFamily::Inet.holds(v4) && TableFamily::Inet.holds(v6));
        assert!(TableFamily::Ip.holds(v4) && !TableFamily::Ip.holds(v6));
        assert!(!TableFamily::Ip6.holds(v4) && TableFamily::Ip6.holds(v6));
    }
}
