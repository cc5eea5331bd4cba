//! When things happened in a job: its start, the first map handed out, all maps done, the
//! end, and how long each task's successful attempt took. Fed by the core's calls; read
//! by the progress display, the report and the status page. Also the code that draws
//! the timeline of every attempt ([`SCRIPT`]) for the status page and the HTML history.

use crate::task::TaskTable;
use mr::ids::{Attempt, TaskId, TaskKind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The timeline's drawing code (JavaScript, a canvas of bars by worker and time), put
/// inline into both pages that show it: the status page and the job's HTML history.
pub const SCRIPT: &str = include_str!("timeline.js");

/// Timestamps of one job.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// When the job state was created (the coordinator started serving).
    pub started: Instant,
    /// When the first sample task was handed out (range partitioning).
    pub first_sample: Option<Instant>,
    /// When the split points were chosen (range partitioning).
    pub sampled: Option<Instant>,
    /// When the first map task was handed out.
    pub first_map: Option<Instant>,
    /// When every map task was first done (the reduce phase could start).
    pub maps_done: Option<Instant>,
    /// When the job ended: every reduce done, or a task failed too often.
    pub ended: Option<Instant>,
    /// How long each task's accepted attempt ran, from hand-out to report.
    pub took: HashMap<TaskId, Duration>,
}

impl Timeline {
    /// A job starting at `now`.
    pub fn new(now: Instant) -> Self {
        Timeline {
            started: now,
            first_sample: None,
            sampled: None,
            first_map: None,
            maps_done: None,
            ended: None,
            took: HashMap::new(),
        }
    }

    /// Notes that `task` was handed out at `now`.
    pub fn assigned(&mut self, task: TaskId, now: Instant) {
        match task.kind {
            TaskKind::Map if self.first_map.is_none() => self.first_map = Some(now),
            TaskKind::Sample if self.first_sample.is_none() => self.first_sample = Some(now),
            _ => {}
        }
    }

    /// When live attempt `attempt` of `task` was handed out, if it is live; read it
    /// before recording the completion.
    pub fn running_since(tasks: &TaskTable, task: TaskId, attempt: Attempt) -> Option<Instant> {
        tasks.task(task)?.state.run_of(attempt).map(|r| r.since)
    }

    /// Notes that `task`, handed out at `since`, was accepted as done at `now`.
    pub fn completed(&mut self, task: TaskId, since: Option<Instant>, now: Instant) {
        if let Some(since) = since {
            self.took.insert(task, now.saturating_duration_since(since));
        }
    }

    /// Records the phase ends that `tasks` has reached by `now`.
    pub fn observe(&mut self, tasks: &TaskTable, now: Instant) {
        if self.sampled.is_none() && tasks.chosen().is_some() {
            self.sampled = Some(now);
        }
        if self.maps_done.is_none() && tasks.maps_done() {
            self.maps_done = Some(now);
        }
        if self.ended.is_none() && (tasks.is_done() || tasks.failure().is_some()) {
            self.ended = Some(now);
        }
    }

    /// Time since the start, frozen at the end.
    pub fn elapsed(&self, now: Instant) -> Duration {
        self.ended
            .unwrap_or(now)
            .saturating_duration_since(self.started)
    }

    /// Wall time of the map phase: first map handed out to all maps done (or `now`).
    pub fn map_wall(&self, now: Instant) -> Duration {
        match self.first_map {
            Some(start) => self
                .maps_done
                .or(self.ended)
                .unwrap_or(now)
                .saturating_duration_since(start),
            None => Duration::ZERO,
        }
    }

    /// Wall time of sampling: first sample handed out to the split points chosen (or
    /// `now`); zero for a job that does not sample.
    pub fn sample_wall(&self, now: Instant) -> Duration {
        match self.first_sample {
            Some(start) => self
                .sampled
                .or(self.ended)
                .unwrap_or(now)
                .saturating_duration_since(start),
            None => Duration::ZERO,
        }
    }

    /// Wall time of the reduce phase: all maps done to the end (or `now`).
    pub fn reduce_wall(&self, now: Instant) -> Duration {
        match self.maps_done {
            Some(start) => self.ended.unwrap_or(now).saturating_duration_since(start),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr::ids::WorkerId;
    use mr::task::{Location, Split, TaskResult, TaskStats};

    #[test]
    fn phases_are_timed_from_first_map_to_maps_done_to_end() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let split = Split {
            path: "in".into(),
            offset: 0,
            len: 1,
        };
        let mut tasks = TaskTable::new(vec![split], 1, "out".into(), Duration::from_secs(10), 4);
        let mut tl = Timeline::new(t0);
        let w = WorkerId::first_run(1);
        let a = tasks.assign(w, s(1)).unwrap();
        tl.assigned(a.task, s(1));
        let since = Timeline::running_since(&tasks, a.task, a.attempt);
        assert_eq!(since, Some(s(1)));
        let output = mr::task::MapOutputs::Dir("".into());
        let stats = TaskStats::default();
        tasks
            .complete(
                w,
                a.task,
                a.attempt,
                TaskResult::Map {
                    output,
                    stats: stats.clone(),
                },
                t0,
            )
            .unwrap();
        tl.completed(a.task, since, s(3));
        tl.observe(&tasks, s(3));
        assert_eq!(tl.took[&a.task], Duration::from_secs(2));
        assert_eq!(tl.map_wall(s(9)), Duration::from_secs(2));
        assert_eq!(tl.reduce_wall(s(4)), Duration::from_secs(1), "running");
        assert_eq!(tl.ended, None);
        let r = tasks.assign(w, s(4)).unwrap();
        tl.assigned(r.task, s(4));
        let output = Location::Path("mr-out-0".into());
        tasks
            .complete(
                w,
                r.task,
                r.attempt,
                TaskResult::Reduce { output, stats },
                t0,
            )
            .unwrap();
        tl.observe(&tasks, s(7));
        assert_eq!(tl.first_map, Some(s(1)), "a reduce is not a map");
        assert_eq!(tl.reduce_wall(s(99)), Duration::from_secs(4));
        assert_eq!(
            tl.elapsed(s(99)),
            Duration::from_secs(7),
            "frozen at the end"
        );
    }
}
