//! Timestamps fed to the sans-IO core.
//!
//! The core never reads a clock: every input carries a [`Timestamp`] taken from
//! the capture (pcap record, kernel packet timestamp) or, in the daemon, from the
//! one place that reads the system clock. A pcap replay therefore runs the very
//! same timers as a live gateway.

mod parse;

pub use parse::TimeError;

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

/// The system's wall clock now. For the adapters at the edge (the live
/// loop, a capture frame the kernel did not stamp); the core never calls it.
pub fn wall_clock() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_unix_duration(since_epoch)
}

impl Timestamp {
    /// The time as RFC 3339 UTC with microseconds, e.g.
    /// `2026-11-25T12:58:35.000123Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

/// Year, month, day of the `days`-th day after 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's algorithm, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
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
    fn rfc3339_utc() {
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        let t = Timestamp::from_unix_nanos(1_329_843_161_968_492_000);
        assert_eq!(t.to_rfc3339(), "2012-02-21T16:52:41.968492Z");
        // A leap day and the end of a century leap year.
        assert_eq!(Timestamp::from_unix_nanos(951_782_400_000_000_000).to_rfc3339(), "2000-02-29T00:00:00.000000Z");
        assert_eq!(Timestamp::from_unix_nanos(1_798_761_599_000_000_000).to_rfc3339(), "2026-12-31T23:59:59.000000Z");
    }

    #[test]
    fn displays_seconds_with_nanos() {
        let t = Timestamp::from_unix_duration(Duration::new(1_700_000_000, 5));
        assert_eq!(t.to_string(), "1700000000.000000005");
        assert!((t.unix_secs_f64() - 1_700_000_000.0).abs() < 1e-6);
    }
}
