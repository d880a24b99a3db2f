//! Times written by people: RFC 3339, a date, or Unix seconds.

use std::str::FromStr;

use thiserror::Error;

use super::Timestamp;

/// Why a time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    /// Neither RFC 3339, nor a date, nor Unix seconds.
    #[error("{0:?} is not a time: use RFC 3339 (2026-11-25T13:00:00Z), a date (2026-11-25) or Unix seconds")]
    Format(String),
    /// RFC 3339 without `Z` or an offset: local time would be a guess.
    #[error("{0:?} has no time zone: add Z (UTC) or an offset such as +01:00")]
    NoZone(String),
    /// A field outside its range (month 13, day 31 of April, hour 24, ...).
    #[error("{input:?}: {field} out of range")]
    Range {
        /// The time as given.
        input: String,
        /// Which field.
        field: &'static str,
    },
    /// Before 1970-01-01T00:00:00Z, or past what nanoseconds in 64 bits hold
    /// (the year 2554).
    #[error("{0:?} is outside 1970 to 2554")]
    Outside(String),
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// RFC 3339 (`2026-11-25T13:00:00Z`, `2026-11-25T14:00:00.5+01:00`),
    /// a date (`2026-11-25`, midnight UTC) or Unix seconds (`1795611600`,
    /// `1795611600.25`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return parse_unix(s);
        }
        if s.len() == 10 {
            let days = parse_date(s, s)?;
            return from_parts(s, days, 0, 0);
        }
        parse_rfc3339(s)
    }
}

/// `SECONDS[.FRACTION]`.
fn parse_unix(s: &str) -> Result<Timestamp, TimeError> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || frac.contains('.') || (s.contains('.') && frac.is_empty()) {
        return Err(TimeError::Format(s.to_string()));
    }
    let secs: i64 = whole.parse().map_err(|_| TimeError::Outside(s.to_string()))?;
    from_parts(s, 0, secs, nanos_of(frac))
}

/// `YYYY-MM-DDTHH:MM:SS[.FRACTION](Z|+HH:MM|-HH:MM)`; `t` or a space for
/// `T` and `z` for `Z` are accepted too (RFC 3339, section 5.6).
fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
    let bad = || TimeError::Format(s.to_string());
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let days = parse_date(&s[..10], s)?;
    let (hms, rest) = s[11..].split_at(8);
    let [h, m, sec] = fields::<3>(hms, b':').ok_or_else(bad)?;
    let (hour, minute, second) = (number(h, s)?, number(m, s)?, number(sec, s)?);
    if hour > 23 {
        return Err(range(s, "hour"));
    }
    if minute > 59 {
        return Err(range(s, "minute"));
    }
    // 60 is a leap second: counted as the first second of the next minute.
    if second > 60 {
        return Err(range(s, "second"));
    }
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            r.split_at(end)
        }
        None => ("", rest),
    };
    let offset = match zone {
        "Z" | "z" => 0,
        "" => return Err(TimeError::NoZone(s.to_string())),
        _ => {
            let (sign, hm) = match zone.split_at(1) {
                ("+", hm) => (1, hm),
                ("-", hm) => (-1, hm),
                _ => return Err(bad()),
            };
            let [oh, om] = fields::<2>(hm, b':').ok_or_else(bad)?;
            let (oh, om) = (number(oh, s)?, number(om, s)?);
            if oh > 23 || om > 59 {
                return Err(range(s, "offset"));
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    from_parts(s, days, hour * 3600 + minute * 60 + second - offset, nanos_of(frac))
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn parse_date(date: &str, input: &str) -> Result<i64, TimeError> {
    let [y, m, d] =
        fields::<3>(date, b'-').filter(|[y, _, _]| y.len() == 4).ok_or_else(|| TimeError::Format(input.to_string()))?;
    let (year, month, day) = (number(y, input)?, number(m, input)?, number(d, input)?);
    if !(1..=12).contains(&month) {
        return Err(range(input, "month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(range(input, "day"));
    }
    Ok(days_from_civil(year, month, day))
}

/// Exactly `N` fields of two ASCII digits (four for a year) split by `sep`.
fn fields<const N: usize>(s: &str, sep: u8) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut parts = s.split(sep as char);
    for slot in &mut out {
        let part = parts.next()?;
        if !(part.len() == 2 || part.len() == 4) || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part;
    }
    parts.next().is_none().then_some(out)
}

/// Digits as a number (the callers checked they are digits).
fn number(digits: &str, input: &str) -> Result<i64, TimeError> {
    digits.parse().map_err(|_| TimeError::Format(input.to_string()))
}

/// Up to nine fraction digits as nanoseconds; further digits are dropped.
fn nanos_of(frac: &str) -> u64 {
    frac.bytes().take(9).chain(std::iter::repeat(b'0')).take(9).fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

fn range(input: &str, field: &'static str) -> TimeError {
    TimeError::Range { input: input.to_string(), field }
}

/// Days and seconds (may be negative or past a day) to a [`Timestamp`].
fn from_parts(input: &str, days: i64, secs: i64, nanos: u64) -> Result<Timestamp, TimeError> {
    let outside = || TimeError::Outside(input.to_string());
    let total = days.checked_mul(86_400).and_then(|d| d.checked_add(secs)).ok_or_else(outside)?;
    let total = u64::try_from(total).map_err(|_| outside())?;
    let nanos = total.checked_mul(1_000_000_000).and_then(|n| n.checked_add(nanos)).ok_or_else(outside)?;
    Ok(Timestamp::from_unix_nanos(nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm, the inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<u64, TimeError> {
        s.parse::<Timestamp>().map(Timestamp::unix_nanos)
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn rfc3339_with_and_without_fraction() {
        // 2026-11-25T13:00:00Z: 20_782 days after the epoch, plus 13 hours.
        assert_eq!(t("2026-11-25T13:00:00Z"), Ok((20_782 * 86_400 + 13 * 3600) * S));
        assert_eq!(t("2026-11-25T13:00:00.5Z"), Ok((20_782 * 86_400 + 13 * 3600) * S + S / 2));
        assert_eq!(t("2026-11-25T13:00:00.000123456789Z"), Ok((20_782 * 86_400 + 13 * 3600) * S + 123_456));
        assert_eq!(t("2026-11-25t13:00:00z"), t("2026-11-25T13:00:00Z"));
        assert_eq!(t("2026-11-25 13:00:00Z"), t("2026-11-25T13:00:00Z"));
    }

    #[test]
    fn offsets_are_subtracted() {
        assert_eq!(t("2026-11-25T14:30:00+01:30"), t("2026-11-25T13:00:00Z"));
        assert_eq!(t("2026-11-24T23:00:00-14:00"), t("2026-11-25T13:00:00Z"));
    }

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(t("2026-11-25"), t("2026-11-25T00:00:00Z"));
        assert_eq!(t("1970-01-01"), Ok(0));
        assert_eq!(t("2000-03-01"), Ok(11_017 * 86_400 * S));
        assert_eq!(t("2024-02-29").map(|n| n % (86_400 * S)), Ok(0));
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(t("1795611600"), t("2026-11-25T13:00:00Z"));
        assert_eq!(t("1795611600.25"), Ok(1_795_611_600 * S + S / 4));
        assert_eq!(t("0"), Ok(0));
    }

    #[test]
    fn round_trip_with_the_writer() {
        let at = Timestamp::from_unix_nanos(1_795_613_563_897_369_000);
        assert_eq!(at.to_rfc3339().parse::<Timestamp>(), Ok(at));
    }

    #[test]
    fn errors_say_why() {
        assert!(matches!(t("2026-11-25T13:00:00"), Err(TimeError::NoZone(_))));
        assert!(matches!(t("2026-13-01"), Err(TimeError::Range { field: "month", .. })));
        assert!(matches!(t("2026-04-31"), Err(TimeError::Range { field: "day", .. })));
        assert!(matches!(t("2025-02-29"), Err(TimeError::Range { field: "day", .. })));
        assert!(matches!(t("2026-11-25T24:00:00Z"), Err(TimeError::Range { field: "hour", .. })));
        assert!(matches!(t("1969-12-31"), Err(TimeError::Outside(_))));
        assert!(matches!(t("1970-01-01T00:30:00+01:00"), Err(TimeError::Outside(_))));
        assert!(matches!(t("99999999999999999999"), Err(TimeError::Outside(_))));
        for bad in [
            "",
            "yesterday",
            "2026-11-25T13:00Z",
            "2026-11-25T13:00:00.Z",
            "1.2.3",
            "12.",
            "+5",
            "26-11-25",
            "2026-11-2\u{e9}T13:00:00Z",
        ] {
            assert!(matches!(t(bad), Err(TimeError::Format(_))), "{bad:?}: {:?}", t(bad));
        }
        let msg = t("2026-11-25T13:00:00").expect_err("no zone").to_string();
        assert!(msg.contains("add Z"), "{msg}");
    }
}
