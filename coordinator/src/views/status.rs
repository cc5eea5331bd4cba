//! A snapshot of a running job for people: the counts the progress display shows, and the
//! per-task and per-worker detail that the status page serves as `/api/status` JSON.

use crate::job::Job;
use crate::task::TaskState;
use crate::views::report::CountersReport;
use mr::ids::WorkerId;
use mr::rpc::JobEnd;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// The headline numbers of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Map tasks done.
    pub maps_done: usize,
    /// Map tasks in all (M).
    pub maps: usize,
    /// Reduce tasks done.
    pub reduces_done: usize,
    /// Reduce tasks in all (R).
    pub reduces: usize,
    /// Tasks being run right now.
    pub running: usize,
    /// Workers not declared lost.
    pub workers_alive: usize,
    /// Workers excluded for failing too many tasks.
    pub workers_excluded: usize,
    /// Workers that ever registered.
    pub workers: usize,
    /// Attempts taken back (timed out, or their worker was lost), over all tasks.
    pub reassignments: u64,
    /// Attempts that failed with an error, over all tasks.
    pub failures: u64,
    /// Input bytes read by the finished map tasks.
    pub bytes_read: u64,
    /// Map input read per second of the map phase so far.
    pub read_bytes_per_sec: f64,
    /// Seconds since the job started (frozen at its end).
    pub elapsed_secs: f64,
}

impl Counts {
    /// The counts of `job` at `now`.
    pub fn of(job: &Job, now: Instant) -> Counts {
        // O(1) in the tasks (kept counts, not a walk: the progress display takes one on
        // every change, under the job's lock), O(workers) for the workers.
        let tasks = &job.tasks;
        let totals = tasks.totals();
        let bytes_read = totals.map_bytes_read;
        let map_secs = job.timeline.map_wall(now).as_secs_f64();
        Counts {
            maps_done: tasks.maps_done_count(),
            maps: tasks.maps().len(),
            reduces_done: tasks.reduces_done_count(),
            reduces: tasks.reduces().len(),
            running: tasks.running_count(),
            workers_alive: job.workers.iter().filter(|(_, w)| !w.lost).count(),
            workers_excluded: job.workers.iter().filter(|(_, w)| w.excluded).count(),
            workers: job.workers.len(),
            reassignments: totals.reassignments,
            failures: totals.failures,
            bytes_read,
            read_bytes_per_sec: if map_secs > 0.0 {
                bytes_read as f64 / map_secs
            } else {
                0.0
            },
            elapsed_secs: job.timeline.elapsed(now).as_secs_f64(),
        }
    }
}

/// Where a job stands, as a word.
pub fn state_word(end: Option<JobEnd>) -> &'static str {
    match end {
        None => "running",
        Some(JobEnd::Succeeded) => "succeeded",
        Some(JobEnd::Failed) => "failed",
    }
}

/// One task, for the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    /// `map-3`, `reduce-0`.
    pub id: String,
    /// `idle`, `running` or `done`.
    pub state: &'static str,
    /// The current (or finishing) attempt; 0 before the first hand-out.
    pub attempt: u32,
    /// The worker running it, or the one that finished it.
    pub worker: Option<String>,
    /// The worker running a backup of it, if one runs.
    pub backup_worker: Option<String>,
    /// Seconds the current attempt has run, or the finished attempt took.
    pub elapsed_secs: Option<f64>,
    /// Attempts that failed with an error.
    pub failures: u32,
    /// Attempts taken back.
    pub reassignments: u32,
    /// What it reads.
    pub input: String,
}

/// One worker, for the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// `w1`.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it was last heard from.
    pub heartbeat_age_secs: f64,
    /// False once declared lost.
    pub alive: bool,
    /// The task it runs now.
    pub current_task: Option<String>,
    /// Tasks it finished.
    pub tasks_done: u64,
    /// Excluded from the job for failing too many tasks (see the registry).
    pub excluded: bool,
    /// Noted as slow: backups beat its attempts (see the registry); no backups start
    /// on it.
    pub slow: bool,
    /// Its attempts that backups beat.
    pub beaten: u32,
    /// Its failed attempts.
    pub failures: u64,
    /// Its last error.
    pub last_error: Option<String>,
}

/// Everything the status page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The headline numbers.
    pub counts: Counts,
    /// Every task: samples (range partitioning) first, then maps, then reduces.
    pub tasks: Vec<TaskStatus>,
    /// Every worker that registered, by id.
    pub workers: Vec<WorkerStatus>,
    /// The app's counters and the framework's, so far.
    pub counters: CountersReport,
}

impl Status {
    /// The status of `job` at `now`.
    pub fn of(job: &Job, now: Instant) -> Status {
        let tables = [job.tasks.samples(), job.tasks.maps(), job.tasks.reduces()];
        let all = tables.into_iter().flatten();
        let mut current: HashMap<WorkerId, String> = HashMap::new();
        let tasks = all
            .map(|t| {
                let mut backup_worker = None;
                let (state, attempt, worker, elapsed) = match &t.state {
                    TaskState::Idle => ("idle", t.attempts, None, None),
                    TaskState::InProgress { run, backup } => {
                        for r in t.state.runs() {
                            current.insert(r.worker, t.id.to_string());
                        }
                        backup_worker = backup.map(|b| b.worker.to_string());
                        let secs = now.saturating_duration_since(run.since).as_secs_f64();
                        ("running", run.attempt.0, Some(run.worker), Some(secs))
                    }
                    TaskState::Done {
                        worker, attempt, ..
                    } => {
                        let took = job.timeline.took.get(&t.id).map(|d| d.as_secs_f64());
                        ("done", attempt.0, Some(*worker), took)
                    }
                };
                TaskStatus {
                    id: t.id.to_string(),
                    state,
                    attempt,
                    worker: worker.map(|w| w.to_string()),
                    backup_worker,
                    elapsed_secs: elapsed,
                    failures: t.failures,
                    reassignments: t.reassignments,
                    input: job.tasks.describe_input(t.id),
                }
            })
            .collect();
        let workers = job
            .workers
            .iter()
            .map(|(id, w)| WorkerStatus {
                id: id.to_string(),
                host: w.info.host.clone(),
                pid: w.info.pid,
                heartbeat_age_secs: now.saturating_duration_since(w.last_seen).as_secs_f64(),
                alive: !w.lost,
                current_task: current.get(id).cloned(),
                tasks_done: w.tasks_done,
                excluded: w.excluded,
                slow: w.slow(),
                beaten: w.beaten,
                failures: w.failures,
                last_error: w.last_error.clone(),
            })
            .collect();
        Status {
            state: state_word(job.end()),
            failure: job.tasks.failure().map(|f| f.to_string()),
            counts: Counts::of(job, now),
            tasks,
            workers,
            counters: CountersReport::of(job.tasks.totals()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::task::TaskTable;
    use crate::views::timeline::Timeline;
    use mr::rpc::WorkerInfo;
    use mr::task::{TaskResult, TaskStats};
    use std::time::Duration;

    /// A job of 2 maps and 1 reduce with two workers: map-0 done by w1 after 2 s (100
    /// bytes read), map-1 running on w2 since second 1, and the clock at second 4.
    pub(crate) fn sample_job() -> (Job, Instant) {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut job = Job::new(
            TaskTable::new(
                crate::task::test_splits(2, 100),
                1,
                "out".into(),
                Duration::from_secs(10),
                4,
            ),
            Registry::new(Duration::from_secs(3)),
            false,
            t0,
        );
        let info = |pid| WorkerInfo {
            host: "box".into(),
            pid,
            data_addr: None,
        };
        let w1 = job.workers.register(info(11), t0);
        let w2 = job.workers.register(info(22), t0);
        let a = job.tasks.assign(w1, s(1)).unwrap();
        job.timeline.assigned(a.task, s(1));
        let b = job.tasks.assign(w2, s(1)).unwrap();
        job.timeline.assigned(b.task, s(1));
        let since = Timeline::running_since(&job.tasks, a.task, a.attempt);
        let result = TaskResult::Map {
            output: mr::task::MapOutputs::Dir("".into()),
            stats: TaskStats {
                bytes_read: 100,
                bytes_written: 40,
                records_in: 20,
                records_out: 5,
                ..TaskStats::default()
            },
        };
        job.tasks
            .complete(w1, a.task, a.attempt, result, t0)
            .unwrap();
        job.timeline.completed(a.task, since, s(3));
        job.timeline.observe(&job.tasks, s(3));
        job.workers.update(w1, |w| w.tasks_done += 1);
        job.workers.touch(w1, s(3));
        job.workers.touch(w2, s(4));
        (job, s(4))
    }

    #[test]
    fn status_shows_every_task_and_worker() {
        let (job, now) = sample_job();
        let st = Status::of(&job, now);
        assert_eq!(st.state, "running");
        assert_eq!(
            (
                st.counts.maps_done,
                st.counts.maps,
                st.counts.reduces_done,
                st.counts.reduces
            ),
            (1, 2, 0, 1)
        );
        assert_eq!((st.counts.running, st.counts.workers_alive), (1, 2));
        assert_eq!(st.counts.bytes_read, 100);
        assert_eq!(st.counts.read_bytes_per_sec, 100.0 / 3.0);
        assert_eq!(st.counts.elapsed_secs, 4.0);
        let ids: Vec<_> = st.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["map-0", "map-1", "reduce-0"]);
        let m0 = &st.tasks[0];
        assert_eq!(
            (m0.state, m0.attempt, m0.worker.as_deref()),
            ("done", 1, Some("w1"))
        );
        assert_eq!(m0.elapsed_secs, Some(2.0));
        let m1 = &st.tasks[1];
        assert_eq!((m1.state, m1.worker.as_deref()), ("running", Some("w2")));
        assert_eq!(m1.elapsed_secs, Some(3.0));
        assert_eq!(st.tasks[2].state, "idle");
        assert_eq!(st.tasks[2].attempt, 0);
        assert_eq!(st.workers.len(), 2);
        let (w1, w2) = (&st.workers[0], &st.workers[1]);
        assert_eq!((w1.id.as_str(), w1.pid, w1.tasks_done), ("w1", 11, 1));
        assert_eq!(w1.current_task, None);
        assert_eq!(w1.heartbeat_age_secs, 1.0);
        assert_eq!(w2.current_task.as_deref(), Some("map-1"));
        assert_eq!(w2.heartbeat_age_secs, 0.0);
    }

    #[test]
    fn status_json_has_the_fields_the_page_reads() {
        let (job, now) = sample_job();
        let v = serde_json::to_value(Status::of(&job, now)).unwrap();
        assert_eq!(v["state"], "running");
        assert_eq!(v["counts"]["maps_done"], 1);
        assert_eq!(v["counts"]["workers_alive"], 2);
        assert_eq!(v["tasks"][1]["id"], "map-1");
        assert_eq!(v["tasks"][1]["worker"], "w2");
        assert_eq!(v["tasks"][1]["input"], "in-1 [0..100]");
        assert_eq!(v["workers"][1]["current_task"], "map-1");
        assert_eq!(v["workers"][0]["host"], "box");
        assert!(v["failure"].is_null());
    }
}
