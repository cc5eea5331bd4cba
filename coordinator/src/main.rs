//! `coordinator [--reduce R] [--partition hash|range] [--addr ADDR] [--token-file PATH]
//! [--task-timeout SECS] [--report FILE] [--report-html FILE] [--http ADDR] FILES...`

use clap::Parser;
use coordinator::{plan_inputs, Config};
use mr::rpc::{Addr, JobEnd, Listener, DEFAULT_ADDR};
use mr::units::{parse_secs, parse_size};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs a MapReduce job: one map task per input split, R reduce tasks, for workers
/// started with `worker APP.so` to execute. Exits 0 once every `mr-out-Y` is final.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Number of reduce tasks (R).
    #[arg(long, short = 'r', default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    reduce: u32,
    /// Where to listen: unix:PATH (workers on this machine, sharing its directory), or
    /// HOST:PORT for TCP (workers anywhere; nothing shared but the network).
    #[arg(long, visible_alias = "listen", default_value = DEFAULT_ADDR)]
    addr: Addr,
    /// File holding the job's shared secret; every connection must prove it (default:
    /// $MR_TOKEN if set, else none).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// TCP without TLS: anyone on the path can read and alter the job's data. Only for
    /// a network you trust; the only way to use TCP without a token.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Workers on other machines read the input paths themselves (shared storage)
    /// instead of streaming splits from the coordinator.
    #[arg(long)]
    shared_inputs: bool,
    /// Seconds a task may run before it is handed to another worker.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    task_timeout: Duration,
    /// Seconds without a heartbeat after which a worker is lost.
    #[arg(long, default_value = "3", value_parser = parse_secs)]
    worker_timeout: Duration,
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
    /// Directory for the final mr-out-* files.
    #[arg(long, default_value = ".")]
    output: PathBuf,
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
    /// Journal of task state changes, so that the job survives a coordinator crash:
    /// running the same command again (or with --resume) picks the job up.
    #[arg(long, default_value = coordinator::journal::DEFAULT_PATH)]
    journal: PathBuf,
    /// Do not keep a journal.
    #[arg(long, conflicts_with = "resume")]
    no_journal: bool,
    /// Resume the unfinished job recorded in the journal; fail if there is none.
    #[arg(long)]
    resume: bool,
    /// Input files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Reduces merge many files and data servers serve many peers: use what the
    // administrator allows, not the soft default. Failing to raise it is not fatal.
    let _ = mr::limits::raise_open_files();
    coordinator::views::progress::init_logging(mr::logging::DEFAULT_FILTER);
    let token = match mr::auth::Token::resolve(args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("coordinator: {e}");
            return ExitCode::from(2);
        }
    };
    let tcp = matches!(args.addr, Addr::Tcp(_));
    if let Err(e) = mr::secure::check_token(&token, tcp, args.insecure_plaintext) {
        eprintln!("coordinator: {e}");
        return ExitCode::from(2);
    }
    let splits = match plan_inputs(&args.files, args.split_size) {
        Ok(s) => s,
        Err(bad) => {
            for b in bad {
                eprintln!("coordinator: {b}");
            }
            return ExitCode::from(2);
        }
    };
    let config = Config {
        n_reduce: args.reduce,
        split_size: args.split_size,
        partition: args.partition,
        speculation: (!args.no_speculation).then_some(coordinator::speculate::Speculation::DEFAULT),
        task_timeout: args.task_timeout,
        worker_timeout: args.worker_timeout,
        out_dir: args.output.clone(),
        journal: (!args.no_journal).then(|| args.journal.clone()),
        resume: args.resume,
        progress: true,
        report_file: args.report.clone(),
        report_html: args.report_html.clone(),
        http: args.http.clone(),
        token,
        insecure_plaintext: args.insecure_plaintext,
        shared_inputs: args.shared_inputs,
        ..Config::default()
    };
    // One runtime thread. Every call takes the one job lock, so a second thread adds no
    // throughput, only hand-offs: with a thread idle, each call woke it (a futex wake and
    // a task switch), 18% of the coordinator's CPU in a job of small maps with two
    // workers, and no faster at 2,000 simulated workers (docs/performance.md). Heartbeats
    // have their own thread (`beats`), so a journal sync that stalls on a slow disk
    // delays calls, never a worker's liveness.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coordinator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let listener = Listener::bind(&args.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
        coordinator::run(config, splits, listener).await
    });
    // Workers' idle connections must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(outcome) => match (outcome.end, outcome.failure) {
            (JobEnd::Succeeded, _) => ExitCode::SUCCESS,
            (JobEnd::Failed, Some(f)) => {
                eprintln!("coordinator: job failed: {f}");
                ExitCode::FAILURE
            }
            (JobEnd::Failed, None) => {
                eprintln!("coordinator: job failed");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("coordinator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
