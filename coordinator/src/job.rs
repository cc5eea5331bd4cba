//! The whole state of a running job: the task table and the worker registry, and the
//! rules that join them (a lost worker's tasks are revoked; the job ends when every
//! task is done or one failed too often). Pure: time comes in as `now`, and each call a
//! worker makes ([`Job::register`], [`Job::heartbeat`], [`Job::poll`], [`Job::report`])
//! and each sweep ([`Job::tick`]) returns its reply with the [`Effect`]s it implies,
//! which the service applies.

use crate::effect::{Effect, Event, Step, SyncWhen};
use crate::journal::Record;
use crate::registry::Registry;
use crate::task::{AfterFailure, JobFailure, Placement, Refusal, Revoked, Run, TaskTable};
use crate::views::attempts::{AttemptLog, FailureKind, Outcome};
use crate::views::listing::TaskListing;
use crate::views::timeline::Timeline;
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::rpc::{Directive, JobEnd, ReportReply, TaskReply, WorkerInfo};
use mr::task::{Assignment, Blame, SplitSource, TaskFailure, TaskOutcome, TaskResult};
use std::time::Instant;

/// Task table plus registry.
#[derive(Debug, Clone)]
pub struct Job {
    /// Every task.
    pub tasks: TaskTable,
    /// Every worker.
    pub workers: Registry,
    /// When the job and its phases started and ended.
    pub timeline: Timeline,
    /// Every attempt: who ran it, when, and how it ended (the timeline's bars).
    pub attempts: AttemptLog,
    /// The tasks by state and by worker, for the status page's pages.
    pub listing: TaskListing,
    /// Workers that share no filesystem with the coordinator may still read the input
    /// paths directly (`--shared-inputs`).
    pub shared_inputs: bool,
    /// Since when every live worker has been excluded, if so. The job fails once this
    /// has lasted a worker timeout with no new worker: long enough for the rest of a
    /// cluster that is still starting to join, short enough to end a hopeless job in
    /// seconds.
    pub all_excluded_since: Option<Instant>,
    /// Whether the end has been announced (journaled, published): once.
    announced: bool,
}

/// What a failure report led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// For the task.
    pub after: AfterFailure,
    /// Workers excluded by it.
    pub excluded: Vec<WorkerId>,
}

/// What an accepted completion led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Workers excluded by it (their failures of the task are proven wrong).
    pub excluded: Vec<WorkerId>,
    /// The task's other live attempt, beaten: its worker is told to stop it.
    pub beaten: Option<Run>,
}

/// What one sweep changed.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Workers declared lost.
    pub lost: Vec<WorkerId>,
    /// Attempts taken back (from lost workers, or timed out).
    pub revoked: Vec<Revoked>,
    /// Finished maps to run again: their output was on a lost worker's disk.
    pub reopened: Vec<u32>,
}

impl Job {
    /// A job of `tasks` run by the workers that will join `workers`, starting at `now`.
    pub fn new(tasks: TaskTable, workers: Registry, shared_inputs: bool, now: Instant) -> Job {
        let (samples, maps, reduces) = (
            tasks.samples().len(),
            tasks.maps().len(),
            tasks.reduces().len(),
        );
        Job {
            listing: TaskListing::new(&tasks),
            attempts: AttemptLog::for_tasks(now, samples, maps, reduces),
            tasks,
            workers,
            timeline: Timeline::new(now),
            shared_inputs,
            all_excluded_since: None,
            announced: false,
        }
    }

    /// How the job ended, once it has.
    pub fn end(&self) -> Option<JobEnd> {
        if self.tasks.failure().is_some() {
            Some(JobEnd::Failed)
        } else if self.tasks.is_done() {
            Some(JobEnd::Succeeded)
        } else {
            None
        }
    }

    /// A worker joins.
    pub fn register(&mut self, info: WorkerInfo, now: Instant) -> Step<WorkerId> {
        let (host, pid) = (info.host.clone(), info.pid);
        let worker = self.workers.register(info, now);
        let mut effects = vec![
            Effect::Log(Event::Registered { worker, host, pid }),
            Effect::Rearm,
        ];
        self.check_workers_left(now);
        self.finish(now, &mut effects);
        self.see(now, &effects);
        Step {
            reply: worker,
            effects,
        }
    }

    /// A worker says it is alive; it hears whether to go on, register again, or exit.
    pub fn heartbeat(&mut self, worker: WorkerId, now: Instant) -> Step<Directive> {
        let mut effects = Vec::new();
        let reply = if !self.workers.touch(worker, now) {
            effects.push(Effect::Log(Event::Unknown { worker }));
            Directive::Reregister
        } else {
            let abandon = self.workers.get(worker).and_then(|w| w.abandon);
            match (self.exit_directive(worker, &mut effects), abandon) {
                (Some(end), _) => Directive::Exit(end),
                (None, Some((task, attempt))) => Directive::Abandon { task, attempt },
                (None, None) => Directive::Continue,
            }
        };
        Step { reply, effects }
    }

    /// A worker asks for a task. `Wait` means nothing now: the shell waits for a
    /// [`Effect::WakePolls`] and asks again (a long poll).
    pub fn poll(&mut self, worker: WorkerId, now: Instant) -> Step<TaskReply> {
        let mut effects = Vec::new();
        let reply = if !self.workers.touch(worker, now) {
            effects.push(Effect::Log(Event::Unknown { worker }));
            TaskReply::Reregister
        } else if let Some(end) = self.exit_directive(worker, &mut effects) {
            TaskReply::Exit(end)
        } else if let Some(a) = {
            // Asking for work, it runs nothing: nothing is left to stop.
            self.workers.update(worker, |w| w.abandon = None);
            self.assign(worker, now)
        } {
            effects.push(Effect::Journal {
                record: Record::Assigned {
                    task: a.task,
                    attempt: a.attempt,
                },
                sync: SyncWhen::WithNext,
            });
            effects.push(Effect::Log(Event::Assigned {
                worker,
                task: a.task,
                attempt: a.attempt,
            }));
            if let Some(crate::task::TaskState::InProgress {
                run,
                backup: Some(b),
            }) = self.tasks.task(a.task).map(|t| &t.state)
            {
                if b.attempt == a.attempt {
                    effects.push(Effect::Log(Event::BackedUp {
                        worker,
                        task: a.task,
                        attempt: a.attempt,
                        of: *run,
                    }));
                }
            }
            effects.push(Effect::Rearm);
            self.timeline.assigned(a.task, now);
            TaskReply::Task(a)
        } else {
            TaskReply::Wait
        };
        self.see(now, &effects);
        Step { reply, effects }
    }

    /// A worker reports how an attempt went.
    pub fn report(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
        now: Instant,
    ) -> Step<ReportReply> {
        let mut effects = Vec::new();
        self.workers.touch(worker, now);
        let since = Timeline::running_since(&self.tasks, task, attempt);
        let refused = |refusal: Refusal, failure: Option<TaskFailure>| {
            Effect::Log(Event::Refused {
                worker,
                task,
                attempt,
                refusal,
                failure,
            })
        };
        let had_points = self.tasks.chosen().is_some();
        let assignable = self.tasks.assignable();
        let reply = match outcome {
            Ok(result) => match self.complete(worker, task, attempt, result.clone(), now) {
                Ok(Completed { excluded, beaten }) => {
                    if task.kind == TaskKind::Sample {
                        // A sample's keys are not journaled (they can be many, and a
                        // restart just samples again); the split points chosen from
                        // them are, on disk before any map can be handed out with them
                        // (the journal writes in order, and a map's own completion is
                        // synced after this).
                        if let (false, Some(chosen)) = (had_points, self.tasks.chosen()) {
                            effects.push(Effect::Journal {
                                record: Record::SplitPoints {
                                    chosen: chosen.clone(),
                                },
                                sync: SyncWhen::BeforeReply,
                            });
                            effects.push(Effect::Log(Event::SplitPoints(chosen.clone())));
                        }
                    } else {
                        // A reduce's completion is on disk before the worker hears
                        // "accepted" (its output is committed for good); a map's soon
                        // after, unless it is the last map: the reduces it releases
                        // are handed out only once every map's completion is on disk.
                        let sync = if task.kind == TaskKind::Map && !self.tasks.maps_done() {
                            SyncWhen::Soon
                        } else {
                            SyncWhen::BeforeReply
                        };
                        effects.push(Effect::Journal {
                            record: Record::Done {
                                task,
                                attempt,
                                worker,
                                result,
                            },
                            sync,
                        });
                    }
                    effects.push(Effect::Log(Event::Completed {
                        worker,
                        task,
                        attempt,
                    }));
                    if let Some(b) = beaten {
                        effects.push(Effect::Log(Event::Beaten {
                            worker: b.worker,
                            task,
                            attempt: b.attempt,
                            by: attempt,
                        }));
                    }
                    self.timeline.completed(task, since, now);
                    // The last map releases the reduces (and a sample the maps); a
                    // worker excluded can leave a task skipped for others to the
                    // workers that wait. Otherwise the waiting polls can only start a
                    // backup, and one is enough.
                    if self.tasks.assignable() > assignable || !excluded.is_empty() {
                        effects.push(Effect::WakePolls);
                    } else if self.tasks.assignable() == 0 {
                        effects.push(Effect::WakeOne);
                    }
                    self.log_excluded(&excluded, &mut effects);
                    ReportReply::Accepted
                }
                Err(refusal) => {
                    effects.push(refused(refusal.clone(), None));
                    ReportReply::Refused(refusal)
                }
            },
            Err(failure) => match self.fail(worker, task, attempt, &failure, now) {
                Ok(failed) => {
                    if let AfterFailure::RerunMap(m) = failed.after {
                        effects.push(Effect::Journal {
                            record: Record::Reopened {
                                task: TaskId::map(m),
                            },
                            sync: SyncWhen::BeforeReply,
                        });
                    }
                    effects.push(Effect::Log(Event::Failed {
                        worker,
                        task,
                        attempt,
                        failure,
                        after: failed.after,
                    }));
                    self.log_excluded(&failed.excluded, &mut effects);
                    effects.push(Effect::WakePolls);
                    ReportReply::Accepted
                }
                Err(refusal) => {
                    effects.push(refused(refusal.clone(), Some(failure)));
                    ReportReply::Refused(refusal)
                }
            },
        };
        self.finish(now, &mut effects);
        self.see(now, &effects);
        Step { reply, effects }
    }

    /// Declares silent workers lost, takes back their tasks and the ones that timed
    /// out, and reopens the maps whose output was on a lost worker's disk.
    pub fn tick(&mut self, now: Instant) -> Step<()> {
        let sweep = self.sweep(now);
        let mut effects = Vec::new();
        for w in sweep.lost {
            effects.push(Effect::Log(Event::Lost { worker: w }));
        }
        let changed = !sweep.revoked.is_empty() || !sweep.reopened.is_empty();
        for r in sweep.revoked {
            // It may still be running (a frozen worker that wakes, or a hung task).
            self.workers
                .update(r.worker, |w| w.abandon = Some((r.task, r.attempt)));
            effects.push(Effect::Log(Event::Revoked(r)));
        }
        for m in sweep.reopened {
            // Nobody waits for this one: a restart that missed it finds the output
            // unfetchable and re-runs the map then.
            effects.push(Effect::Journal {
                record: Record::Reopened {
                    task: TaskId::map(m),
                },
                sync: SyncWhen::WithNext,
            });
            effects.push(Effect::Log(Event::Reopened { map: m }));
        }
        if changed {
            effects.push(Effect::WakePolls);
        }
        self.finish(now, &mut effects);
        self.see(now, &effects);
        Step { reply: (), effects }
    }

    /// Records what a call did to attempts and tasks, from the events it returns (the
    /// same ones the log and the event counts see): the attempt log's starts and ends,
    /// and the listing's view of each task an event names. O(1) per event (O(log n)
    /// for the listing). Observation only: nothing here decides anything.
    fn see(&mut self, now: Instant, effects: &[Effect]) {
        for effect in effects {
            let Effect::Log(event) = effect else {
                continue;
            };
            match event {
                Event::Assigned {
                    worker,
                    task,
                    attempt,
                } => {
                    let backup = self
                        .tasks
                        .task(*task)
                        .and_then(|t| t.state.run_of(*attempt))
                        .is_some_and(|r| r.backup);
                    self.attempts
                        .assigned(*task, *attempt, *worker, backup, now);
                    self.listing.assigned(*worker, *task);
                    self.listing.touch(&self.tasks, *task);
                }
                Event::Completed { task, attempt, .. } => {
                    self.attempts
                        .ended(*task, *attempt, Outcome::Done, None, now);
                    self.listing.touch(&self.tasks, *task);
                }
                Event::Beaten { task, attempt, .. } => {
                    self.attempts
                        .ended(*task, *attempt, Outcome::Beaten, None, now);
                }
                Event::Failed {
                    task,
                    attempt,
                    failure,
                    after,
                    ..
                } => {
                    let kind = FailureKind::of(failure);
                    self.attempts
                        .ended(*task, *attempt, Outcome::Failed, Some(kind), now);
                    self.listing.failed(*task);
                    self.listing.touch(&self.tasks, *task);
                    // A reduce's report of lost map output may have sent the map back
                    // to idle (to run again, or as the job gave up on it).
                    if let TaskFailure::LostMapOutput { map, .. } = failure {
                        self.listing.touch(&self.tasks, TaskId::map(*map));
                    }
                    match after {
                        AfterFailure::RerunMap(m) => self.listing.failed(TaskId::map(*m)),
                        AfterFailure::JobFailed(JobFailure::Task { task: t, .. }) => {
                            self.listing.failed(*t)
                        }
                        _ => {}
                    }
                }
                Event::Revoked(r) => {
                    // Its worker declared lost in this sweep, or timed out.
                    let lost = self.workers.get(r.worker).is_some_and(|w| w.lost);
                    let outcome = if lost {
                        Outcome::Lost
                    } else {
                        Outcome::Revoked
                    };
                    self.attempts.ended(r.task, r.attempt, outcome, None, now);
                    self.listing.touch(&self.tasks, r.task);
                }
                Event::Reopened { map } => self.listing.touch(&self.tasks, TaskId::map(*map)),
                Event::Refused {
                    worker,
                    task,
                    attempt,
                    ..
                } => self.attempts.refused(*task, *attempt, *worker, now),
                _ => {}
            }
        }
    }

    /// Builds the listing again from the task table, after something other than a call
    /// changed it (a restart restored tasks from the journal).
    pub fn relist(&mut self) {
        self.listing = TaskListing::new(&self.tasks);
    }

    /// Checks the views kept beside the core (the listing) against a recount (for
    /// tests and the simulator).
    pub fn audit_views(&self) -> Result<(), String> {
        self.listing.audit(&self.tasks, &self.attempts)
    }

    /// After every call: the phase ends reached, and the end of the job, announced
    /// once (journaled, published, everyone woken).
    fn finish(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.timeline.observe(&self.tasks, now);
        let Some(end) = self.end() else {
            return;
        };
        if std::mem::replace(&mut self.announced, true) {
            return;
        }
        if let Some(f) = self.tasks.failure() {
            effects.push(Effect::Log(Event::GaveUp(f.clone())));
        }
        effects.push(Effect::Journal {
            record: Record::Finished {
                succeeded: end == JobEnd::Succeeded,
            },
            sync: SyncWhen::BeforeReply,
        });
        effects.push(Effect::Ended(end));
        effects.push(Effect::WakePolls);
    }

    /// If the job is over, marks `worker` as told.
    fn exit_directive(&mut self, worker: WorkerId, effects: &mut Vec<Effect>) -> Option<JobEnd> {
        let end = self.end()?;
        self.workers.update(worker, |w| w.told_exit = true);
        effects.push(Effect::ToldExit);
        Some(end)
    }

    fn log_excluded(&self, excluded: &[WorkerId], effects: &mut Vec<Effect>) {
        for w in excluded {
            let (host, last_error) = self
                .workers
                .get(*w)
                .map(|x| {
                    (
                        x.info.host.clone(),
                        x.last_error.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            effects.push(Effect::Log(Event::Excluded {
                worker: *w,
                host,
                last_error,
            }));
        }
    }

    /// Whether `worker` shares the coordinator's filesystem (no data server of its own).
    fn shares_files(&self, worker: WorkerId) -> bool {
        self.workers
            .get(worker)
            .is_some_and(|w| w.info.data_addr.is_none())
    }

    /// Hands `worker` a task, shaped for how it reaches files: a worker with its own
    /// data server shares nothing with the coordinator, so it streams its split (unless
    /// the inputs are on shared storage) and sends its reduce output back. An excluded
    /// worker gets nothing, and a task that failed on `worker` goes to another worker
    /// whenever some eligible worker has not failed it yet.
    pub fn assign(&mut self, worker: WorkerId, now: Instant) -> Option<Assignment> {
        if !self.workers.is_eligible(worker) {
            return None;
        }
        let remote = !self.shares_files(worker);
        let placement = match (remote, self.shared_inputs) {
            (false, _) => Placement::SHARED,
            (true, shared) => Placement {
                split_source: if shared {
                    SplitSource::Path
                } else {
                    SplitSource::Coordinator
                },
                ship_output: true,
            },
        };
        let workers = &self.workers;
        // Backups beat a slow worker's attempts; its own backups would lose the same way.
        let may_back_up = !workers.get(worker).is_some_and(|w| w.slow());
        self.tasks
            .assign_with(worker, placement, now, may_back_up, |t| {
                // Another eligible worker has not failed it: the eligible workers it failed
                // on are fewer than all eligible workers. (O(failures), not O(workers).)
                t.failed_on(worker) && {
                    let mut tried: Vec<WorkerId> = t
                        .failed_on
                        .iter()
                        .map(|(w, _)| *w)
                        .filter(|w| workers.is_eligible(*w))
                        .collect();
                    tried.sort_unstable();
                    tried.dedup();
                    tried.len() < workers.eligible_count()
                }
            })
    }

    /// Records a finished attempt; a worker that had failed this task through the
    /// task's apparent fault is thereby shown to be the one at fault, and the task's
    /// other live attempt, if any, is beaten (its worker is told to stop it; if it was
    /// the original and a backup beat it, that counts towards noting its worker slow).
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        result: TaskResult,
        now: Instant,
    ) -> Result<Completed, Refusal> {
        let beaten = self.tasks.complete(worker, id, attempt, result, now)?;
        if let Some(b) = beaten {
            self.workers.update(b.worker, |w| {
                w.abandon = Some((id, b.attempt));
                if !b.backup {
                    w.beaten += 1;
                }
            });
        }
        let proven_wrong: Vec<WorkerId> = self
            .tasks
            .task(id)
            .map(|t| {
                t.failed_on
                    .iter()
                    .filter(|(_, task_blamed)| *task_blamed)
                    .map(|(w, _)| *w)
                    .collect()
            })
            .unwrap_or_default();
        let excluded = self.workers.finished(worker, id, proven_wrong);
        self.check_workers_left(now);
        Ok(Completed { excluded, beaten })
    }

    /// Records a failed attempt, blamed by its type: the task's own fault counts towards
    /// its limit; a fault of the worker's machine does not (the task is retried on
    /// another worker) but is a strike against the worker. A shared directory is every
    /// worker's disk, so there a machine fault counts against the task as well.
    pub fn fail(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        failure: &TaskFailure,
        now: Instant,
    ) -> Result<Failed, Refusal> {
        let blame = failure.blame();
        let counts = match blame {
            Blame::Task => true,
            Blame::Worker => self.shares_files(worker),
            // Only a reduce reads map output: from a map, such a report is the task's
            // own failure.
            Blame::Map(_) => id.kind == TaskKind::Map,
        };
        let elsewhere = self.workers.eligible().any(|w| w != worker);
        // A report that a map output is unreachable is open to doubt while its server
        // may be alive (it is, or has not yet had the time to register with a
        // coordinator that just restarted) and a worker on another machine could try.
        let fresh = now.saturating_duration_since(self.timeline.started) < self.workers.timeout();
        let doubt = match failure {
            TaskFailure::LostMapOutput {
                map,
                location: mr::task::Location::Remote { server, .. },
                ..
            } => {
                // Not heard of yet by a coordinator that just restarted: it may be
                // alive, and could run the reduce on its own output.
                let rejoining = fresh && !self.workers.knows_server(server);
                let alive = self.workers.serves(server) || rejoining;
                let host = self.workers.get(worker).map(|w| w.info.host.as_str());
                // A worker on another machine that has not said it cannot reach this
                // output could try. (O(workers), on loss reports only.)
                let doubters = self
                    .tasks
                    .task(TaskId::map(*map))
                    .map(|t| t.unreachable_from.as_slice())
                    .unwrap_or_default();
                let untried = rejoining
                    || self.workers.eligible().any(|w| {
                        self.workers.get(w).is_some_and(|x| {
                            Some(x.info.host.as_str()) != host && !doubters.contains(&x.info.host)
                        })
                    });
                host.filter(|_| alive && untried)
            }
            _ => None,
        };
        let after = self.tasks.fail_weighed(
            worker,
            id,
            attempt,
            failure,
            counts,
            elsewhere,
            doubt.map(str::to_string).as_deref(),
        )?;
        // Held against the worker: a failure blamed on it or its task. (A map output it
        // alone could not reach is held against it only once another worker finishes
        // the reduce, as a task failure is: see `complete`.)
        let own = match blame {
            Blame::Map(_) => None,
            b => Some(b == Blame::Worker),
        };
        let mut excluded = Vec::new();
        if let Some(machine) = own {
            if self
                .workers
                .failed(worker, id, machine, failure.to_string())
            {
                excluded.push(worker);
            }
        }
        self.check_workers_left(now);
        Ok(Failed { after, excluded })
    }

    /// Fails the job once every live worker has been excluded for a worker timeout:
    /// nothing could finish it.
    pub fn check_workers_left(&mut self, now: Instant) {
        if self.end().is_some() {
            return;
        }
        match self.workers.all_excluded() {
            None => self.all_excluded_since = None,
            Some(workers) => {
                let since = *self.all_excluded_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.workers.timeout() {
                    self.tasks.fail_job(JobFailure::NoWorkers(workers));
                }
            }
        }
    }

    /// Declares silent workers lost, revokes their tasks, reopens the maps whose output
    /// was on their disks, and revokes timed-out tasks.
    pub fn sweep(&mut self, now: Instant) -> Sweep {
        let lost = self.workers.expire(now);
        let mut revoked = Vec::new();
        let mut reopened = Vec::new();
        for w in &lost {
            revoked.extend(self.tasks.revoke_worker(*w));
            reopened.extend(self.tasks.reopen_output_of(*w));
        }
        revoked.extend(self.tasks.expire(now));
        self.check_workers_left(now);
        Sweep {
            lost,
            revoked,
            reopened,
        }
    }

    /// When the next sweep could change something (never, once the job is over: a
    /// deadline left in the past would have the sweeper spin).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.end().is_some() {
            return None;
        }
        let no_workers = self.all_excluded_since.map(|t| t + self.workers.timeout());
        [
            self.tasks.next_deadline(),
            self.workers.next_deadline(),
            no_workers,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskState;
    use crate::views::listing::TaskQuery;
    use mr::rpc::WorkerInfo;
    use mr::task::{Location, TaskStats};
    use std::time::Duration;

    fn job_of(maps: usize, reduces: u32) -> (Job, Instant) {
        let t0 = Instant::now();
        let job = Job::new(
            TaskTable::new(
                crate::task::test_splits(maps, 1),
                reduces,
                "out".into(),
                Duration::from_secs(10),
                4,
            ),
            Registry::new(Duration::from_secs(3)),
            false,
            t0,
        );
        (job, t0)
    }

    /// A worker over TCP (its own data server: it shares no disk).
    fn remote(job: &mut Job, t0: Instant) -> WorkerId {
        remote_on(job, t0, "h")
    }

    /// The same, on `host`.
    fn remote_on(job: &mut Job, t0: Instant, host: &str) -> WorkerId {
        let info = WorkerInfo {
            host: host.into(),
            pid: 1,
            data_addr: Some(format!("{host}:1")),
        };
        job.workers.register(info, t0)
    }

    fn disk_full() -> TaskFailure {
        TaskFailure::local(
            "cannot write output",
            &std::io::Error::from_raw_os_error(28 /* ENOSPC */),
        )
    }

    fn panic_failure() -> TaskFailure {
        TaskFailure::App {
            message: "bad record".into(),
        }
    }

    /// Map `_m`'s output for all `_r` partitions, on `server`.
    fn map_result(_r: u32, _m: u32, server: &str) -> TaskResult {
        TaskResult::Map {
            output: mr::task::MapOutputs::Server(server.into()),
            stats: TaskStats::default(),
        }
    }

    /// Which wake-up a completion asks for: none while idle maps are left (nobody
    /// waits then), one in a phase's tail (for a backup), all when the reduces are
    /// released.
    #[test]
    fn a_completion_wakes_every_poll_only_when_it_releases_tasks() {
        let (mut job, t0) = job_of(3, 2);
        let w1 = remote(&mut job, t0);
        let w2 = remote(&mut job, t0);
        let wakes = |effects: &[Effect]| {
            (
                effects.contains(&Effect::WakePolls),
                effects.contains(&Effect::WakeOne),
            )
        };
        let task = |reply: TaskReply| match reply {
            TaskReply::Task(a) => a,
            other => panic!("expected a task, got {other:?}"),
        };
        let a0 = task(job.poll(w1, t0).reply);
        let a1 = task(job.poll(w2, t0).reply);
        let done = |job: &mut Job, w, a: &Assignment| {
            let step = job.report(
                w,
                a.task,
                a.attempt,
                Ok(map_result(2, a.task.index, "h:1")),
                t0,
            );
            assert_eq!(step.reply, ReportReply::Accepted);
            wakes(&step.effects)
        };
        assert_eq!(
            done(&mut job, w1, &a0),
            (false, false),
            "map-2 is still idle"
        );
        let a2 = task(job.poll(w1, t0).reply);
        assert_eq!(
            done(&mut job, w2, &a1),
            (false, true),
            "the tail: one, for a backup"
        );
        assert_eq!(
            done(&mut job, w1, &a2),
            (true, false),
            "the reduces are released"
        );
        assert_eq!(job.tasks.assignable(), 2);
    }

    #[test]
    fn a_full_disk_is_the_workers_fault_the_task_goes_elsewhere_and_the_worker_is_excluded() {
        let (mut job, t0) = job_of(4, 1);
        let bad = remote(&mut job, t0);
        let good = remote(&mut job, t0);
        for round in 0..3 {
            let a = job
                .assign(bad, t0)
                .expect("the bad worker still gets tasks");
            let f = job.fail(bad, a.task, a.attempt, &disk_full(), t0).unwrap();
            assert_eq!(f.after, AfterFailure::Retry);
            let t = job.tasks.task(a.task).unwrap();
            assert_eq!(
                t.failures, 0,
                "a machine fault does not count against the task"
            );
            if round < 2 {
                assert!(f.excluded.is_empty());
            } else {
                assert_eq!(f.excluded, vec![bad], "three strikes");
            }
        }
        assert!(job.workers.get(bad).unwrap().excluded);
        assert_eq!(job.assign(bad, t0), None, "an excluded worker gets nothing");
        assert_eq!(job.end(), None, "a healthy worker is left");
        while let Some(a) = job.assign(good, t0) {
            let result = match a.task.kind {
                mr::ids::TaskKind::Map => map_result(1, a.task.index, "10.0.0.2:1"),
                mr::ids::TaskKind::Reduce => TaskResult::Reduce {
                    output: Location::Path("mr-out-0".into()),
                    stats: TaskStats::default(),
                },
                mr::ids::TaskKind::Sample => unreachable!("a hash-partitioned job"),
            };
            job.complete(good, a.task, a.attempt, result, t0).unwrap();
        }
        assert_eq!(job.end(), Some(JobEnd::Succeeded));
    }

    #[test]
    fn a_task_that_failed_on_a_worker_is_not_given_back_to_it_while_another_could_run_it() {
        let (mut job, t0) = job_of(2, 1);
        let w1 = remote(&mut job, t0);
        let w2 = remote(&mut job, t0);
        let a = job.assign(w1, t0).unwrap();
        assert_eq!(a.task, mr::ids::TaskId::map(0));
        job.fail(w1, a.task, a.attempt, &disk_full(), t0).unwrap();
        let b = job.assign(w1, t0).unwrap();
        assert_eq!(b.task, mr::ids::TaskId::map(1), "map-0 waits for w2");
        assert_eq!(job.assign(w1, t0), None);
        let c = job.assign(w2, t0).unwrap();
        assert_eq!(c.task, mr::ids::TaskId::map(0));
    }

    #[test]
    fn an_app_failure_everywhere_fails_the_job_after_four_attempts_on_two_workers() {
        let (mut job, t0) = job_of(1, 1);
        let w1 = remote(&mut job, t0);
        let w2 = remote(&mut job, t0);
        let mut seen = Vec::new();
        let mut last = None;
        for _ in 0..4 {
            let w = if job
                .tasks
                .task(mr::ids::TaskId::map(0))
                .unwrap()
                .failed_on(w1)
            {
                w2
            } else {
                w1
            };
            let a = job
                .assign(w, t0)
                .or_else(|| job.assign(if w == w1 { w2 } else { w1 }, t0))
                .unwrap();
            seen.push(w);
            last = Some(
                job.fail(w, a.task, a.attempt, &panic_failure(), t0)
                    .unwrap(),
            );
        }
        let last = last.unwrap();
        assert!(matches!(last.after, AfterFailure::JobFailed(_)), "{last:?}");
        assert!(
            last.excluded.is_empty(),
            "nobody is excluded for the app's own bug"
        );
        assert_eq!(
            job.tasks
                .task(mr::ids::TaskId::map(0))
                .unwrap()
                .failed_on_workers(),
            2
        );
        assert_eq!(job.end(), Some(JobEnd::Failed));
        assert!(job
            .tasks
            .failure()
            .unwrap()
            .to_string()
            .contains("bad record"));
    }

    #[test]
    fn one_workers_task_failures_do_not_fail_the_job_while_another_worker_can_try() {
        let (mut job, t0) = job_of(1, 1);
        let w1 = remote(&mut job, t0);
        for _ in 0..4 {
            let a = job.assign(w1, t0).unwrap();
            job.fail(w1, a.task, a.attempt, &panic_failure(), t0)
                .unwrap();
            if job.end().is_some() {
                break;
            }
        }
        // Alone, w1's four failures are enough.
        assert_eq!(job.end(), Some(JobEnd::Failed));

        let (mut job, t0) = job_of(1, 1);
        let w1 = remote(&mut job, t0);
        for _ in 0..3 {
            let a = job.assign(w1, t0).unwrap();
            job.fail(w1, a.task, a.attempt, &panic_failure(), t0)
                .unwrap();
        }
        let w2 = remote(&mut job, t0);
        // w1 cannot take it while w2 has not tried it.
        assert_eq!(job.assign(w1, t0), None);
        let a = job.assign(w2, t0).unwrap();
        let f = job
            .fail(w2, a.task, a.attempt, &panic_failure(), t0)
            .unwrap();
        assert!(matches!(f.after, AfterFailure::JobFailed(_)), "{f:?}");
    }

    #[test]
    fn a_worker_whose_app_fails_where_others_succeed_is_excluded() {
        let (mut job, t0) = job_of(4, 1);
        let bad = remote(&mut job, t0);
        let good = remote(&mut job, t0);
        let mut excluded = Vec::new();
        for _ in 0..3 {
            let a = job.assign(bad, t0).unwrap();
            job.fail(bad, a.task, a.attempt, &panic_failure(), t0)
                .unwrap();
            let b = job.assign(good, t0).unwrap();
            assert_eq!(b.task, a.task);
            excluded.extend(
                job.complete(
                    good,
                    b.task,
                    b.attempt,
                    map_result(1, b.task.index, "g:1"),
                    t0,
                )
                .unwrap()
                .excluded,
            );
        }
        assert_eq!(excluded, vec![bad]);
        assert_eq!(job.assign(bad, t0), None);
    }

    #[test]
    fn when_every_worker_is_excluded_the_job_fails_at_once_naming_them() {
        let (mut job, t0) = job_of(2, 1);
        let w1 = remote(&mut job, t0);
        let w2 = remote(&mut job, t0);
        loop {
            let progressed = [w1, w2].into_iter().any(|w| match job.assign(w, t0) {
                Some(a) => {
                    job.fail(w, a.task, a.attempt, &disk_full(), t0).unwrap();
                    true
                }
                None => false,
            });
            if !progressed {
                break;
            }
        }
        assert!(job.workers.get(w1).unwrap().excluded && job.workers.get(w2).unwrap().excluded);
        // A worker timeout of grace, for the rest of a cluster to join...
        let grace = t0 + Duration::from_secs(3);
        assert_eq!(job.next_deadline(), Some(grace));
        assert_eq!(job.end(), None);
        let late = remote(&mut job, t0 + Duration::from_secs(1));
        job.check_workers_left(t0 + Duration::from_secs(1));
        assert_eq!(job.all_excluded_since, None, "a new worker can go on");
        job.workers.update(late, |w| w.excluded = true);
        // ...then the job fails, naming them.
        for w in [w1, w2, late] {
            job.workers.touch(w, grace);
        }
        job.check_workers_left(grace);
        assert_eq!(job.end(), None, "the grace starts again");
        job.check_workers_left(grace + Duration::from_secs(3));
        assert_eq!(job.end(), Some(JobEnd::Failed));
        let f = job.tasks.failure().unwrap().to_string();
        assert!(
            f.contains(&w1.to_string()) && f.contains(&w2.to_string()),
            "{f}"
        );
        assert!(f.contains("No space left"), "{f}");
    }

    #[test]
    fn a_late_loss_report_about_replaced_output_changes_nothing() {
        let (mut job, t0) = job_of(2, 2);
        let w1 = remote(&mut job, t0);
        let w2 = remote(&mut job, t0);
        for (w, server) in [(w1, "a:1"), (w2, "b:1")] {
            let a = job.assign(w, t0).unwrap();
            job.complete(
                w,
                a.task,
                a.attempt,
                map_result(2, a.task.index, server),
                t0,
            )
            .unwrap();
        }
        // Both reduces start, holding map-0's output on a:1.
        let r0 = job.assign(w2, t0).unwrap();
        let r1 = job.assign(w2, t0).unwrap();
        let lost = |y: u32| TaskFailure::LostMapOutput {
            map: 0,
            attempt: Attempt(1),
            location: Location::Remote {
                server: "a:1".into(),
                name: format!("mr-0-{y}"),
            },
            cause: mr::task::LossCause::Missing,
            error: "connection refused".into(),
        };
        // The first report re-runs map-0; it is re-made on b:1.
        let f = job.fail(w2, r0.task, r0.attempt, &lost(0), t0).unwrap();
        assert_eq!(f.after, AfterFailure::RerunMap(0));
        let m = job.assign(w2, t0).unwrap();
        assert_eq!(m.task, mr::ids::TaskId::map(0));
        job.complete(w2, m.task, m.attempt, map_result(2, 0, "b:1"), t0)
            .unwrap();
        // The second reducer's report arrives late, about the replaced output.
        let f = job.fail(w2, r1.task, r1.attempt, &lost(1), t0).unwrap();
        assert_eq!(f.after, AfterFailure::StaleLoss(0));
        let map0 = job.tasks.task(mr::ids::TaskId::map(0)).unwrap();
        assert!(matches!(map0.state, crate::task::TaskState::Done { .. }));
        assert_eq!(map0.failures, 1, "only the real loss counted");
        // A loss report naming a map that does not exist changes nothing at all.
        let r = job.assign(w2, t0).unwrap();
        let bogus = TaskFailure::LostMapOutput {
            map: 99,
            attempt: Attempt(1),
            location: Location::Path("x".into()),
            cause: mr::task::LossCause::Missing,
            error: "x".into(),
        };
        assert!(job.fail(w2, r.task, r.attempt, &bogus, t0).is_err());
        assert!(matches!(
            job.tasks.task(r.task).unwrap().state,
            crate::task::TaskState::InProgress { .. }
        ));
    }

    #[test]
    fn one_reducer_that_cannot_reach_a_live_workers_output_is_blamed_a_second_reruns_the_map() {
        let (mut job, t0) = job_of(1, 3);
        let w1 = remote_on(&mut job, t0, "h1");
        let w2 = remote_on(&mut job, t0, "h2");
        let w3 = remote_on(&mut job, t0, "h3");
        let m = job.assign(w1, t0).unwrap();
        job.complete(w1, m.task, m.attempt, map_result(3, 0, "h1:1"), t0)
            .unwrap();
        let unreachable = |y: u32| TaskFailure::LostMapOutput {
            map: 0,
            attempt: m.attempt,
            location: Location::Remote {
                server: "h1:1".into(),
                name: format!("mr-0-{y}"),
            },
            cause: mr::task::LossCause::Unreachable,
            error: "connection timed out".into(),
        };
        // w2 alone cannot reach w1, which heartbeats: w2's network is suspect.
        let r = job.assign(w2, t0).unwrap();
        let f = job
            .fail(w2, r.task, r.attempt, &unreachable(r.task.index), t0)
            .unwrap();
        assert_eq!(f.after, AfterFailure::Unconfirmed(0));
        let map0 = job.tasks.task(mr::ids::TaskId::map(0)).unwrap();
        assert!(map0.is_done() && map0.failures == 0, "the map stays done");
        assert!(job.workers.get(w2).unwrap().strikes.is_empty(), "not yet");
        // The reduce goes to another worker, not back to w2 while one could take it;
        // w1 finishes it, which shows w2 was at fault.
        let again = job.assign(w2, t0).unwrap();
        assert_ne!(again.task, r.task);
        let by_w1 = job.assign(w1, t0).unwrap();
        assert_eq!(by_w1.task, r.task);
        let done = TaskResult::Reduce {
            output: Location::Path("mr-out-0".into()),
            stats: TaskStats::default(),
        };
        job.complete(w1, by_w1.task, by_w1.attempt, done, t0)
            .unwrap();
        assert_eq!(job.workers.get(w2).unwrap().strikes.len(), 1);
        // A second, different reducer cannot reach it either: the output is lost.
        let r3 = job.assign(w3, t0).unwrap();
        let f = job
            .fail(w3, r3.task, r3.attempt, &unreachable(r3.task.index), t0)
            .unwrap();
        assert_eq!(f.after, AfterFailure::RerunMap(0));
        assert_eq!(job.tasks.task(mr::ids::TaskId::map(0)).unwrap().failures, 1);
        job.tasks.audit().unwrap();
    }

    #[test]
    fn an_unreachable_output_of_a_lost_worker_reruns_the_map_at_once() {
        let (mut job, t0) = job_of(1, 1);
        let w1 = remote_on(&mut job, t0, "h1");
        let w2 = remote(&mut job, t0);
        let m = job.assign(w1, t0).unwrap();
        job.complete(w1, m.task, m.attempt, map_result(1, 0, "h1:1"), t0)
            .unwrap();
        let r = job.assign(w2, t0).unwrap();
        // w1 went silent: declared lost (its output reopened by the sweep).
        job.workers.update(w1, |w| w.lost = true);
        let f = job
            .fail(
                w2,
                r.task,
                r.attempt,
                &TaskFailure::LostMapOutput {
                    map: 0,
                    attempt: m.attempt,
                    location: Location::Remote {
                        server: "h1:1".into(),
                        name: "mr-0-0".into(),
                    },
                    cause: mr::task::LossCause::Unreachable,
                    error: "connection refused".into(),
                },
                t0,
            )
            .unwrap();
        assert_eq!(f.after, AfterFailure::RerunMap(0));
    }

    #[test]
    fn a_map_that_reports_lost_map_output_counts_a_failure() {
        let (mut job, t0) = job_of(1, 1);
        let w = remote(&mut job, t0);
        let a = job.assign(w, t0).unwrap();
        let lost = TaskFailure::LostMapOutput {
            map: 0,
            attempt: Attempt(1),
            location: Location::Path("x".into()),
            cause: mr::task::LossCause::Missing,
            error: "x".into(),
        };
        job.fail(w, a.task, a.attempt, &lost, t0).unwrap();
        assert_eq!(job.tasks.task(a.task).unwrap().failures, 1);
    }

    #[test]
    fn a_worker_that_misses_heartbeats_loses_its_task_before_the_task_timeout() {
        let (mut job, t0) = job_of(1, 1);
        let info = WorkerInfo {
            host: "h".into(),
            pid: 1,
            data_addr: None,
        };
        let w = job.workers.register(info, t0);
        let a = job.tasks.assign(w, t0).unwrap();
        assert_eq!(job.next_deadline(), Some(t0 + Duration::from_secs(3)));
        let s = job.sweep(t0 + Duration::from_secs(3));
        assert_eq!(s.lost, vec![w]);
        assert_eq!(s.revoked.len(), 1);
        assert_eq!(s.revoked[0].attempt, a.attempt);
        assert_eq!(job.tasks.task(a.task).unwrap().state, TaskState::Idle);
        assert_eq!(job.end(), None);
    }

    #[test]
    fn the_beaten_worker_hears_abandon_until_it_asks_for_work_and_twice_beaten_is_slow() {
        let (mut job, t0) = job_of(4, 2);
        let fast = remote_on(&mut job, t0, "fast");
        let slow = remote_on(&mut job, t0, "slow");
        let at = |s: u64| t0 + Duration::from_secs(s);
        let task = |step: Step<TaskReply>| match step.reply {
            TaskReply::Task(a) => a,
            other => panic!("no task: {other:?}"),
        };
        let done = |job: &mut Job, w, a: &Assignment, t| {
            let result = match a.task.kind {
                TaskKind::Map => map_result(2, a.task.index, "fast:1"),
                _ => TaskResult::Reduce {
                    output: Location::Path(format!("mr-out-{}", a.task.index).into()),
                    stats: TaskStats::default(),
                },
            };
            job.report(w, a.task, a.attempt, Ok(result), t)
        };
        // The slow worker sits on map-0; the fast one runs the other maps, 1 s each.
        let stuck = task(job.poll(slow, at(0)));
        for s in 0..3 {
            let a = task(job.poll(fast, at(s)));
            assert_ne!(a.task, stuck.task);
            assert_eq!(
                done(&mut job, fast, &a, at(s + 1)).reply,
                ReportReply::Accepted
            );
        }
        // No idle map is left and map-0 has run 3 s, twice the median: a backup.
        let backup = task(job.poll(fast, at(3)));
        assert_eq!((backup.task, backup.attempt), (stuck.task, Attempt(2)));
        let step = done(&mut job, fast, &backup, at(4));
        assert!(step.effects.iter().any(|e| matches!(e,
            Effect::Log(Event::Beaten { worker, attempt, .. }) if *worker == slow && *attempt == stuck.attempt)));
        // The beaten worker hears it at each heartbeat until it asks for work.
        let told = Directive::Abandon {
            task: stuck.task,
            attempt: stuck.attempt,
        };
        assert_eq!(job.heartbeat(slow, at(4)).reply, told);
        assert_eq!(job.heartbeat(slow, at(4)).reply, told);
        assert_eq!(job.heartbeat(fast, at(4)).reply, Directive::Continue);
        let late = done(&mut job, slow, &stuck, at(4));
        assert!(
            matches!(late.reply, ReportReply::Refused(_)),
            "{:?}",
            late.reply
        );
        assert!(!job.workers.get(slow).unwrap().slow(), "beaten once");
        // Reduces: the slow worker sits on reduce-0, and is beaten again.
        let r0 = task(job.poll(slow, at(4)));
        assert_eq!(job.heartbeat(slow, at(4)).reply, Directive::Continue);
        let r1 = task(job.poll(fast, at(4)));
        assert_eq!(
            done(&mut job, fast, &r1, at(5)).reply,
            ReportReply::Accepted
        );
        let backup = task(job.poll(fast, at(7)));
        assert_eq!(backup.task, r0.task);
        assert_eq!(
            done(&mut job, fast, &backup, at(8)).reply,
            ReportReply::Accepted
        );
        assert_eq!(job.end(), Some(JobEnd::Succeeded));
        let w = job.workers.get(slow).unwrap();
        assert_eq!(w.beaten, 2);
        assert!(w.slow(), "beaten twice: noted as slow");
        let report = crate::views::report::Report::of(&job, Default::default(), at(8));
        let sp = &report.speculation;
        assert!(sp.enabled);
        assert_eq!(
            (sp.counts.started, sp.counts.won, sp.counts.wasted),
            (2, 2, 0)
        );
        assert_eq!(sp.slow_workers.len(), 1);
        assert_eq!(sp.slow_workers[0].host, "slow");
        // The attempt log: the original beaten by a backup, whose late report was then
        // refused (and ends there); the reduce's original beaten and silent.
        let log = |t, a| *job.attempts.get(t, a).unwrap();
        let first = log(stuck.task, stuck.attempt);
        assert_eq!(
            (first.outcome, first.worker, first.backup),
            (Outcome::Refused, slow, false)
        );
        assert_eq!(first.end_ms(), Some(4000));
        let won = log(stuck.task, Attempt(2));
        assert_eq!(
            (won.outcome, won.worker, won.backup),
            (Outcome::Done, fast, true)
        );
        let r0 = log(r0.task, r0.attempt);
        assert_eq!((r0.outcome, r0.end_ms()), (Outcome::Beaten, Some(8000)));
        assert_eq!(log(backup.task, backup.attempt).outcome, Outcome::Done);
        job.audit_views().unwrap();
    }

    /// The attempt an assignment reply carries.
    fn task_of(step: Step<TaskReply>) -> Assignment {
        match step.reply {
            TaskReply::Task(a) => a,
            other => panic!("no task: {other:?}"),
        }
    }

    #[test]
    fn the_attempt_log_records_every_attempt_as_the_core_ends_it() {
        let (mut job, t0) = job_of(4, 1);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (w1, w2, w3) = (
            remote_on(&mut job, t0, "a"),
            remote_on(&mut job, t0, "b"),
            remote_on(&mut job, t0, "c"),
        );
        let ok = |m: u32| Ok(map_result(1, m, "a:1"));
        let m0 = task_of(job.poll(w1, at(0)));
        let m1 = task_of(job.poll(w2, at(0)));
        let m2 = task_of(job.poll(w3, at(0)));
        // Done, and failed (with its kind).
        assert_eq!(
            job.report(w1, m0.task, m0.attempt, ok(0), at(1000)).reply,
            ReportReply::Accepted
        );
        let failed = job.report(w2, m1.task, m1.attempt, Err(panic_failure()), at(1200));
        assert_eq!(failed.reply, ReportReply::Accepted);
        let retry = task_of(job.poll(w1, at(1300)));
        assert_eq!((retry.task, retry.attempt), (m1.task, Attempt(2)));
        let _ = job.report(w1, retry.task, retry.attempt, ok(1), at(2000));
        // w3 goes silent: lost, its attempt with it; its late report is refused.
        let _ = job.heartbeat(w2, at(3000));
        let _ = job.tick(at(3500));
        assert!(job.workers.get(w3).unwrap().lost);
        let late = job.report(w3, m2.task, m2.attempt, ok(2), at(3600));
        assert!(
            matches!(late.reply, ReportReply::Refused(_)),
            "{:?}",
            late.reply
        );
        // map-3 runs past the task timeout on w2: revoked.
        let m2b = task_of(job.poll(w1, at(3700)));
        let m3 = task_of(job.poll(w2, at(3700)));
        assert_eq!((m3.task, m2b.task), (TaskId::map(3), m2.task));
        let _ = job.report(w1, m2b.task, m2b.attempt, ok(2), at(4000));
        for w in [w1, w2] {
            let _ = job.heartbeat(w, at(13_000));
        }
        let _ = job.tick(at(13_700));
        let log = |t, a| *job.attempts.get(t, a).unwrap();
        let cases = [
            (
                m0.task,
                m0.attempt,
                w1,
                Outcome::Done,
                None,
                (0, Some(1000)),
            ),
            (
                m1.task,
                m1.attempt,
                w2,
                Outcome::Failed,
                Some(FailureKind::App),
                (0, Some(1200)),
            ),
            (
                m1.task,
                Attempt(2),
                w1,
                Outcome::Done,
                None,
                (1300, Some(2000)),
            ),
            (
                m2.task,
                m2.attempt,
                w3,
                Outcome::Refused,
                None,
                (0, Some(3600)),
            ),
            (
                m2.task,
                m2b.attempt,
                w1,
                Outcome::Done,
                None,
                (3700, Some(4000)),
            ),
            (
                m3.task,
                m3.attempt,
                w2,
                Outcome::Revoked,
                None,
                (3700, Some(13_700)),
            ),
        ];
        for (task, attempt, worker, outcome, failure, (start, end)) in cases {
            let r = log(task, attempt);
            assert_eq!(
                (r.worker, r.outcome, r.failure, r.start_ms, r.end_ms()),
                (worker, outcome, failure, start, end),
                "{task} attempt {attempt}"
            );
        }
        assert_eq!(
            job.attempts.records().len(),
            6,
            "one record per attempt handed out"
        );
        // Before its late report, w3's attempt was recorded as lost.
        let (mut again, _) = job_of(1, 1);
        let w = remote(&mut again, t0);
        let a = task_of(again.poll(w, at(0)));
        let _ = again.tick(at(3000));
        assert_eq!(
            again.attempts.get(a.task, a.attempt).unwrap().outcome,
            Outcome::Lost
        );
        // The listing followed: map-1 failed once, every map is done, map-3 waits.
        let failed = job.listing.page(&TaskQuery::parse("state=failed").unwrap());
        assert_eq!(failed.tasks, [m1.task]);
        let idle = job
            .listing
            .page(&TaskQuery::parse("state=idle&kind=map").unwrap());
        assert_eq!(idle.tasks, [m3.task]);
        let by_w3 = job.listing.page(&TaskQuery::parse("worker=w3").unwrap());
        assert_eq!(by_w3.tasks, [m2.task]);
        job.audit_views().unwrap();
        again.audit_views().unwrap();
    }
}
