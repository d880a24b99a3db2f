//! An audit [`Report`] as tables for people.

use std::io::{self, Write};

use super::report::{Outcomes, Report, Talker};
use crate::ftp::Mode;
use crate::report::{write_table, Column};

const PINHOLE_COLUMNS: [Column<'static>; 10] = [
    Column::left("CLIENT"),
    Column::left("SERVER"),
    Column::left("MODE"),
    Column::right("OPENED"),
    Column::right("USED"),
    Column::right("EXPIRED"),
    Column::right("CLOSED"),
    Column::right("RENEWED"),
    Column::right("OPEN AT END"),
    Column::left("CLOSED BY REASON"),
];

/// Write the report: pinholes per pair and mode, refusals, top talkers,
/// totals; a blank line between sections.
pub fn write_text(out: &mut dyn Write, report: &Report, top: usize) -> io::Result<()> {
    let mut rows: Vec<Vec<String>> = report
        .pinholes
        .iter()
        .map(|p| {
            let mode = match p.mode {
                Mode::Active => "active",
                Mode::Passive => "passive",
            };
            outcome_row(&p.client.to_string(), &p.server.to_string(), mode, &p.outcomes)
        })
        .collect();
    if !rows.is_empty() {
        rows.push(outcome_row("total", "", "", &report.pinholes_total));
    }
    section(out, "Data ports opened, per client/server pair and mode", &PINHOLE_COLUMNS, &rows)?;

    let rows: Vec<Vec<String>> = report
        .refused
        .by_reason
        .iter()
        .map(|(reason, n)| vec![reason.clone(), n.to_string()])
        .chain((report.refused.total > 0).then(|| vec!["total".to_string(), report.refused.total.to_string()]))
        .collect();
    section(out, "Refused, by reason", &[Column::left("REASON"), Column::right("COUNT")], &rows)?;

    let rows: Vec<Vec<String>> = report
        .refused
        .by_pair
        .iter()
        .map(|p| vec![p.client.to_string(), p.server.to_string(), p.reason.clone(), p.count.to_string()])
        .collect();
    let columns = [Column::left("CLIENT"), Column::left("SERVER"), Column::left("REASON"), Column::right("COUNT")];
    section(out, "Refused, per client/server pair", &columns, &rows)?;

    talkers(out, &format!("Top {top} clients, by pinholes opened"), "CLIENT", &report.top_clients)?;
    talkers(out, &format!("Top {top} servers, by pinholes opened"), "SERVER", &report.top_servers)?;

    let t = &report.totals;
    let with = |n: u64, detail: String| if n > 0 { detail } else { String::new() };
    let rows = [
        ["records", &t.records.to_string(), ""],
        ["runs", &t.runs.to_string(), ""],
        ["sessions", &t.sessions.to_string(), ""],
        ["logins", &t.logins.to_string(), ""],
        ["encrypted sessions", &t.encrypted.to_string(), ""],
        ["pinholes opened", &t.opened.to_string(), ""],
        ["refused", &t.refused.to_string(), ""],
        ["backend errors", &t.backend_errors.to_string(), &with(t.backend_errors, counts(&t.backend_errors_by_op))],
        ["stream gaps", &t.stream_gaps.to_string(), &with(t.stream_gaps, format!("{} bytes lost", t.stream_gap_bytes))],
        ["outcomes without an open", &t.unmatched_outcomes.to_string(), ""],
    ]
    .map(|row| row.map(str::to_string));
    writeln!(out, "Totals")?;
    write_table(out, &[Column::left(""), Column::right(""), Column::left("")], &rows)?;
    match (&t.first, &t.last) {
        (Some(first), Some(last)) => writeln!(out, "time span: {first} to {last} ({})", duration(t.span_s)),
        _ => writeln!(out, "time span: no records"),
    }
}

fn outcome_row(client: &str, server: &str, mode: &str, o: &Outcomes) -> Vec<String> {
    vec![
        client.to_string(),
        server.to_string(),
        mode.to_string(),
        o.opened.to_string(),
        o.used.to_string(),
        o.expired.to_string(),
        o.closed.to_string(),
        o.renewed.to_string(),
        o.open_at_end.to_string(),
        counts(&o.closed_by_reason),
    ]
}

fn talkers(out: &mut dyn Write, title: &str, what: &'static str, talkers: &[Talker]) -> io::Result<()> {
    let rows: Vec<Vec<String>> =
        talkers.iter().map(|t| vec![t.address.to_string(), t.opened.to_string(), t.refused.to_string()]).collect();
    section(out, title, &[Column::left(what), Column::right("OPENED"), Column::right("REFUSED")], &rows)
}

/// A title, the table (or `(none)`), a blank line.
fn section(out: &mut dyn Write, title: &str, columns: &[Column<'_>], rows: &[Vec<String>]) -> io::Result<()> {
    writeln!(out, "{title}")?;
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    } else {
        write_table(out, columns, rows)?;
    }
    writeln!(out)
}

/// `a 1, b 2`, in key order.
fn counts(m: &std::collections::BTreeMap<String, u64>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Seconds as `12.345s`, or `3h 02m 05s` / `2d 03h 04m 05s` from a minute
/// up.
fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.3}s");
    }
    let s = secs.round() as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h) {
        (0, 0) => format!("{m}m {s:02}s"),
        (0, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::report::Report;

    #[test]
    fn durations() {
        assert_eq!(duration(0.0), "0.000s");
        assert_eq!(duration(27.8969), "27.897s");
        assert_eq!(duration(60.0), "1m 00s");
        assert_eq!(duration(3725.4), "1h 02m 05s");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0 + 4.0 * 60.0 + 5.0), "2d 03h 04m 05s");
    }

    #[test]
    fn an_empty_report_says_none() {
        let mut out = Vec::new();
        write_text(&mut out, &Report::from_records(Vec::<crate::audit::AuditRecord>::new(), 10), 10).expect("write");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.starts_with("Data ports opened, per client/server pair and mode\n(none)\n\n"), "{text}");
        assert!(text.contains("Top 10 clients, by pinholes opened\n(none)\n"), "{text}");
        assert!(text.ends_with("outcomes without an open  0\ntime span: no records\n"), "{text}");
    }
}
