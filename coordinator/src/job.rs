//! The whole state of a running job: the task table and the worker registry, and the
//! rules that join them (a lost worker's tasks are revoked; the job ends when every
//! task is done or one failed too often). Pure; the service locks it briefly per call.

use crate::registry::Registry;
use crate::task::{Placement, Revoked, TaskTable};
use crate::timeline::Timeline;
use mr::ids::WorkerId;
use mr::rpc::JobEnd;
use mr::task::{Assignment, SplitSource};
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

    /// Hands `worker` a task, shaped for how it reaches files: a worker with its own
    /// data server shares nothing with the coordinator, so it streams its split (unless
    /// the inputs are on shared storage) and sends its reduce output back.
    pub fn assign(&mut self, worker: WorkerId, now: Instant) -> Option<Assignment> {
        let remote = self
            .workers
            .get(worker)
            .is_some_and(|w| w.info.data_addr.is_some());
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
        self.tasks.assign_with(worker, placement, now)
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
        Sweep {
            lost,
            revoked,
            reopened,
        }
    }

    /// When the next sweep could change something.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.tasks.next_deadline(), self.workers.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskState;
    use mr::rpc::WorkerInfo;
    use mr::task::Split;
    use std::time::Duration;

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
