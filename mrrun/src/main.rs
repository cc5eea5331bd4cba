//! `mr run --app APP.so [--workers N] [--reduce R] [--output DIR] [--split-size S]
//! [--report FILE] [--report-html FILE] [--http ADDR] FILES...`: one whole job on one
//! machine. `mr report JOB.json [-o FILE.html]`: a job's report as its HTML history.

mod local;

use clap::{Parser, Subcommand};
use coordinator::{plan_inputs, Config};
use mr::plugin::App;
use mr::rpc::JobEnd;
use mr::units::{parse_secs, parse_size};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// MapReduce on one machine.
#[derive(Parser, Debug)]
#[command(name = "mr", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a job with a coordinator and N workers inside this process, through the same
    /// code as `coordinator` + `worker`; the output equals mrsequential's.
    Run(RunArgs),
    /// Renders a job's JSON report (`--report FILE`) as one self-contained HTML page:
    /// summary, counters, timeline, slowest tasks, failures (what `--report-html`
    /// writes at the end of a job).
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// The report, as written by `coordinator --report` or `mr run --report`.
    json: PathBuf,
    /// Where to write the page (default: the report's path with `.html`).
    #[arg(long, short = 'o', value_name = "FILE.html")]
    output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The app library, e.g. target/release/libwc.so.
    #[arg(long)]
    app: PathBuf,
    /// Worker count (default: the number of cores).
    #[arg(long, short = 'w', value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
    /// Number of reduce tasks (R), hence of output files.
    #[arg(long, short = 'r', default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    reduce: u32,
    /// Directory for the final mr-out-* files.
    #[arg(long, short = 'o', default_value = ".")]
    output: PathBuf,
    /// Largest input split (e.g. 64MiB); smaller files are one map task each.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    split_size: u64,
    /// How keys are assigned to the R outputs: `hash` (each mr-out-Y sorted on its own)
    /// or `range` (split points sampled from the keys first: mr-out-0, mr-out-1, … in
    /// order are one sorted whole).
    #[arg(long, default_value = "hash", value_name = "hash|range")]
    partition: mr::partition::PartitionMode,
    /// Never start backup attempts of tasks running long (speculative execution; see
    /// docs/speculation.md).
    #[arg(long)]
    no_speculation: bool,
    /// Seconds a task may run before it is handed to another worker.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    task_timeout: Duration,
    /// Write the end-of-job report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the job's history (summary, counters, timeline, slowest tasks, failures) as
    /// one self-contained HTML file, which opens without a network.
    #[arg(long, value_name = "FILE")]
    report_html: Option<PathBuf>,
    /// Serve a status page on HOST:PORT (e.g. 127.0.0.1:8080; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Input files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Report(args) => report(&args),
    }
}

/// `mr report`: the JSON report in, the HTML page out (through a temp file, so a page
/// is never seen half written).
fn report(args: &ReportArgs) -> ExitCode {
    let out = args.output.clone().unwrap_or_else(|| {
        let html = args.json.with_extension("html");
        if html == args.json {
            // A report named *.html: never write over it.
            PathBuf::from(format!("{}.html", args.json.display()))
        } else {
            html
        }
    });
    let json = match std::fs::read_to_string(&args.json) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("mr: cannot read report {}: {e}", args.json.display());
            return ExitCode::from(2);
        }
    };
    let html = match coordinator::views::history::render(&json) {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "mr: {} is not an mr report (write one with --report FILE): {e}",
                args.json.display()
            );
            return ExitCode::from(2);
        }
    };
    let written = mr::atomic::AtomicFile::create(&out).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(html.as_bytes())?;
        f.commit(false)
    });
    match written {
        Ok(()) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mr: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// `mr run`.
fn run(args: RunArgs) -> ExitCode {
    // Reduces merge many files and data servers serve many peers: use what the
    // administrator allows, not the soft default. Failing to raise it is not fatal.
    let _ = mr::limits::raise_open_files();
    // Tasks free big buffers that the next task needs again.
    mr::limits::keep_freed_memory(256 << 20);
    // Check everything a user can get wrong before starting anything.
    let app = match App::load(&args.app) {
        Ok(app) => Arc::new(app),
        Err(e) => {
            eprintln!("mr: {e}");
            return ExitCode::from(2);
        }
    };
    let splits = match plan_inputs(&args.files, args.split_size) {
        Ok(s) => s,
        Err(bad) => {
            for b in bad {
                eprintln!("mr: {b}");
            }
            return ExitCode::from(2);
        }
    };
    // The progress display replaces the per-task log lines of the distributed mode.
    coordinator::views::progress::init_logging(
        "warn,coordinator::views::progress=info,coordinator::views::monitor=info,tarpc=error",
    );
    let workers = args.workers.map(|n| n as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let config = Config {
        n_reduce: args.reduce,
        split_size: args.split_size,
        partition: args.partition,
        speculation: (!args.no_speculation).then_some(coordinator::speculate::Speculation::DEFAULT),
        task_timeout: args.task_timeout,
        out_dir: args.output.clone(),
        progress: true,
        report_file: args.report.clone(),
        report_html: args.report_html.clone(),
        http: args.http.clone(),
        // Only the status page off loopback needs one (the job's socket is private).
        token: mr::auth::Token::resolve(None).unwrap_or_default(),
        ..Config::default()
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mr: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(local::run(config, splits, app, workers));
    // A task thread of a revoked attempt may still be running; don't wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(outcome) => match (outcome.end, outcome.failure) {
            (JobEnd::Succeeded, _) => {
                println!("{}", wrote(&args.output, outcome.reduces));
                ExitCode::SUCCESS
            }
            (JobEnd::Failed, Some(f)) => {
                eprintln!("mr: job failed: {f}");
                ExitCode::FAILURE
            }
            (JobEnd::Failed, None) => {
                eprintln!("mr: job failed");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("mr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `wrote 10 files: out/mr-out-0 … out/mr-out-9`.
fn wrote(dir: &Path, n: usize) -> String {
    let file = |i: usize| {
        dir.join(worker::exec::output_name(i as u32))
            .display()
            .to_string()
    };
    match n {
        1 => format!("wrote 1 file: {}", file(0)),
        2 => format!("wrote 2 files: {} {}", file(0), file(1)),
        _ => format!("wrote {n} files: {} … {}", file(0), file(n - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_names_the_output() {
        assert_eq!(
            wrote(Path::new("out"), 10),
            "wrote 10 files: out/mr-out-0 … out/mr-out-9"
        );
        assert_eq!(wrote(Path::new("."), 1), "wrote 1 file: ./mr-out-0");
        assert_eq!(
            wrote(Path::new("o"), 2),
            "wrote 2 files: o/mr-out-0 o/mr-out-1"
        );
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "mr",
            "run",
            "--app",
            "a.so",
            "--workers",
            "3",
            "--http",
            "127.0.0.1:0",
            "x",
            "y",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run: {:?}", cli.command);
        };
        assert_eq!((a.workers, a.reduce, a.files.len()), (Some(3), 10, 2));
        assert!(
            Cli::try_parse_from(["mr", "run", "--app", "a.so", "--workers", "0", "x"]).is_err()
        );
        assert!(Cli::try_parse_from(["mr", "run", "--app", "a.so"]).is_err());
        let cli = Cli::try_parse_from(["mr", "report", "job.json", "-o", "job.html"]).unwrap();
        let Command::Report(r) = cli.command else {
            panic!("not report: {:?}", cli.command);
        };
        assert_eq!(
            (r.json, r.output),
            ("job.json".into(), Some("job.html".into()))
        );
        assert!(Cli::try_parse_from(["mr", "report"]).is_err());
    }
}
