//! `ftp-pinhole inspect`: the pipeline over capture files.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tracing::{debug, warn};

use ftp_pinhole::audit::{AuditLog, AuditRecord, FsyncPolicy};
use ftp_pinhole::decode::Skip;
use ftp_pinhole::pcap::{CaptureReader, PcapError};
use ftp_pinhole::pipeline::{Event, EventKind, Pipeline, PipelineConfig, Stats};
use ftp_pinhole::policy::Decision;
use ftp_pinhole::report::{write_summary, write_table, NegotiationRecord, TABLE_COLUMNS};
use ftp_pinhole::time::Timestamp;

use super::{CoreArgs, EXIT_BAD_INPUT, EXIT_OK};

/// Output format of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per negotiation per line (the schema is in README).
    Json,
    /// An aligned table for people.
    Text,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Capture files, pcap or pcapng.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Print no summary on standard error.
    #[arg(long, short)]
    quiet: bool,
    /// Also write the audit trail of what was seen to this file (appended;
    /// `-` for standard output). Each record's `run` is the capture's name.
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    #[command(flatten)]
    core: CoreArgs,
}

/// Inspect every file; a file that cannot be read is reported and skipped.
pub(crate) fn run(args: InspectArgs) -> anyhow::Result<u8> {
    let config = args.core.to_config();
    let mut audit = match &args.audit_log {
        Some(path) => Some(AuditLog::open(path, FsyncPolicy::Never)?),
        None => None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut failed = 0usize;
    let mut total = Stats::default();
    for path in &args.files {
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let (stats, result) = inspect_file(path, &name, &config, args.format, &mut out, audit.as_mut())?;
        if let Err(e) = result {
            failed += 1;
            out.flush().context("writing standard output")?;
            eprintln!("ftp-pinhole: {}: {e}", path.display());
        }
        if !args.quiet {
            if let Some(stats) = &stats {
                write_summary(&mut io::stderr(), &name, stats).context("writing the summary")?;
                total.merge(stats);
            }
        }
    }
    out.flush().context("writing standard output")?;
    if let Some(log) = &mut audit {
        log.sync()?;
    }
    if !args.quiet && args.files.len() > 1 {
        write_summary(&mut io::stderr(), "total", &total).context("writing the summary")?;
    }
    Ok(if failed > 0 { EXIT_BAD_INPUT } else { EXIT_OK })
}

/// Run one file through a fresh pipeline. The outer error is an output
/// failure (fatal); the inner one a capture that could not be read whole.
fn inspect_file(
    path: &Path,
    name: &str,
    config: &PipelineConfig,
    format: Format,
    out: &mut dyn Write,
    mut audit: Option<&mut AuditLog>,
) -> anyhow::Result<(Option<Stats>, Result<(), PcapError>)> {
    let mut reader = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => return Ok((None, Err(e))),
    };
    let mut pipeline = Pipeline::new(config.clone());
    let mut events: Vec<Event> = Vec::new();
    let mut rows = Vec::new();
    let mut last = Timestamp::EPOCH;
    let mut warned_links = std::collections::HashSet::new();
    let result = loop {
        let frame = match reader.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        last = last.max(frame.at);
        match frame.link {
            Ok(link) => pipeline.handle_frame(frame.at, link, frame.data, &mut events),
            Err(linktype) => {
                pipeline.skip(Skip::UnsupportedLink);
                if warned_links.insert(linktype) {
                    warn!(file = name, linktype, "link type not supported; its frames are skipped");
                }
            }
        }
        for event in events.drain(..) {
            report(name, frame.number, &event, format, out, &mut rows)?;
            if let Some(log) = audit.as_deref_mut() {
                log.write(&AuditRecord::from_event(&event, name))?;
            }
        }
    };
    pipeline.finish(last, &mut events);
    if let Some(log) = audit {
        for event in events.drain(..) {
            log.write(&AuditRecord::from_event(&event, name))?;
        }
    }
    if format == Format::Text && !rows.is_empty() {
        writeln!(out, "{name}:")?;
        write_table(out, &TABLE_COLUMNS, &rows)?;
    }
    Ok((Some(pipeline.stats()), result))
}

/// Print a negotiation (other events are the audit trail's business).
fn report(
    name: &str,
    frame: u64,
    event: &Event,
    format: Format,
    out: &mut dyn Write,
    rows: &mut Vec<[String; 8]>,
) -> anyhow::Result<()> {
    let EventKind::Negotiated { negotiation, decision } = &event.kind else {
        return Ok(());
    };
    let record = NegotiationRecord::new(name, frame, event.at, event.session, &event.control, negotiation, decision);
    match decision {
        Decision::Open(p) => {
            debug!(file = name, frame, session = %event.session, kind = %negotiation.kind, pinhole = %p, "open")
        }
        Decision::Refuse(r) => {
            debug!(file = name, frame, session = %event.session, kind = %negotiation.kind, reason = r.reason.code(), detail = %r.reason, "refuse")
        }
    }
    match format {
        Format::Json => {
            let mut line = serde_json::to_vec(&record).context("encoding a record")?;
            line.push(b'\n');
            out.write_all(&line).context("writing standard output")?;
        }
        Format::Text => rows.push(record.cells(event.at)),
    }
    Ok(())
}
