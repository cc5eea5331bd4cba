//! The `mr` worker: registers with the coordinator, heartbeats on its own task, asks
//! for work by long poll, runs map and reduce off the async runtime, reports, and exits
//! when the job is over or the coordinator has been unreachable for too long.
//!
//! [`run`] is a library function so that a thread can run a worker as well as a process.
//!
//! Two ways to share files. Connected over a Unix socket, the worker is on the
//! coordinator's machine and every file is a path in a shared directory (the 6.824
//! shape). Connected over TCP, it assumes nothing is shared: it streams splits from the
//! coordinator, keeps its map output in its own directory behind a data server that
//! reducers elsewhere fetch from, and streams reduce output back to the coordinator.
//!
//! # Layout
//! - [`link`]: the reconnecting RPC client, with request ids.
//! - [`protocol`]: the worker's protocol decisions as a pure machine (also driven by the
//!   simulator).
//! - [`exec`]: running one map or reduce task on local files (sorting, merging).
//! - [`stage`]: moving a task's bytes between machines before and after it runs.
//! - [`shuffle`]: the map output directory and its data server.
//! - [`run`] (here): registration, the heartbeat task, and the task loop.
#![warn(missing_docs)]

pub mod exec;
pub mod link;
pub mod protocol;
pub mod shuffle;
pub mod stage;

use link::{Link, LinkError};
use mr::auth::Token;
use mr::ids::{Attempt, RequestId, TaskId, WorkerId};
use mr::plugin::App;
use mr::rpc::{Addr, JobEnd, Listener, ReportReply, Reported, WorkerInfo};
use mr::secure::Guard;
use mr::task::{
    Assignment, Location, OutputTarget, SplitSource, TaskFailure, TaskOutcome, TaskResult, TaskSpec,
};
use protocol::{Next, Session};
use shuffle::ShuffleDir;
use stage::Own;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The coordinator.
    pub coordinator: Addr,
    /// Where intermediate files go.
    pub work_dir: PathBuf,
    /// Map-side buffer budget before spilling sorted runs.
    pub map_memory: usize,
    /// At start, give up if the coordinator cannot be reached for this long.
    pub connect_timeout: Duration,
    /// Once working, give up after this long without reaching the coordinator (it may
    /// be restarting: workers retry with backoff and register again).
    pub coordinator_timeout: Duration,
    /// Hooks for fault tests, off by default; not features.
    pub test_hooks: TestHooks,
    /// Files a reduce merges at once; more are merged in passes.
    pub merge_fan_in: usize,
    /// The job's shared secret, proven on every connection.
    pub token: Token,
    /// Speak TCP without TLS (`--insecure-plaintext`); see [`mr::secure`].
    pub insecure_plaintext: bool,
    /// Where the data server listens when connected over TCP; port 0 picks one, and an
    /// unspecified IP (0.0.0.0) is advertised as the one that reaches the coordinator.
    pub data_addr: String,
}

impl Config {
    /// Defaults for a worker of the coordinator at `addr`.
    pub fn new(coordinator: Addr) -> Self {
        Config {
            coordinator,
            work_dir: PathBuf::from("."),
            map_memory: 256 << 20,
            connect_timeout: Duration::from_secs(2),
            coordinator_timeout: Duration::from_secs(10),
            test_hooks: TestHooks::default(),
            merge_fan_in: exec::MERGE_FAN_IN,
            token: Token::none(),
            insecure_plaintext: false,
            data_addr: "0.0.0.0:0".into(),
        }
    }
}

/// Hooks that make a worker misbehave on purpose, for the fault tests (the chaos suite,
/// the cluster test, the blame and network tests). Kept in one named place so that
/// nobody takes them for features; the command line hides them from `--help`.
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Sleep this long before running each task (a slow worker).
    pub task_delay: Duration,
    /// Hold attempt N of task T before running it while the file `T.N` exists in this
    /// directory, having written `T.N.held` there (a worker the tests pause and release
    /// at will, to order two attempts of one task).
    pub hold_dir: Option<PathBuf>,
}

impl TestHooks {
    /// Runs the hooks before attempt `a`, unless `stop` is set meanwhile.
    fn before(&self, a: &Assignment, stop: &exec::Stop) {
        stop.sleep(self.task_delay);
        let Some(dir) = &self.hold_dir else {
            return;
        };
        let name = format!("{}.{}", a.task, a.attempt.0);
        let hold = dir.join(&name);
        if hold.exists() {
            let _ = std::fs::write(dir.join(format!("{name}.held")), b"");
            while hold.exists() && !stop.is_set() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Why the worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The coordinator said the job is over.
    Job(JobEnd),
    /// The coordinator went away after we had worked with it (most likely it finished).
    CoordinatorGone,
}

/// The worker could not work at all.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The coordinator never answered.
    #[error("cannot reach the coordinator at {addr} ({source}); start the coordinator first, or pass --coordinator ADDR")]
    Unreachable {
        /// Where we tried.
        addr: Addr,
        /// The last error.
        source: LinkError,
    },
    /// The coordinator refused our token.
    #[error("the coordinator at {addr} refused this worker: {reason}")]
    Refused {
        /// Where.
        addr: Addr,
        /// Why (a token mismatch).
        reason: String,
    },
    /// TCP without a token and without `--insecure-plaintext`, or TLS could not be set up.
    #[error("{0}")]
    Insecure(std::io::Error),
    /// The work directory is unusable.
    #[error("work directory {0}: {1}")]
    WorkDir(PathBuf, std::io::Error),
    /// The data server cannot listen.
    #[error("cannot serve map output on {addr}: {source}; choose another --data-addr")]
    DataServer {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

struct Ctx {
    link: Link,
    config: Config,
    /// How connections are secured (the data plane's; the link holds its own copy).
    guard: Guard,
    /// This worker's data server and map output directory, when it shares no files.
    own: Option<Own>,
    /// Its id and when the coordinator last answered; the decisions are
    /// [`protocol::Session`]'s.
    session: Mutex<Session>,
    /// Held while re-registering: the heartbeat loop and the task loop both hear
    /// "register again", and only one of them may do it.
    registering: tokio::sync::Mutex<()>,
    /// The attempt running now, with what stops it (the heartbeat loop hears when it
    /// is beaten or taken back).
    running: Mutex<Option<(TaskId, Attempt, exec::Stop)>>,
}

impl Ctx {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<(TaskId, Attempt, exec::Stop)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops `attempt` of `task` if it is the one running.
    fn abandon(&self, task: TaskId, attempt: Attempt) {
        if let Some((t, a, stop)) = &*self.running() {
            if (*t, *a) == (task, attempt) && !stop.is_set() {
                info!(%task, %attempt, "abandoning the attempt: another attempt finished first, or it was taken back");
                stop.set();
            }
        }
    }

    fn worker(&self) -> WorkerId {
        self.session().worker()
    }

    /// Registers, retrying with backoff until the coordinator has been silent for `limit`.
    async fn register(&self, limit: Duration) -> Result<Duration, LinkError> {
        let info = WorkerInfo {
            host: hostname(),
            pid: std::process::id(),
            data_addr: self.own.as_ref().map(|o| o.server.clone()),
        };
        let mut backoff = mr::retry::Backoff::connect();
        loop {
            let req = self.link.request_id();
            let info = info.clone();
            match self
                .link
                .call(|c, cx| async move { c.register(cx, req, info).await })
                .await
            {
                Ok(reg) => {
                    self.session().registered(reg.worker, Instant::now());
                    info!(%req, worker = %reg.worker, coordinator = %self.link.addr(), "registered");
                    return Ok(Duration::from_millis(reg.heartbeat_interval_ms.max(10)));
                }
                Err(e) => {
                    let next = self.session().after_register_failed(
                        e.is_refused(),
                        &mut backoff,
                        Instant::now(),
                        limit,
                    );
                    let Some(pause) = next else {
                        return Err(e);
                    };
                    tracing::debug!(error = %e, "coordinator not reachable yet; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Registers again because the coordinator does not know `seen`, the id the caller
    /// used (it restarted, or forgot us). Both loops hear it at about the same time; the
    /// first registers, the second finds the id already changed and keeps the new one.
    async fn reregister(&self, seen: WorkerId, limit: Duration) -> Result<(), LinkError> {
        let _one_at_a_time = self.registering.lock().await;
        if !self.session().should_register(seen) {
            return Ok(());
        }
        self.register(limit).await.map(|_| ())
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Works for the coordinator until the job ends.
pub async fn run(mut config: Config, app: Arc<App>) -> Result<Exit, WorkerError> {
    config.work_dir = std::fs::canonicalize(&config.work_dir)
        .map_err(|e| WorkerError::WorkDir(config.work_dir.clone(), e))?;
    // Reach the coordinator and prove the token before opening anything to the network
    // or writing anything: a worker that is refused leaves no trace.
    let tcp = matches!(config.coordinator, Addr::Tcp(_));
    let guard = Guard::for_process(config.token.clone(), tcp, config.insecure_plaintext)
        .map_err(WorkerError::Insecure)?;
    if tcp && !guard.encrypts() {
        warn!("--insecure-plaintext: TCP traffic is neither encrypted nor integrity-protected; anyone on the path can read and alter it");
    }
    let link = Link::new(config.coordinator.clone(), guard.clone());
    let unreachable = |addr: Addr, source: LinkError| {
        if source.is_refused() {
            let reason = match source {
                LinkError::Connect { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            WorkerError::Refused { addr, reason }
        } else {
            WorkerError::Unreachable { addr, source }
        }
    };
    link.connect(config.connect_timeout)
        .await
        .map_err(|e| unreachable(config.coordinator.clone(), e))?;
    // Over TCP nothing is shared: serve our map output ourselves. The directory is
    // removed when this function returns, whatever the reason.
    let mut shuffle = None;
    let mut own = None;
    if let Addr::Tcp(coordinator) = &config.coordinator {
        let (dir, stale) = ShuffleDir::create(&config.work_dir)
            .map_err(|e| WorkerError::WorkDir(config.work_dir.clone(), e))?;
        if stale > 0 {
            info!(removed = stale, "removed map output left by dead workers");
        }
        let listener = Listener::bind(&Addr::Tcp(config.data_addr.clone()))
            .await
            .map_err(|source| WorkerError::DataServer {
                addr: config.data_addr.clone(),
                source,
            })?;
        let server =
            advertised(&listener, coordinator).map_err(|source| WorkerError::DataServer {
                addr: config.data_addr.clone(),
                source,
            })?;
        info!(%server, dir = %dir.path().display(), "serving map output");
        let serving = shuffle::serve(listener, dir.path().to_path_buf(), guard.clone());
        own = Some(Own {
            server,
            dir: dir.path().to_path_buf(),
        });
        shuffle = Some((dir, serving));
    }
    let session = Session::new(Instant::now(), config.coordinator_timeout);
    let ctx = Arc::new(Ctx {
        link,
        config,
        guard,
        own,
        session: Mutex::new(session),
        registering: tokio::sync::Mutex::new(()),
        running: Mutex::new(None),
    });
    let interval = ctx
        .register(ctx.config.connect_timeout)
        .await
        .map_err(|source| unreachable(ctx.config.coordinator.clone(), source))?;
    let (exit_tx, mut exit_rx) = watch::channel(None);
    let heartbeat = tokio::spawn(heartbeat_loop(ctx.clone(), interval, exit_tx));
    let exit = tokio::select! {
        exit = task_loop(ctx.clone(), app) => exit,
        exit = wait_exit(&mut exit_rx) => exit,
    };
    heartbeat.abort();
    // The data server stops before its directory goes.
    drop(shuffle);
    info!(?exit, "worker exiting");
    Ok(exit)
}

/// The address other machines reach our data server at: the bound one, or, if bound to
/// an unspecified IP, the local IP of the route to the coordinator. (A UDP "connect"
/// only picks the route; no packet is sent.)
fn advertised(listener: &Listener, coordinator: &str) -> std::io::Result<String> {
    let bound: std::net::SocketAddr = listener
        .local_addr()?
        .to_string()
        .parse()
        .map_err(std::io::Error::other)?;
    if !bound.ip().is_unspecified() {
        return Ok(bound.to_string());
    }
    let any: std::net::SocketAddr = if bound.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(coordinator)?;
    Ok(std::net::SocketAddr::new(probe.local_addr()?.ip(), bound.port()).to_string())
}

async fn wait_exit(rx: &mut watch::Receiver<Option<Exit>>) -> Exit {
    // Copy the value out: a borrow guard held across the `.await` below would make
    // `run`'s future !Send, so it could not be spawned on a multi-threaded runtime.
    let verdict = rx.wait_for(Option::is_some).await.map(|v| *v);
    match verdict {
        Ok(v) => v.unwrap_or(Exit::CoordinatorGone),
        // The heartbeat task ended without a verdict: keep working.
        Err(_) => std::future::pending().await,
    }
}

async fn heartbeat_loop(ctx: Arc<Ctx>, interval: Duration, exit: watch::Sender<Option<Exit>>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let req = ctx.link.request_id();
        let worker = ctx.worker();
        let reply = ctx
            .link
            .beat(|c, cx| async move { c.heartbeat(cx, req, worker).await })
            .await;
        if let Err(e) = &reply {
            tracing::debug!(%req, %worker, error = %e, "heartbeat not answered");
        }
        let next = ctx
            .session()
            .on_heartbeat(worker, reply.ok(), Instant::now());
        match next {
            Next::Register { seen } => {
                if let Err(e) = ctx.reregister(seen, ctx.config.coordinator_timeout).await {
                    warn!(error = %e, "re-registration failed");
                }
            }
            Next::Exit(x) => {
                if x == Exit::CoordinatorGone {
                    warn!(
                        "no heartbeat answered for {:?}",
                        ctx.config.coordinator_timeout
                    );
                }
                exit.send_replace(Some(x));
                return;
            }
            Next::Abandon { task, attempt } => ctx.abandon(task, attempt),
            Next::Continue | Next::Retry(_) | Next::Run(_) => {}
        }
    }
}

async fn task_loop(ctx: Arc<Ctx>, app: Arc<App>) -> Exit {
    // What the last report's answer said to do next (its request id, for the logs);
    // `None`: poll.
    let mut after_report: Option<(RequestId, Next)> = None;
    loop {
        let worker = ctx.worker();
        let (req, next) = match after_report.take() {
            Some(next) => next,
            None => {
                let req = ctx.link.request_id();
                let reply = ctx
                    .link
                    .call(|c, cx| async move { c.get_task(cx, req, worker).await })
                    .await;
                if let Err(e) = &reply {
                    tracing::debug!(%req, %worker, error = %e, "task poll not answered");
                }
                (
                    req,
                    ctx.session().on_poll(worker, reply.ok(), Instant::now()),
                )
            }
        };
        match next {
            Next::Run(a) => {
                let started = Instant::now();
                info!(%req, %worker, task = %a.task, attempt = %a.attempt, "running");
                let stop = exec::Stop::default();
                *ctx.running() = Some((a.task, a.attempt, stop.clone()));
                let outcome = run_task(&ctx, &app, &a, &stop).await;
                *ctx.running() = None;
                let Some(outcome) = outcome else {
                    continue;
                };
                match &outcome {
                    Ok(_) => {
                        info!(%worker, task = %a.task, attempt = %a.attempt, elapsed = ?started.elapsed(), "task finished")
                    }
                    Err(f) => {
                        warn!(%worker, task = %a.task, attempt = %a.attempt, error = %f, "task failed")
                    }
                }
                after_report = Some(report(&ctx, &a, outcome).await);
            }
            // Only heartbeats carry it; nothing runs while polling.
            Next::Continue | Next::Abandon { .. } => {}
            Next::Retry(pause) => tokio::time::sleep(pause).await,
            Next::Register { seen } => {
                if let Err(e) = ctx.reregister(seen, ctx.config.coordinator_timeout).await {
                    warn!(error = %e, "re-registration failed");
                    return Exit::CoordinatorGone;
                }
            }
            Next::Exit(x) => {
                if x == Exit::CoordinatorGone {
                    warn!(
                        "coordinator unreachable for {:?}; exiting",
                        ctx.config.coordinator_timeout
                    );
                }
                return x;
            }
        }
    }
}

/// Runs one task: brings its inputs to this machine, computes off the async runtime, and
/// sends its output where it belongs. None if the attempt was stopped (beaten by another
/// attempt, or taken back) or the coordinator refused its output: there is nothing left
/// to report.
async fn run_task(
    ctx: &Arc<Ctx>,
    app: &Arc<App>,
    a: &Assignment,
    stop: &exec::Stop,
) -> Option<TaskOutcome> {
    let coordinator = ctx.config.coordinator.to_string();
    let guard = &ctx.guard;
    // Where this task writes: our map output directory when we serve our own files.
    let dir = match &ctx.own {
        Some(own) => own.dir.clone(),
        None => ctx.config.work_dir.clone(),
    };
    let mut inputs = None;
    let work = match &a.spec {
        TaskSpec::Sample {
            pieces: wanted,
            source,
            max_keys,
        } => {
            let mut pieces = Vec::with_capacity(wanted.len());
            for split in wanted {
                match streamed(ctx, a, split, *source).await {
                    Ok(bytes) => pieces.push((split.clone(), bytes)),
                    Err(f) => return Some(Err(f)),
                }
            }
            Work::Sample {
                pieces,
                max_keys: *max_keys,
            }
        }
        TaskSpec::Map {
            split,
            source,
            n_reduce,
            partitioning,
        } => {
            let bytes = match streamed(ctx, a, split, *source).await {
                Ok(b) => b,
                Err(f) => return Some(Err(f)),
            };
            Work::Map {
                split: split.clone(),
                bytes,
                n_reduce: *n_reduce,
                partitioning: partitioning.clone(),
                dir,
            }
        }
        TaskSpec::Reduce {
            inputs: all,
            output,
        } => {
            // This partition of every map's output, named for it.
            let wanted = all.for_partition(a.task.index);
            let local = stage::fetch_map_outputs(&wanted, ctx.own.as_ref(), &dir, guard).await;
            let local = match local {
                Ok(l) => l,
                Err(f) => return Some(Err(f)),
            };
            let out_dir = match output {
                OutputTarget::Dir(d) => d.clone(),
                OutputTarget::Coordinator => dir.clone(),
            };
            let work = Work::Reduce {
                inputs: local.inputs.clone(),
                out_dir,
                scratch: dir,
            };
            inputs = Some((wanted, local));
            work
        }
    };
    let outcome = {
        let (app, a, config, stop) = (app.clone(), a.clone(), ctx.config.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            config.test_hooks.before(&a, &stop);
            stop.check()?;
            work.run(&app, &a, &config, &stop)
        })
        .await
        .unwrap_or_else(|e| {
            Err(exec::Halt::Failed(TaskFailure::Local {
                fault: mr::task::LocalFault::Io,
                what: "the task's thread died".into(),
                error: e.to_string(),
            }))
        })
    };
    let outcome = match outcome {
        Ok(result) => Ok(result),
        Err(exec::Halt::Failed(f)) => Err(f),
        Err(exec::Halt::Stopped) => {
            info!(task = %a.task, attempt = %a.attempt, "attempt abandoned; its temp files are deleted");
            return None;
        }
    };
    // Fetched copies are deleted here; a failure names the input as the reduce was told.
    let fetch_retries = inputs.as_ref().map_or(0, |(_, local)| local.retries);
    let wanted = inputs.map(|(wanted, _copies)| wanted);
    let outcome = outcome.map(|mut r| {
        if let TaskResult::Reduce { stats, .. } = &mut r {
            stats.fetch_retries = fetch_retries;
        }
        r
    });
    match outcome {
        Ok(TaskResult::Map { output, stats }) => {
            // Written into our own directory, served by our data server.
            let output = match &ctx.own {
                Some(own) => mr::task::MapOutputs::Server(own.server.clone()),
                None => output,
            };
            Some(Ok(TaskResult::Map { output, stats }))
        }
        Ok(TaskResult::Reduce { output, stats }) => {
            let Location::Path(path) = &output else {
                return Some(Ok(TaskResult::Reduce { output, stats }));
            };
            let TaskSpec::Reduce {
                output: OutputTarget::Coordinator,
                ..
            } = &a.spec
            else {
                return Some(Ok(TaskResult::Reduce { output, stats }));
            };
            let sent = stage::upload_output(&coordinator, guard, ctx.worker(), a, path).await;
            let _ = std::fs::remove_file(path);
            match sent {
                Ok(stored) => Some(Ok(TaskResult::Reduce {
                    output: Location::Path(stored),
                    stats,
                })),
                Err(mr::data::DataError::Refused { reason, .. }) => {
                    info!(task = %a.task, attempt = %a.attempt, %reason, "output refused (attempt was revoked)");
                    None
                }
                Err(mr::data::DataError::Local { fault, error }) => Some(Err(TaskFailure::Local {
                    fault,
                    what: "cannot read back the output to send it".into(),
                    error,
                })),
                Err(e) => Some(Err(TaskFailure::Network {
                    what: "cannot send the output to the coordinator".into(),
                    error: e.to_string(),
                })),
            }
        }
        // The reduce read a local copy: name the output as the reduce was told of it.
        Err(TaskFailure::LostMapOutput {
            map,
            attempt,
            location,
            cause,
            error,
        }) => {
            let told = wanted
                .as_ref()
                .and_then(|w| w.iter().find(|i| i.map == map));
            Some(Err(match told {
                Some(input) => input.lost(cause, error),
                None => TaskFailure::LostMapOutput {
                    map,
                    attempt,
                    location,
                    cause,
                    error,
                },
            }))
        }
        Ok(sample @ TaskResult::Sample { .. }) => Some(Ok(sample)),
        Err(f) => Some(Err(f)),
    }
}

/// The lines of `split` if they must come from the coordinator (None: read the path
/// here). A worker on another machine that cannot open the path (the "shared" inputs
/// are not shared with it after all) streams the split instead.
async fn streamed(
    ctx: &Arc<Ctx>,
    a: &Assignment,
    split: &mr::task::Split,
    source: SplitSource,
) -> Result<Option<Vec<u8>>, TaskFailure> {
    let unreadable = ctx.own.is_some()
        && source == SplitSource::Path
        && std::fs::File::open(&split.path).is_err();
    if unreadable {
        info!(task = %a.task, input = %split.path.display(), "cannot read the input here; streaming it from the coordinator");
    }
    if source == SplitSource::Coordinator || unreadable {
        let coordinator = ctx.config.coordinator.to_string();
        stage::fetch_split(&coordinator, &ctx.guard, split)
            .await
            .map(Some)
    } else {
        Ok(None)
    }
}

/// The lines of `split`: as streamed, or read from its path here.
fn lines(split: &mr::task::Split, streamed: Option<Vec<u8>>) -> Result<Vec<u8>, TaskFailure> {
    match streamed {
        Some(b) => Ok(b),
        None => exec::read_split(split),
    }
}

/// A task with its inputs on this machine, ready to compute.
enum Work {
    Sample {
        /// Each piece, with its lines if they came over the network.
        pieces: Vec<(mr::task::Split, Option<Vec<u8>>)>,
        max_keys: u32,
    },
    Map {
        split: mr::task::Split,
        /// The split's lines if they came over the network; else read from the path.
        bytes: Option<Vec<u8>>,
        n_reduce: u32,
        partitioning: mr::partition::Partitioning,
        dir: PathBuf,
    },
    Reduce {
        inputs: Vec<exec::Input>,
        out_dir: PathBuf,
        /// Where merge passes put their runs.
        scratch: PathBuf,
    },
}

impl Work {
    /// Computes, synchronously (call it off the async runtime).
    fn run(self, app: &App, a: &Assignment, config: &Config, stop: &exec::Stop) -> exec::Outcome {
        match self {
            Work::Sample { pieces, max_keys } => {
                let mut read = Vec::with_capacity(pieces.len());
                for (split, bytes) in pieces {
                    let bytes = lines(&split, bytes)?;
                    read.push((split.path.to_string_lossy().into_owned(), bytes));
                }
                exec::run_sample(app, a.task.index, read, max_keys, stop)
            }
            Work::Map {
                split,
                bytes,
                n_reduce,
                partitioning,
                dir,
            } => {
                let bytes = lines(&split, bytes)?;
                let filename = split.path.to_string_lossy();
                exec::run_map(
                    app,
                    a.task.index,
                    &filename,
                    bytes,
                    n_reduce,
                    &partitioning,
                    &dir,
                    config.map_memory,
                    stop,
                )
            }
            Work::Reduce {
                inputs,
                out_dir,
                scratch,
            } => exec::run_reduce(
                app,
                a.task.index,
                &inputs,
                Path::new(&out_dir),
                &scratch,
                config.merge_fan_in,
                stop,
            ),
        }
    }
}

/// Reports an outcome, retrying while the coordinator is briefly unreachable; returns
/// what to do next (its answer's next task, or the end), with the request id it came by.
async fn report(ctx: &Ctx, a: &Assignment, outcome: TaskOutcome) -> (RequestId, Next) {
    loop {
        let req = ctx.link.request_id();
        let worker = ctx.worker();
        let outcome = outcome.clone();
        let reply = ctx
            .link
            .call(
                |c, cx| async move { c.report(cx, req, worker, a.task, a.attempt, outcome).await },
            )
            .await;
        match &reply {
            Ok(Reported {
                reply: ReportReply::Refused(why),
                ..
            }) => {
                info!(%req, %worker, task = %a.task, attempt = %a.attempt, %why, "report refused (attempt was revoked)")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%req, %worker, error = %e, "report not answered"),
        }
        let next = ctx.session().on_report(worker, reply.ok(), Instant::now());
        match next {
            Next::Retry(pause) => tokio::time::sleep(pause).await,
            next => return (req, next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> Ctx {
        // A coordinator address where nothing listens: any registration attempt fails.
        let addr: Addr = format!("unix:{}", dir.join("nobody.sock").display())
            .parse()
            .unwrap();
        Ctx {
            link: Link::new(addr.clone(), Guard::insecure_plaintext(Token::none())),
            config: Config::new(addr),
            guard: Guard::insecure_plaintext(Token::none()),
            own: None,
            session: Mutex::new({
                let mut s = Session::new(Instant::now(), Duration::from_secs(10));
                s.registered(WorkerId::first_run(7), Instant::now());
                s
            }),
            registering: tokio::sync::Mutex::new(()),
            running: Mutex::new(None),
        }
    }

    #[tokio::test]
    async fn only_the_first_loop_to_hear_register_again_registers() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        // The other loop already registered again (the id moved on from 5 to 7): this
        // one must keep the new id, not register a second time.
        ctx.reregister(WorkerId::first_run(5), Duration::ZERO)
            .await
            .expect("no second registration");
        assert_eq!(ctx.worker(), WorkerId::first_run(7));
        // The id it used is still the current one: it does register (and here fails,
        // since no coordinator listens).
        assert!(ctx
            .reregister(WorkerId::first_run(7), Duration::ZERO)
            .await
            .is_err());
    }
}
