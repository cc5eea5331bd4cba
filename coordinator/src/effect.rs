//! What a transition of the coordinator core asks the world to do. The core ([`Job`])
//! changes state and returns effects; the async shell ([`crate::service`]) applies them
//! in one place, so no call site can forget a journal record or a wake-up, and the
//! simulator can run the very same core and check what it asked for.
//!
//! [`Job`]: crate::job::Job

use crate::journal::Record;
use crate::task::{AfterFailure, JobFailure, Refusal, Revoked};
use mr::ids::{Attempt, TaskId, WorkerId};
use mr::rpc::JobEnd;
use mr::task::TaskFailure;

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append to the journal. A `sync` record is on disk before the reply to the call
    /// that caused it goes out; records are appended in the order they are returned.
    Journal {
        /// The record.
        record: Record,
        /// Whether the reply waits for it to be durable.
        sync: bool,
    },
    /// Tasks may have become available, or the job ended: wake the waiting polls.
    WakePolls,
    /// Deadlines changed (a task was handed out, a worker joined): re-arm the sweeper.
    Rearm,
    /// A worker was told that the job is over.
    ToldExit,
    /// The job ended (once).
    Ended(JobEnd),
    /// Something worth a log line.
    Log(Event),
}

/// What happened, for the log (and the simulator's trace).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A worker joined.
    Registered {
        /// Its id.
        worker: WorkerId,
        /// Its host.
        host: String,
        /// Its pid.
        pid: u32,
    },
    /// A call came from an id the coordinator does not know: it must register again.
    Unknown {
        /// The id it used.
        worker: WorkerId,
    },
    /// A task was handed out.
    Assigned {
        /// To whom.
        worker: WorkerId,
        /// Which.
        task: TaskId,
        /// As which attempt.
        attempt: Attempt,
    },
    /// A task's output is final.
    Completed {
        /// By whom.
        worker: WorkerId,
        /// Which.
        task: TaskId,
        /// Which attempt.
        attempt: Attempt,
    },
    /// A report was refused (harmless by design: a late report of a revoked attempt).
    Refused {
        /// From whom.
        worker: WorkerId,
        /// Which task.
        task: TaskId,
        /// Which attempt.
        attempt: Attempt,
        /// Why.
        refusal: Refusal,
        /// The failure it reported, if it was a failure.
        failure: Option<TaskFailure>,
    },
    /// An attempt failed.
    Failed {
        /// On whom.
        worker: WorkerId,
        /// Which task.
        task: TaskId,
        /// Which attempt.
        attempt: Attempt,
        /// Why.
        failure: TaskFailure,
        /// What it led to.
        after: AfterFailure,
    },
    /// A worker was excluded for failing too often.
    Excluded {
        /// Which.
        worker: WorkerId,
        /// Its host.
        host: String,
        /// What it last failed on.
        last_error: String,
    },
    /// A worker missed its heartbeats.
    Lost {
        /// Which.
        worker: WorkerId,
    },
    /// An attempt was taken back (its worker was lost, or it timed out).
    Revoked(Revoked),
    /// A done map runs again: its output was on a lost worker's disk.
    Reopened {
        /// The map.
        map: u32,
    },
    /// The job failed.
    GaveUp(JobFailure),
}

/// A call's reply and the effects it implies.
#[derive(Debug)]
#[must_use = "the effects must be applied"]
pub struct Step<R> {
    /// What to answer.
    pub reply: R,
    /// What to do.
    pub effects: Vec<Effect>,
}
