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

/// A worker, as numbered by the coordinator at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The high half numbers coordinator restarts (see the coordinator's registry).
        match self.0 >> 32 {
            0 => write!(f, "w{}", self.0),
            r => write!(f, "w{}.r{r}", self.0 & 0xffff_ffff),
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
