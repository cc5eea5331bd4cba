//! The whole state of a running job: the task table and the worker registry, and the
//! rules that join them (a lost worker's tasks are revoked; the job ends when every
//! task is done or one failed too often). Pure; the service locks it briefly per call.

use crate::registry::Registry;
use crate::task::{AfterFailure, JobFailure, Placement, Refusal, Revoked, TaskTable};
use crate::timeline::Timeline;
use mr::ids::{Attempt, TaskId, WorkerId};
use mr::rpc::JobEnd;
use mr::task::{Assignment, Blame, SplitSource, TaskFailure, TaskResult};
use std::time::Instant;

/// Task table plus registry.
#[derive(Debug)]
pub struct Job {
    /// Every task.
    pub tasks: TaskTable,
    /// Every worker.
    pub workers: Registry,
    /// When the job and its phases started and ended.
    pub timeline: Timeline,
    /// Workers that share no filesystem with the coordinator may still read the input
    /// paths directly (`--shared-inputs`).
    pub shared_inputs: bool,
    /// Since when every live worker has been excluded, if so. The job fails once this
    /// has lasted a worker timeout with no new worker: long enough for the rest of a
    /// cluster that is still starting to join, short enough to end a hopeless job in
    /// seconds.
    pub all_excluded_since: Option<Instant>,
}

/// What a failure report led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// For the task.
    pub after: AfterFailure,
    /// Workers excluded by it.
    pub excluded: Vec<WorkerId>,
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
        if !self.workers.get(worker).is_some_and(|w| w.eligible()) {
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
        let eligible: Vec<WorkerId> = self.workers.eligible().collect();
        self.tasks.assign_with(worker, placement, now, |t| {
            t.failed_on(worker) && eligible.iter().any(|w| !t.failed_on(*w))
        })
    }

    /// Records a finished attempt; a worker that had failed this task through the
    /// task's apparent fault is thereby shown to be the one at fault. Returns the workers
    /// excluded by that.
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        result: TaskResult,
        now: Instant,
    ) -> Result<Vec<WorkerId>, Refusal> {
        self.tasks.complete(worker, id, attempt, result)?;
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
        Ok(excluded)
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
            Blame::Map(_) => id.kind == mr::ids::TaskKind::Map,
        };
        let elsewhere = self.workers.eligible().any(|w| w != worker);
        let after = self
            .tasks
            .fail(worker, id, attempt, failure, counts, elsewhere)?;
        let mut excluded = Vec::new();
        if !matches!(blame, Blame::Map(_))
            && self
                .workers
                .failed(worker, id, blame == Blame::Worker, failure.to_string())
        {
            excluded.push(worker);
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

    /// When the next sweep could change something.
    pub fn next_deadline(&self) -> Option<Instant> {
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
    use mr::rpc::WorkerInfo;
    use mr::task::{Location, Split, TaskStats};
    use std::time::Duration;

    fn job_of(maps: usize, reduces: u32) -> (Job, Instant) {
        let t0 = Instant::now();
        let splits = (0..maps)
            .map(|i| Split {
                path: format!("in-{i}").into(),
                offset: 0,
                len: 1,
            })
            .collect();
        let job = Job {
            tasks: TaskTable::new(splits, reduces, "out".into(), Duration::from_secs(10), 4),
            workers: Registry::new(Duration::from_secs(3)),
            timeline: Timeline::new(t0),
            shared_inputs: false,
            all_excluded_since: None,
        };
        (job, t0)
    }

    /// A worker over TCP (its own data server: it shares no disk).
    fn remote(job: &mut Job, t0: Instant) -> WorkerId {
        let info = WorkerInfo {
            host: "h".into(),
            pid: 1,
            data_addr: Some("10.0.0.1:1".into()),
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

    fn map_result(r: u32, m: u32, server: &str) -> TaskResult {
        TaskResult::Map {
            outputs: (0..r)
                .map(|y| Location::Remote {
                    server: server.into(),
                    name: format!("mr-{m}-{y}"),
                })
                .collect(),
            stats: TaskStats::default(),
        }
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
                .unwrap(),
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
        job.workers.get_mut(late).unwrap().excluded = true;
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
            location: Location::Remote {
                server: "a:1".into(),
                name: format!("mr-0-{y}"),
            },
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
            location: Location::Path("x".into()),
            error: "x".into(),
        };
        assert!(job.fail(w2, r.task, r.attempt, &bogus, t0).is_err());
        assert!(matches!(
            job.tasks.task(r.task).unwrap().state,
            crate::task::TaskState::InProgress { .. }
        ));
    }

    #[test]
    fn a_map_that_reports_lost_map_output_counts_a_failure() {
        let (mut job, t0) = job_of(1, 1);
        let w = remote(&mut job, t0);
        let a = job.assign(w, t0).unwrap();
        let lost = TaskFailure::LostMapOutput {
            map: 0,
            location: Location::Path("x".into()),
            error: "x".into(),
        };
        job.fail(w, a.task, a.attempt, &lost, t0).unwrap();
        assert_eq!(job.tasks.task(a.task).unwrap().failures, 1);
    }

    #[test]
    fn a_worker_that_misses_heartbeats_loses_its_task_before_the_task_timeout() {
        let t0 = Instant::now();
        let splits = vec![Split {
            path: "in".into(),
            offset: 0,
            len: 1,
        }];
        let mut job = Job {
            tasks: TaskTable::new(splits, 1, "out".into(), Duration::from_secs(10), 4),
            workers: Registry::new(Duration::from_secs(3)),
            timeline: Timeline::new(t0),
            shared_inputs: false,
            all_excluded_since: None,
        };
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
}
