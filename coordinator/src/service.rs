//! The tarpc service: a thin adapter from RPCs to [`Job`]. Each handler takes the lock
//! briefly and never holds it across an `.await` (it is a `std::sync::Mutex`: the
//! critical sections are short and synchronous, and a guard held across a wait would
//! block the runtime thread).

use crate::job::Job;
use crate::journal::{Durable, Journal, Record, Writer};
use crate::task::AfterFailure;
use crate::timeline::Timeline;
use mr::ids::{Attempt, RequestId, TaskId, WorkerId};
use mr::rpc::{
    Coordinator, Directive, JobEnd, Registration, ReportReply, TaskReply, WorkerInfo, LONG_POLL,
};
use mr::task::TaskOutcome;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tarpc::context::Context;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// State shared by the handlers, the sweeper and the server loop.
pub struct Shared {
    job: Mutex<Job>,
    /// Woken when a task may have become available, or the job ended.
    pub work: Notify,
    /// Woken when deadlines may have changed (a task was handed out).
    pub sweep: Notify,
    /// Woken when a worker has been told to exit.
    pub told_exit: Notify,
    /// Set once the job has ended.
    pub end: watch::Sender<Option<JobEnd>>,
    /// Bumped whenever a worker joins or a task changes hands or finishes, for the
    /// progress display.
    pub changes: watch::Sender<u64>,
    heartbeat_interval: Duration,
    /// Where task state changes are recorded for a restart, if anywhere.
    journal: Mutex<Option<Writer>>,
}

impl Shared {
    /// Wraps a job.
    pub fn new(job: Job, heartbeat_interval: Duration) -> Arc<Self> {
        Arc::new(Shared {
            job: Mutex::new(job),
            work: Notify::new(),
            sweep: Notify::new(),
            told_exit: Notify::new(),
            end: watch::channel(None).0,
            changes: watch::channel(0).0,
            heartbeat_interval,
            journal: Mutex::new(None),
        })
    }

    /// Records task state changes in `journal` from now on, through its own writer
    /// thread.
    pub fn set_journal(&self, journal: Journal) {
        *self.journal.lock().unwrap_or_else(|p| p.into_inner()) = Some(Writer::spawn(journal));
    }

    /// Writes out what the journal has queued and closes it.
    pub fn close_journal(&self) {
        let writer = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = writer {
            w.close();
        }
    }

    /// Queues a record for the journal, if there is one. Called with the job locked, so
    /// the journal's order is the order of the changes. Nothing waits for the disk here:
    /// a `sync` record's [`Durable`] is awaited after the lock is released and before
    /// the caller answers. A failing journal is logged, not fatal: the job goes on, it
    /// just could not be resumed after a crash.
    pub fn record(&self, record: Record, sync: bool) -> Durable {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        match journal.as_ref() {
            Some(w) => w.append(record, sync),
            None => Durable::none(),
        }
    }

    /// Locks the job. A panic while holding the lock would be a bug in this crate; the
    /// state is still consistent between calls, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the progress display that something changed.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Publishes the end of the job if it has ended, and wakes everyone waiting. (The
    /// end record is made durable by [`Shared::close_journal`] before the process exits.)
    pub fn publish_end(&self, job: &Job) {
        if let Some(end) = job.end() {
            if self.end.borrow().is_none() {
                let _ = self.record(
                    Record::Finished {
                        succeeded: end == JobEnd::Succeeded,
                    },
                    true,
                );
                self.end.send_replace(Some(end));
            }
        }
        self.work.notify_waiters();
    }

    fn exit_directive(&self, job: &mut Job, worker: WorkerId) -> Option<JobEnd> {
        let end = job.end()?;
        if let Some(w) = job.workers.get_mut(worker) {
            w.told_exit = true;
        }
        self.told_exit.notify_waiters();
        Some(end)
    }
}

/// The handler; cloned per request by tarpc.
#[derive(Clone)]
pub struct Service(pub Arc<Shared>);

impl Coordinator for Service {
    async fn register(self, _: Context, req: RequestId, info: WorkerInfo) -> Registration {
        let mut job = self.0.lock();
        let worker = job.workers.register(info.clone(), Instant::now());
        info!(%req, %worker, host = %info.host, pid = info.pid, "worker registered");
        self.0.sweep.notify_one();
        self.0.changed();
        Registration {
            worker,
            heartbeat_interval_ms: self.0.heartbeat_interval.as_millis() as u64,
        }
    }

    async fn heartbeat(self, _: Context, req: RequestId, worker: WorkerId) -> Directive {
        let mut job = self.0.lock();
        if !job.workers.touch(worker, Instant::now()) {
            warn!(%req, %worker, "heartbeat from unknown worker; asking it to register");
            return Directive::Reregister;
        }
        match self.0.exit_directive(&mut job, worker) {
            Some(end) => Directive::Exit(end),
            None => Directive::Continue,
        }
    }

    async fn get_task(self, _: Context, req: RequestId, worker: WorkerId) -> TaskReply {
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            // Register interest before looking, so a wake-up between the look and the
            // wait is not lost.
            let notified = self.0.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut job = self.0.lock();
                let now = Instant::now();
                if !job.workers.touch(worker, now) {
                    warn!(%req, %worker, "task request from unknown worker; asking it to register");
                    return TaskReply::Reregister;
                }
                if let Some(end) = self.0.exit_directive(&mut job, worker) {
                    return TaskReply::Exit(end);
                }
                if let Some(a) = job.assign(worker, now) {
                    info!(%req, %worker, task = %a.task, attempt = %a.attempt, "assigned");
                    let _ = self.0.record(
                        Record::Assigned {
                            task: a.task,
                            attempt: a.attempt,
                        },
                        false,
                    );
                    job.timeline.assigned(a.task, now);
                    self.0.sweep.notify_one();
                    self.0.changed();
                    return TaskReply::Task(a);
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return TaskReply::Wait,
            }
        }
    }

    async fn report(
        self,
        _: Context,
        req: RequestId,
        worker: WorkerId,
        task: TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
    ) -> ReportReply {
        let mut durable = Durable::none();
        let reply = {
            let mut guard = self.0.lock();
            let job = &mut *guard;
            let now = Instant::now();
            job.workers.touch(worker, now);
            let since = Timeline::running_since(&job.tasks, task);
            let reply = match outcome {
                Ok(result) => match job.complete(worker, task, attempt, result.clone(), now) {
                    Ok(excluded) => {
                        // On disk before the worker hears "accepted" (waited for below,
                        // with the lock released).
                        durable = self.0.record(
                            Record::Done {
                                task,
                                attempt,
                                worker,
                                result,
                            },
                            true,
                        );
                        job.timeline.completed(task, since, now);
                        info!(%req, %worker, %task, %attempt, "completed");
                        log_excluded(job, &excluded);
                        ReportReply::Accepted
                    }
                    Err(refusal) => {
                        // Harmless by design: see `worker::exec` on why a late rename of
                        // deterministic output cannot change what readers see.
                        warn!(%req, %worker, %task, %attempt, %refusal, "completion refused");
                        ReportReply::Refused(refusal.to_string())
                    }
                },
                Err(failure) => match job.fail(worker, task, attempt, &failure, now) {
                    Ok(failed) => {
                        let blame = failure.blame();
                        match &failed.after {
                            AfterFailure::Retry => {
                                warn!(%req, %worker, %task, %attempt, %failure, ?blame, "attempt failed; will retry")
                            }
                            AfterFailure::RerunMap(m) => {
                                durable = self.0.record(
                                    Record::Reopened {
                                        task: TaskId::map(*m),
                                    },
                                    true,
                                );
                                warn!(%req, %worker, %task, %attempt, %failure, map = m, "map output lost; re-running the map")
                            }
                            AfterFailure::StaleLoss(m) => {
                                info!(%req, %worker, %task, %attempt, %failure, map = m, "loss report about replaced map output; retrying the reduce only")
                            }
                            AfterFailure::JobFailed(f) => {
                                tracing::error!(%req, %worker, %task, %attempt, "giving up: {f}")
                            }
                        }
                        log_excluded(job, &failed.excluded);
                        if let Some(f) = job.tasks.failure() {
                            if !matches!(failed.after, AfterFailure::JobFailed(_)) {
                                tracing::error!(%req, "giving up: {f}");
                            }
                        }
                        ReportReply::Accepted
                    }
                    Err(refusal) => {
                        warn!(%req, %worker, %task, %attempt, %refusal, %failure, "failure report refused");
                        ReportReply::Refused(refusal.to_string())
                    }
                },
            };
            job.timeline.observe(&job.tasks, now);
            self.0.publish_end(job);
            self.0.changed();
            reply
        };
        durable.wait().await;
        reply
    }
}

/// Logs each newly excluded worker with what it last failed on.
fn log_excluded(job: &Job, excluded: &[WorkerId]) {
    for w in excluded {
        let (host, error) = job
            .workers
            .get(*w)
            .map(|x| {
                (
                    x.info.host.clone(),
                    x.last_error.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        warn!(worker = %w, %host, last_error = %error, "worker excluded: it failed too many tasks; it gets no more");
    }
}
