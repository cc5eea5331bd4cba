//! `mr-chaos [--seeds N | --seed S] [--mb 50] [--keep]`: runs wc under seeded chaos
//! (workers killed, frozen past the task timeout, slowed) and checks that the output is
//! right, never seen partial, that no temp file is left and that every process exits.
//! Prints one line per seed; stops with a non-zero status at the first failure, whose
//! seed replays it (`--seed S`).
//!
//! # Layout
//! - [`rng`]: the seeded PRNG behind every chaos decision.
//! - [`corpus`]: the input corpus and the reference output.
//! - [`watch`]: the thread that reads every `mr-out-*` as it appears.
//! - [`run`]: one run: processes, the chaos loop, the checks.

mod corpus;
mod rng;
mod run;
mod watch;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Chaos test of mr: wc over a generated corpus with 4 workers that get killed, frozen
/// and slowed at seeded random moments.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Run seeds 1..=N.
    #[arg(long, default_value_t = 1, conflicts_with = "seed")]
    seeds: u64,
    /// Run this one seed (to replay a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Corpus size in MiB.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    mb: u32,
    /// Keep every run directory (failed runs are always kept).
    #[arg(long)]
    keep: bool,
}

/// The binaries under test, found next to this one (`target/release`).
pub struct Bins {
    /// The coordinator.
    pub coordinator: PathBuf,
    /// The worker.
    pub worker: PathBuf,
    /// The sequential reference.
    pub mrsequential: PathBuf,
    /// The wc app library.
    pub wc: PathBuf,
}

impl Bins {
    fn locate() -> Result<Bins> {
        let exe = std::env::current_exe().context("cannot find this executable's path")?;
        let dir = exe
            .parent()
            .context("this executable has no parent directory")?;
        let bins = Bins {
            coordinator: dir.join("coordinator"),
            worker: dir.join("worker"),
            mrsequential: dir.join("mrsequential"),
            wc: dir.join("libwc.so"),
        };
        for p in [
            &bins.coordinator,
            &bins.worker,
            &bins.mrsequential,
            &bins.wc,
        ] {
            if !p.is_file() {
                bail!(
                    "{} is missing; run `cargo build --release --workspace` first",
                    p.display()
                );
            }
        }
        Ok(bins)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match drive(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr-chaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn drive(args: &Args) -> Result<()> {
    let bins = Bins::locate()?;
    let corpus = corpus::prepare(&corpus::default_tool(), args.mb, &bins)?;
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (1..=args.seeds).collect(),
    };
    let started = std::time::Instant::now();
    for seed in &seeds {
        match run::run(*seed, &bins, &corpus, args.keep) {
            Ok(summary) => println!("chaos seed={seed}: PASS {summary}"),
            Err(e) => {
                println!("chaos seed={seed}: FAIL {e:#}");
                bail!("seed {seed} failed; replay with `mr-chaos --seed {seed}`");
            }
        }
    }
    println!(
        "chaos: {} seed(s) passed in {:.1}s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
