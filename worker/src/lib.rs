//! The `mr` worker: registers with the coordinator, heartbeats on its own task, asks
//! for work by long poll, runs map and reduce off the async runtime, reports, and exits
//! when the job is over or the coordinator has been unreachable for too long.
//!
//! [`run`] is a library function so that a thread can run a worker as well as a process.
//!
//! # Layout
//! - [`link`]: the reconnecting RPC client, with request ids.
//! - [`exec`]: running one map or reduce task (files, sorting, merging).
//! - [`run`] (here): registration, the heartbeat task, and the task loop.
#![warn(missing_docs)]

pub mod exec;
pub mod link;

use link::{Link, LinkError};
use mr::ids::WorkerId;
use mr::plugin::App;
use mr::rpc::{Addr, Directive, JobEnd, ReportReply, TaskReply, WorkerInfo};
use mr::task::{Assignment, TaskFailure, TaskOutcome, TaskSpec};
use std::path::PathBuf;
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
    /// Fault testing: sleep this long before running each task (a slow worker).
    pub task_delay: Duration,
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
            task_delay: Duration::ZERO,
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
    /// The work directory is unusable.
    #[error("work directory {0}: {1}")]
    WorkDir(PathBuf, std::io::Error),
}

struct Ctx {
    link: Link,
    config: Config,
    worker: Mutex<WorkerId>,
    last_contact: Mutex<Instant>,
}

impl Ctx {
    fn worker(&self) -> WorkerId {
        *self.worker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contact(&self) {
        *self.last_contact.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn silent_for(&self) -> Duration {
        self.last_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Registers, retrying with backoff until the coordinator has been silent for `limit`.
    async fn register(&self, limit: Duration) -> Result<Duration, LinkError> {
        let info = WorkerInfo {
            host: hostname(),
            pid: std::process::id(),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let req = self.link.request_id();
            let info = info.clone();
            match self
                .link
                .call(|c, cx| async move { c.register(cx, req, info).await })
                .await
            {
                Ok(reg) => {
                    self.contact();
                    *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = reg.worker;
                    info!(%req, worker = %reg.worker, coordinator = %self.link.addr(), "registered");
                    return Ok(Duration::from_millis(reg.heartbeat_interval_ms.max(10)));
                }
                Err(e) if self.silent_for() >= limit => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "coordinator not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// After a failed call: wait a little, or give up if silent for too long.
    async fn backoff(&self, e: &LinkError) -> Option<Exit> {
        if self.silent_for() >= self.config.coordinator_timeout {
            warn!(error = %e, "coordinator unreachable for {:?}; exiting", self.config.coordinator_timeout);
            return Some(Exit::CoordinatorGone);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        None
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

/// Runs one task synchronously (call it off the async runtime).
pub fn execute(app: &App, a: &Assignment, config: &Config) -> TaskOutcome {
    match &a.spec {
        TaskSpec::Map { split, n_reduce } => exec::run_map(
            app,
            a.task.index,
            split,
            *n_reduce,
            &config.work_dir,
            config.map_memory,
        ),
        TaskSpec::Reduce { inputs, out_dir } => {
            exec::run_reduce(app, a.task.index, inputs, out_dir)
        }
    }
}

/// Works for the coordinator until the job ends.
pub async fn run(mut config: Config, app: Arc<App>) -> Result<Exit, WorkerError> {
    config.work_dir = std::fs::canonicalize(&config.work_dir)
        .map_err(|e| WorkerError::WorkDir(config.work_dir.clone(), e))?;
    let ctx = Arc::new(Ctx {
        link: Link::new(config.coordinator.clone()),
        config,
        worker: Mutex::new(WorkerId(0)),
        last_contact: Mutex::new(Instant::now()),
    });
    let interval = ctx
        .register(ctx.config.connect_timeout)
        .await
        .map_err(|source| WorkerError::Unreachable {
            addr: ctx.config.coordinator.clone(),
            source,
        })?;
    let (exit_tx, mut exit_rx) = watch::channel(None);
    let heartbeat = tokio::spawn(heartbeat_loop(ctx.clone(), interval, exit_tx));
    let exit = tokio::select! {
        exit = task_loop(ctx.clone(), app) => exit,
        exit = wait_exit(&mut exit_rx) => exit,
    };
    heartbeat.abort();
    info!(?exit, "worker exiting");
    Ok(exit)
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
        match ctx
            .link
            .call(|c, cx| async move { c.heartbeat(cx, req, worker).await })
            .await
        {
            Ok(Directive::Continue) => ctx.contact(),
            Ok(Directive::Reregister) => {
                ctx.contact();
                if let Err(e) = ctx.register(ctx.config.coordinator_timeout).await {
                    warn!(error = %e, "re-registration failed");
                }
            }
            Ok(Directive::Exit(end)) => {
                exit.send_replace(Some(Exit::Job(end)));
                return;
            }
            Err(e) => {
                if ctx.silent_for() >= ctx.config.coordinator_timeout {
                    warn!(error = %e, "no heartbeat answered for {:?}", ctx.config.coordinator_timeout);
                    exit.send_replace(Some(Exit::CoordinatorGone));
                    return;
                }
            }
        }
    }
}

async fn task_loop(ctx: Arc<Ctx>, app: Arc<App>) -> Exit {
    loop {
        let req = ctx.link.request_id();
        let worker = ctx.worker();
        let reply = match ctx
            .link
            .call(|c, cx| async move { c.get_task(cx, req, worker).await })
            .await
        {
            Ok(r) => r,
            Err(e) => match ctx.backoff(&e).await {
                Some(exit) => return exit,
                None => continue,
            },
        };
        ctx.contact();
        match reply {
            TaskReply::Task(a) => {
                let started = Instant::now();
                info!(%req, %worker, task = %a.task, attempt = %a.attempt, "running");
                let outcome = {
                    let (app, a, config) = (app.clone(), a.clone(), ctx.config.clone());
                    tokio::task::spawn_blocking(move || {
                        std::thread::sleep(config.task_delay);
                        execute(&app, &a, &config)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(TaskFailure::Output {
                            error: format!("worker thread died: {e}"),
                        })
                    })
                };
                match &outcome {
                    Ok(_) => {
                        info!(%worker, task = %a.task, attempt = %a.attempt, elapsed = ?started.elapsed(), "task finished")
                    }
                    Err(f) => {
                        warn!(%worker, task = %a.task, attempt = %a.attempt, error = %f, "task failed")
                    }
                }
                if let Some(exit) = report(&ctx, &a, outcome).await {
                    return exit;
                }
            }
            TaskReply::Wait => {}
            TaskReply::Reregister => {
                if let Err(e) = ctx.register(ctx.config.coordinator_timeout).await {
                    warn!(error = %e, "re-registration failed");
                    return Exit::CoordinatorGone;
                }
            }
            TaskReply::Exit(end) => return Exit::Job(end),
        }
    }
}

/// Reports an outcome, retrying while the coordinator is briefly unreachable.
async fn report(ctx: &Ctx, a: &Assignment, outcome: TaskOutcome) -> Option<Exit> {
    loop {
        let req = ctx.link.request_id();
        let worker = ctx.worker();
        let outcome = outcome.clone();
        match ctx
            .link
            .call(
                |c, cx| async move { c.report(cx, req, worker, a.task, a.attempt, outcome).await },
            )
            .await
        {
            Ok(ReportReply::Accepted) => {
                ctx.contact();
                return None;
            }
            Ok(ReportReply::Refused(why)) => {
                ctx.contact();
                info!(%req, %worker, task = %a.task, attempt = %a.attempt, %why, "report refused (attempt was revoked)");
                return None;
            }
            Err(e) => {
                if let Some(exit) = ctx.backoff(&e).await {
                    return Some(exit);
                }
            }
        }
    }
}
