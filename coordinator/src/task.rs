//! The task table: every map and reduce task with its state, and the rules that move
//! them. Pure (no I/O, no clock): every method that depends on time takes `now`, so
//! each timeout rule is a fast unit test.
//!
//! ```text
//!            assign                complete (a live attempt)
//!   Idle ─────────────▶ InProgress ─────────────────────────▶ Done { output }
//!    ▲                  │  ▲   │ backup (running long)          │
//!    │                  │  └───┘                                │
//!    └──────────────────┘                                       │
//!    its last live attempt: timeout, worker lost, failure       │
//!    ▲                                                          │
//!    └──────────────────────────────────────────────────────────┘
//!          map output reported lost by a reduce task
//! ```
//! Each assignment gets a new [`Attempt`]. A task in progress has one live attempt, or
//! two once a backup of it has started ([`crate::speculate`]); a report is accepted only
//! from a live attempt, so a revoked attempt that wakes up and reports late changes
//! nothing, and of two live attempts the first to finish wins and the other is beaten
//! (its worker is told to stop; its report is refused). A finished task's output lives
//! in its `Done` state, so a task cannot be done without output, nor have output
//! without being done, nor have two outputs.
//!
//! Every operation is O(log n) in the number of tasks (the paper's M = 200,000): every
//! state change goes through [`TaskTable::set_state`], which keeps the indexes (idle
//! tasks in order, in-progress tasks by deadline and by worker, map output by the
//! worker whose disk holds it, done counts) in step, and [`TaskTable::audit`] checks
//! them against a recount.

use crate::speculate::{Durations, Speculation, SpeculationStats};
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::partition::{choose_split_points, HeavyKey, PartitionMode, Partitioning, SplitPoints};
use mr::task::{
    Assignment, Blame, Counters, Location, LossCause, MapInputs, MapOutputs, OutputTarget, Split,
    SplitSource, TaskFailure, TaskNow, TaskResult, TaskSpec, TaskStats,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use mr::task::Refusal;

/// What a finished task left behind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// A sample task's keys (kept until the split points are chosen from them).
    Sample(Vec<Vec<u8>>),
    /// A map's `mr-X-Y` for every partition Y.
    Map(MapOutputs),
    /// A reduce's `mr-out-Y`.
    Reduce(Location),
}

impl Output {
    /// Whether any of it lives on the disk of the worker that wrote it (and so is lost
    /// with that worker).
    fn on_workers_disk(&self) -> bool {
        match self {
            Output::Map(outputs) => outputs.on_workers_disk(),
            Output::Sample(_) | Output::Reduce(_) => false,
        }
    }
}

/// One live attempt of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Run {
    /// The worker running it.
    pub worker: WorkerId,
    /// The attempt it runs.
    pub attempt: Attempt,
    /// When it was handed out.
    pub since: Instant,
    /// Started as a backup of a run that was running long.
    pub backup: bool,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for a worker.
    Idle,
    /// Handed out: `run`, and `backup` if a backup of it has started. (When the first
    /// of the two ends unfinished, the other is `run`, alone.)
    InProgress {
        /// The older live attempt.
        run: Run,
        /// The newer one, a backup, if any.
        backup: Option<Run>,
    },
    /// Finished by `worker` in `attempt`; its output is final.
    Done {
        /// The worker that finished it.
        worker: WorkerId,
        /// The attempt that finished it.
        attempt: Attempt,
        /// What it produced.
        output: Output,
    },
}

impl TaskState {
    /// The state as a refusal names it.
    pub fn now(&self) -> TaskNow {
        match self {
            TaskState::Idle => TaskNow::Idle,
            TaskState::InProgress { run, backup } => {
                TaskNow::Running(backup.map_or(run.attempt, |b| b.attempt))
            }
            TaskState::Done { attempt, .. } => TaskNow::Done(*attempt),
        }
    }

    /// Its live attempts (none unless in progress), oldest first.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        let (run, backup) = match self {
            TaskState::InProgress { run, backup } => (Some(run), backup.as_ref()),
            _ => (None, None),
        };
        run.into_iter().chain(backup)
    }

    /// The live attempt `attempt`, if it is one.
    pub fn run_of(&self, attempt: Attempt) -> Option<&Run> {
        self.runs().find(|r| r.attempt == attempt)
    }
}

/// One task and its history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Task {
    /// Which task.
    pub id: TaskId,
    /// Its state.
    pub state: TaskState,
    /// Attempts handed out so far (the current attempt's number).
    pub attempts: u32,
    /// Attempts that failed in a way that counts towards the task's limit: the task's
    /// own fault (see [`Blame`]); lost workers and faulty machines do not count.
    pub failures: u32,
    /// Every failed attempt's worker, and whether the failure was blamed on the task
    /// (true) or on the machine (false): a retry goes elsewhere, and a worker whose
    /// failure another worker then proves wrong by finishing the task earns a strike.
    pub failed_on: Vec<(WorkerId, bool)>,
    /// Times its attempt was revoked (timeout or lost worker).
    pub reassignments: u32,
    /// For a done map: the hosts of reducers that could not reach its output while its
    /// worker was alive. One is the reducer's word against the map's; a second host
    /// runs the map again. (Hosts, not worker ids: a worker that comes back under a new
    /// id, or another worker on the same machine, shares the machine's network.)
    pub unreachable_from: Vec<String>,
    /// The last error reported.
    pub last_error: Option<String>,
    /// Counters of the successful attempt.
    pub stats: TaskStats,
    /// Whether `stats` are in the job's counters: from the first completion on. A done
    /// map whose output is reopened keeps its counts until another attempt completes
    /// and replaces them (the job may end on the first attempt's output).
    pub counted: bool,
}

impl Task {
    fn new(id: TaskId) -> Self {
        Task {
            id,
            state: TaskState::Idle,
            attempts: 0,
            failures: 0,
            failed_on: Vec::new(),
            reassignments: 0,
            unreachable_from: Vec::new(),
            last_error: None,
            stats: TaskStats::default(),
            counted: false,
        }
    }

    /// Whether the task has failed on `worker`.
    pub fn failed_on(&self, worker: WorkerId) -> bool {
        self.failed_on.iter().any(|(w, _)| *w == worker)
    }

    /// How many distinct workers it has failed on.
    pub fn failed_on_workers(&self) -> usize {
        let mut ws: Vec<WorkerId> = self.failed_on.iter().map(|(w, _)| *w).collect();
        ws.sort_unstable();
        ws.dedup();
        ws.len()
    }

    /// Whether it is done.
    pub fn is_done(&self) -> bool {
        matches!(self.state, TaskState::Done { .. })
    }
}

/// Why the job gave up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobFailure {
    /// A task failed `max_failures` times (on at least two workers when there were two).
    Task {
        /// The task.
        task: TaskId,
        /// Its input (a split, or a partition).
        input: String,
        /// The last error.
        error: String,
        /// How many attempts failed.
        failures: u32,
    },
    /// Every live worker was excluded for failing too often: nothing is left to run
    /// the job on. Each with its last error.
    NoWorkers(Vec<(WorkerId, String)>),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Task {
                task,
                input,
                error,
                failures,
            } => write!(
                f,
                "{task} (input {input}) failed {failures} times, last error: {error}"
            ),
            JobFailure::NoWorkers(workers) => {
                write!(f, "every worker was excluded for failing tasks:")?;
                for (i, (w, e)) in workers.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{w}: {e}")?;
                }
                write!(f, " (fix those machines, or start workers elsewhere)")
            }
        }
    }
}

/// A revoked attempt, for the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revoked {
    /// The task.
    pub task: TaskId,
    /// The attempt taken back.
    pub attempt: Attempt,
    /// The worker that had it.
    pub worker: WorkerId,
}

/// What a failure report led to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AfterFailure {
    /// The task is idle again and will be retried.
    Retry,
    /// A reduce found map output lost: the map re-runs, then the reduce.
    RerunMap(u32),
    /// A reduce reported map output lost that has been replaced since (or was never
    /// final): nothing changes but that the reduce runs again.
    StaleLoss(u32),
    /// A reduce could not reach a map's output, but the map's worker is alive and no
    /// other reducer has had trouble with it: the reducer's network is as likely at
    /// fault, so the reduce runs again on another worker and the map stays done.
    Unconfirmed(u32),
    /// The limit was reached: the job has failed.
    JobFailed(JobFailure),
}

/// How the worker a task goes to reaches files: through a filesystem it shares with the
/// coordinator, or over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// How a map task reads its split.
    pub split_source: SplitSource,
    /// Whether a reduce task sends its output to the coordinator (rather than writing
    /// into the shared output directory).
    pub ship_output: bool,
}

impl Placement {
    /// A worker that shares the coordinator's filesystem.
    pub const SHARED: Placement = Placement {
        split_source: SplitSource::Path,
        ship_output: false,
    };
}

/// Sums over every task, kept as tasks change so that a progress snapshot is O(1)
/// rather than a walk of M tasks under the job's lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Totals {
    /// Attempts taken back (timed out, their worker lost) and done maps reopened.
    pub reassignments: u64,
    /// Failures counted against tasks.
    pub failures: u64,
    /// Input bytes read by the maps that are done.
    pub map_bytes_read: u64,
    /// The framework's counters over the done maps and reduces.
    pub framework: FrameworkCounts,
    /// The app's counters over the done maps and reduces: only the attempt whose output
    /// stands counts, and a reopened map's counts leave with its output.
    pub app: Counters,
}

/// The framework's counters, by [`FrameworkCounts::NAMES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FrameworkCounts(pub [u64; 10]);

impl FrameworkCounts {
    /// What each count is.
    pub const NAMES: [&'static str; 10] = [
        "map input bytes",
        "map output records",
        "map records written",
        "map output bytes",
        "map spills",
        "reduce shuffle bytes",
        "reduce input records",
        "reduce output records",
        "reduce output bytes",
        "fetch retries",
    ];

    /// The counts one done task adds (a sample adds none: its maps count again).
    pub fn of(kind: TaskKind, s: &TaskStats) -> Self {
        FrameworkCounts(match kind {
            TaskKind::Map => [
                s.bytes_read,
                s.records_in,
                s.records_out,
                s.bytes_written,
                s.spills,
                0,
                0,
                0,
                0,
                0,
            ],
            TaskKind::Reduce => [
                0,
                0,
                0,
                0,
                0,
                s.bytes_read,
                s.records_in,
                s.records_out,
                s.bytes_written,
                s.fetch_retries,
            ],
            TaskKind::Sample => [0; 10],
        })
    }

    fn add(&mut self, o: &Self) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a = a.saturating_add(b);
        }
    }

    fn sub(&mut self, o: &Self) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a = a.saturating_sub(b);
        }
    }

    /// Each count with its name.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Self::NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

/// The indexes over the tasks' states, kept by [`TaskTable::set_state`] alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Index {
    /// Idle maps, reduces and samples, by index (handed out lowest first).
    idle: [BTreeSet<u32>; 3],
    /// Live attempts by deadline.
    deadlines: BTreeSet<(Instant, TaskId, Attempt)>,
    /// Tasks in progress by the workers running them.
    running_on: BTreeMap<WorkerId, BTreeSet<TaskId>>,
    /// Maps, reduces and samples in progress with no backup, by when they were handed
    /// out (the oldest is the first a backup is started for).
    lone: [BTreeSet<(Instant, u32)>; 3],
    /// Maps, reduces and samples running a backup.
    backed_up: [usize; 3],
    /// Done maps by the worker whose disk holds their output.
    outputs_on: BTreeMap<WorkerId, BTreeSet<u32>>,
    /// Done maps, reduces and samples.
    done: [usize; 3],
}

fn slot(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Map => 0,
        TaskKind::Reduce => 1,
        TaskKind::Sample => 2,
    }
}

impl Index {
    fn add(&mut self, id: TaskId, state: &TaskState, timeout: Duration) {
        match state {
            TaskState::Idle => {
                self.idle[slot(id.kind)].insert(id.index);
            }
            TaskState::InProgress { run, backup } => {
                for r in state.runs() {
                    self.deadlines.insert((r.since + timeout, id, r.attempt));
                    self.running_on.entry(r.worker).or_default().insert(id);
                }
                match backup {
                    None => {
                        self.lone[slot(id.kind)].insert((run.since, id.index));
                    }
                    Some(_) => self.backed_up[slot(id.kind)] += 1,
                }
            }
            TaskState::Done { worker, output, .. } => {
                self.done[slot(id.kind)] += 1;
                if output.on_workers_disk() {
                    self.outputs_on.entry(*worker).or_default().insert(id.index);
                }
            }
        }
    }

    fn remove(&mut self, id: TaskId, state: &TaskState, timeout: Duration) {
        fn take<K: Ord, V: Ord>(map: &mut BTreeMap<K, BTreeSet<V>>, key: K, v: &V) {
            if let Some(set) = map.get_mut(&key) {
                set.remove(v);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
        match state {
            TaskState::Idle => {
                self.idle[slot(id.kind)].remove(&id.index);
            }
            TaskState::InProgress { run, backup } => {
                for r in state.runs() {
                    self.deadlines.remove(&(r.since + timeout, id, r.attempt));
                    take(&mut self.running_on, r.worker, &id);
                }
                match backup {
                    None => {
                        self.lone[slot(id.kind)].remove(&(run.since, id.index));
                    }
                    Some(_) => self.backed_up[slot(id.kind)] -= 1,
                }
            }
            TaskState::Done { worker, output, .. } => {
                self.done[slot(id.kind)] -= 1;
                if output.on_workers_disk() {
                    take(&mut self.outputs_on, *worker, &id.index);
                }
            }
        }
    }
}

/// Sample tasks of a range-partitioned job (TeraSort samples 10 splits): few, so that
/// sampling is a small share of the job, each over pieces of several splits, so that the
/// sample is spread over the whole input.
pub const SAMPLE_TASKS: usize = 10;

/// Pieces of input the sample tasks read in all: spread over this many splits (or all
/// of them, if fewer).
pub const SAMPLE_PIECES: usize = 100;

/// Input read by the sample tasks in all, per 100 reduce partitions (more partitions
/// need more keys to place their split points as well): 10 MiB, about 1% of a 1 GiB job.
pub const SAMPLE_BYTES_PER_100_PARTITIONS: u64 = 10 << 20;

/// Keys reported by the sample tasks in all (TeraSort's 100,000), or 100 per partition
/// if that is more: the largest partition then strays a few percent from the mean.
pub const SAMPLE_KEYS: usize = 100_000;

/// The split points of a range-partitioned job, once chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// The points.
    pub points: SplitPoints,
    /// Keys that alone exceed a mean partition (each has a partition to itself).
    pub heavy: Vec<HeavyKey>,
    /// Keys the choice was made from.
    pub sampled: u64,
}

impl Eq for Chosen {}

impl std::hash::Hash for Chosen {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The heavy keys follow from the points and the sample.
        self.points.hash(state);
        self.sampled.hash(state);
    }
}

/// All tasks of one job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskTable {
    splits: Vec<Split>,
    /// Indices into `splits`, in the order of [`split_key`]: a split asked for is found
    /// by binary search, not by a walk of M splits under the job's lock.
    split_order: Vec<u32>,
    maps: Vec<Task>,
    reduces: Vec<Task>,
    /// Sample tasks (range partitioning only), each with the pieces it reads.
    samples: Vec<Task>,
    sample_pieces: Vec<Vec<Split>>,
    mode: PartitionMode,
    chosen: Option<Chosen>,
    index: Index,
    out_dir: PathBuf,
    timeout: Duration,
    max_failures: u32,
    failed: Option<JobFailure>,
    /// When to start backups (None: never).
    speculation: Option<Speculation>,
    /// How long the finished samples, maps and reduces took (their winning attempts).
    took: [Durations; 3],
    speculated: SpeculationStats,
    totals: Totals,
    /// Where every map's output is, while every map is done (see `reduce_inputs`).
    map_inputs: Option<Arc<MapInputs>>,
}

impl TaskTable {
    /// One map task per split, `n_reduce` reduce tasks writing into `out_dir`.
    pub fn new(
        splits: Vec<Split>,
        n_reduce: u32,
        out_dir: PathBuf,
        timeout: Duration,
        max_failures: u32,
    ) -> Self {
        let m = splits.len() as u32;
        let mut split_order: Vec<u32> = (0..m).collect();
        split_order.sort_unstable_by(|&a, &b| {
            split_key(&splits[a as usize]).cmp(&split_key(&splits[b as usize]))
        });
        let mut index = Index::default();
        index.idle[0] = (0..m).collect();
        index.idle[1] = (0..n_reduce).collect();
        TaskTable {
            maps: (0..m).map(|i| Task::new(TaskId::map(i))).collect(),
            reduces: (0..n_reduce)
                .map(|i| Task::new(TaskId::reduce(i)))
                .collect(),
            index,
            splits,
            split_order,
            samples: Vec::new(),
            sample_pieces: Vec::new(),
            mode: PartitionMode::Hash,
            chosen: None,
            out_dir,
            timeout,
            max_failures,
            failed: None,
            speculation: Some(Speculation::DEFAULT),
            took: Default::default(),
            speculated: SpeculationStats::default(),
            totals: Totals::default(),
            map_inputs: None,
        }
    }

    /// Sums over every task (O(1)).
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Tasks in progress (O(1)).
    pub fn running_count(&self) -> usize {
        self.index.lone.iter().map(BTreeSet::len).sum::<usize>()
            + self.index.backed_up.iter().sum::<usize>()
    }

    /// This job with backups started by `speculation`, or never (None).
    pub fn with_speculation(mut self, speculation: Option<Speculation>) -> Self {
        self.speculation = speculation;
        self
    }

    /// When backups are started, if they are.
    pub fn speculation(&self) -> Option<Speculation> {
        self.speculation
    }

    /// What speculation did so far.
    pub fn speculated(&self) -> SpeculationStats {
        self.speculated
    }

    /// This job partitioned by `mode`: with [`PartitionMode::Range`], sample tasks run
    /// first, and the maps wait for the split points chosen from their keys.
    pub fn with_partitioning(mut self, mode: PartitionMode) -> Self {
        self.mode = mode;
        self.samples.clear();
        self.sample_pieces.clear();
        self.index.idle[2].clear();
        if mode == PartitionMode::Range && self.maps.is_empty() {
            // Nothing to sample, nothing to partition: the reduces write empty outputs.
            self.chosen = Some(Chosen {
                points: SplitPoints::default(),
                heavy: Vec::new(),
                sampled: 0,
            });
        } else if mode == PartitionMode::Range {
            self.sample_pieces = sample_pieces(&self.splits, self.n_reduce());
            self.samples = (0..self.sample_pieces.len() as u32)
                .map(|i| Task::new(TaskId::sample(i)))
                .collect();
            self.index.idle[2] = (0..self.samples.len() as u32).collect();
        }
        self
    }

    /// How keys are partitioned.
    pub fn mode(&self) -> PartitionMode {
        self.mode
    }

    /// The split points, once chosen (range partitioning).
    pub fn chosen(&self) -> Option<&Chosen> {
        self.chosen.as_ref()
    }

    /// Whether the maps may run: hash partitioning, or the split points are chosen.
    pub fn partitioned(&self) -> bool {
        self.mode == PartitionMode::Hash || self.chosen.is_some()
    }

    /// What a map assignment carries: how to partition.
    fn partitioning(&self) -> Partitioning {
        match &self.chosen {
            Some(c) => Partitioning::Range(c.points.clone()),
            None => Partitioning::Hash,
        }
    }

    /// Sets the split points chosen by an earlier run (from the journal), and marks the
    /// sample tasks done: a restarted coordinator partitions exactly as before, or the
    /// maps it resumes would disagree with the maps it re-runs. False (and nothing
    /// changed) for a hash-partitioned job.
    pub fn restore_split_points(&mut self, chosen: Chosen) -> bool {
        if self.mode != PartitionMode::Range {
            return false;
        }
        self.chosen = Some(chosen);
        for i in 0..self.samples.len() as u32 {
            let id = TaskId::sample(i);
            if !self.samples[i as usize].is_done() {
                let attempt = Attempt(self.samples[i as usize].attempts);
                self.set_state(
                    id,
                    TaskState::Done {
                        worker: WorkerId::NONE,
                        attempt,
                        output: Output::Sample(Vec::new()),
                    },
                );
            }
        }
        true
    }

    /// The sample tasks.
    pub fn samples(&self) -> &[Task] {
        &self.samples
    }

    /// The map tasks.
    pub fn maps(&self) -> &[Task] {
        &self.maps
    }

    /// The reduce tasks.
    pub fn reduces(&self) -> &[Task] {
        &self.reduces
    }

    /// R.
    pub fn n_reduce(&self) -> u32 {
        self.reduces.len() as u32
    }

    /// A task by id.
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        match id.kind {
            TaskKind::Map => self.maps.get(id.index as usize),
            TaskKind::Reduce => self.reduces.get(id.index as usize),
            TaskKind::Sample => self.samples.get(id.index as usize),
        }
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        match id.kind {
            TaskKind::Map => self.maps.get_mut(id.index as usize),
            TaskKind::Reduce => self.reduces.get_mut(id.index as usize),
            TaskKind::Sample => self.samples.get_mut(id.index as usize),
        }
    }

    /// Moves task `id` (which exists) to `state`, keeping the indexes in step: the one
    /// place a task's state changes.
    fn set_state(&mut self, id: TaskId, state: TaskState) {
        let timeout = self.timeout;
        let task = match id.kind {
            TaskKind::Map => &mut self.maps[id.index as usize],
            TaskKind::Reduce => &mut self.reduces[id.index as usize],
            TaskKind::Sample => &mut self.samples[id.index as usize],
        };
        self.index.remove(id, &task.state, timeout);
        self.index.add(id, &state, timeout);
        let map_output_changed =
            id.kind == TaskKind::Map && (task.is_done() || matches!(state, TaskState::Done { .. }));
        if id.kind == TaskKind::Map {
            // A done map's stats are its finishing attempt's (set before it is done).
            let bytes = task.stats.bytes_read;
            if task.is_done() {
                self.totals.map_bytes_read -= bytes;
            }
            if matches!(state, TaskState::Done { .. }) {
                self.totals.map_bytes_read += bytes;
            }
        }
        task.state = state;
        // Doubts about an output end with it.
        task.unreachable_from.clear();
        if map_output_changed {
            self.map_inputs = self.maps_done().then(|| Arc::new(self.build_map_inputs()));
        }
    }

    /// Where every done map's output is, for the reduces (O(M): built once, when the
    /// last map is done, and again only after a map had to run again).
    fn build_map_inputs(&self) -> MapInputs {
        MapInputs::build(self.maps.iter().filter_map(|t| match &t.state {
            TaskState::Done {
                attempt,
                output: Output::Map(outputs),
                ..
            } => Some((t.id.index, *attempt, outputs)),
            _ => None,
        }))
    }

    /// What a task reads, for messages.
    pub fn describe_input(&self, id: TaskId) -> String {
        match id.kind {
            TaskKind::Map => self
                .splits
                .get(id.index as usize)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            TaskKind::Reduce => format!("partition {} of every map output", id.index),
            TaskKind::Sample => match self.sample_pieces.get(id.index as usize) {
                Some(pieces) if !pieces.is_empty() => {
                    format!("{} pieces from {}", pieces.len(), pieces[0])
                }
                _ => String::new(),
            },
        }
    }

    /// Map tasks done.
    pub fn maps_done_count(&self) -> usize {
        self.index.done[0]
    }

    /// Reduce tasks done.
    pub fn reduces_done_count(&self) -> usize {
        self.index.done[1]
    }

    /// Idle tasks of the phase that can be handed out now (samples; then maps once the
    /// split points are chosen; then reduces once every map is done). O(1).
    pub fn assignable(&self) -> usize {
        if !self.index.idle[2].is_empty() {
            self.index.idle[2].len()
        } else if !self.partitioned() {
            0
        } else if !self.index.idle[0].is_empty() {
            self.index.idle[0].len()
        } else if self.maps_done() {
            self.index.idle[1].len()
        } else {
            0
        }
    }

    /// Every map task is done (reduce tasks may be handed out).
    pub fn maps_done(&self) -> bool {
        self.index.done[0] == self.maps.len()
    }

    /// Every task is done: all output is final. Once every reduce is done, the maps no
    /// longer matter (a map output lost after that needs no re-run).
    pub fn is_done(&self) -> bool {
        let reduces_done = self.index.done[1] == self.reduces.len();
        reduces_done && (self.maps_done() || !self.reduces.is_empty())
    }

    /// The output of map `m`, if it is done.
    pub fn map_output(&self, m: u32) -> Option<(Attempt, &MapOutputs)> {
        match &self.maps.get(m as usize)?.state {
            TaskState::Done {
                attempt,
                output: Output::Map(outputs),
                ..
            } => Some((*attempt, outputs)),
            _ => None,
        }
    }

    /// The failure that ended the job, if any.
    pub fn failure(&self) -> Option<&JobFailure> {
        self.failed.as_ref()
    }

    /// Whether `split` is one of this job's, or a sample task's piece (the only input
    /// bytes anyone may ask for).
    pub fn is_split(&self, split: &Split) -> bool {
        let want = split_key(split);
        self.split_order
            .binary_search_by(|&i| split_key(&self.splits[i as usize]).cmp(&want))
            .is_ok()
            || self.sample_pieces.iter().flatten().any(|p| p == split)
    }

    /// Hands an idle task to `worker`, which shares the coordinator's filesystem.
    pub fn assign(&mut self, worker: WorkerId, now: Instant) -> Option<Assignment> {
        self.assign_with(worker, Placement::SHARED, now, true, |_| false)
    }

    /// Hands a task to `worker`: samples first, then maps, then reduces once every map
    /// is done; when the phase has no idle task left, a backup of one running long (if
    /// `may_back_up`: the worker is not noted as slow). Tasks for which `skip` says yes
    /// are passed over (the job keeps a task away from a worker it failed on while
    /// another worker could take it).
    pub fn assign_with(
        &mut self,
        worker: WorkerId,
        placement: Placement,
        now: Instant,
        may_back_up: bool,
        skip: impl Fn(&Task) -> bool,
    ) -> Option<Assignment> {
        if self.failed.is_some() {
            return None;
        }
        let pick = |idle: &BTreeSet<u32>, tasks: &[Task]| {
            idle.iter().copied().find(|i| !skip(&tasks[*i as usize]))
        };
        let (idle, phase) = if let Some(i) = pick(&self.index.idle[2], &self.samples) {
            (Some(TaskId::sample(i)), TaskKind::Sample)
        } else if !self.partitioned() {
            (None, TaskKind::Sample)
        } else if let Some(i) = pick(&self.index.idle[0], &self.maps) {
            (Some(TaskId::map(i)), TaskKind::Map)
        } else if self.maps_done() {
            let i = pick(&self.index.idle[1], &self.reduces);
            (i.map(TaskId::reduce), TaskKind::Reduce)
        } else {
            (None, TaskKind::Map)
        };
        let (id, backup) = match idle {
            Some(id) => (id, false),
            None if may_back_up => (self.long_running(phase, worker, now, &skip)?, true),
            None => return None,
        };
        let index = id.index as usize;
        let spec = match id.kind {
            TaskKind::Map => TaskSpec::Map {
                split: self.splits[index].clone(),
                source: placement.split_source,
                n_reduce: self.n_reduce(),
                partitioning: self.partitioning(),
            },
            TaskKind::Sample => TaskSpec::Sample {
                pieces: self.sample_pieces[index].clone(),
                source: placement.split_source,
                max_keys: sample_keys(self.n_reduce(), self.samples.len()),
            },
            TaskKind::Reduce => TaskSpec::Reduce {
                inputs: self.reduce_inputs(),
                output: if placement.ship_output {
                    OutputTarget::Coordinator
                } else {
                    OutputTarget::Dir(self.out_dir.clone())
                },
            },
        };
        let task = self.task_mut(id)?;
        task.attempts += 1;
        let run = Run {
            worker,
            attempt: Attempt(task.attempts),
            since: now,
            backup,
        };
        let state = match task.state {
            TaskState::InProgress { run: first, .. } if backup => {
                self.speculated.started += 1;
                TaskState::InProgress {
                    run: first,
                    backup: Some(run),
                }
            }
            _ => TaskState::InProgress { run, backup: None },
        };
        self.set_state(id, state);
        Some(Assignment {
            task: id,
            attempt: run.attempt,
            spec,
        })
    }

    /// The task of `phase` to back up on `worker` at `now`, if one is running long (see
    /// [`crate::speculate`]): the oldest lone run that is not `worker`'s own and not
    /// skipped. Looks at a bounded number of candidates, so it stays O(log n).
    fn long_running(
        &self,
        phase: TaskKind,
        worker: WorkerId,
        now: Instant,
        skip: impl Fn(&Task) -> bool,
    ) -> Option<TaskId> {
        const CANDIDATES: usize = 16;
        let rule = self.speculation?;
        let k = slot(phase);
        let tasks = match phase {
            TaskKind::Map => &self.maps,
            TaskKind::Reduce => &self.reduces,
            TaskKind::Sample => &self.samples,
        };
        if self.index.backed_up[k] >= rule.cap(tasks.len()) {
            return None;
        }
        let threshold = rule.threshold(self.took[k].median()?);
        self.index.lone[k]
            .iter()
            .take(CANDIDATES)
            .take_while(|(since, _)| now.saturating_duration_since(*since) >= threshold)
            .map(|(_, i)| &tasks[*i as usize])
            .find(|t| !t.state.runs().any(|r| r.worker == worker) && !skip(t))
            .map(|t| t.id)
    }

    /// Partition `y` of every map's output (every map is done).
    /// Where every map's output is, as the reduces learn it (every map is done): the
    /// one value built when the last map was done, shared by every reduce assignment.
    fn reduce_inputs(&self) -> Arc<MapInputs> {
        self.map_inputs
            .clone()
            .unwrap_or_else(|| Arc::new(self.build_map_inputs()))
    }

    /// Whether `attempt` of task `id` is current and `worker`'s (reports, and output
    /// sent to the coordinator, are accepted only then).
    pub fn check_current(
        &self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
    ) -> Result<(), Refusal> {
        let task = self.task(id).ok_or(Refusal::UnknownTask)?;
        match task.state.run_of(attempt) {
            Some(run) if run.worker == worker => Ok(()),
            Some(_) => Err(Refusal::WrongWorker(attempt)),
            None => Err(Refusal::Stale {
                reported: attempt,
                now: task.state.now(),
            }),
        }
    }

    /// Records a finished attempt at `now`. Refused unless it is a live attempt of the
    /// task and the result fits the task. Returns the other live attempt, if there was
    /// one: it is beaten (its worker should stop it; its report will be refused).
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        result: TaskResult,
        now: Instant,
    ) -> Result<Option<Run>, Refusal> {
        self.check_current(worker, id, attempt)?;
        // Live (just checked): the winner, and the other live attempt if there is one.
        let (won, beaten) = match self.task(id).map(|t| &t.state) {
            Some(TaskState::InProgress { run, backup }) => match backup {
                Some(b) if b.attempt == attempt => (*b, Some(*run)),
                _ => (*run, *backup),
            },
            _ => return Err(Refusal::UnknownTask),
        };
        if !self.set_done(id, worker, attempt, result) {
            // A result of the other kind of task.
            return Err(Refusal::BadResult { got: 0, want: 1 });
        }
        self.took[slot(id.kind)].insert(now.saturating_duration_since(won.since));
        if won.backup {
            self.speculated.won += 1;
        }
        if beaten.is_some_and(|b| b.backup) {
            self.speculated.wasted += 1;
        }
        Ok(beaten)
    }

    /// Ends live attempt `attempt` of task `id` unfinished: the task keeps its other
    /// live attempt, if it has one, or is idle again. Returns the run ended.
    fn end_run(&mut self, id: TaskId, attempt: Attempt) -> Option<Run> {
        let TaskState::InProgress { run, backup } = self.task(id)?.state else {
            return None;
        };
        let (ended, rest) = if run.attempt == attempt {
            (run, backup)
        } else if backup.is_some_and(|b| b.attempt == attempt) {
            (backup?, Some(run))
        } else {
            return None;
        };
        let state = match rest {
            Some(run) => TaskState::InProgress { run, backup: None },
            None => TaskState::Idle,
        };
        self.set_state(id, state);
        if ended.backup {
            self.speculated.wasted += 1;
        }
        Some(ended)
    }

    /// Marks task `id` done by `attempt` on `worker` with `result`; false (and nothing
    /// changed) if there is no such task or the result is of the other kind.
    fn set_done(
        &mut self,
        id: TaskId,
        worker: WorkerId,
        attempt: Attempt,
        result: TaskResult,
    ) -> bool {
        let (output, stats) = match (id.kind, result) {
            (TaskKind::Map, TaskResult::Map { output, stats }) => (Output::Map(output), stats),
            (TaskKind::Reduce, TaskResult::Reduce { output, stats }) => {
                (Output::Reduce(output), stats)
            }
            (TaskKind::Sample, TaskResult::Sample { keys, stats }) => (Output::Sample(keys), stats),
            _ => return false,
        };
        let Some(task) = self.task_mut(id) else {
            return false;
        };
        // The job's counters hold each task's last completed attempt once: a re-run
        // replaces the counts of the attempt before it.
        let old = task.counted.then(|| std::mem::take(&mut task.stats));
        task.stats = stats;
        task.counted = id.kind != TaskKind::Sample;
        let new = task.counted.then(|| task.stats.clone());
        if let Some(old) = old {
            self.totals
                .framework
                .sub(&FrameworkCounts::of(id.kind, &old));
            self.totals.app.unmerge(&old.counters);
        }
        if let Some(new) = new {
            self.totals
                .framework
                .add(&FrameworkCounts::of(id.kind, &new));
            self.totals.app.merge(&new.counters);
        }
        self.set_state(
            id,
            TaskState::Done {
                worker,
                attempt,
                output,
            },
        );
        if id.kind == TaskKind::Sample {
            self.choose_when_sampled();
        }
        true
    }

    /// Chooses the split points once every sample task is done, and drops the keys.
    fn choose_when_sampled(&mut self) {
        if self.chosen.is_some() || self.index.done[2] < self.samples.len() {
            return;
        }
        let mut keys = Vec::new();
        for t in &mut self.samples {
            if let TaskState::Done {
                output: Output::Sample(k),
                ..
            } = &mut t.state
            {
                keys.append(k);
            }
        }
        let sampled = keys.len() as u64;
        let choice = choose_split_points(keys, self.n_reduce());
        self.chosen = Some(Chosen {
            points: choice.points,
            heavy: choice.heavy,
            sampled,
        });
    }

    /// Records a failed attempt. A failure that `counts` (the task's own fault) is
    /// retried until `max_failures`, then the job fails, unless every failure so far was
    /// on one worker and `elsewhere` says another could try it. A reduce that found map
    /// output lost sends that map back to idle instead, if the output it names is still
    /// the map's current one.
    pub fn fail(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        failure: &TaskFailure,
        counts: bool,
        elsewhere: bool,
    ) -> Result<AfterFailure, Refusal> {
        self.fail_weighed(worker, id, attempt, failure, counts, elsewhere, None)
    }

    /// [`TaskTable::fail`], with `doubt`: the reporter's host if a report that a map
    /// output is unreachable is open to doubt (the serving worker may be alive, and a
    /// worker that has not failed this reduce could try it); see
    /// [`AfterFailure::Unconfirmed`].
    #[allow(clippy::too_many_arguments)]
    pub fn fail_weighed(
        &mut self,
        worker: WorkerId,
        id: TaskId,
        attempt: Attempt,
        failure: &TaskFailure,
        counts: bool,
        elsewhere: bool,
        doubt: Option<&str>,
    ) -> Result<AfterFailure, Refusal> {
        self.check_current(worker, id, attempt)?;
        if let (TaskFailure::LostMapOutput { .. }, TaskKind::Reduce) = (failure, id.kind) {
            return self.lost_map_output(worker, id, attempt, failure, doubt);
        }
        // Any other failure, and a map that (wrongly) reports lost map output: the
        // task's own attempt failed.
        let max = self.max_failures;
        let input = self.describe_input(id);
        self.end_run(id, attempt);
        let task = self.task_mut(id).ok_or(Refusal::UnknownTask)?;
        task.failed_on
            .push((worker, failure.blame() != Blame::Worker));
        task.last_error = Some(failure.to_string());
        if !counts {
            return Ok(AfterFailure::Retry);
        }
        task.failures += 1;
        let give_up = task.failures >= max && (task.failed_on_workers() >= 2 || !elsewhere);
        let failures = task.failures;
        self.totals.failures += 1;
        if give_up {
            let f = JobFailure::Task {
                task: id,
                input,
                error: failure.to_string(),
                failures,
            };
            self.failed = Some(f.clone());
            return Ok(AfterFailure::JobFailed(f));
        }
        Ok(AfterFailure::Retry)
    }

    /// Reduce `id` (whose attempt is current) could not read a map's output.
    /// `doubt`: as for [`TaskTable::fail_weighed`].
    fn lost_map_output(
        &mut self,
        reducer: WorkerId,
        id: TaskId,
        reduce_attempt: Attempt,
        failure: &TaskFailure,
        doubt: Option<&str>,
    ) -> Result<AfterFailure, Refusal> {
        let TaskFailure::LostMapOutput {
            map,
            attempt,
            location,
            cause,
            ..
        } = failure
        else {
            return Err(Refusal::UnknownTask);
        };
        // Validate before changing anything.
        let map = *map;
        if map as usize >= self.maps.len() {
            return Err(Refusal::UnknownMap(map));
        }
        // Current only if the map is done by the attempt the reduce was told of, with
        // that very file: a report about output since replaced (a re-run elsewhere, or
        // in a shared directory the same path re-written by a later attempt) is stale.
        let is_current = self.map_output(map).is_some_and(|(a, outputs)| {
            a == *attempt && outputs.location(map, id.index) == *location
        });
        // Not the reduce's fault either way: this attempt ends, nothing counted.
        self.end_run(id, reduce_attempt);
        if !is_current {
            return Ok(AfterFailure::StaleLoss(map));
        }
        // Unreachable, its worker alive, no other reducer has said so, and another
        // worker could try: the reducer's word against the map's. The reduce runs
        // elsewhere; if another worker then finishes it, this reducer was at fault
        // (failed_on marks it as a task failure would be, proven wrong by that).
        let m = &mut self.maps[map as usize];
        let doubted = match doubt {
            Some(host) if *cause == LossCause::Unreachable => {
                let confirmed = m.unreachable_from.iter().any(|h| h != host);
                if !confirmed && !m.unreachable_from.iter().any(|h| h == host) {
                    m.unreachable_from.push(host.to_string());
                }
                !confirmed
            }
            _ => false,
        };
        if doubted {
            if let Some(r) = self.task_mut(id) {
                r.failed_on.push((reducer, true));
                r.last_error = Some(failure.to_string());
            }
            return Ok(AfterFailure::Unconfirmed(map));
        }
        let max = self.max_failures;
        let map_id = TaskId::map(map);
        let input = self.describe_input(map_id);
        self.set_state(map_id, TaskState::Idle);
        self.totals.failures += 1;
        let m = &mut self.maps[map as usize];
        m.failures += 1;
        m.last_error = Some(failure.to_string());
        if m.failures >= max {
            let f = JobFailure::Task {
                task: m.id,
                input,
                error: failure.to_string(),
                failures: m.failures,
            };
            self.failed = Some(f.clone());
            return Ok(AfterFailure::JobFailed(f));
        }
        Ok(AfterFailure::RerunMap(map))
    }

    /// Ends the job as failed for a reason outside any one task.
    pub fn fail_job(&mut self, failure: JobFailure) {
        if self.failed.is_none() {
            self.failed = Some(failure);
        }
    }

    fn revoke(&mut self, runs: Vec<(TaskId, Attempt)>) -> Vec<Revoked> {
        let mut out = Vec::with_capacity(runs.len());
        for (id, attempt) in runs {
            if let Some(run) = self.end_run(id, attempt) {
                if let Some(task) = self.task_mut(id) {
                    task.reassignments += 1;
                }
                self.totals.reassignments += 1;
                out.push(Revoked {
                    task: id,
                    attempt,
                    worker: run.worker,
                });
            }
        }
        out
    }

    /// Takes back every attempt live for the timeout or longer.
    pub fn expire(&mut self, now: Instant) -> Vec<Revoked> {
        let due: Vec<(TaskId, Attempt)> = self
            .index
            .deadlines
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(_, id, attempt)| (*id, *attempt))
            .collect();
        self.revoke(due)
    }

    /// Takes back every attempt live on `lost`.
    pub fn revoke_worker(&mut self, lost: WorkerId) -> Vec<Revoked> {
        let on: Vec<(TaskId, Attempt)> = self
            .index
            .running_on
            .get(&lost)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let run = self.task(*id)?.state.runs().find(|r| r.worker == lost)?;
                Some((*id, run.attempt))
            })
            .collect();
        self.revoke(on)
    }

    /// Sends back to idle every finished map whose output lived on `lost`'s own disk
    /// (the Google MapReduce paper's rule: a lost worker's map output is lost with it),
    /// while some reduce may still need it. Returns the maps reopened. Output in a
    /// shared directory outlives its worker and stays.
    pub fn reopen_output_of(&mut self, lost: WorkerId) -> Vec<u32> {
        if self.index.done[1] == self.reduces.len() {
            return Vec::new();
        }
        let maps: Vec<u32> = self
            .index
            .outputs_on
            .get(&lost)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for m in &maps {
            self.maps[*m as usize].reassignments += 1;
            self.totals.reassignments += 1;
            self.set_state(TaskId::map(*m), TaskState::Idle);
        }
        maps
    }

    /// Sends a done map back to idle because the journal says its output was lost.
    pub fn reopen_map(&mut self, m: u32) {
        if self.map_output(m).is_some() {
            self.set_state(TaskId::map(m), TaskState::Idle);
        }
    }

    /// Continues attempt numbering after a restart (see [`crate::journal`]).
    pub fn set_attempts(&mut self, id: TaskId, attempts: u32) {
        if let Some(t) = self.task_mut(id) {
            t.attempts = t.attempts.max(attempts);
        }
    }

    /// Marks a task done from the journal of an earlier run. Refused (false) for an
    /// unknown task or a result of the wrong shape. A reduce's committed output is final
    /// whatever became of the map output it read, so it is restored even if some map
    /// must run again (for the reduces still to do).
    pub fn restore_done(
        &mut self,
        id: TaskId,
        attempt: Attempt,
        worker: WorkerId,
        result: TaskResult,
    ) -> bool {
        self.set_done(id, worker, attempt, result)
    }

    /// When the next in-progress task times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.index.deadlines.first().map(|(at, _, _)| *at)
    }

    /// Tasks in progress on `worker`.
    pub fn running_on(&self, worker: WorkerId) -> impl Iterator<Item = TaskId> + '_ {
        self.index
            .running_on
            .get(&worker)
            .into_iter()
            .flatten()
            .copied()
    }

    /// Checks the indexes against a recount from the tasks' states (for tests and the
    /// simulator: every operation must leave them in step).
    pub fn audit(&self) -> Result<(), String> {
        let mut fresh = Index::default();
        for t in self.maps.iter().chain(&self.reduces).chain(&self.samples) {
            fresh.add(t.id, &t.state, self.timeout);
        }
        if fresh != self.index {
            return Err(format!(
                "task table indexes out of step: kept {:?}, recounted {:?}",
                self.index, fresh
            ));
        }
        let all = || self.maps.iter().chain(&self.reduces).chain(&self.samples);
        let totals = Totals {
            reassignments: all().map(|t| u64::from(t.reassignments)).sum(),
            failures: all().map(|t| u64::from(t.failures)).sum(),
            map_bytes_read: self
                .maps
                .iter()
                .filter(|t| t.is_done())
                .map(|t| t.stats.bytes_read)
                .sum(),
            framework: self
                .maps
                .iter()
                .chain(&self.reduces)
                .filter(|t| t.counted)
                .fold(FrameworkCounts::default(), |mut c, t| {
                    c.add(&FrameworkCounts::of(t.id.kind, &t.stats));
                    c
                }),
            app: self
                .maps
                .iter()
                .chain(&self.reduces)
                .filter(|t| t.counted)
                .fold(Counters::default(), |mut c, t| {
                    c.merge(&t.stats.counters);
                    c
                }),
        };
        let want = self.maps_done().then(|| self.build_map_inputs());
        if self.map_inputs.as_deref() != want.as_ref() {
            return Err("the reduces' map inputs are out of step with the maps".into());
        }
        if totals != self.totals {
            return Err(format!(
                "task table totals out of step: kept {:?}, recounted {totals:?}",
                self.totals
            ));
        }
        Ok(())
    }
}

/// The pieces each sample task reads: [`SAMPLE_PIECES`] ranges spread evenly over the
/// splits, each from the middle of its split (a file's start is often unlike the rest:
/// a header, a licence), dealt round-robin to [`SAMPLE_TASKS`] tasks.
/// What orders splits for [`TaskTable::is_split`]: every field, so equal keys are equal
/// splits.
fn split_key(s: &Split) -> (&std::path::Path, u64, u64) {
    (&s.path, s.offset, s.len)
}

fn sample_pieces(splits: &[Split], n_reduce: u32) -> Vec<Vec<Split>> {
    let m = splits.len();
    let pieces = m.min(SAMPLE_PIECES);
    let tasks = m.min(SAMPLE_TASKS);
    if pieces == 0 {
        return Vec::new();
    }
    let budget = SAMPLE_BYTES_PER_100_PARTITIONS * u64::from(n_reduce.div_ceil(100).max(1));
    let per_piece = (budget / pieces as u64).max(64 << 10);
    let mut out = vec![Vec::new(); tasks];
    for p in 0..pieces {
        let s = &splits[p * m / pieces];
        let len = per_piece.min(s.len);
        out[p % tasks].push(Split {
            path: s.path.clone(),
            offset: s.offset + (s.len - len) / 2,
            len,
        });
    }
    out
}

/// The most keys one of `tasks` sample tasks reports.
fn sample_keys(n_reduce: u32, tasks: usize) -> u32 {
    let total = SAMPLE_KEYS.max(100 * n_reduce as usize);
    total.div_ceil(tasks.max(1)) as u32
}

/// `n` splits `in-0`, `in-1`, ... of `len` bytes each: the unit tests' jobs.
#[cfg(test)]
pub(crate) fn test_splits(n: usize, len: u64) -> Vec<Split> {
    (0..n)
        .map(|i| Split {
            path: format!("in-{i}").into(),
            offset: 0,
            len,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W1: WorkerId = WorkerId::first_run(1);
    const W2: WorkerId = WorkerId::first_run(2);
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn table(m: usize, r: u32) -> TaskTable {
        TaskTable::new(test_splits(m, 10), r, "out".into(), TIMEOUT, 4)
    }

    /// Map `_m`'s output for all `_r` partitions, in the current directory.
    fn map_result(_r: u32, _m: u32) -> TaskResult {
        TaskResult::Map {
            output: MapOutputs::Dir(PathBuf::new()),
            stats: TaskStats::default(),
        }
    }

    fn reduce_result(y: u32) -> TaskResult {
        TaskResult::Reduce {
            output: Location::Path(format!("mr-out-{y}").into()),
            stats: TaskStats::default(),
        }
    }

    fn app_failure() -> TaskFailure {
        TaskFailure::App {
            message: "boom".into(),
        }
    }

    #[test]
    fn maps_first_then_reduces_only_after_every_map_is_done() {
        let now = Instant::now();
        let mut t = table(2, 2);
        let a = t.assign(W1, now).unwrap();
        let b = t.assign(W2, now).unwrap();
        assert_eq!((a.task, b.task), (TaskId::map(0), TaskId::map(1)));
        assert_eq!(t.assign(W1, now), None, "no reduce before maps are done");
        t.complete(W1, a.task, a.attempt, map_result(2, 0), now)
            .unwrap();
        assert_eq!(t.assign(W1, now), None);
        t.complete(W2, b.task, b.attempt, map_result(2, 1), now)
            .unwrap();
        let r = t.assign(W1, now).unwrap();
        assert_eq!(r.task, TaskId::reduce(0));
        let TaskSpec::Reduce { inputs, .. } = &r.spec else {
            panic!("not a reduce: {r:?}")
        };
        let inputs = inputs.for_partition(r.task.index);
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].location, Location::Path("mr-1-0".into()));
        let r1 = t.assign(W2, now).unwrap();
        t.complete(W1, r.task, r.attempt, reduce_result(0), now)
            .unwrap();
        assert!(!t.is_done());
        t.complete(W2, r1.task, r1.attempt, reduce_result(1), now)
            .unwrap();
        assert!(t.is_done());
        assert_eq!(t.assign(W1, now), None);
    }

    #[test]
    fn a_range_job_without_maps_goes_straight_to_its_reduces() {
        let mut t = TaskTable::new(Vec::new(), 2, "out".into(), TIMEOUT, 4)
            .with_partitioning(mr::partition::PartitionMode::Range);
        assert!(t.samples().is_empty());
        let a = t.assign(W1, Instant::now()).unwrap();
        assert_eq!(a.task, TaskId::reduce(0));
    }

    #[test]
    fn a_range_job_samples_first_and_its_maps_carry_the_points_chosen() {
        use mr::partition::{PartitionMode, Partitioning};
        let now = Instant::now();
        let splits = test_splits(30, 1 << 20);
        let mut t = TaskTable::new(splits, 4, "out".into(), TIMEOUT, 4)
            .with_partitioning(PartitionMode::Range);
        assert_eq!(t.samples().len(), SAMPLE_TASKS);
        // Pieces spread over all 30 splits, from their middles, each a piece's budget.
        let mut covered = BTreeSet::new();
        let mut held = Vec::new();
        while let Some(a) = t.assign(W1, now) {
            let TaskSpec::Sample {
                pieces, max_keys, ..
            } = &a.spec
            else {
                panic!("a map before the split points: {a:?}")
            };
            assert_eq!(*max_keys as usize, SAMPLE_KEYS / SAMPLE_TASKS);
            for p in pieces {
                assert!(t.is_split(p), "{p} is not an input anyone may ask for");
                assert!(
                    p.offset > 0 && p.offset + p.len < 1 << 20,
                    "{p} not mid-split"
                );
                covered.insert(p.path.clone());
            }
            held.push(a);
        }
        assert_eq!(covered.len(), 30);
        assert!(!t.partitioned());
        // A sample that fails runs again; the maps wait for every sample.
        let first = held.remove(0);
        t.fail(W1, first.task, first.attempt, &app_failure(), true, true)
            .unwrap();
        for a in held {
            let keys = (0..100u8).map(|k| vec![k]).collect();
            let result = TaskResult::Sample {
                keys,
                stats: TaskStats::default(),
            };
            t.complete(W1, a.task, a.attempt, result, now).unwrap();
        }
        assert!(t.chosen().is_none());
        let again = t.assign(W2, now).unwrap();
        assert_eq!(again.task, first.task);
        let keys = (0..100u8).map(|k| vec![k]).collect();
        t.complete(
            W2,
            again.task,
            again.attempt,
            TaskResult::Sample {
                keys,
                stats: TaskStats::default(),
            },
            now,
        )
        .unwrap();
        let chosen = t.chosen().cloned().unwrap();
        assert_eq!(chosen.sampled, 1_000);
        assert_eq!(chosen.points.points(), &[vec![25], vec![50], vec![75]]);
        let m = t.assign(W1, now).unwrap();
        match m.spec {
            TaskSpec::Map { partitioning, .. } => {
                assert_eq!(partitioning, Partitioning::Range(chosen.points))
            }
            other => panic!("expected a map, got {other:?}"),
        }
        // A sample's result for a map is refused.
        let wrong = t.complete(
            W1,
            m.task,
            m.attempt,
            TaskResult::Sample {
                keys: Vec::new(),
                stats: TaskStats::default(),
            },
            now,
        );
        assert!(matches!(wrong, Err(Refusal::BadResult { .. })));
        t.audit().unwrap();
    }

    #[test]
    fn timeout_reassigns_and_the_late_report_is_refused() {
        let t0 = Instant::now();
        let mut t = table(1, 1);
        let first = t.assign(W1, t0).unwrap();
        assert_eq!(t.next_deadline(), Some(t0 + TIMEOUT));
        assert!(t.expire(t0 + TIMEOUT - Duration::from_millis(1)).is_empty());
        let revoked = t.expire(t0 + TIMEOUT);
        assert_eq!(
            revoked,
            vec![Revoked {
                task: TaskId::map(0),
                attempt: Attempt(1),
                worker: W1
            }]
        );
        let second = t.assign(W2, t0 + TIMEOUT).unwrap();
        assert_eq!(second.attempt, Attempt(2));
        // The frozen worker wakes up and reports attempt 1: refused, nothing changes.
        let late = t.complete(W1, first.task, first.attempt, map_result(1, 0), t0);
        assert!(matches!(late, Err(Refusal::Stale { .. })), "{late:?}");
        assert!(matches!(
            t.task(TaskId::map(0)).unwrap().state,
            TaskState::InProgress {
                run: Run { worker: W2, .. },
                backup: None
            }
        ));
        t.complete(W2, second.task, second.attempt, map_result(1, 0), t0)
            .unwrap();
        assert!(t.maps_done());
    }

    #[test]
    fn lost_worker_tasks_return_to_idle_without_counting_as_failures() {
        let now = Instant::now();
        let mut t = table(3, 1);
        let a = t.assign(W1, now).unwrap();
        let _b = t.assign(W2, now).unwrap();
        let revoked = t.revoke_worker(W1);
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].task, a.task);
        let task = t.task(a.task).unwrap();
        assert_eq!((task.state.clone(), task.failures), (TaskState::Idle, 0));
        assert_eq!(t.assign(W2, now).unwrap().task, a.task);
    }

    #[test]
    fn duplicate_completion_is_refused() {
        let now = Instant::now();
        let mut t = table(1, 1);
        let a = t.assign(W1, now).unwrap();
        t.complete(W1, a.task, a.attempt, map_result(1, 0), now)
            .unwrap();
        let again = t.complete(W1, a.task, a.attempt, map_result(1, 0), now);
        assert!(matches!(again, Err(Refusal::Stale { .. })));
        let fail_after_done = t.fail(W1, a.task, a.attempt, &app_failure(), true, false);
        assert!(fail_after_done.is_err());
    }

    #[test]
    fn report_from_another_worker_or_with_bad_shape_is_refused() {
        let now = Instant::now();
        let mut t = table(1, 2);
        let a = t.assign(W1, now).unwrap();
        assert_eq!(
            t.complete(W2, a.task, a.attempt, map_result(2, 0), now),
            Err(Refusal::WrongWorker(a.attempt))
        );
        // A reduce's result for a map task.
        assert!(matches!(
            t.complete(W1, a.task, a.attempt, reduce_result(0), now),
            Err(Refusal::BadResult { .. })
        ));
        assert_eq!(
            t.complete(W1, TaskId::map(9), a.attempt, map_result(2, 0), now),
            Err(Refusal::UnknownTask)
        );
    }

    #[test]
    fn failures_are_retried_until_the_limit_then_the_job_fails() {
        let now = Instant::now();
        let mut t = table(1, 1);
        for i in 1..=3 {
            let a = t.assign(W1, now).unwrap();
            assert_eq!(a.attempt, Attempt(i));
            assert_eq!(
                t.fail(W1, a.task, a.attempt, &app_failure(), true, false)
                    .unwrap(),
                AfterFailure::Retry
            );
        }
        let a = t.assign(W1, now).unwrap();
        let AfterFailure::JobFailed(f) = t
            .fail(W1, a.task, a.attempt, &app_failure(), true, false)
            .unwrap()
        else {
            panic!("job should have failed")
        };
        let JobFailure::Task {
            task,
            failures,
            ref error,
            ..
        } = f
        else {
            panic!("not a task failure: {f:?}")
        };
        assert_eq!(
            (task, failures, error.as_str()),
            (TaskId::map(0), 4, "boom")
        );
        assert!(f.to_string().contains("in-0"), "{f}");
        assert_eq!(t.failure(), Some(&f));
        assert_eq!(
            t.assign(W1, now),
            None,
            "nothing is handed out after failure"
        );
    }

    fn remote_result(_r: u32, _m: u32, server: &str) -> TaskResult {
        TaskResult::Map {
            output: MapOutputs::Server(server.into()),
            stats: TaskStats::default(),
        }
    }

    #[test]
    fn a_lost_workers_map_output_on_its_own_disk_is_rerun_but_shared_output_is_not() {
        let now = Instant::now();
        let mut t = table(3, 1);
        let a = t.assign(W1, now).unwrap();
        t.complete(W1, a.task, a.attempt, remote_result(1, 0, "w1:1"), now)
            .unwrap();
        let b = t.assign(W1, now).unwrap();
        t.complete(W1, b.task, b.attempt, map_result(1, 1), now)
            .unwrap();
        let c = t.assign(W2, now).unwrap();
        t.complete(W2, c.task, c.attempt, remote_result(1, 2, "w2:1"), now)
            .unwrap();
        assert!(t.maps_done());
        // W1 is lost: map 0 (on its disk) runs again; map 1 (a shared path) does not.
        assert_eq!(t.reopen_output_of(W1), vec![0]);
        assert!(!t.maps_done());
        assert_eq!(t.task(TaskId::map(0)).unwrap().failures, 0);
        let again = t.assign(W2, now).unwrap();
        assert_eq!(again.task, TaskId::map(0));
        assert_eq!(t.assign(W2, now), None, "the reduce waits for the re-run");
        t.complete(
            W2,
            again.task,
            again.attempt,
            remote_result(1, 0, "w2:1"),
            now,
        )
        .unwrap();
        let r = t.assign(W2, now).unwrap();
        t.complete(W2, r.task, r.attempt, reduce_result(0), now)
            .unwrap();
        // Once every reduce is done, nothing is needed any more.
        assert_eq!(t.reopen_output_of(W2), Vec::<u32>::new());
        assert!(t.is_done());
    }

    #[test]
    fn placement_shapes_the_assignment() {
        let now = Instant::now();
        let mut t = table(1, 1);
        let remote = Placement {
            split_source: SplitSource::Coordinator,
            ship_output: true,
        };
        let a = t.assign_with(W1, remote, now, true, |_| false).unwrap();
        assert!(matches!(
            a.spec,
            TaskSpec::Map {
                source: SplitSource::Coordinator,
                ..
            }
        ));
        assert!(t.is_split(&Split {
            path: "in-0".into(),
            offset: 0,
            len: 10
        }));
        // Every split is found, and a range that is not exactly one is not.
        let mut splits = test_splits(50, 10);
        splits.reverse();
        let big = TaskTable::new(splits.clone(), 2, "out".into(), TIMEOUT, 4);
        for sp in splits {
            assert!(big.is_split(&sp), "{sp}");
            assert!(!big.is_split(&Split {
                len: sp.len + 1,
                ..sp.clone()
            }));
        }
        assert!(!t.is_split(&Split {
            path: "/etc/passwd".into(),
            offset: 0,
            len: 10
        }));
        t.complete(W1, a.task, a.attempt, map_result(1, 0), now)
            .unwrap();
        let r = t.assign_with(W1, remote, now, true, |_| false).unwrap();
        assert!(matches!(
            r.spec,
            TaskSpec::Reduce {
                output: OutputTarget::Coordinator,
                ..
            }
        ));
    }

    #[test]
    fn lost_map_output_reruns_the_map_before_the_reduce() {
        let now = Instant::now();
        let mut t = table(2, 1);
        for w in [W1, W2] {
            let a = t.assign(w, now).unwrap();
            t.complete(w, a.task, a.attempt, map_result(1, a.task.index), now)
                .unwrap();
        }
        let r = t.assign(W1, now).unwrap();
        let lost = TaskFailure::LostMapOutput {
            map: 1,
            attempt: Attempt(1),
            location: Location::Path("mr-1-0".into()),
            cause: mr::task::LossCause::Missing,
            error: "missing".into(),
        };
        assert_eq!(
            t.fail(W1, r.task, r.attempt, &lost, false, true).unwrap(),
            AfterFailure::RerunMap(1)
        );
        assert_eq!(t.task(r.task).unwrap().failures, 0);
        let again = t.assign(W2, now).unwrap();
        assert_eq!(again.task, TaskId::map(1), "the lost map runs first");
        assert_eq!(t.assign(W1, now), None, "reduce waits for the map");
        t.complete(W2, again.task, again.attempt, map_result(1, 1), now)
            .unwrap();
        assert_eq!(t.assign(W1, now).unwrap().task, TaskId::reduce(0));
    }

    #[test]
    fn counters_count_the_standing_attempt_of_each_task_once() {
        let now = Instant::now();
        let mut t = table(2, 1);
        let counted = |n: u64| {
            let mut stats = TaskStats {
                records_in: n,
                ..TaskStats::default()
            };
            stats.counters.0.insert("lines".into(), n);
            TaskResult::Map {
                output: MapOutputs::Dir(PathBuf::new()),
                stats,
            }
        };
        let lines = |t: &TaskTable| t.totals().app.0.get("lines").copied();
        let a = t.assign(W1, now).unwrap();
        let b = t.assign(W2, now).unwrap();
        t.complete(W1, a.task, a.attempt, counted(3), now).unwrap();
        // A late report from an attempt that is not the task's counts for nothing.
        assert!(t.complete(W2, a.task, a.attempt, counted(3), now).is_err());
        t.complete(W2, b.task, b.attempt, counted(5), now).unwrap();
        assert_eq!(lines(&t), Some(8));
        assert_eq!(t.totals().framework.0[1], 8, "map output records");
        // Map 1's output is lost: its counts stand until a re-run completes (the job
        // may end on the output it had), and the re-run's replace them.
        t.reopen_map(1);
        assert_eq!(lines(&t), Some(8));
        let again = t.assign(W1, now).unwrap();
        assert_eq!(again.task, TaskId::map(1));
        t.complete(W1, again.task, again.attempt, counted(6), now)
            .unwrap();
        assert_eq!(lines(&t), Some(9));
        t.audit().unwrap();
    }

    #[test]
    fn in_a_shared_directory_a_late_loss_report_about_an_earlier_attempt_changes_nothing() {
        // A re-run map writes the very same path: only the attempt tells the reports
        // apart.
        let now = Instant::now();
        let mut t = table(1, 2);
        let a = t.assign(W1, now).unwrap();
        t.complete(W1, a.task, a.attempt, map_result(2, 0), now)
            .unwrap();
        let r0 = t.assign(W1, now).unwrap();
        let r1 = t.assign(W2, now).unwrap();
        let lost = |y: u32| TaskFailure::LostMapOutput {
            map: 0,
            attempt: a.attempt,
            location: Location::Path(format!("mr-0-{y}").into()),
            cause: mr::task::LossCause::Missing,
            error: "truncated".into(),
        };
        assert_eq!(
            t.fail(W1, r0.task, r0.attempt, &lost(0), false, true),
            Ok(AfterFailure::RerunMap(0))
        );
        let again = t.assign(W1, now).unwrap();
        assert_eq!((again.task, again.attempt), (TaskId::map(0), Attempt(2)));
        t.complete(W1, again.task, again.attempt, map_result(2, 0), now)
            .unwrap();
        // Reduce 1 read attempt 1's file and reports it late: same path, old attempt.
        assert_eq!(
            t.fail(W2, r1.task, r1.attempt, &lost(1), false, true),
            Ok(AfterFailure::StaleLoss(0))
        );
        assert!(t.task(TaskId::map(0)).unwrap().is_done());
        assert_eq!(t.task(TaskId::map(0)).unwrap().failures, 1);
        // The reduces now read attempt 2.
        let r = t.assign(W2, now).unwrap();
        let TaskSpec::Reduce { inputs, .. } = r.spec else {
            panic!("not a reduce")
        };
        assert_eq!(inputs.for_partition(0)[0].attempt, Attempt(2));
        t.audit().unwrap();
    }

    #[test]
    fn deadline_follows_the_oldest_task_in_progress() {
        let t0 = Instant::now();
        let mut t = table(2, 1);
        assert_eq!(t.next_deadline(), None);
        t.assign(W1, t0).unwrap();
        t.assign(W2, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(t.next_deadline(), Some(t0 + TIMEOUT));
        t.revoke_worker(W1);
        assert_eq!(
            t.next_deadline(),
            Some(t0 + Duration::from_secs(3) + TIMEOUT)
        );
    }

    const W3: WorkerId = WorkerId::first_run(3);
    const SEC: Duration = Duration::from_secs(1);

    /// Three maps: W1 and W2 finish map-0 and map-1 in half a second each (so a run is
    /// long at 1.5 s: 3x the median); W3 holds map-2.
    fn with_a_straggler() -> (TaskTable, Assignment, Instant) {
        let t0 = Instant::now();
        let mut t = table(3, 1);
        let a = t.assign(W1, t0).unwrap();
        let b = t.assign(W2, t0).unwrap();
        let slow = t.assign(W3, t0).unwrap();
        assert_eq!(slow.task, TaskId::map(2));
        t.complete(W1, a.task, a.attempt, map_result(1, 0), t0 + SEC / 2)
            .unwrap();
        t.complete(W2, b.task, b.attempt, map_result(1, 1), t0 + SEC / 2)
            .unwrap();
        (t, slow, t0)
    }

    #[test]
    fn a_backup_starts_only_once_the_phase_has_no_idle_task_and_a_run_is_long() {
        let t0 = Instant::now();
        let mut t = table(3, 1);
        let a = t.assign(W1, t0).unwrap();
        t.complete(W1, a.task, a.attempt, map_result(1, 0), t0 + SEC)
            .unwrap();
        t.assign(W2, t0).unwrap();
        // An idle map is handed out before any backup.
        assert_eq!(t.assign(W1, t0 + 9 * SEC).unwrap().task, TaskId::map(2));
        t.audit().unwrap();

        let (mut t, slow, t0) = with_a_straggler();
        // The median is 0.5 s: a run is long at 1.5 s.
        assert_eq!(t.assign(W1, t0 + SEC), None, "map-2 has run 1 s only");
        let backup = t.assign(W1, t0 + 2 * SEC).expect("a backup of map-2");
        assert_eq!((backup.task, backup.attempt), (slow.task, Attempt(2)));
        assert!(matches!(
            t.task(slow.task).unwrap().state,
            TaskState::InProgress {
                run: Run { worker: W3, .. },
                backup: Some(Run {
                    worker: W1,
                    backup: true,
                    ..
                })
            }
        ));
        assert_eq!(
            t.assign(W2, t0 + 3 * SEC),
            None,
            "one backup per task, and the cap is 1"
        );
        assert_eq!(t.speculated().started, 1);
        // No reduce before the maps are done, backups or not.
        assert!(!t.maps_done());
        t.audit().unwrap();
    }

    #[test]
    fn no_backup_goes_to_the_worker_running_the_original_nor_without_speculation() {
        let (mut t, _slow, t0) = with_a_straggler();
        assert_eq!(t.assign(W3, t0 + 5 * SEC), None, "W3 runs the original");
        let (t, _slow, t0) = with_a_straggler();
        let mut t = t.with_speculation(None);
        assert_eq!(t.assign(W1, t0 + 5 * SEC), None, "--no-speculation");
        let (mut t, _slow, t0) = with_a_straggler();
        assert_eq!(
            t.assign_with(W1, Placement::SHARED, t0 + 5 * SEC, false, |_| false),
            None,
            "a slow worker gets no backup"
        );
    }

    #[test]
    fn a_backup_that_finishes_first_wins_and_the_originals_late_report_is_refused() {
        let (mut t, slow, t0) = with_a_straggler();
        let backup = t.assign(W1, t0 + 2 * SEC).unwrap();
        let beaten = t
            .complete(
                W1,
                backup.task,
                backup.attempt,
                map_result(1, 2),
                t0 + 3 * SEC,
            )
            .unwrap();
        assert_eq!(
            beaten.map(|r| (r.worker, r.attempt, r.backup)),
            Some((W3, slow.attempt, false))
        );
        assert!(t.maps_done());
        let late = t.complete(W3, slow.task, slow.attempt, map_result(1, 2), t0 + 9 * SEC);
        assert!(
            matches!(
                late,
                Err(Refusal::Stale {
                    now: TaskNow::Done(Attempt(2)),
                    ..
                })
            ),
            "{late:?}"
        );
        assert_eq!(
            t.map_output(2).map(|(a, _)| a),
            Some(Attempt(2)),
            "one output, the backup's"
        );
        assert_eq!(
            t.speculated(),
            SpeculationStats {
                started: 1,
                won: 1,
                wasted: 0
            }
        );
        t.audit().unwrap();
    }

    #[test]
    fn an_original_that_finishes_first_beats_its_backup() {
        let (mut t, slow, t0) = with_a_straggler();
        let backup = t.assign(W1, t0 + 2 * SEC).unwrap();
        let beaten = t
            .complete(W3, slow.task, slow.attempt, map_result(1, 2), t0 + 3 * SEC)
            .unwrap();
        assert_eq!(
            beaten.map(|r| (r.worker, r.attempt, r.backup)),
            Some((W1, backup.attempt, true))
        );
        // Both finish at once: the second report, a moment later, is refused.
        let second = t.complete(
            W1,
            backup.task,
            backup.attempt,
            map_result(1, 2),
            t0 + 3 * SEC,
        );
        assert!(matches!(second, Err(Refusal::Stale { .. })), "{second:?}");
        assert_eq!(t.map_output(2).map(|(a, _)| a), Some(slow.attempt));
        assert_eq!(
            t.speculated(),
            SpeculationStats {
                started: 1,
                won: 0,
                wasted: 1
            }
        );
        t.audit().unwrap();
    }

    #[test]
    fn one_attempt_failing_or_timing_out_leaves_the_other_running() {
        let (mut t, slow, t0) = with_a_straggler();
        let backup = t.assign(W1, t0 + 2 * SEC).unwrap();
        // The original times out: the backup carries on alone.
        let revoked = t.expire(t0 + TIMEOUT);
        assert_eq!(revoked.len(), 1);
        assert_eq!((revoked[0].worker, revoked[0].attempt), (W3, slow.attempt));
        assert!(matches!(
            t.task(slow.task).unwrap().state,
            TaskState::InProgress {
                run: Run { worker: W1, .. },
                backup: None
            }
        ));
        assert_eq!(t.next_deadline(), Some(t0 + 2 * SEC + TIMEOUT));
        // The backup fails on its machine: the task is idle again, the backup wasted.
        let f = TaskFailure::local(
            "cannot write output",
            &std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(
            t.fail(W1, backup.task, backup.attempt, &f, false, true),
            Ok(AfterFailure::Retry)
        );
        assert_eq!(t.task(slow.task).unwrap().state, TaskState::Idle);
        assert_eq!(t.speculated().wasted, 1);
        t.audit().unwrap();

        // A failure of the original leaves the backup, which then wins.
        let (mut t, slow, t0) = with_a_straggler();
        let backup = t.assign(W1, t0 + 2 * SEC).unwrap();
        t.fail(W3, slow.task, slow.attempt, &app_failure(), true, true)
            .unwrap();
        assert_eq!(t.task(slow.task).unwrap().failures, 1);
        assert_eq!(
            t.revoke_worker(W3),
            vec![],
            "nothing of the task is left on W3"
        );
        let beaten = t
            .complete(
                W1,
                backup.task,
                backup.attempt,
                map_result(1, 2),
                t0 + 3 * SEC,
            )
            .unwrap();
        assert_eq!(beaten, None);
        assert_eq!(t.speculated().won, 1);
        t.audit().unwrap();
    }

    #[test]
    fn reduces_are_backed_up_too_and_read_the_current_map_output() {
        let t0 = Instant::now();
        let mut t = table(1, 2);
        let m = t.assign(W1, t0).unwrap();
        t.complete(W1, m.task, m.attempt, map_result(2, 0), t0 + SEC)
            .unwrap();
        let r0 = t.assign(W1, t0 + SEC).unwrap();
        let r1 = t.assign(W2, t0 + SEC).unwrap();
        t.complete(
            W1,
            r0.task,
            r0.attempt,
            reduce_result(0),
            t0 + SEC + SEC / 2,
        )
        .unwrap();
        let b = t.assign(W1, t0 + 3 * SEC).expect("a backup of reduce-1");
        assert_eq!((b.task, b.attempt), (r1.task, Attempt(2)));
        let TaskSpec::Reduce { inputs, .. } = &b.spec else {
            panic!("not a reduce")
        };
        assert_eq!(inputs.for_partition(1)[0].attempt, m.attempt);
        t.complete(W1, b.task, b.attempt, reduce_result(1), t0 + 4 * SEC)
            .unwrap();
        assert!(t.is_done());
        t.audit().unwrap();
    }
}
