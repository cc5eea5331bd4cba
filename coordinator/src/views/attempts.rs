//! Every attempt of every task as the core reported it: which worker ran it, from when
//! to when (milliseconds since the job started), and how it ended. Fed by
//! [`crate::job::Job`] from the events each call returns, O(1) per event; read by the
//! status page's timeline (incrementally, by change sequence number) and by the report.
//!
//! Memory stays small at the paper's M = 200,000: one fixed-size record per attempt (36
//! bytes: no strings; a failure is its typed kind, its message stays with the task), a
//! 4-byte change entry per change (two per attempt: its start and its end) and a 4-byte
//! link per task to its latest attempt.

use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::task::{LocalFault, LossCause, TaskFailure};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How an attempt ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still live.
    Running,
    /// Its report was accepted: the task's output is this attempt's.
    Done,
    /// It reported a failure.
    Failed,
    /// Taken back: it ran past the task timeout.
    Revoked,
    /// Taken back: its worker missed its heartbeats.
    Lost,
    /// Taken back (revoked, lost or beaten), and then its worker's report came anyway
    /// and was refused as stale; the attempt ends at the refused report.
    Refused,
    /// Another attempt of its task (a backup, or the original) finished first.
    Beaten,
}

impl Outcome {
    /// Every outcome, in the order the views list them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Done,
        Outcome::Running,
        Outcome::Failed,
        Outcome::Revoked,
        Outcome::Lost,
        Outcome::Refused,
        Outcome::Beaten,
    ];

    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Revoked => "revoked",
            Outcome::Lost => "lost",
            Outcome::Refused => "refused",
            Outcome::Beaten => "beaten",
        }
    }

    /// Ended by the coordinator rather than by the attempt's own report: a report that
    /// still comes is refused.
    fn taken_back(self) -> bool {
        matches!(self, Outcome::Revoked | Outcome::Lost | Outcome::Beaten)
    }
}

/// What kind of failure an attempt reported: [`TaskFailure`] without its message (the
/// message is kept once per task, as its last error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The app's map or reduce panicked or returned an error.
    App,
    /// The input could not be read.
    Input,
    /// A map output the reduce needed was not there.
    MapOutputMissing,
    /// A map output the reduce needed was damaged.
    MapOutputCorrupt,
    /// A map output's server could not be reached.
    MapOutputUnreachable,
    /// The worker's disk was full.
    NoSpace,
    /// The worker's file system was read-only.
    ReadOnly,
    /// The worker was denied access to its own files.
    Permission,
    /// The worker ran out of file descriptors.
    TooManyFiles,
    /// The worker ran out of memory.
    NoMemory,
    /// Another I/O error on the worker's machine.
    Io,
    /// The worker's transfer to or from the coordinator broke off.
    Network,
}

impl FailureKind {
    /// The kind of `failure`.
    pub fn of(failure: &TaskFailure) -> FailureKind {
        match failure {
            TaskFailure::App { .. } => FailureKind::App,
            TaskFailure::Input { .. } => FailureKind::Input,
            TaskFailure::LostMapOutput { cause, .. } => match cause {
                LossCause::Missing => FailureKind::MapOutputMissing,
                LossCause::Corrupt => FailureKind::MapOutputCorrupt,
                LossCause::Unreachable => FailureKind::MapOutputUnreachable,
            },
            TaskFailure::Local { fault, .. } => match fault {
                LocalFault::NoSpace => FailureKind::NoSpace,
                LocalFault::ReadOnly => FailureKind::ReadOnly,
                LocalFault::Permission => FailureKind::Permission,
                LocalFault::TooManyFiles => FailureKind::TooManyFiles,
                LocalFault::NoMemory => FailureKind::NoMemory,
                LocalFault::Io => FailureKind::Io,
            },
            TaskFailure::Network { .. } => FailureKind::Network,
        }
    }
}

/// Marks an attempt that has not ended.
const OPEN: u32 = u32::MAX;

/// One attempt, compact: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The task.
    pub task: TaskId,
    /// The worker it was handed to.
    pub worker: WorkerId,
    /// Which attempt of the task.
    pub attempt: Attempt,
    /// When it was handed out, in ms since the job started.
    pub start_ms: u32,
    /// When it ended, in ms since the job started ([`OPEN`] while running).
    end_ms: u32,
    /// 1 + the index of the task's previous attempt record (0: none): each task's
    /// attempts form a list from its latest, so finding one is O(its attempts).
    prev: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// What kind of failure it reported, if it failed.
    pub failure: Option<FailureKind>,
    /// Started as a backup of an attempt running long.
    pub backup: bool,
}

impl AttemptRecord {
    /// When it ended, in ms since the job started; None while it runs.
    pub fn end_ms(&self) -> Option<u32> {
        (self.end_ms != OPEN).then_some(self.end_ms)
    }

    /// Its JSON fields (times in seconds since the job started), after `id` if given.
    fn serialize_with<S: Serializer>(&self, id: Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        let fields = 6 + usize::from(id.is_some()) + usize::from(self.failure.is_some());
        let mut st = s.serialize_struct("Attempt", fields + usize::from(self.backup))?;
        if let Some(id) = id {
            st.serialize_field("id", &id)?;
        }
        st.serialize_field("task", &Displayed(self.task))?;
        st.serialize_field("attempt", &self.attempt.0)?;
        st.serialize_field("worker", &Displayed(self.worker))?;
        st.serialize_field("start", &secs(self.start_ms))?;
        st.serialize_field("end", &self.end_ms().map(secs))?;
        st.serialize_field("outcome", &self.outcome)?;
        if let Some(f) = self.failure {
            st.serialize_field("failure", &f)?;
        }
        if self.backup {
            st.serialize_field("backup", &true)?;
        }
        st.end()
    }
}

/// Serialised as `{"task": "map-3", "attempt": 1, "worker": "w2", "start": 0.512, "end":
/// 2.103, "outcome": "done"}`, plus `failure` when it failed and `backup` when it was a
/// backup (`end` is null while it runs).
impl Serialize for AttemptRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_with(None, s)
    }
}

/// An attempt with its id (its index in the log), for the status page, which merges
/// the attempts it fetched by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    /// Its index in the log.
    pub id: u32,
    /// The attempt.
    pub record: AttemptRecord,
}

impl Serialize for Numbered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.record.serialize_with(Some(self.id), s)
    }
}

/// Serialises a value through its `Display` (no `String` built per attempt).
struct Displayed<T>(T);

impl<T: std::fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Milliseconds as seconds (exact to the millisecond in JSON: `0.512`).
pub fn secs(ms: u32) -> f64 {
    f64::from(ms) / 1000.0
}

/// The attempts that changed after a sequence number: see [`AttemptLog::since`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changes {
    /// The sequence number to ask from next time.
    pub seq: u64,
    /// Whether more changes are waiting (ask again from `seq` at once).
    pub more: bool,
    /// The attempts changed, each once, in its latest state.
    pub attempts: Vec<Numbered>,
}

/// Every attempt of a job, in the order they were handed out.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    started: Instant,
    records: Vec<AttemptRecord>,
    /// Per kind of task ([`slot`]), per task index: 1 + the index of its latest record.
    latest: [Vec<u32>; 3],
    /// The index of the record changed by each change, in order: a change's sequence
    /// number is its position (+1), so a reader asks for what changed after the last
    /// number it saw.
    changes: Vec<u32>,
}

fn slot(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Sample => 0,
        TaskKind::Map => 1,
        TaskKind::Reduce => 2,
    }
}

impl AttemptLog {
    /// An empty log of a job that started at `started`.
    pub fn new(started: Instant) -> AttemptLog {
        AttemptLog {
            started,
            records: Vec::new(),
            latest: Default::default(),
            changes: Vec::new(),
        }
    }

    /// An empty log with room for one attempt of each of `samples`, `maps` and
    /// `reduces` tasks, so that a job that needs no retry never grows it (a doubling
    /// `Vec` would hold up to twice that, and briefly three times while it moves).
    pub fn for_tasks(started: Instant, samples: usize, maps: usize, reduces: usize) -> AttemptLog {
        let n = samples + maps + reduces;
        AttemptLog {
            started,
            records: Vec::with_capacity(n),
            latest: [vec![0; samples], vec![0; maps], vec![0; reduces]],
            changes: Vec::with_capacity(2 * n),
        }
    }

    /// `now` in ms since the job started (saturating: 49 days).
    fn ms(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(OPEN - 1)
    }

    /// Every attempt, in the order they were handed out.
    pub fn records(&self) -> &[AttemptRecord] {
        &self.records
    }

    /// The number of the latest change (0: none yet).
    pub fn seq(&self) -> u64 {
        self.changes.len() as u64
    }

    /// Notes that `attempt` of `task` was handed to `worker` at `now`.
    pub fn assigned(
        &mut self,
        task: TaskId,
        attempt: Attempt,
        worker: WorkerId,
        backup: bool,
        now: Instant,
    ) {
        let Ok(id) = u32::try_from(self.records.len()) else {
            return; // 4 billion attempts: the record stops growing rather than wrap.
        };
        let latest = &mut self.latest[slot(task.kind)];
        let i = task.index as usize;
        if latest.len() <= i {
            latest.resize(i + 1, 0);
        }
        let prev = std::mem::replace(&mut latest[i], id + 1);
        let start_ms = self.ms(now);
        self.records.push(AttemptRecord {
            task,
            worker,
            attempt,
            start_ms,
            end_ms: OPEN,
            prev,
            outcome: Outcome::Running,
            failure: None,
            backup,
        });
        self.changes.push(id);
    }

    /// The index of the record of `attempt` of `task`, if it is in the log.
    fn find(&self, task: TaskId, attempt: Attempt) -> Option<usize> {
        let mut next = *self.latest[slot(task.kind)].get(task.index as usize)?;
        while next != 0 {
            let i = next as usize - 1;
            let r = self.records.get(i)?;
            if r.attempt == attempt {
                return Some(i);
            }
            next = r.prev;
        }
        None
    }

    /// The record of `attempt` of `task`, if it is in the log.
    pub fn get(&self, task: TaskId, attempt: Attempt) -> Option<&AttemptRecord> {
        self.find(task, attempt).map(|i| &self.records[i])
    }

    /// Notes that running `attempt` of `task` ended at `now` as `outcome`; a record
    /// already ended is left as it is (the first end is the one that happened).
    pub fn ended(
        &mut self,
        task: TaskId,
        attempt: Attempt,
        outcome: Outcome,
        failure: Option<FailureKind>,
        now: Instant,
    ) {
        let end_ms = self.ms(now);
        if let Some(i) = self.find(task, attempt) {
            let r = &mut self.records[i];
            if r.outcome == Outcome::Running {
                r.end_ms = end_ms;
                r.outcome = outcome;
                r.failure = failure;
                self.changes.push(i as u32);
            }
        }
    }

    /// Notes that `worker`'s report of `attempt` of `task` was refused at `now`: if the
    /// coordinator had taken that attempt back, it really ran until now, and ends so.
    /// (A duplicate of an accepted report, or a report naming someone else's attempt,
    /// changes nothing.)
    pub fn refused(&mut self, task: TaskId, attempt: Attempt, worker: WorkerId, now: Instant) {
        let end_ms = self.ms(now);
        if let Some(i) = self.find(task, attempt) {
            let r = &mut self.records[i];
            if r.worker == worker && r.outcome.taken_back() {
                r.end_ms = end_ms.max(r.start_ms);
                r.outcome = Outcome::Refused;
                self.changes.push(i as u32);
            }
        }
    }

    /// The attempts that changed after change number `seq`, at most `limit` of them
    /// (each once, in its latest state). O(changes returned), however long the job.
    pub fn since(&self, seq: u64, limit: usize) -> Changes {
        let from = usize::try_from(seq)
            .unwrap_or(usize::MAX)
            .min(self.changes.len());
        let mut ids: Vec<u32> = Vec::with_capacity(limit.min(self.changes.len() - from));
        let mut to = from;
        for &id in &self.changes[from..] {
            if ids.len() == limit {
                break;
            }
            ids.push(id);
            to += 1;
        }
        ids.sort_unstable();
        ids.dedup();
        Changes {
            seq: to as u64,
            more: to < self.changes.len(),
            attempts: ids
                .into_iter()
                .map(|id| Numbered {
                    id,
                    record: self.records[id as usize],
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_record_is_small() {
        // 200,000 maps and their retries: a few MiB, not hundreds.
        assert!(std::mem::size_of::<AttemptRecord>() <= 40);
    }

    #[test]
    fn attempts_start_and_end_once_and_changes_come_back_by_sequence_number() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut log = AttemptLog::new(t0);
        let (w1, w2) = (WorkerId::first_run(1), WorkerId::first_run(2));
        let (m0, m1) = (TaskId::map(0), TaskId::map(1));
        log.assigned(m0, Attempt(1), w1, false, ms(10));
        log.assigned(m1, Attempt(1), w2, false, ms(20));
        assert_eq!(log.seq(), 2);
        let first = log.since(0, 100);
        assert_eq!((first.seq, first.more, first.attempts.len()), (2, false, 2));
        log.ended(m0, Attempt(1), Outcome::Revoked, None, ms(500));
        log.ended(m0, Attempt(1), Outcome::Done, None, ms(600));
        let r = log.get(m0, Attempt(1)).unwrap();
        assert_eq!(
            (r.outcome, r.end_ms()),
            (Outcome::Revoked, Some(500)),
            "first end"
        );
        log.assigned(m0, Attempt(2), w2, true, ms(700));
        assert_eq!(log.get(m0, Attempt(2)).unwrap().worker, w2);
        assert_eq!(
            log.get(m0, Attempt(1)).unwrap().worker,
            w1,
            "found down the list"
        );
        assert!(
            log.get(m0, Attempt(3)).is_none() && log.get(TaskId::reduce(0), Attempt(1)).is_none()
        );
        // The late report of the revoked attempt: refused, and the bar ends then.
        log.refused(m0, Attempt(1), w2, ms(800));
        assert_eq!(
            log.get(m0, Attempt(1)).unwrap().outcome,
            Outcome::Revoked,
            "not w2's"
        );
        log.refused(m0, Attempt(1), w1, ms(900));
        let r = log.get(m0, Attempt(1)).unwrap();
        assert_eq!((r.outcome, r.end_ms()), (Outcome::Refused, Some(900)));
        // Since the first read: m0's attempt 1 (changed twice) once, and attempt 2.
        let next = log.since(first.seq, 100);
        let ids: Vec<u32> = next.attempts.iter().map(|a| a.id).collect();
        assert_eq!(ids, [0, 2]);
        assert_eq!(next.seq, log.seq());
        // Bounded: one change at a time, and the rest waits.
        let one = log.since(0, 1);
        assert_eq!((one.seq, one.more, one.attempts.len()), (1, true, 1));
        assert_eq!(log.since(99, 10).attempts.len(), 0, "past the end: nothing");
    }

    #[test]
    fn an_attempt_serialises_with_seconds_since_the_start() {
        let t0 = Instant::now();
        let mut log = AttemptLog::new(t0);
        let w = WorkerId::first_run(3);
        log.assigned(
            TaskId::reduce(2),
            Attempt(1),
            w,
            true,
            t0 + Duration::from_millis(512),
        );
        log.ended(
            TaskId::reduce(2),
            Attempt(1),
            Outcome::Failed,
            Some(FailureKind::NoSpace),
            t0 + Duration::from_millis(2103),
        );
        log.assigned(TaskId::map(0), Attempt(1), w, false, t0);
        let v = serde_json::to_value(log.records()).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"task": "reduce-2", "attempt": 1, "worker": "w3",
                "start": 0.512, "end": 2.103, "outcome": "failed", "failure": "no_space",
                "backup": true})
        );
        assert_eq!(
            v[1],
            serde_json::json!({"task": "map-0", "attempt": 1, "worker": "w3",
                "start": 0.0, "end": null, "outcome": "running"})
        );
        let numbered = serde_json::to_value(log.since(0, 10)).unwrap();
        assert_eq!(numbered["attempts"][1]["id"], 1);
    }

    #[test]
    fn failures_are_kept_by_kind() {
        let app = TaskFailure::App {
            message: "boom".into(),
        };
        assert_eq!(FailureKind::of(&app), FailureKind::App);
        let disk = TaskFailure::local("write", &std::io::Error::from_raw_os_error(28));
        assert_eq!(FailureKind::of(&disk), FailureKind::NoSpace);
    }
}
