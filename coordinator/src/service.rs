//! The tarpc service: a thin adapter from RPCs to [`Job`]. Each handler takes the lock
//! briefly and never holds it across an `.await` (it is a `std::sync::Mutex`: the
//! critical sections are short and synchronous, and a guard held across a wait would
//! block the runtime thread).

use crate::effect::{Effect, Event, EventCounts, Step};
use crate::job::Job;
use crate::journal::{Durable, Journal, Writer};
use crate::task::AfterFailure;
use crate::views::progress::hold_lines;
use mr::ids::{Attempt, RequestId, TaskId, WorkerId};
use mr::rpc::{
    Coordinator, Directive, JobEnd, Registration, Reported, TaskReply, WorkerInfo, LONG_POLL,
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
    /// The deadline the sweeper sleeps until (`None`: none, it waits to be woken). Read
    /// and written with the job locked, so a new deadline is compared with the one the
    /// sweeper really has armed.
    armed: Mutex<Option<Instant>>,
    heartbeat_interval: Duration,
    /// Where task state changes are recorded for a restart, if anywhere.
    journal: Mutex<Option<Writer>>,
    /// The events applied so far, counted.
    events: Mutex<EventCounts>,
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
            armed: Mutex::new(None),
            heartbeat_interval,
            journal: Mutex::new(None),
            events: Mutex::new(EventCounts::default()),
        })
    }

    /// Records task state changes in `journal` from now on.
    pub fn set_journal(&self, journal: Journal) {
        *self.journal.lock().unwrap_or_else(|p| p.into_inner()) = Some(Writer::new(journal));
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

    /// Applies a call's effects: the one place they take effect. Called with the job
    /// locked, so the journal's order is the order of the changes. Nothing waits for the
    /// disk here: the returned [`Durable`] (of the last record to sync before the reply,
    /// which is synced with every record before it) is awaited after the lock is
    /// released and before the caller answers. A failing journal is logged, not fatal: the job goes
    /// on, it just could not be resumed after a crash. `job` is the locked job the
    /// effects came from.
    pub fn apply(&self, job: &Job, req: Option<RequestId>, effects: Vec<Effect>) -> Durable {
        // A call's log lines go to stderr in one write.
        let _lines = hold_lines();
        let mut durable = Durable::none();
        for effect in effects {
            match effect {
                Effect::Journal { record, sync } => {
                    let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(w) = journal.as_ref() {
                        let d = w.append(record, sync);
                        if d.is_some() {
                            durable = d;
                        }
                    }
                }
                Effect::WakePolls => self.work.notify_waiters(),
                Effect::WakeOne => self.work.notify_one(),
                Effect::Rearm => self.rearm(job),
                Effect::ToldExit => self.told_exit.notify_waiters(),
                Effect::Ended(end) => {
                    self.end.send_replace(Some(end));
                }
                Effect::Log(event) => {
                    self.events
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .count(&event);
                    log(req, &event)
                }
            }
        }
        durable
    }

    /// One call from a worker: `step` runs on the locked job at the current time, its
    /// effects are applied, and its reply is returned once the records it synced are on
    /// disk. The lock is released before the wait, so other calls go on meanwhile.
    pub async fn call<R>(
        &self,
        req: RequestId,
        step: impl FnOnce(&mut Job, Instant) -> Step<R>,
    ) -> R {
        let (reply, durable) = {
            let mut job = self.lock();
            let step = step(&mut job, Instant::now());
            (step.reply, self.apply(&job, Some(req), step.effects))
        };
        durable.wait().await;
        reply
    }

    /// Wakes the sweeper only if the job's first deadline is now earlier than the one it
    /// sleeps until. A task's deadline is its start plus the timeout, so a new one is
    /// almost never the first: waking the sweeper at every assignment (a task switch and
    /// a lock per task) cost more than the assignment itself.
    fn rearm(&self, job: &Job) {
        let armed = *self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = match (job.next_deadline(), armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.sweep.notify_one();
        }
    }

    /// Takes back what expired and returns the deadline the sweeper is to sleep until,
    /// noted (under the job lock) for `Shared::rearm`, with its synced records (the end
    /// of a job that failed by a timeout) for the sweeper to wait for.
    pub fn sweep(&self, now: Instant) -> (Option<Instant>, Durable) {
        let mut job = self.lock();
        let step = job.tick(now);
        let durable = self.apply(&job, None, step.effects);
        let next = job.next_deadline();
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = next;
        (next, durable)
    }

    /// The events applied so far, counted.
    pub fn event_counts(&self) -> EventCounts {
        *self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the job. A panic while holding the lock would be a bug in this crate; the
    /// state is still consistent between calls, so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handler; cloned per request by tarpc.
#[derive(Clone)]
pub struct Service(pub Arc<Shared>);

impl Coordinator for Service {
    async fn register(self, _: Context, req: RequestId, info: WorkerInfo) -> Registration {
        let worker = self.0.call(req, |job, now| job.register(info, now)).await;
        Registration {
            worker,
            heartbeat_interval_ms: self.0.heartbeat_interval.as_millis() as u64,
        }
    }

    async fn heartbeat(self, _: Context, req: RequestId, worker: WorkerId) -> Directive {
        self.0
            .call(req, |job, now| job.heartbeat(worker, now))
            .await
    }

    async fn get_task(self, _: Context, req: RequestId, worker: WorkerId) -> TaskReply {
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            // Register interest before looking, so a wake-up between the look and the
            // wait is not lost.
            let notified = self.0.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reply = self.0.call(req, |job, now| job.poll(worker, now)).await;
            if reply != TaskReply::Wait {
                return reply;
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
    ) -> Reported {
        // The report and the poll the worker would make next, made for it in the same
        // locked step: one call and one journal sync a task instead of two of each.
        // The reply waits for the step's records that must be on disk before it (a
        // reduce's completion, the last map's; a map's other than the last is synced
        // soon after, while the worker runs its next task). A worker told `Wait` polls
        // as usual.
        self.0
            .call(req, |job, now| {
                let report = job.report(worker, task, attempt, outcome, now);
                let mut next = job.poll(worker, now);
                let mut effects = report.effects;
                effects.append(&mut next.effects);
                Step {
                    reply: Reported {
                        reply: report.reply,
                        next: next.reply,
                    },
                    effects,
                }
            })
            .await
    }
}

/// One log line per event, with the request id that caused it.
fn log(req: Option<RequestId>, event: &Event) {
    let req = req.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
    match event {
        Event::Registered { worker, host, pid } => {
            info!(%req, %worker, %host, pid, "worker registered")
        }
        Event::Unknown { worker } => {
            warn!(%req, %worker, "call from unknown worker; asking it to register")
        }
        Event::Assigned {
            worker,
            task,
            attempt,
        } => info!(%req, %worker, %task, %attempt, "assigned"),
        Event::BackedUp {
            worker,
            task,
            attempt,
            of,
        } => {
            let running = format!("{:.1}s", of.since.elapsed().as_secs_f64());
            info!(%req, %worker, %task, %attempt, original = %of.attempt, original_worker = %of.worker, %running, "backup started: the original is running long")
        }
        Event::Beaten {
            worker,
            task,
            attempt,
            by,
        } => {
            info!(%req, %worker, %task, %attempt, winner = %by, "attempt beaten by another attempt of its task; its worker is told to stop it")
        }
        Event::Completed {
            worker,
            task,
            attempt,
        } => info!(%req, %worker, %task, %attempt, "completed"),
        Event::Refused {
            worker,
            task,
            attempt,
            refusal,
            failure,
        } => match failure {
            // Harmless by design: see `worker::exec` on why a late rename of
            // deterministic output cannot change what readers see.
            None => warn!(%req, %worker, %task, %attempt, %refusal, "completion refused"),
            Some(failure) => {
                warn!(%req, %worker, %task, %attempt, %refusal, %failure, "failure report refused")
            }
        },
        Event::Failed {
            worker,
            task,
            attempt,
            failure,
            after,
        } => {
            let blame = failure.blame();
            match after {
                AfterFailure::Retry => {
                    warn!(%req, %worker, %task, %attempt, %failure, ?blame, "attempt failed; will retry")
                }
                AfterFailure::RerunMap(m) => {
                    warn!(%req, %worker, %task, %attempt, %failure, map = m, "map output lost; re-running the map")
                }
                AfterFailure::Unconfirmed(m) => {
                    warn!(%req, %worker, %task, %attempt, %failure, map = m, "map output unreachable from this worker only; retrying the reduce elsewhere")
                }
                AfterFailure::StaleLoss(m) => {
                    info!(%req, %worker, %task, %attempt, %failure, map = m, "loss report about replaced map output; retrying the reduce only")
                }
                AfterFailure::JobFailed(_) => {
                    warn!(%req, %worker, %task, %attempt, %failure, "attempt failed; the task has failed too often")
                }
            }
        }
        Event::Excluded {
            worker,
            host,
            last_error,
        } => {
            warn!(%req, %worker, %host, %last_error, "worker excluded: it failed too many tasks; it gets no more")
        }
        Event::Lost { worker } => warn!(%worker, "worker missed its heartbeats; declared lost"),
        Event::Revoked(r) => {
            warn!(task = %r.task, attempt = %r.attempt, worker = %r.worker, "attempt revoked; its worker is told to stop it")
        }
        Event::Reopened { map } => {
            warn!(map, "map output lived on a lost worker; re-running the map")
        }
        Event::SplitPoints(c) => {
            info!(%req, points = c.points.points().len(), sampled = c.sampled, "split points chosen; the maps may run");
            for h in &c.heavy {
                warn!(
                    key = %String::from_utf8_lossy(&h.key),
                    share = format!("{:.1}%", h.share * 100.0),
                    partition = h.partition,
                    "one key holds more than a partition's share of the sample; its partition will be larger than the others"
                );
            }
        }
        Event::GaveUp(f) => tracing::error!(%req, "giving up: {f}"),
    }
}
