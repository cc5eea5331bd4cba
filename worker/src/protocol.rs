//! The worker's side of the protocol as a pure machine: what to do after each reply
//! or failed call (go on, run a task, register again, back off, exit). No I/O and no
//! clock: time comes in as `now`. The worker's async loops ([`crate::run`]) and the
//! simulator (`sim`) both drive it, so the simulated workers decide exactly as the real
//! ones do.
//!
//! A worker makes its calls from two loops at once: heartbeats, and the task loop
//! (poll, run, report). Both can hear "register again" about the same id; only the
//! first may register ([`Session::should_register`]), or the second registration would
//! leave a ghost behind and the running task's report would be refused.

use crate::Exit;
use mr::ids::{Attempt, TaskId, WorkerId};
use mr::retry::Backoff;
use mr::rpc::{Directive, Reported, TaskReply};
use mr::task::Assignment;
use std::time::{Duration, Instant};

/// How long to wait before calling again after a failed call.
pub const RETRY: Duration = Duration::from_millis(200);

/// What a loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Go on: the next heartbeat, the next poll; after a report, the task is settled.
    Continue,
    /// Run this task, then report it.
    Run(Assignment),
    /// Stop running `attempt` of `task` if it still runs (another attempt finished
    /// first, or it was taken back), and go on.
    Abandon {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
    },
    /// The coordinator does not know the id `seen` (it restarted, or forgot us):
    /// register again, if [`Session::should_register`] still says so.
    Register {
        /// The id that was refused.
        seen: WorkerId,
    },
    /// Call again after this pause.
    Retry(Duration),
    /// Stop working.
    Exit(Exit),
}

/// One worker's standing with the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    worker: WorkerId,
    last_contact: Instant,
    /// Give up after this long without reaching the coordinator.
    timeout: Duration,
}

impl Session {
    /// A worker that has not registered yet (id 0, which no coordinator hands out).
    pub fn new(now: Instant, timeout: Duration) -> Session {
        Session {
            worker: WorkerId::NONE,
            last_contact: now,
            timeout,
        }
    }

    /// The id to use in calls.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// How long the coordinator has been silent.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_contact)
    }

    /// The coordinator answered.
    pub fn contact(&mut self, now: Instant) {
        self.last_contact = self.last_contact.max(now);
    }

    /// Registration succeeded with id `worker`.
    pub fn registered(&mut self, worker: WorkerId, now: Instant) {
        self.worker = worker;
        self.contact(now);
    }

    /// Whether to register after hearing that `seen` is unknown: only if it is still
    /// the id in use (the other loop may have registered already).
    pub fn should_register(&self, seen: WorkerId) -> bool {
        self.worker == seen
    }

    /// After a failed registration attempt: the pause before the next (from
    /// `backoff`, which starts as [`Backoff::connect`]), or the end (refused outright,
    /// or silent for longer than `limit`).
    pub fn after_register_failed(
        &self,
        refused: bool,
        backoff: &mut Backoff,
        now: Instant,
        limit: Duration,
    ) -> Option<Duration> {
        if refused || self.silent_for(now) >= limit {
            None
        } else {
            Some(backoff.pause())
        }
    }

    /// After a call that got no answer: back off, or give up if the coordinator has
    /// been silent for too long.
    fn unanswered(&self, now: Instant) -> Next {
        if self.silent_for(now) >= self.timeout {
            Next::Exit(Exit::CoordinatorGone)
        } else {
            Next::Retry(RETRY)
        }
    }

    /// After a heartbeat sent as `seen` (`None`: no answer).
    pub fn on_heartbeat(&mut self, seen: WorkerId, reply: Option<Directive>, now: Instant) -> Next {
        let Some(d) = reply else {
            // The heartbeat loop keeps its own pace: no retry pause, just the check.
            return match self.unanswered(now) {
                Next::Retry(_) => Next::Continue,
                other => other,
            };
        };
        self.contact(now);
        match d {
            Directive::Continue => Next::Continue,
            Directive::Abandon { task, attempt } => Next::Abandon { task, attempt },
            Directive::Reregister => Next::Register { seen },
            Directive::Exit(end) => Next::Exit(Exit::Job(end)),
        }
    }

    /// After a task poll sent as `seen` (`None`: no answer).
    pub fn on_poll(&mut self, seen: WorkerId, reply: Option<TaskReply>, now: Instant) -> Next {
        let Some(r) = reply else {
            return self.unanswered(now);
        };
        self.contact(now);
        match r {
            TaskReply::Task(a) => Next::Run(a),
            TaskReply::Wait => Next::Continue,
            TaskReply::Reregister => Next::Register { seen },
            TaskReply::Exit(end) => Next::Exit(Exit::Job(end)),
        }
    }

    /// After a report sent as `seen` (`None`: no answer, so report again after
    /// [`Next::Retry`]). Answered, the task is settled (accepted, or refused because the
    /// attempt was revoked: nothing left to do) and what follows is the answer's next
    /// task, as after a poll; `Continue` means poll.
    pub fn on_report(&mut self, seen: WorkerId, reply: Option<Reported>, now: Instant) -> Next {
        match reply {
            Some(r) => self.on_poll(seen, Some(r.next), now),
            None => self.unanswered(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr::rpc::JobEnd;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn only_the_loop_that_still_holds_the_refused_id_registers() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, T);
        s.registered(WorkerId::first_run(5), t0);
        // Both loops hear that 5 is unknown.
        assert_eq!(
            s.on_heartbeat(WorkerId::first_run(5), Some(Directive::Reregister), t0),
            Next::Register {
                seen: WorkerId::first_run(5)
            }
        );
        assert_eq!(
            s.on_poll(WorkerId::first_run(5), Some(TaskReply::Reregister), t0),
            Next::Register {
                seen: WorkerId::first_run(5)
            }
        );
        assert!(s.should_register(WorkerId::first_run(5)));
        s.registered(WorkerId::first_run(7), t0);
        assert!(
            !s.should_register(WorkerId::first_run(5)),
            "the second loop keeps id 7"
        );
    }

    #[test]
    fn silence_ends_the_worker_after_the_timeout_and_any_answer_resets_it() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, T);
        s.registered(WorkerId::first_run(1), t0);
        assert_eq!(
            s.on_poll(WorkerId::first_run(1), None, t0 + T / 2),
            Next::Retry(RETRY)
        );
        assert_eq!(
            s.on_heartbeat(WorkerId::first_run(1), None, t0 + T / 2),
            Next::Continue
        );
        let reported = |next| Reported {
            reply: mr::rpc::ReportReply::Accepted,
            next,
        };
        assert_eq!(
            s.on_report(
                WorkerId::first_run(1),
                Some(reported(TaskReply::Wait)),
                t0 + T / 2
            ),
            Next::Continue,
            "nothing to do at once: poll"
        );
        assert_eq!(
            s.on_poll(WorkerId::first_run(1), None, t0 + T),
            Next::Retry(RETRY),
            "the report was an answer"
        );
        assert_eq!(
            s.on_report(WorkerId::first_run(1), None, t0 + T / 2 + T),
            Next::Exit(Exit::CoordinatorGone)
        );
        assert_eq!(
            s.on_report(
                WorkerId::first_run(1),
                Some(reported(TaskReply::Exit(JobEnd::Succeeded))),
                t0 + T
            ),
            Next::Exit(Exit::Job(JobEnd::Succeeded)),
            "the last report learns that the job is over"
        );
        let a = Assignment {
            task: TaskId::map(4),
            attempt: Attempt(1),
            spec: mr::task::TaskSpec::Sample {
                pieces: Vec::new(),
                source: mr::task::SplitSource::Path,
                max_keys: 1,
            },
        };
        assert_eq!(
            s.on_report(
                WorkerId::first_run(1),
                Some(reported(TaskReply::Task(a.clone()))),
                t0 + T
            ),
            Next::Run(a),
            "the answer's next task runs without a poll"
        );
        assert_eq!(
            s.on_report(
                WorkerId::first_run(1),
                Some(reported(TaskReply::Reregister)),
                t0 + T
            ),
            Next::Register {
                seen: WorkerId::first_run(1)
            }
        );
        assert_eq!(
            s.on_heartbeat(
                WorkerId::first_run(1),
                Some(Directive::Exit(JobEnd::Succeeded)),
                t0
            ),
            Next::Exit(Exit::Job(JobEnd::Succeeded))
        );
        let (task, attempt) = (TaskId::map(3), Attempt(2));
        assert_eq!(
            s.on_heartbeat(
                WorkerId::first_run(1),
                Some(Directive::Abandon { task, attempt }),
                t0
            ),
            Next::Abandon { task, attempt },
            "told to stop an attempt, the worker goes on"
        );
    }

    #[test]
    fn registration_backs_off_doubling_until_refused_or_silent_too_long() {
        let t0 = Instant::now();
        let s = Session::new(t0, T);
        let limit = Duration::from_secs(2);
        let mut b = Backoff::connect_seeded(1);
        let mut pauses = Vec::new();
        while let Some(next) = s.after_register_failed(false, &mut b, t0, limit) {
            pauses.push(next);
            if pauses.len() == 7 {
                break;
            }
        }
        // Jittered: between half and all of 50 ms, 100 ms, … 1 s.
        let within = |p: Duration, ms: u64| {
            p >= Duration::from_millis(ms) / 2 && p <= Duration::from_millis(ms)
        };
        assert!(within(pauses[0], 50), "{pauses:?}");
        assert!(within(pauses[1], 100), "{pauses:?}");
        assert!(within(*pauses.last().unwrap(), 1000), "{pauses:?}");
        assert_eq!(s.after_register_failed(true, &mut b, t0, limit), None);
        assert_eq!(
            s.after_register_failed(false, &mut b, t0 + limit, limit),
            None
        );
    }
}
