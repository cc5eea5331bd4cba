//! The embedded local mode: the real coordinator ([`coordinator::run`]) on a Unix socket
//! in a temp dir, and N real workers ([`worker::run`]) on the same runtime.

use anyhow::Context as _;
use mr::plugin::App;
use mr::rpc::{Addr, Listener};
use mr::task::Split;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How long to wait, after the job, for workers to hear that it is over.
const WORKER_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Runs a whole job in this process and returns how it ended.
pub async fn run(
    config: coordinator::Config,
    splits: Vec<Split>,
    app: Arc<App>,
    workers: usize,
) -> anyhow::Result<coordinator::Outcome> {
    // Socket and intermediate files live in a private temp dir, removed on return.
    let dir = tempfile::Builder::new()
        .prefix("mr-run-")
        .tempdir()
        .context("cannot create a temp directory")?;
    let work_dir = dir.path().join("work");
    std::fs::create_dir(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    let addr = Addr::Unix(dir.path().join("coordinator.sock"));
    let listener = Listener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;

    let token = config.token.clone();
    let mut job = tokio::spawn(coordinator::run(config, splits, listener));
    let mut crew = JoinSet::new();
    for _ in 0..workers {
        let mut wc = worker::Config::new(addr.clone());
        wc.work_dir = work_dir.clone();
        wc.token = token.clone();
        crew.spawn(worker::run(wc, app.clone()));
    }

    let outcome = tokio::select! {
        r = &mut job => r.context("the coordinator panicked")??,
        trouble = all_stopped(&mut crew) => match trouble {
            // They heard that the job is over; the coordinator is finishing up.
            None => (&mut job).await.context("the coordinator panicked")??,
            Some(why) => {
                job.abort();
                anyhow::bail!("every worker stopped before the job ended: {why}");
            }
        },
        r = tokio::signal::ctrl_c() => {
            job.abort();
            r.context("cannot listen for Ctrl-C")?;
            anyhow::bail!("interrupted");
        }
    };
    // The coordinator told the workers to exit before returning; give stragglers a moment.
    if tokio::time::timeout(WORKER_EXIT_WAIT, all_stopped(&mut crew))
        .await
        .is_err()
    {
        tracing::warn!("some workers did not exit in time; stopping them");
        crew.abort_all();
    }
    Ok(outcome)
}

/// Waits for every worker to stop. None if each was told that the job is over, else why
/// the first one that was not stopped.
async fn all_stopped(
    crew: &mut JoinSet<Result<worker::Exit, worker::WorkerError>>,
) -> Option<String> {
    let mut first = None;
    while let Some(r) = crew.join_next().await {
        let why = match r {
            Ok(Ok(worker::Exit::Job(_))) => continue,
            Ok(Ok(worker::Exit::CoordinatorGone)) => "lost the coordinator".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("worker task died: {e}"),
        };
        first.get_or_insert(why);
    }
    first
}
