//! Identifiers as newtypes, so a worker id can never be passed where a task id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which phase a task belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskKind {
    /// Before the maps of a range-partitioned job: runs map over pieces of the input and
    /// reports a sample of the keys, from which the coordinator picks the split points.
    Sample,
    /// Reads one input split, writes one intermediate file per reduce partition.
    Map,
    /// Merges one partition of every map task's output, writes `mr-out-Y`.
    Reduce,
}

/// A task: its phase and its index within the phase (sample S, map X, or reduce
/// partition Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// The phase.
    pub kind: TaskKind,
    /// Map task number X, or reduce partition Y.
    pub index: u32,
}

impl TaskId {
    /// Map task `index`.
    pub fn map(index: u32) -> Self {
        TaskId {
            kind: TaskKind::Map,
            index,
        }
    }

    /// Sample task `index`.
    pub fn sample(index: u32) -> Self {
        TaskId {
            kind: TaskKind::Sample,
            index,
        }
    }

    /// Reduce task for partition `index`.
    pub fn reduce(index: u32) -> Self {
        TaskId {
            kind: TaskKind::Reduce,
            index,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TaskKind::Sample => write!(f, "sample-{}", self.index),
            TaskKind::Map => write!(f, "map-{}", self.index),
            TaskKind::Reduce => write!(f, "reduce-{}", self.index),
        }
    }
}

/// A worker, as numbered by the coordinator at registration: which run of the
/// coordinator numbered it and its number in that run, so that a worker of a run before
/// a restart can never be taken for one of the run after it. On the wire and in the
/// journal it is one number, the restart in the high 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "u64", into = "u64")]
pub struct WorkerId {
    /// Coordinator restarts before the run that registered it (0: the first run).
    pub restart: u32,
    /// Its number in that run, from 1 (0: not registered yet).
    pub number: u32,
}

impl WorkerId {
    /// No worker: the id of a worker that has not registered yet.
    pub const NONE: WorkerId = WorkerId::new(0, 0);

    /// Worker `number` of the run after `restart` restarts.
    pub const fn new(restart: u32, number: u32) -> WorkerId {
        WorkerId { restart, number }
    }

    /// Worker `number` of the first run (tests and examples).
    pub const fn first_run(number: u32) -> WorkerId {
        WorkerId::new(0, number)
    }
}

impl From<u64> for WorkerId {
    fn from(n: u64) -> WorkerId {
        WorkerId::new((n >> 32) as u32, n as u32)
    }
}

impl From<WorkerId> for u64 {
    fn from(w: WorkerId) -> u64 {
        (u64::from(w.restart) << 32) | u64::from(w.number)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.restart {
            0 => write!(f, "w{}", self.number),
            r => write!(f, "w{}.r{r}", self.number),
        }
    }
}

/// The attempt number of a task: 1 for the first assignment, +1 for each re-assignment.
/// A report is accepted only for the task's current attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attempt(pub u32);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Carried by every RPC so that the worker's and the coordinator's log lines of one
/// call can be matched. Unique per worker process (high bits: pid, low bits: counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}
