//! Timestamps fed to the sans-IO core.
//!
//! The core never reads a clock: every input carries a [`Timestamp`] taken from
//! the capture (pcap record, kernel packet timestamp) or, in the daemon, from the
//! one place that reads the system clock. A pcap replay therefore runs the very
//! same timers as a live gateway.

use std::fmt;
use std::time::Duration;

/// A point in time, as nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp `d` after the Unix epoch (saturating at the far future).
    pub fn from_unix_duration(d: Duration) -> Self {
        Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the Unix epoch, with a fraction.
    pub fn unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, saturating instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(d))
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_nanos(u64::MAX - 1);
        assert_eq!(t.saturating_add(Duration::from_secs(1)).unix_nanos(), u64::MAX);
        let a = Timestamp::from_unix_nanos(5);
        let b = Timestamp::from_unix_nanos(9);
        assert_eq!(a.saturating_since(b), Duration::ZERO);
        assert_eq!(b.saturating_since(a), Duration::from_nanos(4));
    }

    #[test]
    fn displays_seconds_with_nanos() {
        let t = Timestamp::from_unix_duration(Duration::new(1_700_000_000, 5));
        assert_eq!(t.to_string(), "1700000000.000000005");
        assert!((t.unix_secs_f64() - 1_700_000_000.0).abs() < 1e-6);
    }
}
