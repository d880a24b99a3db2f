//! The set of TCP ports that identify FTP control connections.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Server ports of control connections: a sorted, non-empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPorts(Vec<u16>);

/// Why a port list was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortsError {
    /// The list names no port.
    #[error("the control port list is empty")]
    Empty,
    /// An entry is not a number in 1..=65535.
    #[error("{0:?} is not a TCP port (1-65535)")]
    Invalid(String),
    /// More ports than the kernel capture filter can test.
    #[error("at most {max} control ports are supported, got {got}")]
    TooMany {
        /// The limit.
        max: usize,
        /// How many were given.
        got: usize,
    },
}

impl ControlPorts {
    /// Most ports in one list (the kernel capture filter tests each in turn).
    pub const MAX: usize = 16;

    /// A list of the given ports, sorted, duplicates removed.
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Result<Self, PortsError> {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        if let Some(p) = ports.iter().find(|&&p| p == 0) {
            return Err(PortsError::Invalid(p.to_string()));
        }
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return Err(PortsError::Empty);
        }
        if ports.len() > Self::MAX {
            return Err(PortsError::TooMany { max: Self::MAX, got: ports.len() });
        }
        Ok(ControlPorts(ports))
    }

    /// Whether `port` is a control port.
    pub fn contains(&self, port: u16) -> bool {
        self.0.binary_search(&port).is_ok()
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }
}

impl Default for ControlPorts {
    /// Port 21 alone.
    fn default() -> Self {
        ControlPorts(vec![21])
    }
}

impl FromStr for ControlPorts {
    type Err = PortsError;

    /// Parse a comma-separated list such as `21,2121`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ports = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(|| PortsError::Invalid(p.to_string())))
            .collect::<Result<Vec<u16>, PortsError>>()?;
        ControlPorts::new(ports)
    }
}

impl fmt::Display for ControlPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_dedups() {
        let p: ControlPorts = "2121, 21,21".parse().expect("valid list");
        assert_eq!(p.as_slice(), &[21, 2121]);
        assert!(p.contains(2121) && !p.contains(20));
        assert_eq!(p.to_string(), "21,2121");
    }

    #[test]
    fn rejects_bad_lists() {
        assert_eq!("".parse::<ControlPorts>(), Err(PortsError::Empty));
        assert_eq!("21,x".parse::<ControlPorts>(), Err(PortsError::Invalid("x".into())));
        assert_eq!("0".parse::<ControlPorts>(), Err(PortsError::Invalid("0".into())));
        assert_eq!("70000".parse::<ControlPorts>(), Err(PortsError::Invalid("70000".into())));
        let many: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
        assert_eq!(many.join(",").parse::<ControlPorts>(), Err(PortsError::TooMany { max: 16, got: 17 }));
    }
}
