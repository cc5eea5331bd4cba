//! A snapshot of a running job for people: the counts the progress display shows, and the
//! per-worker detail and one page of the per-task detail that the status page serves as
//! `/api/status` JSON.

use crate::job::Job;
use crate::task::{Task, TaskState};
use crate::views::listing::{StateCounts, StateFilter, TaskQuery};
use crate::views::report::CountersReport;
use mr::ids::TaskKind;
use mr::rpc::JobEnd;
use serde::Serialize;
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

/// Where the page stands in the task list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageInfo {
    /// This page, from 0.
    pub page: u32,
    /// Tasks per page.
    pub per_page: u32,
    /// Pages of tasks that match the filters (at least 1).
    pub pages: u32,
    /// Tasks that match the filters.
    pub matched: u32,
    /// Tasks in all.
    pub total: u32,
    /// The filters: kind (`sample`, `map`, `reduce`), state, worker; null when unset.
    pub kind: Option<&'static str>,
    /// The state filter (`idle`, `running`, `done`, `failed`).
    pub state: Option<&'static str>,
    /// The worker filter.
    pub worker: Option<String>,
}

/// Everything the status page shows: the job's summary, and one page of its tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The headline numbers.
    pub counts: Counts,
    /// One page of the tasks that match the query, in list order: samples (range
    /// partitioning) first, then maps, then reduces.
    pub tasks: Vec<TaskStatus>,
    /// Which page, and how many tasks match.
    pub page: PageInfo,
    /// Tasks in each state, of the kind asked for (all kinds when none is).
    pub task_states: StateCounts,
    /// Every worker that registered, by id.
    pub workers: Vec<WorkerStatus>,
    /// The app's counters and the framework's, so far.
    pub counters: CountersReport,
    /// The attempt log's latest change: the timeline (`/api/timeline?since=N`) has
    /// something new when this moves past what the page has read.
    pub timeline_seq: u64,
}

impl Status {
    /// The status of `job` at `now`, with the page of tasks `query` asks for. O(page ×
    /// log n + workers × log n) in M: the counts are kept, the page is read from the
    /// listing, and only its tasks are looked at.
    pub fn of(job: &Job, now: Instant, query: &TaskQuery) -> Status {
        let page = job.listing.page(query);
        let tasks = page
            .tasks
            .iter()
            .filter_map(|id| job.tasks.task(*id))
            .map(|t| TaskStatus::of(job, t, now))
            .collect();
        let per_page = query.per_page.clamp(1, TaskQuery::MAX_PER_PAGE);
        let workers = job
            .workers
            .iter()
            .map(|(id, w)| WorkerStatus {
                id: id.to_string(),
                host: w.info.host.clone(),
                pid: w.info.pid,
                heartbeat_age_secs: now.saturating_duration_since(w.last_seen).as_secs_f64(),
                alive: !w.lost,
                current_task: job.tasks.running_on(*id).next().map(|t| t.to_string()),
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
            page: PageInfo {
                page: query.page,
                per_page,
                pages: page.matched.div_ceil(per_page).max(1),
                matched: page.matched,
                total: job.listing.total(),
                kind: query.kind.map(kind_word),
                state: state_filter_word(query.state),
                worker: query.worker.map(|w| w.to_string()),
            },
            task_states: job.listing.counts(query.kind),
            workers,
            counters: CountersReport::of(job.tasks.totals()),
            timeline_seq: job.attempts.seq(),
        }
    }
}

impl TaskStatus {
    /// Task `t` of `job` at `now`.
    fn of(job: &Job, t: &Task, now: Instant) -> TaskStatus {
        let mut backup_worker = None;
        let (state, attempt, worker, elapsed) = match &t.state {
            TaskState::Idle => ("idle", t.attempts, None, None),
            TaskState::InProgress { run, backup } => {
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
    }
}

/// A kind of task as the query and the page name it.
pub fn kind_word(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Sample => "sample",
        TaskKind::Map => "map",
        TaskKind::Reduce => "reduce",
    }
}

fn state_filter_word(state: StateFilter) -> Option<&'static str> {
    match state {
        StateFilter::Any => None,
        StateFilter::Idle => Some("idle"),
        StateFilter::Running => Some("running"),
        StateFilter::Done => Some("done"),
        StateFilter::Failed => Some("failed"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::task::TaskTable;
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
        // Through the core's calls, as the service makes them, so that every view
        // kept beside it (timeline, attempts, listing) follows.
        let w1 = job.register(info(11), t0).reply;
        let w2 = job.register(info(22), t0).reply;
        let task = |reply| match reply {
            mr::rpc::TaskReply::Task(a) => a,
            other => panic!("no task: {other:?}"),
        };
        let a = task(job.poll(w1, s(1)).reply);
        let _b = task(job.poll(w2, s(1)).reply);
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
        let accepted = job.report(w1, a.task, a.attempt, Ok(result), s(3)).reply;
        assert_eq!(accepted, mr::rpc::ReportReply::Accepted);
        job.workers.touch(w2, s(4));
        job.audit_views().unwrap();
        (job, s(4))
    }

    #[test]
    fn status_shows_every_task_and_worker() {
        let (job, now) = sample_job();
        let st = Status::of(&job, now, &TaskQuery::default());
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
        let v = serde_json::to_value(Status::of(&job, now, &TaskQuery::default())).unwrap();
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

    #[test]
    fn a_page_of_a_filtered_list_says_how_many_match() {
        let (job, now) = sample_job();
        let q = TaskQuery::parse("state=running").unwrap();
        let st = Status::of(&job, now, &q);
        let ids: Vec<_> = st.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["map-1"]);
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(
            v["page"],
            serde_json::json!({"page": 0, "per_page": 100, "pages": 1, "matched": 1,
                "total": 3, "kind": null, "state": "running", "worker": null})
        );
        assert_eq!(
            v["task_states"],
            serde_json::json!({"idle": 1, "running": 1, "done": 1, "failed": 0})
        );
        assert_eq!(v["timeline_seq"], 3, "two starts and an end");
        let q = TaskQuery::parse("kind=map&worker=w1&per_page=1&page=0").unwrap();
        let st = Status::of(&job, now, &q);
        assert_eq!(st.tasks.len(), 1);
        assert_eq!((st.tasks[0].id.as_str(), st.page.matched), ("map-0", 1));
        let q = TaskQuery::parse("kind=map&per_page=1&page=1").unwrap();
        let st = Status::of(&job, now, &q);
        assert_eq!((st.tasks[0].id.as_str(), st.page.pages), ("map-1", 2));
        assert_eq!(st.task_states.idle, 0, "both maps are under way");
    }
}
