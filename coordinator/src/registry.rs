//! The registry of workers: who joined, when each was last heard from, whether it has
//! been declared lost, and the strikes that exclude a bad machine from the job. Pure like
//! the task table: time comes in as `now`.
//!
//! Exclusion (Hadoop's per-tracker task failures, Spark's `excludeOnFailure`): a worker
//! is excluded once it has failed [`STRIKES_TO_EXCLUDE`] distinct tasks through its own
//! fault, or [`STRIKES_TO_EXCLUDE`] times in a row through its machine. A failure blamed
//! on the machine (its disk, its file descriptors) is a strike at once; a failure blamed
//! on the task (the app failed) becomes a strike only when another worker then finishes
//! that task, which proves the task could be done. So an app that fails on one record
//! everywhere excludes nobody, while a worker whose copy of the app fails on everything
//! is excluded. An excluded worker gets no more tasks; it stays registered, so its
//! finished map output is still served, and it is told to exit with the others.
//!
//! Slow workers: a worker whose attempts backups have beaten [`BEATEN_TO_BE_SLOW`] times
//! (a run started later on another machine finished first) is noted as slow; no backup
//! is started on it, since its backups would lose the same way. It keeps its own tasks.
//!
//! Every operation is O(log n) in the number of workers: live workers are indexed by
//! when they were last heard from, and the eligible ones are kept as a set, both kept in
//! step by [`Registry::update`], the one place a worker changes.

use mr::ids::{Attempt, TaskId, WorkerId};
use mr::rpc::WorkerInfo;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Strikes that exclude a worker.
pub const STRIKES_TO_EXCLUDE: usize = 3;

/// Attempts beaten by backups that note a worker as slow.
pub const BEATEN_TO_BE_SLOW: u32 = 2;

/// One worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Distinct tasks it failed through its own fault.
    pub strikes: BTreeSet<TaskId>,
    /// Failures blamed on its machine since its last finished task.
    pub faults_in_a_row: u32,
    /// Failed attempts, of any kind.
    pub failures: u64,
    /// Its last error.
    pub last_error: Option<String>,
    /// Excluded from the job: it gets no more tasks.
    pub excluded: bool,
    /// Its attempts that a backup on another worker beat.
    pub beaten: u32,
    /// An attempt it runs that was beaten or taken back: told to stop at its next
    /// heartbeat, until it asks for another task.
    pub abandon: Option<(TaskId, Attempt)>,
}

impl Worker {
    /// Whether it may be given a task: alive and not excluded.
    pub fn eligible(&self) -> bool {
        !self.lost && !self.excluded
    }

    /// Whether backups beat it often enough to be noted as slow.
    pub fn slow(&self) -> bool {
        self.beaten >= BEATEN_TO_BE_SLOW
    }

    /// Excludes it if it has earned it; true if it is newly excluded.
    fn check_exclusion(&mut self) -> bool {
        let exclude = !self.excluded
            && (self.strikes.len() >= STRIKES_TO_EXCLUDE
                || self.faults_in_a_row as usize >= STRIKES_TO_EXCLUDE);
        if exclude {
            self.excluded = true;
        }
        exclude
    }
}

/// All workers that ever registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registry {
    workers: BTreeMap<WorkerId, Worker>,
    /// Workers not lost, by when they were last heard from.
    live: BTreeSet<(Instant, WorkerId)>,
    /// Workers that may be given tasks.
    eligible: BTreeSet<WorkerId>,
    /// The latest worker to register each data server address.
    by_server: BTreeMap<String, WorkerId>,
    /// The id the next registration gets.
    next_id: WorkerId,
    timeout: Duration,
}

impl Registry {
    /// An empty registry; a worker silent for `timeout` is lost.
    pub fn new(timeout: Duration) -> Self {
        Registry {
            workers: BTreeMap::new(),
            live: BTreeSet::new(),
            eligible: BTreeSet::new(),
            by_server: BTreeMap::new(),
            next_id: WorkerId::first_run(1),
            timeout,
        }
    }

    /// Numbers workers of a restarted coordinator apart from the earlier run's, so a
    /// worker of the old run can never be taken for a new one: incarnation `n` (the run
    /// after `n - 1` restarts) numbers its workers from 1 again, as restart `n - 1`.
    pub fn set_incarnation(&mut self, n: u32) {
        self.next_id = WorkerId::new(n.saturating_sub(1), 1);
    }

    /// Adds a worker and returns its new id.
    pub fn register(&mut self, info: WorkerInfo, now: Instant) -> WorkerId {
        let id = self.next_id;
        self.next_id.number += 1;
        let w = Worker {
            info,
            last_seen: now,
            lost: false,
            told_exit: false,
            tasks_done: 0,
            strikes: BTreeSet::new(),
            faults_in_a_row: 0,
            failures: 0,
            last_error: None,
            excluded: false,
            beaten: 0,
            abandon: None,
        };
        self.live.insert((now, id));
        self.eligible.insert(id);
        if let Some(server) = &w.info.data_addr {
            self.by_server.insert(server.clone(), id);
        }
        self.workers.insert(id, w);
        id
    }

    /// Whether any worker ever registered with the data server `server`.
    pub fn knows_server(&self, server: &str) -> bool {
        self.by_server.contains_key(server)
    }

    /// Whether a live worker serves map output at `server` (a worker's data server,
    /// whatever id it has now: it may have registered again since).
    pub fn serves(&self, server: &str) -> bool {
        self.by_server
            .get(server)
            .and_then(|id| self.workers.get(id))
            .is_some_and(|w| !w.lost)
    }

    /// Changes worker `id` through `f`, keeping the indexes in step: the one place a
    /// worker changes. None if there is no such worker.
    pub fn update<R>(&mut self, id: WorkerId, f: impl FnOnce(&mut Worker) -> R) -> Option<R> {
        let w = self.workers.get_mut(&id)?;
        if !w.lost {
            self.live.remove(&(w.last_seen, id));
        }
        let r = f(w);
        if !w.lost {
            self.live.insert((w.last_seen, id));
        }
        if w.eligible() {
            self.eligible.insert(id);
        } else {
            self.eligible.remove(&id);
        }
        Some(r)
    }

    /// How long a worker may be silent before it is lost.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Notes that `id` is alive. False if the id is unknown (it must register again).
    pub fn touch(&mut self, id: WorkerId, now: Instant) -> bool {
        self.update(id, |w| {
            w.last_seen = w.last_seen.max(now);
            w.lost = false;
        })
        .is_some()
    }

    /// A worker by id.
    pub fn get(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(&id)
    }

    /// Every worker.
    pub fn iter(&self) -> impl Iterator<Item = (&WorkerId, &Worker)> {
        self.workers.iter()
    }

    /// How many workers ever registered.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Notes a failed attempt of `task` on `id`; `machine` says whether it was blamed on
    /// the worker's machine (a strike at once). True if the worker is now excluded.
    pub fn failed(&mut self, id: WorkerId, task: TaskId, machine: bool, error: String) -> bool {
        self.update(id, |w| {
            w.failures += 1;
            w.last_error = Some(error);
            if machine {
                w.strikes.insert(task);
                w.faults_in_a_row += 1;
            }
            w.check_exclusion()
        })
        .unwrap_or(false)
    }

    /// Notes that `id` finished a task; `proven_wrong` are the workers on which that
    /// task had failed through the task's apparent fault, each of which now earns a
    /// strike. Returns the workers newly excluded.
    pub fn finished(
        &mut self,
        id: WorkerId,
        task: TaskId,
        proven_wrong: impl IntoIterator<Item = WorkerId>,
    ) -> Vec<WorkerId> {
        self.update(id, |w| {
            w.tasks_done += 1;
            w.faults_in_a_row = 0;
        });
        let mut excluded = Vec::new();
        for other in proven_wrong {
            if other == id {
                continue;
            }
            let newly = self.update(other, |w| {
                w.strikes.insert(task);
                w.check_exclusion()
            });
            if newly == Some(true) {
                excluded.push(other);
            }
        }
        excluded
    }

    /// Workers that may be given tasks.
    pub fn eligible(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.eligible.iter().copied()
    }

    /// How many workers may be given tasks.
    pub fn eligible_count(&self) -> usize {
        self.eligible.len()
    }

    /// Whether `id` may be given tasks.
    pub fn is_eligible(&self, id: WorkerId) -> bool {
        self.eligible.contains(&id)
    }

    /// If no live worker is left but excluded ones, those workers with their last
    /// errors: the job cannot go on.
    pub fn all_excluded(&self) -> Option<Vec<(WorkerId, String)>> {
        if !self.eligible.is_empty() {
            return None;
        }
        let excluded: Vec<(WorkerId, String)> = self
            .live
            .iter()
            .filter_map(|(_, id)| {
                let w = self.workers.get(id)?;
                w.excluded
                    .then(|| (*id, w.last_error.clone().unwrap_or_default()))
            })
            .collect();
        (!excluded.is_empty()).then_some(excluded)
    }

    /// Declares lost every worker silent for the timeout; returns the newly lost.
    pub fn expire(&mut self, now: Instant) -> Vec<WorkerId> {
        let timeout = self.timeout;
        let due: Vec<WorkerId> = self
            .live
            .iter()
            .take_while(|(seen, _)| now.saturating_duration_since(*seen) >= timeout)
            .map(|(_, id)| *id)
            .collect();
        for id in &due {
            self.update(*id, |w| w.lost = true);
        }
        due
    }

    /// When the next live worker would be declared lost.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.live.first().map(|(seen, _)| *seen + self.timeout)
    }

    /// Live workers not yet told that the job is over (once, at the end: O(n)).
    pub fn awaiting_exit(&self) -> usize {
        self.workers
            .values()
            .filter(|w| !w.lost && !w.told_exit)
            .count()
    }

    /// Checks the indexes against a recount (for tests and the simulator).
    pub fn audit(&self) -> Result<(), String> {
        let live: BTreeSet<(Instant, WorkerId)> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.lost)
            .map(|(id, w)| (w.last_seen, *id))
            .collect();
        let eligible: BTreeSet<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.eligible())
            .map(|(id, _)| *id)
            .collect();
        if live != self.live || eligible != self.eligible {
            return Err(format!(
                "registry indexes out of step: live {:?} vs {:?}, eligible {:?} vs {:?}",
                self.live, live, self.eligible, eligible
            ));
        }
        Ok(())
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
        assert!(!r.get(a).unwrap().lost);
        r.audit().unwrap();
        assert!(
            !r.touch(WorkerId::first_run(99), t0),
            "unknown ids must re-register"
        );
    }

    #[test]
    fn awaiting_exit_counts_live_workers_not_yet_told() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(1));
        let a = r.register(info(), t0);
        let b = r.register(info(), t0);
        assert_eq!(r.awaiting_exit(), 2);
        r.update(a, |w| w.told_exit = true);
        assert_eq!(r.awaiting_exit(), 1);
        r.expire(t0 + Duration::from_secs(1));
        let _ = b;
        assert_eq!(r.awaiting_exit(), 0);
    }
}
