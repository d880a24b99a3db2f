//! Why a capture could not be opened or read, in words an operator acts on.

use std::io;

use thiserror::Error;

use super::bpf::BuildError;

/// A capture failure; each names the interface.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// No interface of that name in this network namespace (now, or any more).
    #[error("cannot capture on {name}: no network interface of that name")]
    NoSuchInterface {
        /// The interface name asked for.
        name: String,
    },
    /// The kernel refused a packet socket: the process lacks `CAP_NET_RAW`.
    #[error("cannot capture on {name}: {step} was refused; capturing needs CAP_NET_RAW (run as root)")]
    Permission {
        /// The interface.
        name: String,
        /// The step the kernel refused.
        step: &'static str,
        /// The kernel's answer (EPERM or EACCES).
        #[source]
        source: io::Error,
    },
    /// The interface went down (or was deleted); reported once per event.
    /// Frames resume by themselves when it comes back up; see
    /// [`Capture::health`](super::Capture::health) for a deleted interface.
    #[error("capture on {name}: the interface is down")]
    InterfaceDown {
        /// The interface.
        name: String,
    },
    /// The interface does not frame packets with an Ethernet header (tun,
    /// WireGuard, PPP): the filter and the decoder would see nothing.
    #[error("cannot capture on {name}: not an Ethernet interface (link type {hardware_type}); only Ethernet-framed interfaces are supported")]
    NotEthernet {
        /// The interface.
        name: String,
        /// Its `ARPHRD_*` type.
        hardware_type: u16,
    },
    /// The control-port filter could not be built.
    #[error("cannot capture on {name}: {source}")]
    Filter {
        /// The interface.
        name: String,
        /// Why.
        #[source]
        source: BuildError,
    },
    /// Any other failure of a system call.
    #[error("capture on {name}: {step} failed: {source}")]
    Io {
        /// The interface.
        name: String,
        /// The step that failed, e.g. `"recvmsg"`.
        step: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
}

impl CaptureError {
    /// The error of `step` on interface `name`, classified by its errno.
    pub(super) fn os(name: &str, step: &'static str, source: io::Error) -> CaptureError {
        let name = name.to_string();
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => CaptureError::Permission { name, step, source },
            Some(libc::ENODEV | libc::ENXIO) => CaptureError::NoSuchInterface { name },
            Some(libc::ENETDOWN) => CaptureError::InterfaceDown { name },
            _ => CaptureError::Io { name, step, source },
        }
    }

    /// The interface the error is about.
    pub fn interface(&self) -> &str {
        match self {
            CaptureError::NoSuchInterface { name }
            | CaptureError::Permission { name, .. }
            | CaptureError::InterfaceDown { name }
            | CaptureError::NotEthernet { name, .. }
            | CaptureError::Filter { name, .. }
            | CaptureError::Io { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classified_by_errno_with_operator_messages() {
        let e = CaptureError::os("lan0", "socket(AF_PACKET)", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, CaptureError::Permission { .. }));
        assert_eq!(
            e.to_string(),
            "cannot capture on lan0: socket(AF_PACKET) was refused; capturing needs CAP_NET_RAW (run as root)"
        );
        let e = CaptureError::os("lan9", "SIOCGIFINDEX", io::Error::from_raw_os_error(libc::ENODEV));
        assert_eq!(e.to_string(), "cannot capture on lan9: no network interface of that name");
        assert_eq!(e.interface(), "lan9");
        let e = CaptureError::os("wan0", "recvmsg", io::Error::from_raw_os_error(libc::ENETDOWN));
        assert_eq!(e.to_string(), "capture on wan0: the interface is down");
        let e = CaptureError::os("wan0", "recvmsg", io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.to_string().starts_with("capture on wan0: recvmsg failed: "), "{e}");
    }
}
