//! `mrsequential APP.so FILES...`: the reference the tests compare against. One process,
//! no partitions, no RPC, no files in between: map every file, group by key (combining
//! as values arrive if the app has a combiner), reduce each key in key order, write
//! `mr-out-0` (as `key result` lines, or as the app's own lines for an app with raw
//! output).

use clap::Parser;
use mr::atomic::AtomicFile;
use mr::combinebuf::CombineBuffer;
use mr::plugin::App;
use mr::sortbuf::SortBuffer;
use mr::task::Counters;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs an mr app sequentially and writes all output, sorted by key, to one file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Output file.
    #[arg(long, default_value = "mr-out-0")]
    output: PathBuf,
    /// The app library, e.g. target/release/libwc.so.
    app: PathBuf,
    /// Input files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mrsequential: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let app = App::load(&args.app).map_err(|e| e.to_string())?;
    // With a combiner, values are grouped by key and folded as they arrive (as a map
    // task does); without one, every pair is kept and sorted.
    let mut grouped = CombineBuffer::new(1);
    let mut sorted = SortBuffer::new(1);
    let mut counters = Counters::default();
    let mut combined = Counters::default();
    for path in &args.files {
        let bytes = mr::split::read_whole(path)
            .map_err(|e| format!("input {}: {e} (check the path)", path.display()))?;
        let contents = mr::split::decode_input(bytes);
        let filename = path.to_string_lossy();
        // The buffer's kind is chosen once per file, not looked at for every record.
        let mut push_err = None;
        let mapped = if app.has_combiner() {
            // Made once, not per record: the record's call then passes one reference.
            let mut combine = |k: &[u8], vs: &[mr::plugin::ValueRef<'_>], out: &mut Vec<u8>| {
                app.combine_values(k, vs, &mut combined, out)
            };
            app.map(&filename, &contents, &mut counters, |k, v| {
                if grouped.push_common(k, v) {
                    return;
                }
                if let Err(e) = grouped.push(k, v, || 0, &mut combine) {
                    push_err.get_or_insert_with(|| format!("combine: {e}"));
                }
            })
        } else {
            app.map(&filename, &contents, &mut counters, |k, v| {
                if let Err(e) = sorted.push(0, k, v) {
                    push_err.get_or_insert_with(|| e.to_string());
                }
            })
        };
        mapped.map_err(|e| format!("map of {}: {e}", path.display()))?;
        if let Some(e) = push_err {
            return Err(format!("map of {}: {e}", path.display()));
        }
        mr::split::recycle(contents.into_bytes());
    }
    let mut out = Vec::new();
    let mut reduced = Counters::default();
    let mut file = AtomicFile::create(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let write_err = |e: std::io::Error| format!("cannot write {}: {e}", args.output.display());
    let mut reduce_line = |k: &[u8], vs: &[&[u8]]| -> Result<(), String> {
        out.clear();
        app.reduce(k, vs, &mut reduced, &mut out)
            .map_err(|e| format!("reduce: {e}"))?;
        if app.raw_output() {
            // The app writes its own lines (see `mrapp::export_app!`'s `raw_output`).
            return file.write_all(&out).map_err(write_err);
        }
        file.write_all(k).map_err(write_err)?;
        file.write_all(b" ").map_err(write_err)?;
        file.write_all(&out).map_err(write_err)?;
        file.write_all(b"\n").map_err(write_err)
    };
    if app.has_combiner() {
        grouped.drain_groups(0, &mut reduce_line)?;
    } else {
        sorted.drain_groups(0, &mut reduce_line)?;
    }
    file.commit(true).map_err(write_err)?;
    counters.merge(&combined);
    counters.merge(&reduced);
    // The app's counters, for a person (or a test) to compare with a job's report.
    for (name, n) in &counters.0 {
        eprintln!("counter {name:?} = {n}");
    }
    Ok(())
}
