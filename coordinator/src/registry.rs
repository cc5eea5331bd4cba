//! The registry of workers: who joined, when each was last heard from, and whether it
//! has been declared lost. Pure like the task table: time comes in as `now`.

use mr::ids::WorkerId;
use mr::rpc::WorkerInfo;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Host and pid it gave.
    pub info: WorkerInfo,
    /// When it was last heard from (any call counts).
    pub last_seen: Instant,
    /// Declared lost after missing heartbeats; a later call revives it.
    pub lost: bool,
    /// Told that the job is over.
    pub told_exit: bool,
    /// Tasks it completed (accepted reports).
    pub tasks_done: u64,
}

/// All workers that ever registered.
#[derive(Debug)]
pub struct Registry {
    workers: BTreeMap<WorkerId, Worker>,
    next_id: u64,
    timeout: Duration,
}

impl Registry {
    /// An empty registry; a worker silent for `timeout` is lost.
    pub fn new(timeout: Duration) -> Self {
        Registry {
            workers: BTreeMap::new(),
            next_id: 1,
            timeout,
        }
    }

    /// Numbers workers of a restarted coordinator apart from the earlier run's, so a
    /// worker of the old run can never be taken for a new one: incarnation `n` numbers
    /// from `(n - 1) << 32`.
    pub fn set_incarnation(&mut self, n: u32) {
        self.next_id = (u64::from(n.saturating_sub(1)) << 32) | 1;
    }

    /// Adds a worker and returns its new id.
    pub fn register(&mut self, info: WorkerInfo, now: Instant) -> WorkerId {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        self.workers.insert(
            id,
            Worker {
                info,
                last_seen: now,
                lost: false,
                told_exit: false,
                tasks_done: 0,
            },
        );
        id
    }

    /// Notes that `id` is alive. False if the id is unknown (it must register again).
    pub fn touch(&mut self, id: WorkerId, now: Instant) -> bool {
        match self.workers.get_mut(&id) {
            Some(w) => {
                w.last_seen = now;
                w.lost = false;
                true
            }
            None => false,
        }
    }

    /// A worker by id.
    pub fn get(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(&id)
    }

    /// A worker by id, to change.
    pub fn get_mut(&mut self, id: WorkerId) -> Option<&mut Worker> {
        self.workers.get_mut(&id)
    }

    /// Every worker.
    pub fn iter(&self) -> impl Iterator<Item = (&WorkerId, &Worker)> {
        self.workers.iter()
    }

    /// Declares lost every worker silent for the timeout; returns the newly lost.
    pub fn expire(&mut self, now: Instant) -> Vec<WorkerId> {
        let timeout = self.timeout;
        let mut lost = Vec::new();
        for (id, w) in &mut self.workers {
            if !w.lost && now.saturating_duration_since(w.last_seen) >= timeout {
                w.lost = true;
                lost.push(*id);
            }
        }
        lost
    }

    /// When the next live worker would be declared lost.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.workers
            .values()
            .filter(|w| !w.lost)
            .map(|w| w.last_seen + self.timeout)
            .min()
    }

    /// Live workers not yet told that the job is over.
    pub fn awaiting_exit(&self) -> usize {
        self.workers
            .values()
            .filter(|w| !w.lost && !w.told_exit)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> WorkerInfo {
        WorkerInfo {
            host: "h".into(),
            pid: 1,
            data_addr: None,
        }
    }

    #[test]
    fn silent_workers_are_lost_and_revived_by_any_call() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(3);
        let mut r = Registry::new(timeout);
        let a = r.register(info(), t0);
        let b = r.register(info(), t0);
        assert_ne!(a, b);
        assert_eq!(r.next_deadline(), Some(t0 + timeout));
        assert!(r.touch(b, t0 + Duration::from_secs(2)));
        assert!(r.expire(t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(r.expire(t0 + timeout), vec![a]);
        assert!(r.expire(t0 + timeout).is_empty(), "lost only once");
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(r.touch(a, t0 + Duration::from_secs(4)));
        assert!(!r.get_mut(a).unwrap().lost);
        assert!(!r.touch(WorkerId(99), t0), "unknown ids must re-register");
    }

    #[test]
    fn awaiting_exit_counts_live_workers_not_yet_told() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(1));
        let a = r.register(info(), t0);
        let b = r.register(info(), t0);
        assert_eq!(r.awaiting_exit(), 2);
        r.get_mut(a).unwrap().told_exit = true;
        assert_eq!(r.awaiting_exit(), 1);
        r.expire(t0 + Duration::from_secs(1));
        let _ = b;
        assert_eq!(r.awaiting_exit(), 0);
    }
}
