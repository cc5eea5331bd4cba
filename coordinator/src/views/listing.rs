//! The status page's task list, one page at a time: which tasks are idle, running,
//! done, or have failed an attempt, and which tasks each worker ran, kept as tasks
//! change so that a page of a filtered list costs O(page × log n) under the job's lock,
//! not a walk of every task (the paper's M = 200,000).
//!
//! The tasks are numbered in the order the page lists them (samples, then maps, then
//! reduces); each state is a [`RankSet`] over those numbers, which counts the members
//! below a number and finds the k-th member in O(log n). Kept by [`TaskListing::touch`],
//! which [`crate::job::Job`] calls for every task an event names, reading its state
//! from the task table; [`TaskListing::audit`] checks it against a recount.

use crate::task::{TaskState, TaskTable};
use crate::views::attempts::{AttemptLog, Outcome};
use mr::ids::{TaskId, TaskKind, WorkerId};
use std::collections::HashMap;

/// A set of numbers below a fixed bound with rank and select in O(log n): a bitmap
/// for membership and a Fenwick tree of the members' counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankSet {
    bits: Vec<u64>,
    /// Fenwick tree, 1-based: `tree[i - 1]` counts the members in `(i - lowbit(i), i]`.
    tree: Vec<u32>,
    len: u32,
}

impl RankSet {
    /// The set of the numbers below `n` for which `member` holds, built in O(n).
    pub fn from_fn(n: u32, member: impl Fn(u32) -> bool) -> RankSet {
        let mut bits = vec![0u64; (n as usize).div_ceil(64)];
        let mut tree = vec![0u32; n as usize];
        let mut len = 0;
        for i in 0..n {
            if member(i) {
                bits[(i / 64) as usize] |= 1 << (i % 64);
                tree[i as usize] += 1;
                len += 1;
            }
        }
        for i in 1..=n as usize {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n as usize {
                tree[parent - 1] += tree[i - 1];
            }
        }
        RankSet { bits, tree, len }
    }

    /// Members.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `i` is a member (false past the bound).
    pub fn contains(&self, i: u32) -> bool {
        self.bits
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Makes `i` a member or not (nothing past the bound).
    pub fn set(&mut self, i: u32, member: bool) {
        if i as usize >= self.tree.len() || self.contains(i) == member {
            return;
        }
        self.bits[(i / 64) as usize] ^= 1 << (i % 64);
        let mut k = i as usize + 1;
        while k <= self.tree.len() {
            if member {
                self.tree[k - 1] += 1;
            } else {
                self.tree[k - 1] -= 1;
            }
            k += k & k.wrapping_neg();
        }
        if member {
            self.len += 1;
        } else {
            self.len -= 1;
        }
    }

    /// Members below `i`.
    pub fn rank(&self, i: u32) -> u32 {
        let mut k = (i as usize).min(self.tree.len());
        let mut n = 0;
        while k > 0 {
            n += self.tree[k - 1];
            k -= k & k.wrapping_neg();
        }
        n
    }

    /// The `k`-th member (from 0) in increasing order, if there are more than `k`.
    pub fn select(&self, k: u32) -> Option<u32> {
        if k >= self.len {
            return None;
        }
        // Descend the tree: the largest prefix holding at most k members.
        let n = self.tree.len();
        let mut pos = 0;
        let mut rest = k;
        let mut step = if n == 0 { 0 } else { 1 << n.ilog2() };
        while step > 0 {
            if pos + step <= n && self.tree[pos + step - 1] <= rest {
                pos += step;
                rest -= self.tree[pos - 1];
            }
            step /= 2;
        }
        Some(pos as u32)
    }
}

/// Which tasks a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFilter {
    /// Every task.
    #[default]
    Any,
    /// Waiting for a worker.
    Idle,
    /// Being run.
    Running,
    /// Done.
    Done,
    /// With at least one failed attempt (whatever its state now), or whose output a
    /// reduce found lost.
    Failed,
}

/// What `/api/status` was asked for: a page of the task list, filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskQuery {
    /// Which page, from 0.
    pub page: u32,
    /// Tasks per page.
    pub per_page: u32,
    /// Only tasks of this kind.
    pub kind: Option<TaskKind>,
    /// Only tasks in this state.
    pub state: StateFilter,
    /// Only tasks this worker ran an attempt of.
    pub worker: Option<WorkerId>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            page: 0,
            per_page: TaskQuery::PER_PAGE,
            kind: None,
            state: StateFilter::Any,
            worker: None,
        }
    }
}

impl TaskQuery {
    /// Tasks per page unless asked otherwise.
    pub const PER_PAGE: u32 = 100;
    /// The most tasks a page holds, whatever is asked: this bounds the page's size.
    pub const MAX_PER_PAGE: u32 = 200;

    /// Reads a query string (`page=0&per_page=100&kind=map&state=running&worker=w3`);
    /// every parameter is optional, and an unknown parameter or value is an error that
    /// says what is accepted.
    pub fn parse(query: &str) -> Result<TaskQuery, String> {
        let mut q = TaskQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |what: &str| {
                value
                    .parse::<u32>()
                    .map_err(|_| format!("{what}={value:?}: expected a whole number"))
            };
            match key {
                "page" => q.page = number("page")?,
                "per_page" => q.per_page = number("per_page")?.clamp(1, Self::MAX_PER_PAGE),
                "kind" => {
                    q.kind = match value {
                        "" | "all" => None,
                        "sample" => Some(TaskKind::Sample),
                        "map" => Some(TaskKind::Map),
                        "reduce" => Some(TaskKind::Reduce),
                        _ => return Err(format!("kind={value:?}: expected sample, map or reduce")),
                    }
                }
                "state" => {
                    q.state = match value {
                        "" | "all" => StateFilter::Any,
                        "idle" => StateFilter::Idle,
                        "running" => StateFilter::Running,
                        "done" => StateFilter::Done,
                        "failed" => StateFilter::Failed,
                        _ => {
                            return Err(format!(
                                "state={value:?}: expected idle, running, done or failed"
                            ))
                        }
                    }
                }
                "worker" => {
                    q.worker = match value {
                        "" | "all" => None,
                        w => Some(parse_worker(w).ok_or_else(|| {
                            format!("worker={value:?}: expected a worker id such as w3 or w3.r1")
                        })?),
                    }
                }
                // Cache busters and the like.
                "_" => {}
                _ => {
                    return Err(format!(
                        "unknown parameter {key:?}: expected page, per_page, kind, state or worker"
                    ))
                }
            }
        }
        Ok(q)
    }
}

/// A worker id as shown (`w3`, or `w3.r1` for one numbered after a restart).
pub fn parse_worker(s: &str) -> Option<WorkerId> {
    let rest = s.strip_prefix('w')?;
    let (number, restart) = match rest.split_once(".r") {
        Some((n, r)) => (n, r.parse().ok()?),
        None => (rest, 0),
    };
    Some(WorkerId::new(restart, number.parse().ok()?))
}

/// How many tasks are in each state (within a kind, or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    /// Idle.
    pub idle: u32,
    /// Running.
    pub running: u32,
    /// Done.
    pub done: u32,
    /// With a failed attempt.
    pub failed: u32,
}

/// One page of the task list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The tasks on it, in list order.
    pub tasks: Vec<TaskId>,
    /// Tasks that match the filters, on every page.
    pub matched: u32,
}

/// The tasks by state and by worker: see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskListing {
    /// Samples, maps, reduces: the list's three parts.
    sizes: [u32; 3],
    idle: RankSet,
    running: RankSet,
    done: RankSet,
    failed: RankSet,
    /// For each worker, the tasks it ran an attempt of, by list number, in order.
    by_worker: HashMap<WorkerId, Vec<u32>>,
}

fn part(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Sample => 0,
        TaskKind::Map => 1,
        TaskKind::Reduce => 2,
    }
}

const KINDS: [TaskKind; 3] = [TaskKind::Sample, TaskKind::Map, TaskKind::Reduce];

impl TaskListing {
    /// The listing of `tasks` as they are (O(n), once: at the start, or after a restart
    /// restored tasks from the journal). Failed: the tasks with a failure held against
    /// them, or a failed attempt on record.
    pub fn new(tasks: &TaskTable) -> TaskListing {
        let sizes = [
            tasks.samples().len() as u32,
            tasks.maps().len() as u32,
            tasks.reduces().len() as u32,
        ];
        let all: Vec<&crate::task::Task> = tasks
            .samples()
            .iter()
            .chain(tasks.maps())
            .chain(tasks.reduces())
            .collect();
        let n = all.len() as u32;
        let state = |f: fn(&TaskState) -> bool| RankSet::from_fn(n, |i| f(&all[i as usize].state));
        TaskListing {
            sizes,
            idle: state(|s| matches!(s, TaskState::Idle)),
            running: state(|s| matches!(s, TaskState::InProgress { .. })),
            done: state(|s| matches!(s, TaskState::Done { .. })),
            failed: RankSet::from_fn(n, |i| {
                let t = all[i as usize];
                t.failures > 0 || !t.failed_on.is_empty()
            }),
            by_worker: HashMap::new(),
        }
    }

    /// Tasks in all.
    pub fn total(&self) -> u32 {
        self.sizes.iter().sum()
    }

    /// The list numbers of the tasks of `kind` (all tasks for None).
    fn range(&self, kind: Option<TaskKind>) -> (u32, u32) {
        match kind {
            None => (0, self.total()),
            Some(k) => {
                let lo: u32 = self.sizes[..part(k)].iter().sum();
                (lo, lo + self.sizes[part(k)])
            }
        }
    }

    /// Task `id`'s list number, if the job has it.
    fn number(&self, id: TaskId) -> Option<u32> {
        let p = part(id.kind);
        (id.index < self.sizes[p]).then(|| self.sizes[..p].iter().sum::<u32>() + id.index)
    }

    /// The task with list number `n` (below the total).
    fn id(&self, n: u32) -> TaskId {
        let mut n = n;
        for kind in KINDS {
            let size = self.sizes[part(kind)];
            if n < size {
                return TaskId { kind, index: n };
            }
            n -= size;
        }
        TaskId::reduce(n)
    }

    /// Reads task `id`'s state from `tasks` again (O(log n)).
    pub fn touch(&mut self, tasks: &TaskTable, id: TaskId) {
        let (Some(n), Some(task)) = (self.number(id), tasks.task(id)) else {
            return;
        };
        let s = &task.state;
        self.idle.set(n, matches!(s, TaskState::Idle));
        self.running
            .set(n, matches!(s, TaskState::InProgress { .. }));
        self.done.set(n, matches!(s, TaskState::Done { .. }));
    }

    /// Notes that `worker` was handed an attempt of `id`.
    pub fn assigned(&mut self, worker: WorkerId, id: TaskId) {
        let Some(n) = self.number(id) else {
            return;
        };
        let ran = self.by_worker.entry(worker).or_default();
        // Tasks are handed out mostly in list order: usually this appends.
        if let Err(at) = ran.binary_search(&n) {
            ran.insert(at, n);
        }
    }

    /// Notes that an attempt of `id` failed, or that its output was found lost.
    pub fn failed(&mut self, id: TaskId) {
        if let Some(n) = self.number(id) {
            self.failed.set(n, true);
        }
    }

    fn set_of(&self, state: StateFilter) -> Option<&RankSet> {
        match state {
            StateFilter::Any => None,
            StateFilter::Idle => Some(&self.idle),
            StateFilter::Running => Some(&self.running),
            StateFilter::Done => Some(&self.done),
            StateFilter::Failed => Some(&self.failed),
        }
    }

    /// How many tasks of `kind` (all for None) are in each state. O(log n).
    pub fn counts(&self, kind: Option<TaskKind>) -> StateCounts {
        let (lo, hi) = self.range(kind);
        let within = |s: &RankSet| s.rank(hi) - s.rank(lo);
        StateCounts {
            idle: within(&self.idle),
            running: within(&self.running),
            done: within(&self.done),
            failed: within(&self.failed),
        }
    }

    /// The page `q` asks for. O(page × log n); with a worker filter and a state filter
    /// together, O(the tasks that worker ran).
    pub fn page(&self, q: &TaskQuery) -> Page {
        let (lo, hi) = self.range(q.kind);
        let per_page = q.per_page.clamp(1, TaskQuery::MAX_PER_PAGE);
        let skip = u64::from(q.page) * u64::from(per_page);
        let window = |matched: u32| {
            let start = skip.min(u64::from(matched)) as u32;
            start..matched.min(start.saturating_add(per_page))
        };
        let set = self.set_of(q.state);
        let (tasks, matched) = match (q.worker, set) {
            (Some(w), set) => {
                let ran = self
                    .by_worker
                    .get(&w)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let from = ran.partition_point(|n| *n < lo);
                let to = ran.partition_point(|n| *n < hi);
                let ran = &ran[from..to];
                match set {
                    None => {
                        let matched = ran.len() as u32;
                        (
                            ran[window(matched).start as usize..window(matched).end as usize]
                                .to_vec(),
                            matched,
                        )
                    }
                    Some(s) => {
                        let hits: Vec<u32> =
                            ran.iter().copied().filter(|n| s.contains(*n)).collect();
                        let matched = hits.len() as u32;
                        let w = window(matched);
                        (hits[w.start as usize..w.end as usize].to_vec(), matched)
                    }
                }
            }
            (None, Some(s)) => {
                let below = s.rank(lo);
                let matched = s.rank(hi) - below;
                let tasks = window(matched)
                    .filter_map(|k| s.select(below + k))
                    .collect();
                (tasks, matched)
            }
            (None, None) => {
                let matched = hi - lo;
                (window(matched).map(|k| lo + k).collect(), matched)
            }
        };
        Page {
            tasks: tasks.into_iter().map(|n| self.id(n)).collect(),
            matched,
        }
    }

    /// Checks the listing against a recount: the states against `tasks`, the failed set
    /// and the workers' tasks against the attempts on record in `attempts`, and each
    /// set's counts against its members. (Allocates one list: the simulator's model
    /// check runs it in every state.)
    pub fn audit(&self, tasks: &TaskTable, attempts: &AttemptLog) -> Result<(), String> {
        let sizes = [
            tasks.samples().len() as u32,
            tasks.maps().len() as u32,
            tasks.reduces().len() as u32,
        ];
        if sizes != self.sizes {
            return Err(format!(
                "the task listing has {:?} tasks, the table {sizes:?}",
                self.sizes
            ));
        }
        let all = tasks
            .samples()
            .iter()
            .chain(tasks.maps())
            .chain(tasks.reduces());
        for (n, t) in (0u32..).zip(all) {
            let s = &t.state;
            let want = [
                matches!(s, TaskState::Idle),
                matches!(s, TaskState::InProgress { .. }),
                matches!(s, TaskState::Done { .. }),
            ];
            let listed = [
                self.idle.contains(n),
                self.running.contains(n),
                self.done.contains(n),
            ];
            if want != listed {
                return Err(format!(
                    "{} is listed as (idle, running, done) {listed:?}, but is {want:?}",
                    t.id
                ));
            }
        }
        for (name, set) in [
            ("idle", &self.idle),
            ("running", &self.running),
            ("done", &self.done),
            ("failed", &self.failed),
        ] {
            let mut k = 0;
            for n in 0..self.total() {
                if !set.contains(n) {
                    continue;
                }
                if set.rank(n) != k || set.select(k) != Some(n) {
                    return Err(format!("the {name} set's counts are out of step at {n}"));
                }
                k += 1;
            }
            if k != set.len() {
                return Err(format!("the {name} set holds {k} but counts {}", set.len()));
            }
        }
        let mut ran: Vec<(WorkerId, u32)> = Vec::with_capacity(attempts.records().len());
        for r in attempts.records() {
            let Some(n) = self.number(r.task) else {
                return Err(format!(
                    "an attempt of {}, which the job does not have",
                    r.task
                ));
            };
            if r.outcome == Outcome::Failed && !self.failed.contains(n) {
                return Err(format!(
                    "{} failed an attempt but is not listed as failed",
                    r.task
                ));
            }
            ran.push((r.worker, n));
        }
        ran.sort_unstable();
        ran.dedup();
        let listed: usize = self.by_worker.values().map(Vec::len).sum();
        let in_order = self
            .by_worker
            .values()
            .all(|v| v.windows(2).all(|w| w[0] < w[1]));
        let each = ran.iter().all(|(w, n)| {
            self.by_worker
                .get(w)
                .is_some_and(|v| v.binary_search(n).is_ok())
        });
        if listed != ran.len() || !in_order || !each {
            return Err("the task listing's workers are out of step with the attempts".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn rank_and_select_agree_with_a_sorted_list() {
        let n = 1000;
        let mut s = RankSet::from_fn(n, |i| i % 7 == 0 || i % 11 == 3);
        let mut want: Vec<u32> = (0..n).filter(|i| i % 7 == 0 || i % 11 == 3).collect();
        for i in [0, 3, 500, 999, 998] {
            s.set(i, false);
            want.retain(|x| *x != i);
        }
        for i in [1, 2, 997, 998] {
            s.set(i, true);
            want.push(i);
        }
        s.set(5000, true); // past the bound: nothing
        want.sort_unstable();
        assert_eq!(s.len() as usize, want.len());
        for (k, v) in want.iter().enumerate() {
            assert_eq!(s.select(k as u32), Some(*v), "select {k}");
            assert_eq!(s.rank(*v), k as u32, "rank {v}");
            assert!(s.contains(*v));
        }
        assert_eq!(s.select(want.len() as u32), None);
        assert_eq!(s.rank(n), want.len() as u32);
        assert_eq!(RankSet::from_fn(0, |_| true).select(0), None);
    }

    #[test]
    fn queries_parse_and_bad_ones_say_what_is_accepted() {
        let q = TaskQuery::parse("page=3&per_page=50&kind=reduce&state=done&worker=w2.r1").unwrap();
        assert_eq!(
            q,
            TaskQuery {
                page: 3,
                per_page: 50,
                kind: Some(TaskKind::Reduce),
                state: StateFilter::Done,
                worker: Some(WorkerId::new(1, 2)),
            }
        );
        assert_eq!(TaskQuery::parse("").unwrap(), TaskQuery::default());
        assert_eq!(
            TaskQuery::parse("per_page=100000").unwrap().per_page,
            TaskQuery::MAX_PER_PAGE
        );
        assert_eq!(
            TaskQuery::parse("kind=all&state=&worker=").unwrap(),
            TaskQuery::default()
        );
        for (bad, says) in [
            ("page=-1", "whole number"),
            ("kind=shuffle", "sample, map or reduce"),
            ("state=lost", "idle, running, done or failed"),
            ("worker=bob", "w3"),
            ("sort=id", "unknown parameter"),
        ] {
            let e = TaskQuery::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(parse_worker("w17"), Some(WorkerId::first_run(17)));
        assert_eq!(parse_worker("x17"), None);
    }

    /// A table of `maps` maps and 3 reduces with its listing, kept as the job keeps
    /// it: w2 failed map-0 first; then maps 0..done are done by w1, and the next
    /// `running` maps run on w2.
    fn table(maps: usize, done: u32, running: u32) -> (TaskTable, TaskListing) {
        let t0 = Instant::now();
        let mut tasks = TaskTable::new(
            crate::task::test_splits(maps, 1),
            3,
            "out".into(),
            Duration::from_secs(10),
            4,
        );
        let mut listing = TaskListing::new(&tasks);
        let (w1, w2) = (WorkerId::first_run(1), WorkerId::first_run(2));
        let f = mr::task::TaskFailure::App {
            message: "x".into(),
        };
        let a = tasks.assign(w2, t0).unwrap();
        tasks.fail(w2, a.task, a.attempt, &f, true, true).unwrap();
        listing.assigned(w2, a.task);
        listing.failed(a.task);
        listing.touch(&tasks, a.task);
        for i in 0..done + running {
            let w = if i < done { w1 } else { w2 };
            let a = tasks.assign(w, t0).unwrap();
            assert_eq!(a.task, TaskId::map(i));
            listing.assigned(w, a.task);
            if i < done {
                let result = mr::task::TaskResult::Map {
                    output: mr::task::MapOutputs::Dir("".into()),
                    stats: Default::default(),
                };
                tasks.complete(w, a.task, a.attempt, result, t0).unwrap();
            }
            listing.touch(&tasks, a.task);
        }
        (tasks, listing)
    }

    #[test]
    fn pages_of_each_filter_list_exactly_the_matching_tasks_in_order() {
        let (tasks, listing) = table(20_000, 12_000, 50);
        assert_eq!(listing.total(), 20_003);
        let c = listing.counts(None);
        assert_eq!(
            (c.idle, c.running, c.done, c.failed),
            (20_003 - 12_050, 50, 12_000, 1)
        );
        let page = |q: TaskQuery| listing.page(&q);
        let q = TaskQuery::default();
        // Everything: samples (none), maps, reduces.
        let p = page(TaskQuery { page: 200, ..q });
        assert_eq!(p.matched, 20_003);
        assert_eq!(
            p.tasks,
            [TaskId::reduce(0), TaskId::reduce(1), TaskId::reduce(2)]
        );
        // Idle maps: after the done and running ones.
        let p = page(TaskQuery {
            state: StateFilter::Idle,
            kind: Some(TaskKind::Map),
            page: 1,
            ..q
        });
        assert_eq!(p.matched, 20_000 - 12_050);
        assert_eq!(p.tasks.first(), Some(&TaskId::map(12_150)));
        assert_eq!(p.tasks.len(), 100);
        assert!(p
            .tasks
            .iter()
            .all(|t| tasks.task(*t).unwrap().state == TaskState::Idle));
        // Done, last page: a partial one; past it: empty.
        let p = page(TaskQuery {
            state: StateFilter::Done,
            page: 119,
            per_page: 100,
            ..q
        });
        assert_eq!((p.matched, p.tasks.len()), (12_000, 100));
        assert_eq!(p.tasks.last(), Some(&TaskId::map(11_999)));
        assert!(page(TaskQuery {
            state: StateFilter::Done,
            page: 120,
            ..q
        })
        .tasks
        .is_empty());
        assert!(
            page(TaskQuery {
                page: u32::MAX,
                ..q
            })
            .tasks
            .is_empty(),
            "no overflow"
        );
        // Running, by worker.
        let w2 = Some(WorkerId::first_run(2));
        let p = page(TaskQuery { worker: w2, ..q });
        assert_eq!(p.matched, 51, "map-0, which it failed, and the 50 it runs");
        let p = page(TaskQuery {
            worker: w2,
            state: StateFilter::Running,
            ..q
        });
        assert_eq!(p.tasks.first(), Some(&TaskId::map(12_000)));
        assert_eq!(p.matched, 50);
        let p = page(TaskQuery {
            state: StateFilter::Failed,
            ..q
        });
        assert_eq!((p.matched, p.tasks.clone()), (1, vec![TaskId::map(0)]));
        let none = page(TaskQuery {
            worker: Some(WorkerId::first_run(9)),
            ..q
        });
        assert_eq!((none.matched, none.tasks.len()), (0, 0));
        let reduces = page(TaskQuery {
            kind: Some(TaskKind::Reduce),
            worker: w2,
            ..q
        });
        assert_eq!(reduces.matched, 0);
        // A fresh listing of the same table agrees on the states.
        let fresh = TaskListing::new(&tasks);
        assert_eq!(
            (fresh.idle.clone(), fresh.done.clone()),
            (listing.idle.clone(), listing.done.clone())
        );
    }
}
