//! A deterministic simulator of whole `mr` jobs. It drives the real coordinator core
//! ([`coordinator::job::Job`], its journal and restart path) and the real worker
//! protocol machine ([`worker::protocol::Session`]) with a fake clock and a simulated
//! network, from a seed: messages are delayed, reordered, duplicated and dropped;
//! workers crash, freeze past every timeout and wake, run slowly, and come back under a
//! new id; map output is lost or corrupted; the coordinator crashes at any step and
//! restarts from its journal, torn last record included. After every step it checks
//! the protocol's invariants ([`World::check`], listed in docs/simulation.md); at the
//! end, that the job finished with every task committed exactly once.
//!
//! The same seed replays the same run exactly, so a failing seed is a bug report:
//! `cargo run --release -p sim -- --seed N --trace`.
//!
//! What is simulated rather than real: the bytes (a map output is a name with the
//! attempt that wrote it and whether it is intact), the data plane (a fetch succeeds if
//! the serving process is up and the file intact), and the apps (a task takes a while,
//! then succeeds, or fails with an injected machine fault).

pub mod model;

use coordinator::effect::{Effect, Event, SyncWhen};
use coordinator::job::Job;
use coordinator::journal::{JobKey, Journal, Record};
use coordinator::registry::Registry;
use coordinator::speculate::Speculation;
use coordinator::task::{AfterFailure, Chosen, TaskState, TaskTable};
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::partition::{PartitionMode, Partitioning};
use mr::rpc::{Directive, JobEnd, ReportReply, Reported, TaskReply, WorkerInfo, LONG_POLL};
use mr::task::{
    Assignment, Location, LossCause, MapOutput, MapOutputs, Split, TaskFailure, TaskOutcome,
    TaskResult, TaskSpec, TaskStats,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use worker::protocol::{Next, Session};
use worker::Exit;

/// Timeouts as the real defaults.
const TASK_TIMEOUT: Duration = Duration::from_secs(10);
const WORKER_TIMEOUT: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_millis(500);
const COORDINATOR_TIMEOUT: Duration = Duration::from_secs(10);
/// Worker 0 owes liveness, so it is patient (`--coordinator-timeout 60s`,
/// `--connect-timeout 60s`): a run of coordinator crashes and lost messages in its first
/// seconds must not end it.
const PATIENT: Duration = Duration::from_secs(60);

/// How long worker `w` waits for the coordinator.
fn patience(w: usize) -> Duration {
    if w == 0 {
        PATIENT
    } else {
        COORDINATOR_TIMEOUT
    }
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_FAILURES: u32 = 4;
/// A failed call is noticed after this (a broken connection, or the call's deadline).
const CALL_FAILS_AFTER: Duration = Duration::from_millis(300);
/// The error text of a false loss report (for the statistics).
const FALSE_REPORT: &str = "unreachable from this reducer only";

/// A run that takes more steps than this goes in circles.
const MAX_EVENTS: u64 = 200_000;
/// Liveness: a job that is not over by then is stuck.
const DEADLINE: Duration = Duration::from_secs(900);

/// The shape of one simulated job and the faults it meets, drawn from the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// M.
    pub maps: u32,
    /// R.
    pub reduces: u32,
    /// Worker processes (worker 0 never fails: liveness is owed while one keeps running).
    pub workers: usize,
    /// Workers share the coordinator's directory (paths), or keep their map output
    /// behind their own data server (remote locations).
    pub shared: bool,
    /// Per message: dropped, duplicated, delayed long (reordered).
    pub drop: f64,
    /// See `drop`.
    pub dup: f64,
    /// See `drop`.
    pub delay: f64,
    /// Per task on a faulty worker: a machine fault (disk full).
    pub local_fault: f64,
    /// Coordinator crashes over the run.
    pub coordinator_crashes: u32,
    /// Worker crashes, freezes, and map outputs damaged, over the run.
    pub worker_crashes: u32,
    /// See `worker_crashes`.
    pub freezes: u32,
    /// See `worker_crashes`.
    pub damage: u32,
    /// Worker 1's network cannot reach the other workers' data servers (it still
    /// reaches the coordinator): its loss reports are false.
    pub deaf: bool,
    /// Range partitioning: sample tasks run first, and every map must carry the split
    /// points chosen from them, the same across coordinator restarts.
    pub range: bool,
}

impl Plan {
    /// The plan of `seed`.
    pub fn of(seed: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let chance = |rng: &mut StdRng, p: f64, hi: f64| {
            if rng.random_bool(p) {
                rng.random_range(0.0..hi)
            } else {
                0.0
            }
        };
        Plan {
            maps: rng.random_range(1..=6),
            reduces: rng.random_range(1..=3),
            workers: rng.random_range(1..=4),
            shared: rng.random_bool(0.4),
            drop: chance(&mut rng, 0.5, 0.08),
            dup: chance(&mut rng, 0.5, 0.08),
            delay: chance(&mut rng, 0.5, 0.15),
            local_fault: chance(&mut rng, 0.3, 0.2),
            coordinator_crashes: rng.random_range(0..=4),
            worker_crashes: rng.random_range(0..=3),
            freezes: rng.random_range(0..=2),
            damage: rng.random_range(0..=2),
            deaf: rng.random_bool(0.25),
            // Drawn last, so that the other draws of each seed are as they were.
            range: rng.random_bool(0.3),
        }
    }
}

/// A call from a worker.
#[derive(Debug, Clone)]
enum Req {
    Register(WorkerInfo),
    Heartbeat(WorkerId),
    Poll(WorkerId),
    Report {
        worker: WorkerId,
        task: TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
    },
}

/// The coordinator's answer.
#[derive(Debug, Clone)]
enum Rep {
    Registered(WorkerId),
    Directive(Directive),
    Task(TaskReply),
    Report(Reported),
}

/// Which of a worker's two loops made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Loop {
    Heartbeat,
    Task,
}

#[derive(Debug, Clone)]
enum Ev {
    /// A call arrives at the coordinator.
    Call {
        w: usize,
        epoch: u32,
        call: u64,
        req: Req,
    },
    /// A reply (None: the call failed) arrives at a worker.
    Reply {
        w: usize,
        epoch: u32,
        call: u64,
        rep: Option<Rep>,
    },
    /// A worker's timer: the next heartbeat, or a loop's pause is over.
    Timer {
        w: usize,
        epoch: u32,
        lp: Loop,
    },
    /// A worker's registration retry.
    RegisterRetry {
        w: usize,
        epoch: u32,
    },
    /// A worker's task finished computing.
    TaskDone {
        w: usize,
        epoch: u32,
        run: u64,
    },
    /// A held poll's long-poll time is up.
    PollExpires {
        key: u64,
    },
    /// A report's record is on disk: the coordinator polls for the worker and answers
    /// both (if it has not crashed meanwhile: then the call fails).
    ReportPolls {
        w: usize,
        epoch: u32,
        call: u64,
        id: WorkerId,
        reply: ReportReply,
        incarnation: u32,
    },
    /// The coordinator's sweeper.
    Sweep,
    /// The journal's syncer has synced the file up to `upto` bytes (records synced
    /// soon), if the coordinator of `incarnation` is still up.
    Synced {
        upto: u64,
        incarnation: u32,
    },
    CoordinatorCrash,
    CoordinatorRestart,
    WorkerCrash {
        w: usize,
    },
    WorkerRestart {
        w: usize,
    },
    Freeze {
        w: usize,
        for_: Duration,
    },
    Wake {
        w: usize,
    },
    Damage,
}

/// What one of a worker's loops is doing.
#[derive(Debug, Clone)]
enum TaskLoop {
    /// Will poll when its timer fires.
    Paused,
    /// Waiting for the poll's reply.
    Polling { call: u64, seen: WorkerId },
    /// Computing.
    Running { a: Assignment, run: u64 },
    /// Waiting for the report's reply.
    Reporting {
        call: u64,
        seen: WorkerId,
        a: Assignment,
        outcome: TaskOutcome,
    },
    /// Waiting for a registration (its own or the other loop's).
    Registering,
}

/// A registration in progress: the loop that started it, its outstanding call (0
/// while pausing), the pause so far, and its limit.
#[derive(Debug, Clone, Copy)]
struct Reg {
    owner: Loop,
    call: u64,
    backoff: mr::retry::Backoff,
    limit: Duration,
}

#[derive(Debug, Clone)]
struct Proc {
    epoch: u32,
    alive: bool,
    /// Frozen until then: no timers, no messages, no data served.
    frozen_until: Option<Duration>,
    /// Events that arrived while frozen, handled on waking.
    held: Vec<Ev>,
    slow: u32,
    faulty: bool,
    session: Session,
    info: WorkerInfo,
    /// Whether the heartbeat loop runs (it starts after the first registration).
    beating: bool,
    /// The heartbeat loop's outstanding call, if any, and the id it was sent as.
    heartbeat: Option<(u64, WorkerId)>,
    task: TaskLoop,
    /// The registration in progress (the real worker holds a lock for it).
    registering: Option<Reg>,
    /// Loops waiting for that lock, with the id each heard refused.
    waiting: Vec<(Loop, WorkerId)>,
    /// Map output on its own disk (remote mode): name -> (attempt, intact).
    disk: BTreeMap<String, (Attempt, bool)>,
    exited: Option<Exit>,
}

impl Proc {
    fn up(&self, now: Duration) -> bool {
        self.alive && self.frozen_until.is_none_or(|t| t <= now)
    }
}

/// The coordinator process, while it is up.
struct Coord {
    job: Job,
    journal: Journal,
    incarnation: u32,
    /// Polls held for a long poll: key -> (worker, epoch, call, id).
    held: BTreeMap<u64, (usize, u32, u64, WorkerId)>,
    sweep_at: Option<Duration>,
}

/// A broken rule, with the seed's trace.
#[derive(Debug)]
pub struct Violation {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub message: String,
    /// What happened, step by step (empty unless traced).
    pub trace: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {}\n  replay: cargo run --release -p sim -- --seed {} --trace",
            self.seed, self.message, self.seed
        )
    }
}

/// What a run did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Events handled.
    pub events: u64,
    /// Coordinator restarts.
    pub restarts: u32,
    /// Simulated time to the end of the job.
    pub sim_time: Duration,
    /// Messages dropped, duplicated.
    pub dropped: u64,
    /// See `dropped`.
    pub duplicated: u64,
    /// Reports refused (late or duplicate).
    pub refused: u64,
    /// Stale loss reports that changed nothing.
    pub stale_losses: u64,
    /// False loss reports (from a reducer whose network is broken).
    pub false_reports: u64,
    /// Loss reports the coordinator doubted (the reduce ran elsewhere, the map stayed).
    pub doubted: u64,
    /// False loss reports that re-ran a map (no worker on another machine could check).
    pub believed: u64,
    /// Workers excluded.
    pub excluded: u64,
    /// Backup attempts started, and those that won.
    pub backups: u64,
    /// See `backups`.
    pub backups_won: u64,
    /// Attempts a worker abandoned when told (beaten, or taken back).
    pub abandoned: u64,
}

/// The world of one seed.
pub struct World {
    seed: u64,
    plan: Plan,
    rng: StdRng,
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BTreeMap<(Duration, u64), Ev>,
    coord: Option<Coord>,
    journal_path: PathBuf,
    key: JobKey,
    /// Bytes of the journal known to be on disk.
    durable_len: u64,
    /// Done records on disk: task -> attempt.
    durable_done: BTreeMap<TaskId, Attempt>,
    /// Done records to sync soon, not yet on disk: (end in the file, task, attempt).
    soon: Vec<(u64, TaskId, Attempt)>,
    /// The split points on disk, once journaled.
    durable_points: Option<Chosen>,
    /// How the first map handed out partitions: every later one must do the same.
    partitioning: Option<Partitioning>,
    incarnations: u32,
    procs: Vec<Proc>,
    /// The shared directory: path -> (attempt, intact).
    shared_disk: BTreeMap<PathBuf, (Attempt, bool)>,
    /// Every assignment handed out: (incarnation, task, attempt) -> worker.
    issued: BTreeMap<(u32, TaskId, Attempt), WorkerId>,
    /// Accepted reduce completions per partition, over the whole run.
    reduce_commits: BTreeMap<u32, u32>,
    /// Backup attempts started: (incarnation, task, attempt).
    backups: BTreeSet<(u32, TaskId, Attempt)>,
    /// Real faults that can count against each task: damaged or unreachable output,
    /// machine faults in a shared directory.
    harm: BTreeMap<TaskId, u32>,
    ended: Option<JobEnd>,
    stats: Stats,
    trace: Option<String>,
    /// A rule broken inside a worker step, reported after it.
    broken: Option<String>,
}

fn info_of(w: usize, epoch: u32, shared: bool) -> WorkerInfo {
    WorkerInfo {
        host: format!("w{w}"),
        pid: (w as u32) * 1000 + epoch,
        data_addr: (!shared).then(|| format!("w{w}.{epoch}:7000")),
    }
}

impl World {
    /// The world of `seed`, its journal in `dir`.
    pub fn new(seed: u64, dir: &Path, trace: bool) -> World {
        let plan = Plan::of(seed);
        let base = Instant::now();
        let key = JobKey {
            inputs: (0..plan.maps).map(|m| format!("in-{m}").into()).collect(),
            n_reduce: plan.reduces,
            split_size: 1,
            partition: if plan.range {
                PartitionMode::Range
            } else {
                PartitionMode::Hash
            },
        };
        let procs = (0..plan.workers)
            .map(|w| Proc {
                epoch: 1,
                alive: true,
                frozen_until: None,
                held: Vec::new(),
                slow: 1,
                faulty: w != 0,
                session: Session::new(base, patience(w)),
                info: info_of(w, 1, plan.shared),
                beating: false,
                heartbeat: None,
                task: TaskLoop::Registering,
                registering: None,
                waiting: Vec::new(),
                disk: BTreeMap::new(),
                exited: None,
            })
            .collect();
        World {
            seed,
            rng: StdRng::seed_from_u64(seed),
            base,
            now: Duration::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            coord: None,
            journal_path: dir.join(format!("sim-{seed}.journal")),
            key,
            durable_len: 0,
            durable_done: BTreeMap::new(),
            soon: Vec::new(),
            durable_points: None,
            partitioning: None,
            incarnations: 0,
            procs,
            shared_disk: BTreeMap::new(),
            issued: BTreeMap::new(),
            reduce_commits: BTreeMap::new(),
            backups: BTreeSet::new(),
            harm: BTreeMap::new(),
            ended: None,
            stats: Stats::default(),
            trace: trace.then(String::new),
            broken: None,
            plan,
        }
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t, "{:>9.3}s  {}", self.now.as_secs_f64(), line());
        }
    }

    fn push(&mut self, after: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), ev);
    }

    fn violation(&self, message: String) -> Violation {
        Violation {
            seed: self.seed,
            message,
            trace: self.trace.clone().unwrap_or_default(),
        }
    }

    /// Runs the job to its end; checks every invariant on the way.
    pub fn run(mut self) -> Result<Stats, Violation> {
        self.start_coordinator()?;
        for w in 0..self.procs.len() {
            // Worker 0 is patient at start too (see PATIENT).
            let limit = if w == 0 { PATIENT } else { CONNECT_TIMEOUT };
            self.start_registration(w, Loop::Task, limit);
        }
        // The faults of the plan, at random times while the job runs (a few seconds).
        let horizon = 5_000u64;
        for _ in 0..self.plan.coordinator_crashes {
            let t = Duration::from_millis(self.rng.random_range(0..horizon));
            self.push(t, Ev::CoordinatorCrash);
        }
        let faulty: Vec<usize> = (1..self.procs.len()).collect();
        if !faulty.is_empty() {
            for _ in 0..self.plan.worker_crashes {
                let w = faulty[self.rng.random_range(0..faulty.len())];
                let t = Duration::from_millis(self.rng.random_range(0..horizon));
                self.push(t, Ev::WorkerCrash { w });
            }
            for _ in 0..self.plan.freezes {
                let w = faulty[self.rng.random_range(0..faulty.len())];
                let t = Duration::from_millis(self.rng.random_range(0..horizon));
                let for_ = Duration::from_millis(self.rng.random_range(1_000..15_000));
                self.push(t, Ev::Freeze { w, for_ });
            }
            for w in &faulty {
                if self.rng.random_bool(0.3) {
                    self.procs[*w].slow = self.rng.random_range(2..8);
                }
            }
        }
        for _ in 0..self.plan.damage {
            let t = Duration::from_millis(self.rng.random_range(0..horizon));
            self.push(t, Ev::Damage);
        }
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            self.now = t;
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                return Err(self.violation(format!(
                    "livelock: {MAX_EVENTS} events by {:?} of simulated time ({})",
                    self.now,
                    self.describe()
                )));
            }
            if self.now > DEADLINE {
                return Err(self.violation(format!(
                    "liveness: the job is not over after {DEADLINE:?} of simulated time ({})",
                    self.describe()
                )));
            }
            self.handle(ev)?;
            if let Some(v) = self.broken.take() {
                return Err(self.violation(v));
            }
            self.check()?;
            if self.ended.is_some() && self.procs.iter().all(|p| !p.alive || p.exited.is_some()) {
                break;
            }
        }
        self.finish()
    }

    fn describe(&self) -> String {
        match &self.coord {
            None => "coordinator down".into(),
            Some(c) => {
                let t = &c.job.tasks;
                format!(
                    "maps done {}/{}, reduces done {}/{}, workers {:?}",
                    t.maps_done_count(),
                    t.maps().len(),
                    t.reduces_done_count(),
                    t.reduces().len(),
                    self.procs
                        .iter()
                        .map(|p| (p.alive, p.exited, p.session.worker()))
                        .collect::<Vec<_>>()
                )
            }
        }
    }

    /// The end: the job succeeded (or failed only where real faults reached the
    /// limit), and every reduce was committed exactly once.
    fn finish(mut self) -> Result<Stats, Violation> {
        self.stats.sim_time = self.now;
        let Some(end) = self.ended else {
            return Err(self.violation(format!(
                "liveness: the run stopped before the job ended ({})",
                self.describe()
            )));
        };
        if end == JobEnd::Failed {
            let legit = self.harm.values().any(|h| *h >= MAX_FAILURES);
            if !legit {
                let why = self
                    .coord
                    .as_ref()
                    .and_then(|c| c.job.tasks.failure().map(|f| f.to_string()))
                    .unwrap_or_default();
                return Err(self.violation(format!(
                    "the job failed without any task meeting {MAX_FAILURES} real faults: {why}"
                )));
            }
            return Ok(self.stats);
        }
        for y in 0..self.plan.reduces {
            let n = self.reduce_commits.get(&y).copied().unwrap_or(0);
            if n != 1 {
                return Err(self.violation(format!(
                    "reduce-{y} was committed {n} times, not exactly once"
                )));
            }
        }
        // Every attempt counts; the job's counters hold exactly the committed ones,
        // whatever ran twice, was beaten, revoked or replayed from the journal.
        let m = u64::from(self.plan.maps);
        let want = counted(&[
            ("maps", m),
            ("map index sum", m * m.saturating_sub(1) / 2),
            ("reduces", u64::from(self.plan.reduces)),
        ])
        .counters;
        let got = self
            .coord
            .as_ref()
            .map(|c| c.job.tasks.totals().app.clone());
        if got.as_ref() != Some(&want) {
            return Err(self.violation(format!(
                "the job's counters are {got:?}, not one count per committed task {want:?}"
            )));
        }
        Ok(self.stats)
    }

    // ----- the coordinator -----

    fn start_coordinator(&mut self) -> Result<(), Violation> {
        let splits: Vec<Split> = (0..self.plan.maps)
            .map(|m| Split {
                path: format!("in-{m}").into(),
                offset: 0,
                len: 1,
            })
            .collect();
        let tasks = TaskTable::new(
            splits,
            self.plan.reduces,
            "out".into(),
            TASK_TIMEOUT,
            MAX_FAILURES,
        )
        .with_partitioning(self.key.partition);
        let mut job = Job::new(tasks, Registry::new(WORKER_TIMEOUT), false, self.at());
        let (journal, replay) = Journal::open(&self.journal_path, &self.key, false)
            .map_err(|e| self.violation(format!("journal: {e}")))?;
        let intact = |t: TaskId, r: &TaskResult| self.intact(t, r);
        let restored = coordinator::resume(&mut job, &replay, intact);
        self.incarnations += 1;
        let incarnation = replay.incarnation;
        if incarnation > 1 {
            self.stats.restarts += 1;
        }
        self.log(|| format!("coordinator up, incarnation {incarnation}, restored {restored:?}"));
        if incarnation != self.incarnations {
            return Err(self.violation(format!(
                "restart {} read incarnation {incarnation} from the journal",
                self.incarnations
            )));
        }
        // Split points on disk are the split points after the restart: maps resumed and
        // maps re-run must partition alike.
        if let Some(points) = &self.durable_points {
            if job.tasks.chosen() != Some(points) {
                return Err(self.violation(format!(
                    "the journal holds split points {:?}, but after the restart the job has {:?}",
                    points.points,
                    job.tasks.chosen().map(|c| &c.points)
                )));
            }
        }
        // Done before the crash, on disk, and intact: done again, not run again.
        for (task, attempt) in &self.durable_done {
            let result_intact = match task.kind {
                TaskKind::Map => self.map_output_intact(task.index, *attempt),
                TaskKind::Reduce | TaskKind::Sample => true,
            };
            let done = job.tasks.task(*task).is_some_and(|t| t.is_done());
            if result_intact && !done {
                return Err(self.violation(format!(
                    "{task} was done (attempt {attempt}, journaled, output intact) before the crash but is not done after the restart"
                )));
            }
        }
        // Everything the restart read is on disk now (its Start record is synced after
        // it), records to sync soon that outlived the crash included.
        self.durable_done = replay.done.iter().map(|(t, (a, _, _))| (*t, *a)).collect();
        self.soon.clear();
        self.coord = Some(Coord {
            job,
            journal,
            incarnation,
            held: BTreeMap::new(),
            sweep_at: None,
        });
        self.durable_len = self.coord.as_ref().map_or(0, |c| c.journal.len());
        self.rearm();
        Ok(())
    }

    fn map_output_intact(&self, map: u32, attempt: Attempt) -> bool {
        (0..self.plan.reduces).all(|y| {
            let name = format!("mr-{map}-{y}");
            if self.plan.shared {
                self.shared_disk
                    .get(Path::new(&name))
                    .is_some_and(|(_, ok)| *ok)
            } else {
                // On a worker's own disk it cannot be checked from the coordinator: it
                // counts as intact (see journal::outputs_intact).
                let _ = attempt;
                true
            }
        })
    }

    /// The coordinator's restart check of a journaled result against the world.
    fn intact(&self, t: TaskId, r: &TaskResult) -> bool {
        match r {
            TaskResult::Map { output, .. } => {
                (0..self.plan.reduces).all(|y| match output.location(t.index, y) {
                    Location::Path(p) => self.shared_disk.get(&p).is_some_and(|(_, ok)| *ok),
                    Location::Remote { .. } => true,
                })
            }
            TaskResult::Reduce { .. } | TaskResult::Sample { .. } => true,
        }
    }

    fn crash_coordinator(&mut self) {
        let Some(c) = self.coord.take() else {
            return;
        };
        // Polls it was holding fail with their connections.
        for (_, (w, epoch, call, _)) in c.held {
            self.push(
                CALL_FAILS_AFTER,
                Ev::Reply {
                    w,
                    epoch,
                    call,
                    rep: None,
                },
            );
        }
        // The page cache goes with the machine: what was not synced may be lost from
        // anywhere on, mid-record included: either as the preallocated zeros it was
        // written over, or with the file's unsynced growth.
        let len = c.journal.len();
        drop(c.journal);
        let keep = if len > self.durable_len {
            self.rng.random_range(self.durable_len..=len)
        } else {
            len
        };
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.journal_path)
        {
            use std::os::unix::fs::FileExt;
            if self.rng.random_bool(0.5) {
                let _ = f.set_len(keep);
            } else {
                let _ = f.write_all_at(&vec![0; (len - keep) as usize], keep);
            }
        }
        self.log(|| format!("coordinator CRASH; journal cut to {keep} of {len} bytes"));
        // Connections break: every call in flight to the coordinator fails.
        let calls: Vec<((Duration, u64), Ev)> = self
            .queue
            .iter()
            .filter(|(_, e)| matches!(e, Ev::Call { .. }))
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        for (k, e) in calls {
            self.queue.remove(&k);
            if let Ev::Call { w, epoch, call, .. } = e {
                self.push(
                    CALL_FAILS_AFTER,
                    Ev::Reply {
                        w,
                        epoch,
                        call,
                        rep: None,
                    },
                );
            }
        }
        let down = Duration::from_millis(self.rng.random_range(100..4_000));
        self.push(down, Ev::CoordinatorRestart);
    }

    fn rearm(&mut self) {
        let Some(c) = &mut self.coord else {
            return;
        };
        if let Some(at) = c.job.next_deadline() {
            let at = at.saturating_duration_since(self.base);
            if c.sweep_at.is_none_or(|s| at < s || s < self.now) {
                c.sweep_at = Some(at);
                let after = at.saturating_sub(self.now);
                self.push(after, Ev::Sweep);
            }
        }
    }

    /// Applies a step's effects as the service does, checking what they say.
    fn apply(&mut self, effects: Vec<Effect>) -> Result<(), Violation> {
        let mut wake = false;
        let mut wake_one = false;
        for e in effects {
            match e {
                Effect::Journal { record, sync } => {
                    let c = self.coord.as_mut().expect("coordinator up");
                    if let Err(e) = c.journal.append(&record, sync == SyncWhen::BeforeReply) {
                        return Err(self.violation(format!("journal append: {e}")));
                    }
                    if sync == SyncWhen::Soon {
                        // The syncer's fsync ends a little later; a crash before it
                        // may cut the record off.
                        let (upto, incarnation) = (c.journal.len(), c.incarnation);
                        if let Record::Done { task, attempt, .. } = &record {
                            self.soon.push((upto, *task, *attempt));
                        }
                        let after = Duration::from_micros(self.rng.random_range(100..3_000));
                        self.push(after, Ev::Synced { upto, incarnation });
                    } else if sync == SyncWhen::BeforeReply {
                        self.durable_len = c.journal.len();
                        // Synced with everything before it.
                        for (_, task, attempt) in std::mem::take(&mut self.soon) {
                            self.durable_done.insert(task, attempt);
                        }
                        match &record {
                            Record::Done { task, attempt, .. } => {
                                self.durable_done.insert(*task, *attempt);
                            }
                            Record::Reopened { task } => {
                                self.durable_done.remove(task);
                            }
                            Record::SplitPoints { chosen } => {
                                self.durable_points = Some(chosen.clone());
                            }
                            _ => {}
                        }
                    } else if let Record::Reopened { task } = &record {
                        // Maybe lost in a crash: then the restart finds the output
                        // gone or a reduce reports it lost. Either way it is not owed.
                        self.durable_done.remove(task);
                        self.soon.retain(|(_, t, _)| t != task);
                    }
                }
                Effect::WakePolls => wake = true,
                Effect::WakeOne => wake_one = true,
                Effect::Rearm => {}
                Effect::ToldExit => {}
                Effect::Ended(end) => {
                    self.log(|| format!("job ENDED: {end:?}"));
                    self.ended = Some(end);
                }
                Effect::Log(event) => self.on_event(event)?,
            }
        }
        self.rearm();
        if wake {
            self.wake_polls(usize::MAX)?;
        } else if wake_one {
            self.wake_polls(1)?;
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event) -> Result<(), Violation> {
        let incarnation = self.coord.as_ref().map(|c| c.incarnation).unwrap_or(0);
        match &event {
            Event::BackedUp { task, attempt, .. } => {
                self.stats.backups += 1;
                self.backups.insert((incarnation, *task, *attempt));
            }
            Event::Completed { task, attempt, .. }
                if self.backups.contains(&(incarnation, *task, *attempt)) =>
            {
                self.stats.backups_won += 1;
            }
            _ => {}
        }
        match &event {
            Event::Assigned {
                worker,
                task,
                attempt,
            } if self
                .issued
                .insert((incarnation, *task, *attempt), *worker)
                .is_some() =>
            {
                return Err(self.violation(format!(
                    "{task} attempt {attempt} was handed out twice by incarnation {incarnation}"
                )));
            }
            Event::Completed { task, .. } if task.kind == TaskKind::Reduce => {
                *self.reduce_commits.entry(task.index).or_default() += 1;
            }
            Event::Refused { .. } => self.stats.refused += 1,
            Event::Excluded { .. } => self.stats.excluded += 1,
            Event::Failed {
                after: AfterFailure::StaleLoss(_),
                ..
            } => self.stats.stale_losses += 1,
            Event::Failed {
                after: AfterFailure::Unconfirmed(_),
                ..
            } => self.stats.doubted += 1,
            Event::Failed {
                failure: TaskFailure::LostMapOutput { error, .. },
                after: AfterFailure::RerunMap(_),
                ..
            } if error == FALSE_REPORT => self.stats.believed += 1,
            _ => {}
        }
        self.log(|| format!("  core: {event:?}"));
        Ok(())
    }

    /// Wakes the `n` longest-held polls (as tokio's `Notify` does, first come first
    /// woken); each asks the core again and is answered, or held on.
    fn wake_polls(&mut self, n: usize) -> Result<(), Violation> {
        let keys: Vec<u64> = match &self.coord {
            Some(c) => c.held.keys().copied().take(n).collect(),
            None => return Ok(()),
        };
        for key in keys {
            let Some(c) = &mut self.coord else {
                return Ok(());
            };
            let Some(&(w, epoch, call, id)) = c.held.get(&key) else {
                continue;
            };
            let reply = self.poll(id)?;
            if reply != TaskReply::Wait {
                if let Some(c) = &mut self.coord {
                    c.held.remove(&key);
                }
                self.send_reply(w, epoch, call, Rep::Task(reply));
            }
        }
        Ok(())
    }

    /// Runs a poll through the core, checking the assignment it makes.
    fn poll(&mut self, id: WorkerId) -> Result<TaskReply, Violation> {
        let now = self.at();
        let c = self.coord.as_mut().expect("coordinator up");
        let excluded = c.job.workers.get(id).is_some_and(|w| w.excluded);
        let step = c.job.poll(id, now);
        if let TaskReply::Task(a) = &step.reply {
            if excluded {
                let msg = format!("{} handed to {id}, an excluded worker", a.task);
                return Err(self.violation(msg));
            }
            // No map is handed out before the split points are chosen, and every map
            // partitions as the first did, across restarts.
            if let TaskSpec::Map { partitioning, .. } = &a.spec {
                let tasks = &c.job.tasks;
                let sampled = tasks.samples().iter().all(|t| t.is_done());
                let right_kind = matches!(partitioning, Partitioning::Range(_)) == self.plan.range;
                if !sampled || !right_kind {
                    let msg = format!(
                        "{} handed out partitioned by {partitioning:?} (range job: {}, sampled: {sampled})",
                        a.task, self.plan.range
                    );
                    return Err(self.violation(msg));
                }
                match &self.partitioning {
                    Some(first) if first != partitioning => {
                        let msg = format!(
                            "{} partitions by {partitioning:?}, an earlier map by {first:?}",
                            a.task
                        );
                        return Err(self.violation(msg));
                    }
                    Some(_) => {}
                    None => self.partitioning = Some(partitioning.clone()),
                }
            }
            // No reduce is handed out while a map it needs is not done, and it reads
            // every map's current output.
            if let TaskSpec::Reduce { inputs, .. } = &a.spec {
                let tasks = &c.job.tasks;
                let inputs = inputs.for_partition(a.task.index);
                if !tasks.maps_done() || inputs.len() != tasks.maps().len() {
                    let msg = format!("{} handed out while the maps are not all done", a.task);
                    return Err(self.violation(msg));
                }
                for i in &inputs {
                    // Every map's completion is on disk before a reduce reads it.
                    if self.durable_done.get(&TaskId::map(i.map)) != Some(&i.attempt) {
                        let msg = format!(
                            "{} handed out before map-{} attempt {} was on disk",
                            a.task, i.map, i.attempt
                        );
                        return Err(self.violation(msg));
                    }
                    let current = tasks
                        .map_output(i.map)
                        .map(|(att, outs)| (att, outs.location(i.map, a.task.index)));
                    if current != Some((i.attempt, i.location.clone())) {
                        let msg = format!(
                            "{} told to read map-{} attempt {} at {}, which is not its current output",
                            a.task, i.map, i.attempt, i.location
                        );
                        return Err(self.violation(msg));
                    }
                }
            }
        }
        let reply = step.reply.clone();
        self.apply(step.effects)?;
        Ok(reply)
    }

    fn send_reply(&mut self, w: usize, epoch: u32, call: u64, rep: Rep) {
        self.deliver(Ev::Reply {
            w,
            epoch,
            call,
            rep: Some(rep),
        });
    }

    /// Puts a message on the network: delayed, maybe long (reordering it), maybe
    /// duplicated, maybe dropped (the caller then sees its call fail).
    fn deliver(&mut self, ev: Ev) {
        let delay = if self.rng.random_bool(self.plan.delay) {
            Duration::from_millis(self.rng.random_range(50..1_500))
        } else {
            Duration::from_micros(self.rng.random_range(100..5_000))
        };
        if self.rng.random_bool(self.plan.drop) {
            self.stats.dropped += 1;
            let failed = match ev {
                Ev::Call { w, epoch, call, .. } | Ev::Reply { w, epoch, call, .. } => Ev::Reply {
                    w,
                    epoch,
                    call,
                    rep: None,
                },
                other => other,
            };
            self.push(CALL_FAILS_AFTER + delay, failed);
            return;
        }
        if self.rng.random_bool(self.plan.dup) {
            self.stats.duplicated += 1;
            let again = Duration::from_micros(self.rng.random_range(100..50_000));
            self.push(delay + again, ev.clone());
        }
        self.push(delay, ev);
    }

    fn on_call(&mut self, w: usize, epoch: u32, call: u64, req: Req) -> Result<(), Violation> {
        if self.coord.is_none() {
            self.push(
                CALL_FAILS_AFTER,
                Ev::Reply {
                    w,
                    epoch,
                    call,
                    rep: None,
                },
            );
            return Ok(());
        }
        let now = self.at();
        self.log(|| format!("w{w}.{epoch} -> coordinator: {req:?}"));
        match req {
            Req::Register(info) => {
                let c = self.coord.as_mut().expect("up");
                let step = c.job.register(info, now);
                let id = step.reply;
                self.apply(step.effects)?;
                self.send_reply(w, epoch, call, Rep::Registered(id));
            }
            Req::Heartbeat(id) => {
                let c = self.coord.as_mut().expect("up");
                let step = c.job.heartbeat(id, now);
                let d = step.reply;
                self.apply(step.effects)?;
                self.send_reply(w, epoch, call, Rep::Directive(d));
            }
            Req::Poll(id) => {
                let reply = self.poll(id)?;
                if reply == TaskReply::Wait {
                    self.seq += 1;
                    let key = self.seq;
                    if let Some(c) = &mut self.coord {
                        c.held.insert(key, (w, epoch, call, id));
                    }
                    self.push(LONG_POLL, Ev::PollExpires { key });
                } else {
                    self.send_reply(w, epoch, call, Rep::Task(reply));
                }
            }
            Req::Report {
                worker,
                task,
                attempt,
                outcome,
            } => {
                let reply = self.report(worker, task, attempt, outcome)?;
                // Answered (with the poll) after a while, as the service is once its
                // records to sync before the reply are on disk: other calls may come
                // between.
                let incarnation = self.coord.as_ref().map_or(0, |c| c.incarnation);
                let after = Duration::from_micros(self.rng.random_range(0..2_000));
                self.push(
                    after,
                    Ev::ReportPolls {
                        w,
                        epoch,
                        call,
                        id: worker,
                        reply,
                        incarnation,
                    },
                );
            }
        }
        Ok(())
    }

    /// Runs a report through the core, checking what it changed.
    fn report(
        &mut self,
        worker: WorkerId,
        task: TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
    ) -> Result<ReportReply, Violation> {
        let now = self.at();
        let c = self.coord.as_mut().expect("up");
        let incarnation = c.incarnation;
        let before = c.job.tasks.task(task).map(|t| t.state.clone());
        let lost = match &outcome {
            Err(TaskFailure::LostMapOutput {
                map,
                attempt,
                location,
                ..
            }) => Some((*map, *attempt, location.clone())),
            _ => None,
        };
        let map_before = lost.as_ref().and_then(|(m, _, _)| {
            c.job
                .tasks
                .task(TaskId::map(*m))
                .map(|t| (t.state.clone(), t.failures))
        });
        let current_loss = lost.as_ref().is_some_and(|(m, a, l)| {
            c.job
                .tasks
                .map_output(*m)
                .is_some_and(|(att, outs)| att == *a && outs.location(*m, task.index) == *l)
        });
        let ok = outcome.is_ok();
        let step = c.job.report(worker, task, attempt, outcome, now);
        let reply = step.reply.clone();
        let after = c.job.tasks.task(task).map(|t| t.state.clone());
        let map_after = lost.as_ref().and_then(|(m, _, _)| {
            c.job
                .tasks
                .task(TaskId::map(*m))
                .map(|t| (t.state.clone(), t.failures))
        });
        self.apply(step.effects)?;
        if reply == ReportReply::Accepted {
            // A task is done only by a report from an attempt it handed out that was
            // current.
            let current = before
                .as_ref()
                .and_then(|b| b.run_of(attempt))
                .is_some_and(|run| run.worker == worker);
            if !current {
                return Err(self.violation(format!(
                    "a report of {task} attempt {attempt} from {worker} was accepted while the task was {before:?}"
                )));
            }
            if self.issued.get(&(incarnation, task, attempt)) != Some(&worker) {
                return Err(self.violation(format!(
                    "{task} attempt {attempt} accepted from {worker}, who was not handed it by incarnation {incarnation}"
                )));
            }
            if ok && !matches!(after, Some(TaskState::Done { attempt: a, .. }) if a == attempt) {
                return Err(self.violation(format!("{task} accepted but not done: {after:?}")));
            }
        }
        // A report about a replaced output changes nothing.
        if lost.is_some() && !current_loss && map_before != map_after {
            return Err(self.violation(format!(
                "a loss report about replaced output ({lost:?}) changed the map: {map_before:?} -> {map_after:?}"
            )));
        }
        Ok(reply)
    }

    /// Invariants after every step.
    fn check(&self) -> Result<(), Violation> {
        let Some(c) = &self.coord else {
            return Ok(());
        };
        let job = &c.job;
        job.tasks
            .audit()
            .and_then(|()| job.workers.audit())
            .and_then(|()| job.audit_views())
            .map_err(|e| self.violation(e))?;
        // Failure counts count only real failures.
        for t in job.tasks.maps().iter().chain(job.tasks.reduces()) {
            let harm = self.harm.get(&t.id).copied().unwrap_or(0);
            if t.failures > harm {
                return Err(self.violation(format!(
                    "{} has {} failures counted but met only {harm} real faults",
                    t.id, t.failures
                )));
            }
            // Every live attempt is held by a registered worker; of two, the backup is
            // newer, on another worker, and was started only once the original had run
            // long (at least the rule's floor).
            for r in t.state.runs() {
                if job.workers.get(r.worker).is_none() {
                    return Err(self.violation(format!(
                        "{} is in progress on {}, who never registered",
                        t.id, r.worker
                    )));
                }
            }
            if let TaskState::InProgress {
                run,
                backup: Some(b),
            } = &t.state
            {
                let floor = Speculation::DEFAULT.min_runtime;
                if !b.backup
                    || b.worker == run.worker
                    || b.attempt <= run.attempt
                    || b.since.saturating_duration_since(run.since) < floor
                {
                    return Err(self.violation(format!(
                        "{} has two live attempts that break the backup rule: {run:?} and {b:?}",
                        t.id
                    )));
                }
            }
        }
        // Every reduce done was committed once.
        for (y, n) in &self.reduce_commits {
            if *n > 1 {
                return Err(self.violation(format!("reduce-{y} committed {n} times")));
            }
        }
        Ok(())
    }

    // ----- the workers -----

    fn call(&mut self, w: usize, req: Req) -> u64 {
        self.seq += 1;
        let call = self.seq;
        let epoch = self.procs[w].epoch;
        self.deliver(Ev::Call {
            w,
            epoch,
            call,
            req,
        });
        call
    }

    /// A loop heard that `seen` is unknown: register again, one loop at a time, and
    /// only while `seen` is still the id in use.
    fn want_register(&mut self, w: usize, lp: Loop, seen: WorkerId, limit: Duration) {
        if lp == Loop::Task {
            self.procs[w].task = TaskLoop::Registering;
        }
        if self.procs[w].registering.is_some() {
            self.procs[w].waiting.push((lp, seen));
        } else if self.procs[w].session.should_register(seen) {
            self.start_registration(w, lp, limit);
        } else {
            self.resume(w, lp);
        }
    }

    fn start_registration(&mut self, w: usize, owner: Loop, limit: Duration) {
        // A worker registers only while the coordinator does not know the id it holds;
        // otherwise the new id leaves a ghost behind.
        let held = self.procs[w].session.worker();
        if let Some(c) = &self.coord {
            if held != WorkerId::NONE && c.job.workers.get(held).is_some() {
                self.broken = Some(format!(
                    "w{w} registers again although the coordinator knows its id {held}: a ghost worker"
                ));
            }
        }
        let info = self.procs[w].info.clone();
        let call = self.call(w, Req::Register(info));
        self.procs[w].registering = Some(Reg {
            owner,
            call,
            backoff: mr::retry::Backoff::connect_seeded(self.rng.random()),
            limit,
        });
    }

    /// The registration ended (`ok`: with a new id); the loops waiting for it go on.
    fn registration_over(&mut self, w: usize, reg: Reg, ok: bool) {
        self.procs[w].registering = None;
        if ok {
            if !self.procs[w].beating {
                self.procs[w].beating = true;
                self.resume(w, Loop::Heartbeat);
            }
            self.resume(w, reg.owner);
        } else if reg.owner == Loop::Task {
            self.exit(w, Exit::CoordinatorGone);
            return;
        } else {
            self.resume(w, Loop::Heartbeat);
        }
        let waiting = std::mem::take(&mut self.procs[w].waiting);
        for (lp, seen) in waiting {
            self.want_register(w, lp, seen, reg.limit);
        }
    }

    fn resume(&mut self, w: usize, lp: Loop) {
        match lp {
            Loop::Heartbeat => self.push(
                HEARTBEAT,
                Ev::Timer {
                    w,
                    epoch: self.procs[w].epoch,
                    lp,
                },
            ),
            Loop::Task => self.poll_now(w),
        }
    }

    fn poll_now(&mut self, w: usize) {
        let seen = self.procs[w].session.worker();
        let call = self.call(w, Req::Poll(seen));
        self.procs[w].task = TaskLoop::Polling { call, seen };
    }

    fn exit(&mut self, w: usize, x: Exit) {
        self.log(|| format!("w{w} exits: {x:?}"));
        let p = &mut self.procs[w];
        p.exited = Some(x);
        // Its data server goes with it.
        let on: Vec<String> = p.disk.keys().cloned().collect();
        p.disk.clear();
        self.harm_outputs(w, on);
        if x == Exit::Job(JobEnd::Succeeded) && self.ended != Some(JobEnd::Succeeded) {
            // Told "succeeded" by a coordinator whose job had not.
            self.broken = Some(format!("w{w} was told the job succeeded before it did"));
        }
    }

    /// Output that became unreadable: each map whose file it was may count one failure.
    fn harm_outputs(&mut self, _w: usize, names: Vec<String>) {
        let maps: BTreeSet<u32> = names.iter().filter_map(|n| map_of(n)).collect();
        for m in maps {
            *self.harm.entry(TaskId::map(m)).or_default() += 1;
        }
    }

    fn on_reply(&mut self, w: usize, call: u64, rep: Option<Rep>) {
        let now = self.at();
        // The registration in flight?
        if let Some(reg) = self.procs[w].registering.filter(|r| r.call == call) {
            match rep {
                Some(Rep::Registered(id)) => {
                    self.log(|| format!("w{w} registered as {id}"));
                    self.procs[w].session.registered(id, now);
                    self.registration_over(w, reg, true);
                }
                _ => {
                    let mut backoff = reg.backoff;
                    let next = self.procs[w].session.after_register_failed(
                        false,
                        &mut backoff,
                        now,
                        reg.limit,
                    );
                    match next {
                        Some(pause) => {
                            self.procs[w].registering = Some(Reg {
                                call: 0,
                                backoff,
                                ..reg
                            });
                            let epoch = self.procs[w].epoch;
                            self.push(pause, Ev::RegisterRetry { w, epoch });
                        }
                        None => self.registration_over(w, reg, false),
                    }
                }
            }
            return;
        }
        if let Some((_, seen)) = self.procs[w].heartbeat.filter(|(c, _)| *c == call) {
            self.procs[w].heartbeat = None;
            let d = match rep {
                Some(Rep::Directive(d)) => Some(d),
                _ => None,
            };
            let next = self.procs[w].session.on_heartbeat(seen, d, now);
            match next {
                Next::Register { seen } => {
                    self.want_register(w, Loop::Heartbeat, seen, patience(w))
                }
                Next::Exit(x) => self.exit(w, x),
                Next::Abandon { task, attempt } => {
                    // The real worker stops the task at its next check, deletes its temp
                    // files and asks for another; its result is never reported.
                    if let TaskLoop::Running { a, .. } = &self.procs[w].task {
                        if a.task == task && a.attempt == attempt {
                            self.log(|| format!("w{w} abandons {task} attempt {attempt}"));
                            self.stats.abandoned += 1;
                            self.poll_now(w);
                        }
                    }
                    self.resume(w, Loop::Heartbeat);
                }
                _ => self.resume(w, Loop::Heartbeat),
            }
            return;
        }
        match self.procs[w].task.clone() {
            TaskLoop::Polling { call: c, seen } if c == call => {
                let r = match rep {
                    Some(Rep::Task(r)) => Some(r),
                    _ => None,
                };
                let next = self.procs[w].session.on_poll(seen, r, now);
                match next {
                    Next::Run(a) => self.run_task(w, a),
                    Next::Continue | Next::Abandon { .. } => self.poll_now(w),
                    Next::Retry(pause) => {
                        self.procs[w].task = TaskLoop::Paused;
                        let epoch = self.procs[w].epoch;
                        self.push(
                            pause,
                            Ev::Timer {
                                w,
                                epoch,
                                lp: Loop::Task,
                            },
                        );
                    }
                    Next::Register { seen } => self.want_register(w, Loop::Task, seen, patience(w)),
                    Next::Exit(x) => self.exit(w, x),
                }
            }
            TaskLoop::Reporting {
                call: c,
                seen,
                a,
                outcome,
            } if c == call => {
                let r = match rep {
                    Some(Rep::Report(r)) => Some(r),
                    _ => None,
                };
                let next = self.procs[w].session.on_report(seen, r, now);
                match next {
                    Next::Retry(pause) => {
                        let _ = pause;
                        self.send_report(w, a, outcome);
                    }
                    Next::Run(a) => self.run_task(w, a),
                    Next::Continue | Next::Abandon { .. } => self.poll_now(w),
                    Next::Register { seen } => self.want_register(w, Loop::Task, seen, patience(w)),
                    Next::Exit(x) => self.exit(w, x),
                }
            }
            // A reply to a call nobody waits for (duplicated, or superseded).
            _ => {}
        }
    }

    fn send_report(&mut self, w: usize, a: Assignment, outcome: TaskOutcome) {
        let worker = self.procs[w].session.worker();
        let call = self.call(
            w,
            Req::Report {
                worker,
                task: a.task,
                attempt: a.attempt,
                outcome: outcome.clone(),
            },
        );
        self.procs[w].task = TaskLoop::Reporting {
            call,
            seen: worker,
            a,
            outcome,
        };
    }

    fn run_task(&mut self, w: usize, a: Assignment) {
        self.seq += 1;
        let run = self.seq;
        let slow = self.procs[w].slow;
        let took = Duration::from_millis(self.rng.random_range(50..400) * u64::from(slow));
        self.log(|| format!("w{w} runs {} attempt {}", a.task, a.attempt));
        self.procs[w].task = TaskLoop::Running { a, run };
        let epoch = self.procs[w].epoch;
        self.push(took, Ev::TaskDone { w, epoch, run });
    }

    /// The outcome of a task that finished computing now: its files written, or the
    /// failure it met.
    fn task_outcome(&mut self, w: usize, a: &Assignment) -> TaskOutcome {
        let faulty = self.procs[w].faulty;
        if faulty && self.rng.random_bool(self.plan.local_fault) {
            if self.plan.shared {
                // The shared disk is everyone's: this counts against the task.
                *self.harm.entry(a.task).or_default() += 1;
            }
            return Err(TaskFailure::local(
                "cannot write output",
                &std::io::Error::from_raw_os_error(28),
            ));
        }
        match &a.spec {
            TaskSpec::Map { n_reduce, .. } => {
                let m = a.task.index;
                // By partition name: a map writes one packed file, but each partition
                // is a byte range of it with its own checksum, damaged or read alone.
                for y in 0..*n_reduce {
                    let name = mr::task::intermediate_name(m, y);
                    if self.plan.shared {
                        self.shared_disk
                            .insert(PathBuf::from(name), (a.attempt, true));
                    } else {
                        self.procs[w].disk.insert(name, (a.attempt, true));
                    }
                }
                // The shared directory is the sim's current directory.
                let output = if self.plan.shared {
                    MapOutputs::Dir(PathBuf::new())
                } else {
                    MapOutputs::Server(self.procs[w].info.data_addr.clone().unwrap_or_default())
                };
                Ok(TaskResult::Map {
                    output,
                    stats: counted(&[("maps", 1), ("map index sum", u64::from(a.task.index))]),
                })
            }
            TaskSpec::Sample { .. } => {
                // The app's keys: the same for every attempt (apps are deterministic).
                let i = a.task.index;
                let keys = (0..4)
                    .map(|j| format!("k{:02}", (i * 4 + j) * 37 % 100).into_bytes())
                    .collect();
                Ok(TaskResult::Sample {
                    keys,
                    stats: TaskStats::default(),
                })
            }
            TaskSpec::Reduce { inputs, .. } => {
                for i in &inputs.for_partition(a.task.index) {
                    if let Some(cause) = self.unreadable(w, i) {
                        if self.deaf(w, i) {
                            // A false report. The coordinator doubts it while a worker
                            // on another machine could check; when none can, it may
                            // count, so it is a fault met.
                            self.stats.false_reports += 1;
                            *self.harm.entry(TaskId::map(i.map)).or_default() += 1;
                            return Err(i.lost(cause, FALSE_REPORT));
                        }
                        return Err(i.lost(cause, format!("{cause:?}")));
                    }
                }
                Ok(TaskResult::Reduce {
                    output: Location::Path(format!("out/mr-out-{}", a.task.index).into()),
                    stats: counted(&[("reduces", 1)]),
                })
            }
        }
    }

    /// Whether worker `w`'s broken network is why it cannot reach `i`.
    fn deaf(&self, w: usize, i: &MapOutput) -> bool {
        let own = match &i.location {
            Location::Remote { server, .. } => {
                self.procs[w].info.data_addr.as_deref() == Some(server.as_str())
            }
            Location::Path(_) => true,
        };
        self.plan.deaf && w == 1 && !own
    }

    /// Why reduce on worker `w` cannot read map output `i`, if it cannot.
    fn unreadable(&self, w: usize, i: &MapOutput) -> Option<LossCause> {
        let file = |f: Option<&(Attempt, bool)>| match f {
            None => Some(LossCause::Missing),
            Some((_, false)) => Some(LossCause::Corrupt),
            Some((_, true)) => None,
        };
        match &i.location {
            Location::Path(p) => file(self.shared_disk.get(p)),
            Location::Remote { server, name } => {
                let own = self.procs[w].info.data_addr.as_deref() == Some(server.as_str());
                if self.deaf(w, i) {
                    return Some(LossCause::Unreachable);
                }
                let serving = self.procs.iter().find(|p| {
                    p.info.data_addr.as_deref() == Some(server.as_str())
                        && (own || p.up(self.now))
                        && p.exited.is_none()
                });
                match serving {
                    None => Some(LossCause::Unreachable),
                    Some(p) => file(p.disk.get(name)),
                }
            }
        }
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        // A frozen process hears nothing until it wakes.
        let target = match &ev {
            Ev::Reply { w, epoch, .. }
            | Ev::Timer { w, epoch, .. }
            | Ev::RegisterRetry { w, epoch }
            | Ev::TaskDone { w, epoch, .. } => Some((*w, *epoch)),
            _ => None,
        };
        if let Some((w, epoch)) = target {
            let p = &mut self.procs[w];
            if p.epoch != epoch || !p.alive || p.exited.is_some() {
                return Ok(());
            }
            if let Some(until) = p.frozen_until {
                if until > self.now {
                    p.held.push(ev);
                    return Ok(());
                }
            }
        }
        match ev {
            Ev::Call {
                w,
                epoch,
                call,
                req,
            } => self.on_call(w, epoch, call, req)?,
            Ev::Reply { w, call, rep, .. } => {
                self.log(|| format!("w{w} <- {rep:?}"));
                self.on_reply(w, call, rep);
            }
            Ev::Timer { w, lp, .. } => match lp {
                Loop::Heartbeat => {
                    if self.procs[w].heartbeat.is_none() {
                        let id = self.procs[w].session.worker();
                        let call = self.call(w, Req::Heartbeat(id));
                        self.procs[w].heartbeat = Some((call, id));
                    }
                }
                Loop::Task => {
                    if matches!(self.procs[w].task, TaskLoop::Paused) {
                        self.poll_now(w);
                    }
                }
            },
            Ev::RegisterRetry { w, .. } => {
                if let Some(reg) = self.procs[w].registering.filter(|r| r.call == 0) {
                    let info = self.procs[w].info.clone();
                    let call = self.call(w, Req::Register(info));
                    self.procs[w].registering = Some(Reg { call, ..reg });
                }
            }
            Ev::TaskDone { w, run, .. } => {
                if let TaskLoop::Running { a, run: r } = self.procs[w].task.clone() {
                    if r == run {
                        let outcome = self.task_outcome(w, &a);
                        self.send_report(w, a, outcome);
                    }
                }
            }
            Ev::PollExpires { key } => {
                if let Some(c) = &mut self.coord {
                    if let Some((w, epoch, call, _)) = c.held.remove(&key) {
                        self.send_reply(w, epoch, call, Rep::Task(TaskReply::Wait));
                    }
                }
            }
            Ev::ReportPolls {
                w,
                epoch,
                call,
                id,
                reply,
                incarnation,
            } => match &self.coord {
                Some(c) if c.incarnation == incarnation => {
                    let next = self.poll(id)?;
                    self.send_reply(w, epoch, call, Rep::Report(Reported { reply, next }));
                }
                // The coordinator crashed before answering: the call fails.
                _ => self.push(
                    CALL_FAILS_AFTER,
                    Ev::Reply {
                        w,
                        epoch,
                        call,
                        rep: None,
                    },
                ),
            },
            Ev::Synced { upto, incarnation } => {
                if self
                    .coord
                    .as_ref()
                    .is_some_and(|c| c.incarnation == incarnation)
                {
                    self.durable_len = self.durable_len.max(upto);
                    let (synced, later) = std::mem::take(&mut self.soon)
                        .into_iter()
                        .partition(|(end, _, _)| *end <= upto);
                    self.soon = later;
                    for (_, task, attempt) in synced {
                        self.durable_done.insert(task, attempt);
                    }
                }
            }
            Ev::Sweep => {
                if let Some(c) = &mut self.coord {
                    c.sweep_at = None;
                    let step = c.job.tick(self.base + self.now);
                    self.apply(step.effects)?;
                }
            }
            Ev::CoordinatorCrash => {
                if self.ended.is_none() {
                    self.crash_coordinator();
                }
            }
            Ev::CoordinatorRestart => self.start_coordinator()?,
            Ev::WorkerCrash { w } => {
                let p = &self.procs[w];
                if p.alive && p.exited.is_none() {
                    let names: Vec<String> = p.disk.keys().cloned().collect();
                    self.log(|| format!("w{w} CRASH"));
                    self.procs[w].alive = false;
                    self.harm_outputs(w, names);
                    if self.rng.random_bool(0.7) {
                        let after = Duration::from_millis(self.rng.random_range(100..8_000));
                        self.push(after, Ev::WorkerRestart { w });
                    }
                }
            }
            Ev::WorkerRestart { w } => {
                let p = &mut self.procs[w];
                if p.exited.is_none() {
                    p.epoch += 1;
                    p.alive = true;
                    p.frozen_until = None;
                    p.held.clear();
                    p.disk.clear();
                    p.session = Session::new(self.base + self.now, patience(w));
                    p.info = info_of(w, p.epoch, self.plan.shared);
                    p.beating = false;
                    p.heartbeat = None;
                    p.registering = None;
                    p.waiting.clear();
                    p.task = TaskLoop::Registering;
                    self.log(|| format!("w{w} restarts, a new process"));
                    self.start_registration(w, Loop::Task, CONNECT_TIMEOUT);
                }
            }
            Ev::Freeze { w, for_ } => {
                let p = &mut self.procs[w];
                if p.alive && p.exited.is_none() && p.frozen_until.is_none() {
                    p.frozen_until = Some(self.now + for_);
                    let names: Vec<String> = p.disk.keys().cloned().collect();
                    self.log(|| format!("w{w} FREEZES for {for_:?}"));
                    self.harm_outputs(w, names);
                    self.push(for_, Ev::Wake { w });
                }
            }
            Ev::Wake { w } => {
                let p = &mut self.procs[w];
                p.frozen_until = None;
                let held = std::mem::take(&mut p.held);
                self.log(|| format!("w{w} wakes"));
                for ev in held {
                    self.push(Duration::ZERO, ev);
                }
            }
            Ev::Damage => {
                // Damage one map output file, somewhere.
                let mut files: Vec<(Option<usize>, String)> = self
                    .shared_disk
                    .keys()
                    .map(|p| (None, p.to_string_lossy().into_owned()))
                    .collect();
                for (w, p) in self.procs.iter().enumerate() {
                    files.extend(p.disk.keys().map(|n| (Some(w), n.clone())));
                }
                if !files.is_empty() {
                    let (w, name) = files[self.rng.random_range(0..files.len())].clone();
                    self.log(|| format!("DAMAGE {name} on {w:?}"));
                    match w {
                        None => {
                            if let Some(f) = self.shared_disk.get_mut(Path::new(&name)) {
                                f.1 = false;
                            }
                        }
                        Some(w) => {
                            if let Some(f) = self.procs[w].disk.get_mut(&name) {
                                f.1 = false;
                            }
                        }
                    }
                    self.harm_outputs(0, vec![name]);
                }
            }
        }
        Ok(())
    }
}

fn map_of(name: &str) -> Option<u32> {
    name.strip_prefix("mr-")?.split('-').next()?.parse().ok()
}

/// Runs one seed; its journal lives in `dir`.
pub fn run_seed(seed: u64, dir: &Path, trace: bool) -> Result<Stats, Violation> {
    let world = World::new(seed, dir, trace);
    let path = world.journal_path.clone();
    let r = world.run();
    let _ = std::fs::remove_file(path);
    r
}

/// Runs seeds `from..from + n`; the first failing seed is re-run with its trace.
pub fn run_seeds(from: u64, n: u64, dir: &Path) -> Result<Stats, Violation> {
    let mut total = Stats::default();
    for seed in from..from + n {
        match run_seed(seed, dir, false) {
            Ok(s) => {
                total.events += s.events;
                total.restarts += s.restarts;
                total.dropped += s.dropped;
                total.duplicated += s.duplicated;
                total.refused += s.refused;
                total.stale_losses += s.stale_losses;
                total.false_reports += s.false_reports;
                total.doubted += s.doubted;
                total.believed += s.believed;
                total.excluded += s.excluded;
                total.backups += s.backups;
                total.backups_won += s.backups_won;
                total.abandoned += s.abandoned;
                total.sim_time += s.sim_time;
            }
            Err(_) => return Err(run_seed(seed, dir, true).expect_err("a seed replays exactly")),
        }
    }
    Ok(total)
}

/// Where journals go: memory if the machine has it, for speed.
pub fn scratch() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("mr-sim").tempdir_in(shm) {
            return Ok(d);
        }
    }
    tempfile::Builder::new().prefix("mr-sim").tempdir()
}

/// Task stats whose app counters are `counts` (zeros left out, as the job keeps them).
fn counted(counts: &[(&str, u64)]) -> TaskStats {
    let mut stats = TaskStats::default();
    for &(name, n) in counts.iter().filter(|c| c.1 > 0) {
        stats.counters.0.insert(name.to_string(), n);
    }
    stats
}
