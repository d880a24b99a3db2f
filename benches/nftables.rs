//! Throughput and latency of the nftables backend against the running kernel.
//!
//! Run `benches/nftables.sh` as root: it builds this in release, creates a
//! throw-away network namespace with a table, runs this inside and deletes
//! the namespace. By hand, inside a namespace that holds the table:
//!
//!     nftables --table NAME [--family inet|ip|ip6] [--reps 5] [--single 5000] [--legacy]
//!
//! Without `--table` it does nothing (so that a plain `cargo bench` never
//! writes into the table of the machine it runs on).

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ftp_pinhole::backend::nftables::{Features, Nftables};
use ftp_pinhole::backend::{Backend, TableFamily, TableSpec};
use ftp_pinhole::ftp::Mode;
use ftp_pinhole::policy::{Pinhole, SourcePort};

/// Long enough that nothing expires during a run.
const TTL: Duration = Duration::from_secs(600);
/// Batch sizes measured.
const BATCHES: [usize; 2] = [1_000, 10_000];

/// The command line.
struct Args {
    table: Option<String>,
    family: TableFamily,
    reps: usize,
    single: usize,
    legacy: bool,
}

fn args() -> Result<Args> {
    let mut a = Args { table: None, family: TableFamily::Inet, reps: 5, single: 5_000, legacy: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--table" => a.table = Some(value()?),
            "--family" => a.family = value()?.parse().map_err(anyhow::Error::msg)?,
            "--reps" => a.reps = value()?.parse().context("--reps")?,
            "--single" => a.single = value()?.parse().context("--single")?,
            "--legacy" => a.legacy = true,
            // What `cargo bench` passes to a harness-less bench.
            "--bench" => {}
            other => bail!("unknown argument {other:?}"),
        }
    }
    a.reps = a.reps.clamp(1, 100);
    a.single = a.single.clamp(1, 60_000);
    Ok(a)
}

/// The i-th distinct pinhole (documentation addresses; distinct for i < 62,500 x 64,000).
fn pinhole(i: usize) -> Pinhole {
    let src = Ipv4Addr::new(192, 0, 2, (1 + i % 250) as u8);
    let dst = Ipv4Addr::new(198, 51, 100, (1 + (i / 250) % 250) as u8);
    Pinhole {
        mode: Mode::Passive,
        src: IpAddr::V4(src),
        sport: SourcePort::Any,
        dst: IpAddr::V4(dst),
        dport: (1024 + i / 62_500) as u16,
        ttl: TTL,
    }
}

/// Applies `n` operations of one kind in one flush; its wall time.
fn flush_all(nft: &mut Nftables, n: usize, open: bool) -> Result<Duration> {
    for i in 0..n {
        if open {
            nft.open(&pinhole(i));
        } else {
            nft.close(&pinhole(i));
        }
    }
    let started = Instant::now();
    let outcomes = nft.flush()?;
    let took = started.elapsed();
    if let Some(bad) = outcomes.iter().find(|o| o.result.is_err()) {
        bail!("{} {} failed: {:?}", bad.op.as_str(), bad.pinhole, bad.result);
    }
    Ok(took)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Elements per second, batched: open (new), open again (refresh), close.
fn batched(nft: &mut Nftables, n: usize, reps: usize) -> Result<()> {
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut shape = [(0, 0); 3];
    for _ in 0..reps {
        for (k, open) in [true, true, false].into_iter().enumerate() {
            rates[k].push(n as f64 / flush_all(nft, n, open)?.as_secs_f64());
            let s = nft.last_flush();
            shape[k] = (s.batches, s.rounds);
            if k == 1 {
                let live = nft.list()?.len();
                if live != n {
                    bail!("{live} elements in the kernel after {n} opens");
                }
            }
        }
    }
    let [open, refresh, close] = &mut rates;
    println!(
        "{n:>6} per flush | open {:>9.0}/s | refresh {:>9.0}/s | close {:>9.0}/s | batches/rounds {}/{} {}/{} {}/{} \
         (median of {reps})",
        median(open),
        median(refresh),
        median(close),
        shape[0].0,
        shape[0].1,
        shape[1].0,
        shape[1].1,
        shape[2].0,
        shape[2].1,
    );
    Ok(())
}

/// Mean, p50, p99 and max of a sample, in microseconds.
fn stats(name: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let n = samples.len().max(1);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |p: f64| samples.get(((n as f64 * p).ceil() as usize).clamp(1, n) - 1).copied().unwrap_or_default();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    println!(
        "{name:<8} n={:<6} mean {:>7.1} us | p50 {:>7.1} us | p99 {:>7.1} us | max {:>8.1} us",
        samples.len(),
        us(mean),
        us(at(0.50)),
        us(at(0.99)),
        us(at(1.0))
    );
}

/// One operation per flush, waiting for the kernel each time.
fn single(nft: &mut Nftables, n: usize) -> Result<()> {
    for (name, open) in [("open", true), ("refresh", true), ("close", false)] {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            if open {
                nft.open(&pinhole(i));
            } else {
                nft.close(&pinhole(i));
            }
            let started = Instant::now();
            let outcomes = nft.flush()?;
            samples.push(started.elapsed());
            if let Some(bad) = outcomes.iter().find(|o| o.result.is_err()) {
                bail!("{name} {} failed: {:?}", bad.pinhole, bad.result);
            }
        }
        stats(name, &mut samples);
    }
    Ok(())
}

fn run(a: &Args, table: &str) -> Result<()> {
    let spec = TableSpec::new(a.family, table)?;
    let mut nft = Nftables::connect(spec)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!("kernel {} | {cpus} CPUs | table {} | {:?}", kernel.trim(), nft.table(), nft.features());
    let mid = Features { destroy: true, ..Features::NONE };
    let passes: &[(&str, Features)] = if a.legacy {
        &[
            ("this kernel", Features::ALL),
            ("as on kernels 6.3 to 6.11", mid),
            ("as on kernels before 6.3", Features::NONE),
        ]
    } else {
        &[("this kernel", Features::ALL)]
    };
    for (name, allowed) in passes {
        nft.limit_features(*allowed);
        println!("\n-- {name}: {:?}", nft.features());
        println!("\nbatched (one flush of N operations, one send):");
        for n in BATCHES {
            batched(&mut nft, n, a.reps)?;
        }
        println!("\none operation per flush, latency:");
        single(&mut nft, a.single)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nftables bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let Some(table) = a.table.clone() else {
        println!("nftables bench: skipped (no --table); run benches/nftables.sh as root");
        return ExitCode::SUCCESS;
    };
    match run(&a, &table) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nftables bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
