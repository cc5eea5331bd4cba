//! The whole state of a running job: the task table and the worker registry, and the
//! rules that join them (a lost worker's tasks are revoked; the job ends when every
//! task is done or one failed too often). Pure; the service locks it briefly per call.

use crate::registry::Registry;
use crate::task::{Revoked, TaskTable};
use crate::timeline::Timeline;
use mr::ids::WorkerId;
use mr::rpc::JobEnd;
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
}

/// What one sweep changed.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Workers declared lost.
    pub lost: Vec<WorkerId>,
    /// Attempts taken back (from lost workers, or timed out).
    pub revoked: Vec<Revoked>,
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

    /// Declares silent workers lost, revokes their tasks, and revokes timed-out tasks.
    pub fn sweep(&mut self, now: Instant) -> Sweep {
        let lost = self.workers.expire(now);
        let mut revoked = Vec::new();
        for w in &lost {
            revoked.extend(self.tasks.revoke_worker(*w));
        }
        revoked.extend(self.tasks.expire(now));
        Sweep { lost, revoked }
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
        };
        let info = WorkerInfo {
            host: "h".into(),
            pid: 1,
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
