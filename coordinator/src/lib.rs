//! The `mr` coordinator: cuts the input into splits, hands map and then reduce tasks to
//! workers over RPC, takes tasks back from workers that time out or go silent, and ends
//! when all output is final (or a task failed too often).
//!
//! # Layout
//! - [`task`]: the task table and its state machine (pure, clock passed in).
//! - [`registry`]: the workers and their heartbeats (pure).
//! - [`job`]: both together, with the rules that join them; each call returns the
//!   [`effect`]s it implies.
//! - [`service`]: the tarpc handlers over the shared job.
//! - [`beats`]: the thread that serves heartbeats apart from everything else.
//! - [`data`]: the data plane for workers that share no filesystem with the
//!   coordinator: input splits out, reduce output in.
//! - [`views`]: what people see: a snapshot of the job, the live display on stderr, the
//!   end-of-job report, the status page, the job's timeline.
//! - [`run`] (here): the server: accept loop, deadline sweeper, shutdown.
#![warn(missing_docs)]

pub mod beats;
pub mod data;
pub mod effect;
pub mod job;
pub mod journal;
pub mod registry;
pub mod service;
pub mod speculate;
pub mod task;
pub mod views;

use anyhow::Context as _;
use futures::StreamExt;
use job::Job;
use mr::auth::{Channel, Token};
use mr::rpc::{json_transport, Coordinator as _, JobEnd, Listener};
use mr::secure::{self, Guard};
use mr::split::plan_splits;
use mr::task::Split;
use registry::Registry;
use service::{Service, Shared};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel as _};
use task::{JobFailure, TaskTable};
use tracing::{info, warn};

/// How the coordinator runs a job.
#[derive(Debug, Clone)]
pub struct Config {
    /// R.
    pub n_reduce: u32,
    /// Largest split; files up to this size are one map task each.
    pub split_size: u64,
    /// How keys are assigned to partitions: by hash, or by range (a total order).
    pub partition: mr::partition::PartitionMode,
    /// A task in progress longer than this is handed out again.
    pub task_timeout: Duration,
    /// When to start backups of tasks running long (None: `--no-speculation`).
    pub speculation: Option<crate::speculate::Speculation>,
    /// A worker silent for this long is lost and its tasks are handed out again.
    pub worker_timeout: Duration,
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// Failed attempts of one task before the job fails.
    pub max_failures: u32,
    /// Where `mr-out-Y` goes.
    pub out_dir: PathBuf,
    /// The journal of task state changes, for picking the job up after a crash.
    pub journal: Option<PathBuf>,
    /// Insist on resuming from the journal (fail if it holds no unfinished run of
    /// this job). Without it, an unfinished run of the same job is resumed anyway.
    pub resume: bool,
    /// Show live progress on stderr and print the report at the end.
    pub progress: bool,
    /// Write the report as JSON here at the end.
    pub report_file: Option<PathBuf>,
    /// Write the job's history as one self-contained HTML file here at the end.
    pub report_html: Option<PathBuf>,
    /// Serve the status page on this `HOST:PORT` while the job runs.
    pub http: Option<String>,
    /// The job's shared secret: every connection must prove it.
    pub token: Token,
    /// Speak TCP without TLS (`--insecure-plaintext`): traffic readable and alterable
    /// on the path; the only way to listen on TCP without a token.
    pub insecure_plaintext: bool,
    /// Workers that share no filesystem with the coordinator can still read the input
    /// paths themselves (the inputs are on shared storage), rather than stream them.
    pub shared_inputs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            n_reduce: 10,
            split_size: 64 << 20,
            partition: mr::partition::PartitionMode::Hash,
            task_timeout: Duration::from_secs(10),
            speculation: Some(crate::speculate::Speculation::DEFAULT),
            worker_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            max_failures: 4,
            out_dir: PathBuf::from("."),
            journal: None,
            resume: false,
            progress: false,
            report_file: None,
            report_html: None,
            http: None,
            token: Token::none(),
            insecure_plaintext: false,
            shared_inputs: false,
        }
    }
}

/// An input that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("input {path}: {reason}")]
pub struct BadInput {
    /// The path as given.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub reason: String,
}

/// Checks every input (exists, is a file, can be opened) and cuts them into splits.
/// Returns every bad input, not just the first.
pub fn plan_inputs(inputs: &[PathBuf], split_size: u64) -> Result<Vec<Split>, Vec<BadInput>> {
    let mut splits = Vec::new();
    let mut bad = Vec::new();
    for path in inputs {
        let reason = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("no such file (check the path)".to_string())
            }
            Err(e) => Some(format!("cannot stat: {e}")),
            Ok(m) if m.is_dir() => Some("is a directory; pass the files inside it".to_string()),
            Ok(m) if !m.is_file() => Some("is not a regular file".to_string()),
            Ok(m) => match File::open(path) {
                Err(e) => Some(format!("cannot be read ({e}); check its permissions")),
                Ok(_) => {
                    splits.extend(plan_splits(path, m.len(), split_size));
                    None
                }
            },
        };
        if let Some(reason) = reason {
            bad.push(BadInput {
                path: path.clone(),
                reason,
            });
        }
    }
    if bad.is_empty() {
        Ok(splits)
    } else {
        Err(bad)
    }
}

/// How a job ended.
#[derive(Debug)]
pub struct Outcome {
    /// Success or failure.
    pub end: JobEnd,
    /// Why it failed, if it did.
    pub failure: Option<JobFailure>,
    /// Map tasks run.
    pub maps: usize,
    /// Reduce tasks run.
    pub reduces: usize,
    /// What happened, per phase.
    pub report: views::report::Report,
}

/// Connections served at once; more are closed as soon as they are accepted. Each
/// worker holds a control and a heartbeat connection (and a data connection while a
/// transfer runs), so this is what bounds the workers of a job: the paper's jobs ran on
/// 2,000 machines.
/// (Every binary raises its open-file limit to the hard limit at start.)
const MAX_CONNECTIONS: usize = 16_384;

/// Calls in flight per connection (a worker makes two: heartbeat and task poll).
const MAX_IN_FLIGHT: usize = 8;

/// How long after the end to wait for live workers to hear that the job is over.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// How long after that to wait for workers to hang up, so the last replies go out.
const EXIT_FLUSH: Duration = Duration::from_millis(300);

/// Serves the job on `listener` until it ends; returns how it ended.
pub async fn run(
    config: Config,
    splits: Vec<Split>,
    listener: Listener,
) -> anyhow::Result<Outcome> {
    let maps = splits.len();
    let splits_key = job_key(&splits, &config);
    std::fs::create_dir_all(&config.out_dir).with_context(|| {
        format!(
            "cannot create output directory {}",
            config.out_dir.display()
        )
    })?;
    let mut job = Job::new(
        TaskTable::new(
            splits,
            config.n_reduce,
            config.out_dir.clone(),
            config.task_timeout,
            config.max_failures,
        )
        .with_partitioning(config.partition)
        .with_speculation(config.speculation),
        Registry::new(config.worker_timeout),
        config.shared_inputs,
        std::time::Instant::now(),
    );
    let journal = match &config.journal {
        Some(path) => Some(open_journal(path, &config, &splits_key, &mut job)?),
        None => None,
    };
    let shared = Shared::new(job, config.heartbeat_interval);
    if let Some(j) = journal {
        shared.set_journal(j);
    }
    let guard = Guard::for_process(
        config.token.clone(),
        listener.is_tcp(),
        config.insecure_plaintext,
    )?;
    if listener.is_tcp() && !guard.encrypts() {
        warn!("--insecure-plaintext: TCP traffic is neither encrypted nor integrity-protected; anyone on the path can read and alter inputs and outputs");
    }
    let monitor = views::monitor::Monitor::start(&config, &shared).await?;
    let mut end_rx = shared.end.subscribe();
    let addr = listener.local_addr()?;
    info!(%addr, maps, reduces = config.n_reduce, "coordinator listening");

    let service = Service(shared.clone());
    let out_dir = config.out_dir.clone();
    let beats = Arc::new(beats::Beats::start().context("cannot start the heartbeat thread")?);
    let heartbeats = beats.clone();
    // Bounded resources whatever clients do: at most MAX_CONNECTIONS connections, each
    // dropped unless it proves the token within auth::HANDSHAKE_TIMEOUT, MAX_IN_FLIGHT
    // calls each, frames of at most mr::rpc::MAX_FRAME_LEN (a bad frame closes it).
    let server = secure::serve(
        listener,
        guard,
        MAX_CONNECTIONS,
        "coordinator",
        move |conn| serve_connection(conn, service.clone(), out_dir.clone(), heartbeats.clone()),
    );
    let sweeper = tokio::spawn(sweep_loop(shared.clone()));

    let end = loop {
        if let Some(end) = *end_rx.borrow_and_update() {
            break end;
        }
        if end_rx.changed().await.is_err() {
            anyhow::bail!("coordinator state dropped");
        }
    };
    sweeper.abort();

    // Let polling and heartbeating workers hear that the job is over, briefly.
    let grace = tokio::time::Instant::now() + EXIT_GRACE;
    loop {
        let told = shared.told_exit.notified();
        tokio::pin!(told);
        told.as_mut().enable();
        if shared.lock().workers.awaiting_exit() == 0 {
            break;
        }
        tokio::select! {
            _ = &mut told => {}
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    // A worker counts as told once its reply is made, not once the reply is written:
    // dropping the connections at once could lose it, and that worker would wait for a
    // coordinator that is gone, then exit as if the job had succeeded. So wait, briefly,
    // for the workers to hang up.
    let flush = tokio::time::Instant::now() + EXIT_FLUSH;
    while server.open_connections() > 0 && tokio::time::Instant::now() < flush {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await; // closes the listener, which removes a Unix socket file
    beats.stop();

    if let Ok(n) = mr::atomic::sweep_temp_files(&config.out_dir) {
        if n > 0 {
            info!(removed = n, "removed temp files left by dead workers");
        }
    }
    let report = monitor.finish(&shared).await;
    // Everything journaled, the end included, is on disk before the process exits.
    shared.close_journal();
    let failure = shared.lock().tasks.failure().cloned();
    Ok(Outcome {
        end,
        failure,
        maps,
        reduces: config.n_reduce as usize,
        report,
    })
}

/// Serves one secured connection: RPCs, heartbeats (on their own thread), or one data
/// transfer.
async fn serve_connection(
    conn: secure::Accepted,
    server: Service,
    out_dir: PathBuf,
    beats: Arc<beats::Beats>,
) {
    let secure::Accepted {
        mut io,
        channel,
        peer,
        over_limit,
    } = conn;
    if over_limit {
        warn!(%peer, "too many connections; refusing one");
        return;
    }
    match channel {
        Channel::Control => serve_rpc(io, server).await,
        Channel::Heartbeat => beats.serve(io, server).await,
        Channel::Data => {
            if let Err(e) = data::serve(&mut io, &server.0, &out_dir).await {
                tracing::debug!(%peer, error = %e, "data transfer failed");
            }
        }
    }
}

/// Serves the RPC service on one connection until it closes; each call runs as a task
/// of the runtime this runs on.
async fn serve_rpc(io: Box<dyn mr::rpc::Io>, server: Service) {
    BaseChannel::with_defaults(json_transport(io))
        .max_concurrent_requests(MAX_IN_FLIGHT)
        .execute(server.serve())
        .for_each(|call| async move {
            tokio::spawn(call);
        })
        .await;
}

/// What identifies this job in a journal: the inputs, R and the split size.
fn job_key(splits: &[Split], config: &Config) -> journal::JobKey {
    let mut inputs: Vec<PathBuf> = Vec::new();
    for s in splits {
        if inputs.last() != Some(&s.path) {
            inputs.push(s.path.clone());
        }
    }
    journal::JobKey {
        inputs,
        n_reduce: config.n_reduce,
        split_size: config.split_size,
        partition: config.partition,
    }
}

/// Opens the journal and applies what it says of an unfinished run of this job.
fn open_journal(
    path: &std::path::Path,
    config: &Config,
    key: &journal::JobKey,
    job: &mut Job,
) -> anyhow::Result<journal::Journal> {
    let (j, replay) = journal::Journal::open(path, key, config.resume)?;
    let n = config.n_reduce;
    let restored = resume(job, &replay, |t, r| journal::outputs_intact(t, r, n));
    if replay.incarnation > 1 {
        let count = |kind| restored.iter().filter(|t| t.kind == kind).count();
        info!(
            journal = %path.display(),
            incarnation = replay.incarnation,
            split_points = replay.split_points.is_some(),
            maps_done = count(mr::ids::TaskKind::Map),
            reduces_done = count(mr::ids::TaskKind::Reduce),
            "resuming the job from its journal"
        );
    }
    Ok(j)
}

/// Picks a job up where an earlier run's journal left it: worker ids continue from the
/// new incarnation, attempt numbers continue, and done tasks whose files `intact`
/// finds are done again. Returns the tasks restored as done. (The simulator restarts
/// its coordinator through this too.)
pub fn resume(
    job: &mut Job,
    replay: &journal::Replay,
    intact: impl Fn(mr::ids::TaskId, &mr::task::TaskResult) -> bool,
) -> Vec<mr::ids::TaskId> {
    job.workers.set_incarnation(replay.incarnation);
    if replay.incarnation > 1 {
        let restored = journal::restore_with(&mut job.tasks, replay, intact);
        job.relist();
        restored
    } else {
        Vec::new()
    }
}

/// Sleeps until the next deadline (a task timeout or a worker going silent), then takes
/// back what expired. Woken early only when a deadline earlier than the one it sleeps
/// until appears (`Shared::rearm`).
async fn sweep_loop(shared: Arc<Shared>) {
    loop {
        let (next, durable) = shared.sweep(std::time::Instant::now());
        durable.wait().await;
        // A wake between the sweep and this wait is kept: notify_one leaves a permit.
        let wake = shared.sweep.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => wake.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_input_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, b"hello\n").unwrap();
        let missing = dir.path().join("missing.txt");
        let bad = plan_inputs(
            &[good.clone(), missing.clone(), dir.path().to_path_buf()],
            64,
        )
        .unwrap_err();
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].path, missing);
        assert!(bad[0].to_string().contains("no such file"), "{}", bad[0]);
        assert!(bad[1].to_string().contains("is a directory"), "{}", bad[1]);
        let splits = plan_inputs(&[good], 64).unwrap();
        assert_eq!(splits.len(), 1);
        assert_eq!(splits[0].len, 6);
    }
}
