//! `worker [--coordinator ADDR] APP.so`

use clap::Parser;
use mr::plugin::App;
use mr::rpc::{Addr, JobEnd, DEFAULT_ADDR};
use mr::units::{parse_secs, parse_size};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use worker::{Config, Exit};

/// Runs map and reduce tasks of an mr app for the coordinator until the job is done.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The coordinator: unix:PATH (same machine, shared directory), or HOST:PORT for TCP
    /// (nothing shared: map output stays here and is served to reducers elsewhere).
    #[arg(long, default_value = DEFAULT_ADDR)]
    coordinator: Addr,
    /// File holding the job's shared secret (default: $MR_TOKEN if set, else none).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// TCP without TLS (the coordinator must run so too): anyone on the path can read
    /// and alter the job's data. Only for a network you trust.
    #[arg(long)]
    insecure_plaintext: bool,
    /// With a TCP coordinator: where this worker's data server listens for reducers
    /// fetching its map output. Port 0 picks one; 0.0.0.0 is advertised as the address
    /// this machine uses to reach the coordinator.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:0")]
    data_addr: String,
    /// Directory for intermediate files.
    #[arg(long, default_value = ".")]
    work_dir: PathBuf,
    /// Map-side memory budget before sorted runs spill to disk (e.g. 256MiB).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    map_memory: u64,
    /// Files a reduce task merges at once (at least 2); more map outputs are merged in
    /// passes through sorted runs, so the open-file limit is never reached.
    #[arg(long, default_value_t = worker::exec::MERGE_FAN_IN, value_parser = parse_fan_in)]
    merge_fan_in: usize,
    /// Seconds to keep trying to reach the coordinator at start.
    #[arg(long, default_value = "2", value_parser = parse_secs)]
    connect_timeout: Duration,
    /// Seconds to keep trying a coordinator that stopped answering before exiting.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    coordinator_timeout: Duration,
    /// Test hook (hidden from --help; see worker::TestHooks): seconds to sleep before
    /// each task, to make a slow worker for the fault tests.
    #[arg(long, default_value = "0", value_parser = parse_delay, hide = true)]
    task_delay: Duration,
    /// Test hook (hidden; see worker::TestHooks): hold an attempt while a file named
    /// for it exists in this directory.
    #[arg(long, hide = true)]
    hold_dir: Option<PathBuf>,
    /// The app library, e.g. target/release/libwc.so.
    app: PathBuf,
}

fn parse_fan_in(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 2")),
    }
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        Ok(Duration::ZERO)
    } else {
        parse_secs(s)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Reduces merge many files and data servers serve many peers: use what the
    // administrator allows, not the soft default. Failing to raise it is not fatal.
    let _ = mr::limits::raise_open_files();
    // Tasks free big buffers that the next task needs again.
    mr::limits::keep_freed_memory(256 << 20);
    // Load and check the app before anything else, so a bad plugin fails at once.
    let app = match App::load(&args.app) {
        Ok(app) => Arc::new(app),
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    let token = match mr::auth::Token::resolve(args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    let tcp = matches!(args.coordinator, Addr::Tcp(_));
    if let Err(e) = mr::secure::check_token(&token, tcp, args.insecure_plaintext) {
        eprintln!("worker: {e}");
        return ExitCode::from(2);
    }
    mr::logging::init();
    let mut config = Config::new(args.coordinator);
    config.token = token;
    config.insecure_plaintext = args.insecure_plaintext;
    config.data_addr = args.data_addr;
    config.work_dir = args.work_dir;
    config.map_memory = usize::try_from(args.map_memory).unwrap_or(usize::MAX);
    config.connect_timeout = args.connect_timeout;
    config.coordinator_timeout = args.coordinator_timeout;
    config.test_hooks.task_delay = args.task_delay;
    config.test_hooks.hold_dir = args.hold_dir;
    config.merge_fan_in = args.merge_fan_in;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(worker::run(config, app));
    // A task thread of a revoked attempt may still be running; don't wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(Exit::Job(JobEnd::Succeeded)) | Ok(Exit::CoordinatorGone) => ExitCode::SUCCESS,
        Ok(Exit::Job(JobEnd::Failed)) => {
            eprintln!("worker: the job failed (the coordinator says why)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}
