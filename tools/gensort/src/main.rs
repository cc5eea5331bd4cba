//! `gensort [-a] [-b START] [--seed S] [--skew] [--distinct K] RECORDS FILE`: writes
//! Sort Benchmark input records (the `gensort -a` ASCII format) to FILE.

use clap::Parser;
use gensort::{Generator, Options, RECORD_LEN};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generates Sort Benchmark records (100 bytes each, ASCII), deterministic by seed: record
/// i is the same whichever run and -b offset produces it.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// ASCII records. Accepted for compatibility with the real gensort; ASCII is the only
    /// format.
    #[arg(short = 'a')]
    ascii: bool,
    /// The first record number.
    #[arg(short = 'b', value_name = "START", default_value_t = 0)]
    start: u64,
    /// Seed of the random keys and filler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Zipf(1.0)-distributed 2-character key prefixes (the top one in ~10% of records);
    /// with --distinct, Zipf(1.0) over the distinct keys.
    #[arg(long)]
    skew: bool,
    /// Only K distinct keys, each record taking one of them.
    #[arg(long, value_name = "K")]
    distinct: Option<NonZeroU64>,
    /// Number of records to write.
    records: u64,
    /// Output file.
    file: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gensort: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // -a selects the only format there is.
    let _ = args.ascii;
    // Record numbers are u64; refuse a range that would wrap rather than repeat numbers.
    if u128::from(args.start) + u128::from(args.records) > 1 << 64 {
        return Err(format!(
            "-b {} plus {} records passes record number 2^64-1; use a smaller START or fewer records",
            args.start, args.records
        ));
    }
    let generator = Generator::new(Options {
        seed: args.seed,
        skew: args.skew,
        distinct: args.distinct,
    });
    let path = args.file.display();
    let file = File::create(&args.file).map_err(|e| {
        format!("cannot create {path}: {e}; check that its directory exists and is writable")
    })?;
    let write_err =
        |e: std::io::Error| format!("cannot write {path}: {e}; check free space on its device");
    // 4 MiB: large sequential writes, few system calls.
    let mut out = BufWriter::with_capacity(40_000 * RECORD_LEN, file);
    generator
        .write_records(args.start, args.records, &mut out)
        .map_err(write_err)?;
    out.flush().map_err(write_err)?;
    Ok(())
}
