//! An exhaustive model check of the real coordinator core with [`stateright`]: every
//! interleaving of a small job (2 maps, 1 or 2 reduces, 2 workers) whose network
//! reorders and duplicates reports, with at most one crash (of the coordinator, which
//! restarts from its journal, or of a worker, whose map output goes with it), and time
//! advancing in steps so that workers can be declared lost and tasks time out, and
//! backups of tasks running long start (two live attempts of one task; a worker told
//! that its attempt is beaten abandons it).
//!
//! Each state holds a real [`Job`]; each action calls the real core (`register`,
//! `heartbeat`, `poll`, `report`, `tick`, and the restart path through
//! [`coordinator::resume`]). The properties are the simulator's invariants, checked in
//! every reachable state, and reachability of the job's success.

use coordinator::effect::{Effect, SyncWhen};
use coordinator::job::Job;
use coordinator::journal::{self, JobKey, Record};
use coordinator::registry::Registry;
use coordinator::task::TaskTable;
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::rpc::{Directive, JobEnd, ReportReply, TaskReply, WorkerInfo};
use mr::task::{
    Assignment, Location, Split, TaskFailure, TaskOutcome, TaskResult, TaskSpec, TaskStats,
};
use stateright::{Checker, Model, Property};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

const WORKER_TIMEOUT: Duration = Duration::from_secs(3);
const TASK_TIMEOUT: Duration = Duration::from_secs(3);
/// Time moves once, by this: after it, a worker that has not called since may be
/// declared lost, and a task handed out before it may time out.
const STEP: Duration = Duration::from_secs(3);
const MAX_TIME: Duration = Duration::from_secs(3);
/// Attempts per task explored (the boundary that keeps the space finite).
const MAX_ATTEMPTS: u32 = 2;

/// The job checked.
#[derive(Clone, Debug)]
pub struct Mr {
    /// M.
    pub maps: u32,
    /// R.
    pub reduces: u32,
    /// Worker processes.
    pub workers: usize,
    base: Instant,
}

impl Mr {
    /// A job of `maps` maps and `reduces` reduces on `workers` workers.
    pub fn new(maps: u32, reduces: u32, workers: usize) -> Mr {
        Mr {
            maps,
            reduces,
            workers,
            base: Instant::now(),
        }
    }

    fn key(&self) -> JobKey {
        JobKey {
            inputs: (0..self.maps).map(|m| format!("in-{m}").into()).collect(),
            n_reduce: self.reduces,
            split_size: 1,
            // The model checks hash partitioning; the simulator covers the sample phase.
            partition: mr::partition::PartitionMode::Hash,
        }
    }

    fn fresh_job(&self, now: Instant) -> Job {
        let splits = (0..self.maps)
            .map(|m| Split {
                path: format!("in-{m}").into(),
                offset: 0,
                len: 1,
            })
            .collect();
        let tasks = TaskTable::new(splits, self.reduces, "out".into(), TASK_TIMEOUT, 4);
        Job::new(tasks, Registry::new(WORKER_TIMEOUT), false, now)
    }
}

/// One worker process, as the model sees it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Proc {
    /// Its id, once registered (ids of a dead coordinator are kept: the worker learns
    /// it is unknown and registers again).
    id: Option<WorkerId>,
    /// Its process incarnation (a crashed worker comes back as a new process).
    epoch: u32,
    /// The task it runs.
    running: Option<Assignment>,
    /// Map outputs on its disk: (map, attempt).
    disk: BTreeSet<(u32, Attempt)>,
}

/// A state of the whole system.
#[derive(Clone, Debug)]
pub struct State {
    job: Job,
    now: Duration,
    /// The journal: synced records, and the unsynced tail a crash may lose.
    journal: Vec<Record>,
    synced: usize,
    procs: Vec<Proc>,
    /// Reports sent and not lost: the network reorders and duplicates them, so any of
    /// them may arrive, any number of times.
    network: BTreeSet<Report>,
    crashed: bool,
    incarnation: u32,
    /// Assignments handed out: (incarnation, task, attempt, worker).
    issued: BTreeSet<(u32, TaskId, Attempt, WorkerId)>,
    /// Real faults that could count against a map (its output lost with a worker).
    harm: Vec<u32>,
    /// Accepted reduce completions per partition.
    commits: Vec<u32>,
    /// The first rule broken, if any.
    broken: Option<String>,
}

/// A report in the network.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Report {
    w: usize,
    id: WorkerId,
    task: TaskId,
    attempt: Attempt,
    /// For a map: the data server its output is served from.
    server: String,
    /// None: success; Some((map, attempt, server, name)): that map output, as the
    /// reduce was told of it, could not be read.
    lost: Option<(u32, Attempt, String, String)>,
}

impl PartialEq for State {
    fn eq(&self, o: &State) -> bool {
        self.job.tasks == o.job.tasks
            && self.job.workers == o.job.workers
            && self.job.all_excluded_since == o.job.all_excluded_since
            && self.job.end() == o.job.end()
            && self.now == o.now
            && self.journal.len() == o.journal.len()
            && self.synced == o.synced
            && self.procs == o.procs
            && self.network == o.network
            && self.crashed == o.crashed
            && self.incarnation == o.incarnation
            && self.issued == o.issued
            && self.harm == o.harm
            && self.commits == o.commits
            && self.broken == o.broken
    }
}

impl Eq for State {}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // The job's state that decides anything (the timeline only observes).
        self.job.tasks.hash(h);
        self.job.workers.hash(h);
        self.job.all_excluded_since.hash(h);
        self.job.end().hash(h);
        self.now.hash(h);
        self.journal.len().hash(h);
        self.synced.hash(h);
        self.procs.hash(h);
        self.network.hash(h);
        self.crashed.hash(h);
        self.incarnation.hash(h);
        self.issued.hash(h);
        self.harm.hash(h);
        self.commits.hash(h);
        self.broken.hash(h);
    }
}

/// What can happen next.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Action {
    /// Worker registers (first time, or again after hearing its id is unknown).
    Register(usize),
    /// Worker heartbeats.
    Heartbeat(usize),
    /// Idle worker asks for a task.
    Poll(usize),
    /// Worker finishes its task: the report goes into the network.
    Finish(usize),
    /// A report arrives (again, maybe).
    Deliver(Report),
    /// Time moves on one step.
    Advance,
    /// The coordinator's sweeper runs.
    Tick,
    /// The coordinator crashes, keeping this many journal records (at least the
    /// synced ones), and restarts from them.
    CrashCoordinator(usize),
    /// A worker crashes and comes back as a new process.
    CrashWorker(usize),
}

impl State {
    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            if let Effect::Journal { record, sync } = e {
                self.journal.push(record);
                // A record synced soon is not on disk until a later one is synced
                // before its reply: a crash may keep it or not.
                if sync == SyncWhen::BeforeReply {
                    self.synced = self.journal.len();
                }
            }
        }
    }

    fn audit(&mut self) {
        if self.broken.is_some() {
            return;
        }
        let r = self
            .job
            .tasks
            .audit()
            .and_then(|()| self.job.workers.audit())
            .and_then(|()| self.job.audit_views());
        if let Err(e) = r {
            self.broken = Some(e);
            return;
        }
        for t in self.job.tasks.maps() {
            if t.failures > self.harm[t.id.index as usize] {
                self.broken = Some(format!("{} counted a failure no fault caused", t.id));
            }
        }
        for t in self.job.tasks.reduces() {
            if t.failures > 0 {
                self.broken = Some(format!("{} counted a failure no fault caused", t.id));
            }
        }
        if self.commits.iter().any(|c| *c > 1) {
            self.broken = Some("a reduce was committed twice".into());
        }
    }
}

impl Model for Mr {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut job = self.fresh_job(self.base);
        let replay = journal::Replay {
            incarnation: 1,
            ..Default::default()
        };
        coordinator::resume(&mut job, &replay, |_, _| true);
        vec![State {
            job,
            now: Duration::ZERO,
            journal: vec![
                Record::Job { key: self.key() },
                Record::Start { incarnation: 1 },
            ],
            synced: 2,
            procs: (0..self.workers)
                .map(|_| Proc {
                    id: None,
                    epoch: 1,
                    running: None,
                    disk: BTreeSet::new(),
                })
                .collect(),
            network: BTreeSet::new(),
            crashed: false,
            incarnation: 1,
            issued: BTreeSet::new(),
            harm: vec![0; self.maps as usize],
            commits: vec![0; self.reduces as usize],
            broken: None,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if s.broken.is_some() || s.job.end().is_some() {
            return;
        }
        for (w, p) in s.procs.iter().enumerate() {
            let known = p.id.is_some_and(|id| s.job.workers.get(id).is_some());
            if !known && p.running.is_none() {
                actions.push(Action::Register(w));
            }
            if known {
                // An idle worker's poll says it is alive as a heartbeat would; a busy
                // one heartbeats.
                if p.running.is_none() {
                    actions.push(Action::Poll(w));
                } else {
                    actions.push(Action::Heartbeat(w));
                }
            }
            if p.running.is_some() {
                actions.push(Action::Finish(w));
            }
            if !s.crashed {
                actions.push(Action::CrashWorker(w));
            }
        }
        for r in &s.network {
            actions.push(Action::Deliver(r.clone()));
        }
        if s.now < MAX_TIME {
            actions.push(Action::Advance);
        }
        actions.push(Action::Tick);
        if !s.crashed {
            for keep in s.synced..=s.journal.len() {
                actions.push(Action::CrashCoordinator(keep));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut s = s.clone();
        let now = self.base + s.now;
        match action {
            Action::Register(w) => {
                let p = &s.procs[w];
                let info = WorkerInfo {
                    host: format!("w{w}"),
                    pid: w as u32 * 100 + p.epoch,
                    data_addr: Some(format!("w{w}.{}:1", p.epoch)),
                };
                let step = s.job.register(info, now);
                s.procs[w].id = Some(step.reply);
                s.apply(step.effects);
            }
            Action::Heartbeat(w) => {
                let id = s.procs[w].id?;
                let step = s.job.heartbeat(id, now);
                // Told to stop the attempt it runs: it abandons it (nothing reported).
                if let Directive::Abandon { task, attempt } = step.reply {
                    if s.procs[w]
                        .running
                        .as_ref()
                        .is_some_and(|a| a.task == task && a.attempt == attempt)
                    {
                        s.procs[w].running = None;
                    }
                }
                s.apply(step.effects);
            }
            Action::Poll(w) => {
                let id = s.procs[w].id?;
                let step = s.job.poll(id, now);
                if let TaskReply::Task(a) = &step.reply {
                    if a.attempt.0 > MAX_ATTEMPTS {
                        return None;
                    }
                    if a.task.kind == TaskKind::Reduce && !s.job.tasks.maps_done() {
                        s.broken = Some(format!("{} handed out before the maps were done", a.task));
                    }
                    // Every map a reduce reads is done on disk, not only in memory (a
                    // map's completion is synced soon, the last map's before its reply).
                    if let TaskSpec::Reduce { inputs, .. } = &a.spec {
                        for i in inputs.for_partition(a.task.index) {
                            let on_disk = s.journal[..s.synced].iter().any(|r| {
                                matches!(r, Record::Done { task, attempt, .. }
                                    if *task == TaskId::map(i.map) && *attempt == i.attempt)
                            });
                            if !on_disk {
                                s.broken = Some(format!(
                                    "{} handed out before map-{} attempt {} was on disk",
                                    a.task, i.map, i.attempt
                                ));
                            }
                        }
                    }
                    s.issued.insert((s.incarnation, a.task, a.attempt, id));
                    s.procs[w].running = Some(a.clone());
                }
                s.apply(step.effects);
            }
            Action::Finish(w) => {
                let a = s.procs[w].running.take()?;
                let id = s.procs[w].id?;
                let lost = match &a.spec {
                    TaskSpec::Map { .. } => {
                        s.procs[w].disk.insert((a.task.index, a.attempt));
                        None
                    }
                    TaskSpec::Sample { .. } => None,
                    TaskSpec::Reduce { inputs, .. } => inputs
                        .for_partition(a.task.index)
                        .into_iter()
                        .find_map(|i| {
                            let on = s.procs.iter().any(|p| p.disk.contains(&(i.map, i.attempt)));
                            let (server, name) = match &i.location {
                                Location::Remote { server, name } => (server.clone(), name.clone()),
                                Location::Path(p) => (String::new(), p.display().to_string()),
                            };
                            (!on).then_some((i.map, i.attempt, server, name))
                        }),
                };
                let server = format!("w{w}.{}:1", s.procs[w].epoch);
                s.network.insert(Report {
                    w,
                    id,
                    task: a.task,
                    attempt: a.attempt,
                    server,
                    lost,
                });
            }
            Action::Deliver(r) => {
                let outcome: TaskOutcome = match (r.task.kind, r.lost.clone()) {
                    (_, Some((map, attempt, server, name))) => Err(TaskFailure::LostMapOutput {
                        map,
                        attempt,
                        location: Location::Remote { server, name },
                        cause: mr::task::LossCause::Unreachable,
                        error: "unreachable".into(),
                    }),
                    (TaskKind::Map, None) => Ok(TaskResult::Map {
                        output: mr::task::MapOutputs::Server(r.server.clone()),
                        stats: TaskStats::default(),
                    }),
                    (TaskKind::Reduce, None) => Ok(TaskResult::Reduce {
                        output: Location::Path(format!("mr-out-{}", r.task.index).into()),
                        stats: TaskStats::default(),
                    }),
                    (TaskKind::Sample, None) => Ok(TaskResult::Sample {
                        keys: vec![b"k".to_vec()],
                        stats: TaskStats::default(),
                    }),
                };
                let before = s.job.tasks.task(r.task).map(|t| t.state.clone());
                let lost_map = r.lost.as_ref().map(|l| l.0);
                let map_before = lost_map.and_then(|m| {
                    s.job
                        .tasks
                        .task(TaskId::map(m))
                        .map(|t| (t.state.clone(), t.failures))
                });
                let current_loss = r.lost.as_ref().is_some_and(|(m, a, server, name)| {
                    s.job.tasks.map_output(*m).is_some_and(|(att, outs)| {
                        att == *a
                            && outs.location(*m, r.task.index)
                                == Location::Remote {
                                    server: server.clone(),
                                    name: name.clone(),
                                }
                    })
                });
                let ok = outcome.is_ok();
                let step = s.job.report(r.id, r.task, r.attempt, outcome, now);
                if step.reply == ReportReply::Accepted {
                    let was_current = before
                        .as_ref()
                        .and_then(|b| b.run_of(r.attempt))
                        .is_some_and(|run| run.worker == r.id);
                    if !was_current || !s.issued.contains(&(s.incarnation, r.task, r.attempt, r.id))
                    {
                        s.broken = Some(format!("{r:?} accepted while the task was {before:?}"));
                    }
                    if ok && r.task.kind == TaskKind::Reduce {
                        s.commits[r.task.index as usize] += 1;
                    }
                }
                if r.lost.is_some() && !current_loss {
                    let map_after = lost_map.and_then(|m| {
                        s.job
                            .tasks
                            .task(TaskId::map(m))
                            .map(|t| (t.state.clone(), t.failures))
                    });
                    if map_after != map_before {
                        s.broken = Some(format!("a stale loss report {r:?} changed the map"));
                    }
                }
                s.apply(step.effects);
            }
            Action::Advance => s.now += STEP,
            Action::Tick => {
                let step = s.job.tick(now);
                if step.effects.is_empty() {
                    return None; // nothing to do: not a new state
                }
                s.apply(step.effects);
            }
            Action::CrashCoordinator(keep) => {
                s.crashed = true;
                s.journal.truncate(keep);
                s.synced = keep;
                // Workers keep running, and keep retrying their reports: the new
                // coordinator refuses those of attempts it did not hand out.
                let before: Vec<(TaskId, bool)> = s
                    .job
                    .tasks
                    .maps()
                    .iter()
                    .chain(s.job.tasks.reduces())
                    .map(|t| (t.id, t.is_done()))
                    .collect();
                let Some(mut replay) = journal::replay(&s.journal, &self.key()) else {
                    s.broken = Some("the journal of an unfinished job was not resumable".into());
                    return Some(s);
                };
                replay.incarnation = replay.incarnation.max(1);
                let mut job = self.fresh_job(now);
                // Map output on a worker's disk counts as intact (as in the real
                // coordinator): a reduce that cannot fetch it reports it lost.
                coordinator::resume(&mut job, &replay, |_, _| true);
                s.journal.push(Record::Start {
                    incarnation: replay.incarnation,
                });
                s.synced = s.journal.len();
                s.incarnation = replay.incarnation;
                // Done and journaled before the crash: done after it.
                for (task, was_done) in before {
                    let journaled = s.journal[..keep]
                        .iter()
                        .rev()
                        .find_map(|r| match r {
                            Record::Done { task: t, .. } if *t == task => Some(true),
                            Record::Reopened { task: t } if *t == task => Some(false),
                            _ => None,
                        })
                        .unwrap_or(false);
                    if was_done && journaled && !job.tasks.task(task).is_some_and(|t| t.is_done()) {
                        s.broken = Some(format!(
                            "{task} was done and journaled but is not done after the restart"
                        ));
                    }
                }
                s.job = job;
            }
            Action::CrashWorker(w) => {
                s.crashed = true;
                let p = &mut s.procs[w];
                for (m, _) in std::mem::take(&mut p.disk) {
                    s.harm[m as usize] += 1;
                }
                p.running = None;
                p.id = None;
                p.epoch += 1;
                s.network.retain(|r| r.w != w);
            }
        }
        s.audit();
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("every invariant holds", |_, s: &State| s.broken.is_none()),
            Property::sometimes("the job can succeed", |_, s: &State| {
                s.job.end() == Some(JobEnd::Succeeded)
            }),
            Property::sometimes("a coordinator restart can be survived", |_, s: &State| {
                s.incarnation > 1 && s.job.end() == Some(JobEnd::Succeeded)
            }),
            // Two live attempts of one task are explored: a backup that wins, and one
            // that the original beats, each in a job that then succeeds.
            Property::sometimes("a backup can win", |_, s: &State| {
                s.job.tasks.speculated().won > 0 && s.job.end() == Some(JobEnd::Succeeded)
            }),
            Property::sometimes("a backup can be beaten", |_, s: &State| {
                s.job.tasks.speculated().wasted > 0 && s.job.end() == Some(JobEnd::Succeeded)
            }),
        ]
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.job
            .tasks
            .maps()
            .iter()
            .chain(s.job.tasks.reduces())
            .all(|t| t.attempts <= MAX_ATTEMPTS)
    }
}

/// What one exhaustive check found.
#[derive(Debug)]
pub struct Checked {
    /// Distinct states explored.
    pub states: usize,
    /// Properties that hold, by name.
    pub proved: Vec<&'static str>,
    /// Properties that do not, with a counterexample path.
    pub failed: Vec<String>,
}

/// Explores every state of `model` breadth-first (to `depth` steps, if given).
pub fn check(model: Mr) -> Checked {
    check_to(model, None)
}

/// [`check`], to at most `depth` steps.
pub fn check_to(model: Mr, depth: Option<usize>) -> Checked {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = model.checker().threads(threads);
    if let Some(d) = depth {
        builder = builder.target_max_depth(d);
    }
    let checker = builder.spawn_bfs().join();
    let mut proved = Vec::new();
    let mut failed = Vec::new();
    for p in checker.model().properties() {
        match checker.discovery(p.name) {
            None if matches!(p.expectation, stateright::Expectation::Always) => proved.push(p.name),
            Some(path) if matches!(p.expectation, stateright::Expectation::Sometimes) => {
                let _ = path;
                proved.push(p.name)
            }
            None => failed.push(format!("{}: never reached", p.name)),
            Some(path) => failed.push(format!(
                "{}: counterexample {:?}",
                p.name,
                path.into_actions()
            )),
        }
    }
    Checked {
        states: checker.unique_state_count(),
        proved,
        failed,
    }
}
