//! `mrsequential APP.so FILES...`: the reference the tests compare against. One process,
//! no partitions, no RPC: map every file, (combine per file if the app has a combiner,
//! as a map task would), sort everything, reduce each key, write `mr-out-0`.

use clap::Parser;
use mr::atomic::AtomicFile;
use mr::plugin::App;
use mr::sortbuf::SortBuffer;
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
    let mut all = SortBuffer::new(1);
    let mut out = Vec::new();
    for path in &args.files {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("input {}: {e} (check the path)", path.display()))?;
        let contents = mr::split::decode_input(bytes);
        let filename = path.to_string_lossy();
        let mut per_file = SortBuffer::new(1);
        let target = if app.has_combiner() {
            &mut per_file
        } else {
            &mut all
        };
        let mut push_err = None;
        app.map(&filename, &contents, |k, v| {
            if let Err(e) = target.push(0, k, v) {
                push_err.get_or_insert(e);
            }
        })
        .map_err(|e| format!("map of {}: {e}", path.display()))?;
        if let Some(e) = push_err {
            return Err(format!("map of {}: {e}", path.display()));
        }
        if app.has_combiner() {
            per_file.drain_groups(0, |k, vs| {
                out.clear();
                app.combine(k, vs, &mut out)
                    .map_err(|e| format!("combine: {e}"))?;
                all.push(0, k, &out).map_err(|e| e.to_string())
            })?;
        }
    }
    let mut file = AtomicFile::create(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let write_err = |e: std::io::Error| format!("cannot write {}: {e}", args.output.display());
    all.drain_groups(0, |k, vs| {
        out.clear();
        app.reduce(k, vs, &mut out)
            .map_err(|e| format!("reduce: {e}"))?;
        file.write_all(k).map_err(write_err)?;
        file.write_all(b" ").map_err(write_err)?;
        file.write_all(&out).map_err(write_err)?;
        file.write_all(b"\n").map_err(write_err)
    })?;
    file.commit(true).map_err(write_err)
}
