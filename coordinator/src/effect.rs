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
    /// Append to the journal, in the order returned; `sync` says when it must be on
    /// disk.
    Journal {
        /// The record.
        record: Record,
        /// When it is synced.
        sync: SyncWhen,
    },
    /// Tasks may have become available, or the job ended: wake the waiting polls.
    WakePolls,
    /// A task finished while the phase had no idle task: wake one waiting poll, which
    /// may start a backup (one is enough, and waking every one of thousands of waiting
    /// workers on each completion of a phase's tail costs O(workers) per task).
    WakeOne,
    /// Deadlines changed (a task was handed out, a worker joined): re-arm the sweeper.
    Rearm,
    /// A worker was told that the job is over.
    ToldExit,
    /// The job ended (once).
    Ended(JobEnd),
    /// Something worth a log line.
    Log(Event),
}

/// When a journal record must be on disk. A sync writes every record appended before
/// it, so a record synced before a reply also makes every earlier one durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWhen {
    /// Before the reply to the call that caused it goes out: what the reply lets happen
    /// depends on it (the maps handed out with the split points, a reduce's output
    /// committed, the job's end, a map re-run).
    BeforeReply,
    /// Soon after, by the journal's own syncer, while the reply goes out: nothing
    /// outside the coordinator depends on it yet. A map's completion is one: the worker
    /// goes on to its next task meanwhile, and what does depend on the map (the reduces
    /// handed out once the last map is done, their completions, the job's end) is synced
    /// before its own reply, after it. A crash before the sync costs a re-run map.
    Soon,
    /// With the next sync, or written unsynced once many wait: a crash may lose it,
    /// which costs only a reused attempt number (a task handed out), or is found
    /// otherwise after a restart (an output reopened).
    WithNext,
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
    /// A backup of a task running long was started.
    BackedUp {
        /// On whom.
        worker: WorkerId,
        /// Which task.
        task: TaskId,
        /// The backup's attempt.
        attempt: Attempt,
        /// The run it backs up.
        of: crate::task::Run,
    },
    /// Another attempt of a task finished first: this one is told to stop.
    Beaten {
        /// The worker running it.
        worker: WorkerId,
        /// Which task.
        task: TaskId,
        /// The attempt beaten.
        attempt: Attempt,
        /// The attempt that won.
        by: Attempt,
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
    /// The split points of a range-partitioned job were chosen: the maps may run.
    SplitPoints(crate::task::Chosen),
    /// The job failed.
    GaveUp(JobFailure),
}

/// How many events of each kind the core reported: the job's counters, in the report
/// (`events`), so that tools and tests read numbers rather than log lines. They count
/// from this coordinator's start: a job resumed from its journal counts afresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventCounts {
    /// Registrations (a worker joining, or joining again).
    pub registered: u64,
    /// Calls from ids the coordinator did not know.
    pub unknown_ids: u64,
    /// Attempts handed out (backups included).
    pub assigned: u64,
    /// Backup attempts started.
    pub backups: u64,
    /// Attempts beaten by another attempt of their task.
    pub beaten: u64,
    /// Tasks whose output became final.
    pub completed: u64,
    /// Reports refused (late reports of revoked attempts, lies).
    pub refused: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Workers excluded.
    pub excluded: u64,
    /// Workers that missed their heartbeats.
    pub lost_workers: u64,
    /// Attempts taken back.
    pub revoked: u64,
    /// Done maps run again because their output was lost (found so by a reducer, or on
    /// a lost worker's disk).
    pub reopened_maps: u64,
}

impl EventCounts {
    /// Counts `event`.
    pub fn count(&mut self, event: &Event) {
        if let Event::Failed {
            after: AfterFailure::RerunMap(_),
            ..
        } = event
        {
            self.reopened_maps += 1;
        }
        let n = match event {
            Event::Registered { .. } => &mut self.registered,
            Event::Unknown { .. } => &mut self.unknown_ids,
            Event::Assigned { .. } => &mut self.assigned,
            Event::BackedUp { .. } => &mut self.backups,
            Event::Beaten { .. } => &mut self.beaten,
            Event::Completed { .. } => &mut self.completed,
            Event::Refused { .. } => &mut self.refused,
            Event::Failed { .. } => &mut self.failed,
            Event::Excluded { .. } => &mut self.excluded,
            Event::Lost { .. } => &mut self.lost_workers,
            Event::Revoked(_) => &mut self.revoked,
            Event::Reopened { .. } => &mut self.reopened_maps,
            Event::GaveUp(_) | Event::SplitPoints(_) => return,
        };
        *n += 1;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_kind() {
        let mut c = EventCounts::default();
        let (worker, task, attempt) = (WorkerId::first_run(1), TaskId::map(0), Attempt(1));
        c.count(&Event::Assigned {
            worker,
            task,
            attempt,
        });
        c.count(&Event::Assigned {
            worker,
            task,
            attempt: Attempt(2),
        });
        c.count(&Event::Lost { worker });
        c.count(&Event::Reopened { map: 0 });
        c.count(&Event::Failed {
            worker,
            task: TaskId::reduce(0),
            attempt,
            failure: TaskFailure::App {
                message: "lost".into(),
            },
            after: AfterFailure::RerunMap(1),
        });
        assert_eq!(
            c,
            EventCounts {
                assigned: 2,
                lost_workers: 1,
                failed: 1,
                reopened_maps: 2,
                ..EventCounts::default()
            }
        );
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["assigned"], 2);
        assert_eq!(v["refused"], 0);
    }
}
