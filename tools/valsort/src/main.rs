//! `valsort [--input FILE]... OUTPUT...`: checks that the OUTPUT files, read in order, are
//! one stream of 100-byte records sorted by key, and (with --input) that they hold exactly
//! the input's records, by count and order-independent checksum.
//!
//! Exit 0: valid. Exit 1: a violation (order, format, lost or changed records). Exit 2: a
//! file cannot be read, an input is not record data, or bad usage.

use clap::Parser;
use gensort::{Summary, KEY_LEN, RECORD_LEN};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Validates sorted Sort Benchmark output (gensort -a records).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// An input of the sort; with any, the outputs must hold exactly the inputs' records.
    #[arg(long = "input", value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// The sorted output files, in key order (e.g. mr-out-0 mr-out-1 ...).
    #[arg(required = true, value_name = "OUTPUT")]
    outputs: Vec<PathBuf>,
}

/// Why validation stopped; the message is the whole one-line report.
enum Failure {
    /// The output is wrong.
    Violation(String),
    /// A file could not be used at all.
    Unusable(String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(Failure::Violation(msg)) => {
            eprintln!("valsort: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Unusable(msg)) => {
            eprintln!("valsort: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<String, Failure> {
    // Open everything first: a missing file is reported as such, not hidden behind an
    // order violation found earlier in the stream.
    let outputs = open_all(&args.outputs)?;
    let inputs = open_all(&args.inputs)?;

    // 10486 records, just over 1 MiB; a whole number of records so that, once the buffer
    // has been filled, no record straddles two reads.
    let mut buf = vec![0u8; (1 << 20) / RECORD_LEN * RECORD_LEN + RECORD_LEN];
    let mut checker = OrderChecker::default();
    for (path, file) in args.outputs.iter().zip(outputs) {
        checker.start_file(path);
        for_each_chunk(path, file, &mut buf, |chunk| checker.check(chunk))?;
        if let Some(len) = checker.short_record {
            return Err(Failure::Violation(format!(
                "{}: record {} is short ({len} of {RECORD_LEN} bytes): the file's length is not a multiple of {RECORD_LEN}",
                path.display(),
                checker.index,
            )));
        }
    }
    let out = checker.summary;

    let mut report = format!(
        "Records: {}\nChecksum: {:x}\nDuplicate keys: {}\n",
        out.records, out.checksum, out.duplicate_keys
    );
    if args.inputs.is_empty() {
        report.push_str("SUCCESS - all records are in order\n");
        return Ok(report);
    }

    let mut input = Summary::default();
    for (path, file) in args.inputs.iter().zip(inputs) {
        let mut short = false;
        for_each_chunk(path, file, &mut buf, |chunk| {
            let whole = chunk.len() / RECORD_LEN * RECORD_LEN;
            for rec in chunk[..whole].chunks_exact(RECORD_LEN) {
                input.add(rec);
            }
            short = whole != chunk.len();
            Ok(())
        })?;
        if short {
            return Err(Failure::Unusable(format!(
                "input {}: length is not a multiple of {RECORD_LEN} bytes; pass the gensort file the sort read",
                path.display()
            )));
        }
    }
    if out.records != input.records {
        let what = if out.records < input.records {
            "records were lost"
        } else {
            "records were duplicated"
        };
        return Err(Failure::Violation(format!(
            "{} records in the output, {} in the input: {what}",
            out.records, input.records
        )));
    }
    if out.checksum != input.checksum {
        return Err(Failure::Violation(format!(
            "checksums differ (output {:x}, input {:x}): records were lost, duplicated or changed",
            out.checksum, input.checksum
        )));
    }
    report.push_str("SUCCESS - all records are in order, and match the input\n");
    Ok(report)
}

fn open_all(paths: &[PathBuf]) -> Result<Vec<File>, Failure> {
    paths
        .iter()
        .map(|p| {
            File::open(p).map_err(|e| {
                Failure::Unusable(format!(
                    "cannot open {}: {e}; check the path and its permissions",
                    p.display()
                ))
            })
        })
        .collect()
}

/// Reads `file` through `buf`, calling `f` with each filled stretch: always a whole
/// number of records except possibly the last one of the file, whose tail is short.
fn for_each_chunk(
    path: &Path,
    mut file: File,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    loop {
        let filled = fill(&mut file, buf).map_err(|e| {
            Failure::Unusable(format!(
                "cannot read {}: {e}; check the file and its device",
                path.display()
            ))
        })?;
        if filled > 0 {
            f(&buf[..filled])?;
        }
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// State carried across records and across file boundaries of the output stream.
#[derive(Default)]
struct OrderChecker {
    summary: Summary,
    /// The key of the last record seen, in any file.
    prev_key: Option<[u8; KEY_LEN]>,
    /// The last non-empty file before the current one and its last record's index, to
    /// name both sides of a violation at a file boundary.
    prev_file: Option<(PathBuf, u64)>,
    file: PathBuf,
    /// Index of the next record in the current file.
    index: u64,
    /// Set to the length of a trailing partial record.
    short_record: Option<usize>,
}

impl OrderChecker {
    fn start_file(&mut self, path: &Path) {
        if self.index > 0 {
            self.prev_file = Some((std::mem::take(&mut self.file), self.index - 1));
        }
        self.file = path.to_path_buf();
        self.index = 0;
    }

    fn check(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        let mut recs = chunk.chunks_exact(RECORD_LEN);
        for rec in &mut recs {
            if rec[RECORD_LEN - 2..] != *b"\r\n" {
                return Err(Failure::Violation(format!(
                    "{}: record {} does not end in \\r\\n: not a {RECORD_LEN}-byte record, or records are misaligned",
                    self.file.display(),
                    self.index
                )));
            }
            let key: [u8; KEY_LEN] = rec[..KEY_LEN].try_into().expect("KEY_LEN <= RECORD_LEN");
            if let Some(prev) = &self.prev_key {
                if key < *prev {
                    return Err(self.out_of_order(prev, &key));
                }
                if key == *prev {
                    self.summary.duplicate_keys += 1;
                }
            }
            self.prev_key = Some(key);
            self.summary.add(rec);
            self.index += 1;
        }
        if !recs.remainder().is_empty() {
            self.short_record = Some(recs.remainder().len());
        }
        Ok(())
    }

    #[cold]
    fn out_of_order(&self, prev: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> Failure {
        let prev_place = match (&self.prev_file, self.index) {
            (Some((file, index)), 0) => format!("{} record {index}", file.display()),
            _ => format!("record {}", self.index.saturating_sub(1)),
        };
        Failure::Violation(format!(
            "{}: record {} is out of order: key \"{}\" is less than key \"{}\" of {prev_place}",
            self.file.display(),
            self.index,
            key.escape_ascii(),
            prev.escape_ascii(),
        ))
    }
}
