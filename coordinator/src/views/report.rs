//! The end-of-job report: per phase the wall time, tasks, attempts, reassigned and failed
//! tasks, bytes and records; the tasks that failed, with their errors; every attempt
//! (the timeline). Printed as a table on stderr, written as JSON on request, and as one
//! HTML file ([`crate::views::history`]) from that JSON.

use crate::effect::EventCounts;
use crate::job::Job;
use crate::task::{Task, TaskState, Totals};
use crate::views::attempts::AttemptRecord;
use crate::views::status::state_word;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// The numbers of one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseReport {
    /// Seconds from its first task handed out (maps) or from all maps done (reduces) to
    /// its last task done.
    pub wall_secs: f64,
    /// Tasks in the phase.
    pub tasks: usize,
    /// Tasks done.
    pub tasks_done: usize,
    /// Attempts handed out.
    pub attempts: u64,
    /// Tasks taken back at least once (timed out, or their worker was lost).
    pub reassigned_tasks: usize,
    /// Attempts taken back.
    pub reassignments: u64,
    /// Tasks with at least one failed attempt.
    pub failed_tasks: usize,
    /// Failed attempts.
    pub failures: u64,
    /// Bytes read by the successful attempts.
    pub bytes_read: u64,
    /// Bytes written by the successful attempts.
    pub bytes_written: u64,
    /// Records in (map: pairs emitted; reduce: intermediate records read).
    pub records_in: u64,
    /// Records out (map: records written after combining; reduce: output lines).
    pub records_out: u64,
    /// Bytes read per second of wall time.
    pub read_bytes_per_sec: f64,
}

impl PhaseReport {
    fn of(tasks: &[Task], wall: Duration) -> PhaseReport {
        let mut p = PhaseReport {
            wall_secs: wall.as_secs_f64(),
            tasks: tasks.len(),
            ..PhaseReport::default()
        };
        for t in tasks {
            p.tasks_done += usize::from(matches!(t.state, TaskState::Done { .. }));
            p.attempts += u64::from(t.attempts);
            p.reassigned_tasks += usize::from(t.reassignments > 0);
            p.reassignments += u64::from(t.reassignments);
            p.failed_tasks += usize::from(t.failures > 0);
            p.failures += u64::from(t.failures);
            p.bytes_read += t.stats.bytes_read;
            p.bytes_written += t.stats.bytes_written;
            p.records_in += t.stats.records_in;
            p.records_out += t.stats.records_out;
        }
        if p.wall_secs > 0.0 {
            p.read_bytes_per_sec = p.bytes_read as f64 / p.wall_secs;
        }
        p
    }
}

/// A worker excluded from the job, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExcludedWorker {
    /// `w2`.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its failed attempts.
    pub failures: u64,
    /// Its last error.
    pub last_error: Option<String>,
}

/// What backup attempts did (speculative execution), and which workers were slow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeculationReport {
    /// Whether backups could start (off with `--no-speculation`).
    pub enabled: bool,
    /// Backups started, won (they finished their task) and wasted (beaten, failed or
    /// taken back).
    #[serde(flatten)]
    pub counts: crate::speculate::SpeculationStats,
    /// Workers noted as slow: backups beat their attempts. No backup starts on them.
    pub slow_workers: Vec<SlowWorker>,
}

/// A worker whose attempts backups beat, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowWorker {
    /// `w2`.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its attempts that backups beat.
    pub beaten: u32,
    /// Tasks it finished.
    pub tasks_done: u64,
}

/// How a job went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `succeeded`, `failed` (or `running` for a report taken early).
    pub state: &'static str,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Seconds from the coordinator's start to the end.
    pub elapsed_secs: f64,
    /// Workers that registered.
    pub workers: usize,
    /// Workers excluded for failing too many tasks.
    pub excluded_workers: Vec<ExcludedWorker>,
    /// The map phase.
    pub map: PhaseReport,
    /// The reduce phase.
    pub reduce: PhaseReport,
    /// What happened, counted by kind (refused reports, revocations, lost workers, maps
    /// run again, …).
    pub events: EventCounts,
    /// How keys were partitioned, and how evenly.
    pub partitioning: PartitioningReport,
    /// Backup attempts, and slow workers.
    pub speculation: SpeculationReport,
    /// The app's counters and the framework's.
    pub counters: CountersReport,
    /// The tasks that failed an attempt, with their last error.
    pub errors: ErrorsReport,
    /// Every attempt of every task: the job's timeline (last: the bulk of a big job's
    /// report).
    pub timeline: TimelineReport,
}

/// A job's counters, summed over the attempts whose output stands (a re-run, a backup
/// or a revoked attempt never counts twice): the app's own (`mrapp::count`) and the
/// framework's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersReport {
    /// The app's, by name.
    pub app: BTreeMap<String, u64>,
    /// The framework's, by name (every one, zeros too).
    pub framework: BTreeMap<&'static str, u64>,
}

impl CountersReport {
    /// The counters kept in `totals` (O(counters)).
    pub fn of(totals: &Totals) -> Self {
        CountersReport {
            app: totals.app.0.clone(),
            framework: totals.framework.named().collect(),
        }
    }
}

/// The tasks that failed, for the report: the first [`ERRORS_SHOWN`] in task order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorsReport {
    /// Each with its last error.
    pub tasks: Vec<TaskError>,
    /// Tasks with errors beyond those listed.
    pub omitted: usize,
}

/// Tasks with errors listed in a report, at most: a job where every task fails says
/// so in its first hundred.
pub const ERRORS_SHOWN: usize = 100;

/// A task that failed an attempt (or whose output was lost), for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskError {
    /// `map-3`.
    pub task: String,
    /// What it reads.
    pub input: String,
    /// Failures held against it (a machine's fault is not).
    pub failures: u32,
    /// Its last error.
    pub last_error: String,
}

/// When the job's phases began and ended, in seconds since the job started (null for
/// what did not happen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PhaseTimes {
    /// The first sample task handed out (range partitioning).
    pub first_sample: Option<f64>,
    /// The split points chosen (range partitioning).
    pub sampled: Option<f64>,
    /// The first map handed out.
    pub first_map: Option<f64>,
    /// Every map done.
    pub maps_done: Option<f64>,
    /// The end of the job.
    pub ended: Option<f64>,
}

/// A worker as the timeline labels its row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineWorker {
    /// `w2`.
    pub id: String,
    /// Its host.
    pub host: String,
}

/// The job's timeline: every attempt, on its worker's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimelineReport {
    /// When the phases began and ended.
    pub phases: PhaseTimes,
    /// The workers, one row each.
    pub workers: Vec<TimelineWorker>,
    /// Every attempt in the order they were handed out: task, attempt, worker, start
    /// and end (seconds since the job started; end null while running), outcome
    /// (`done`, `running`, `failed`, `revoked`, `lost`, `refused`, `beaten`), and the
    /// failure's kind and `backup` when they apply.
    pub attempts: Vec<AttemptRecord>,
}

impl TimelineReport {
    fn of(job: &Job) -> TimelineReport {
        let tl = &job.timeline;
        let at =
            |t: Option<Instant>| t.map(|t| t.saturating_duration_since(tl.started).as_secs_f64());
        TimelineReport {
            phases: PhaseTimes {
                first_sample: at(tl.first_sample),
                sampled: at(tl.sampled),
                first_map: at(tl.first_map),
                maps_done: at(tl.maps_done),
                ended: at(tl.ended),
            },
            workers: job
                .workers
                .iter()
                .map(|(id, w)| TimelineWorker {
                    id: id.to_string(),
                    host: w.info.host.clone(),
                })
                .collect(),
            attempts: job.attempts.records().to_vec(),
        }
    }
}

impl ErrorsReport {
    fn of(job: &Job) -> ErrorsReport {
        let t = &job.tasks;
        let failed = t
            .samples()
            .iter()
            .chain(t.maps())
            .chain(t.reduces())
            .filter_map(|task| Some((task, task.last_error.as_ref()?)));
        let mut errors = ErrorsReport::default();
        for (task, error) in failed {
            if errors.tasks.len() == ERRORS_SHOWN {
                errors.omitted += 1;
                continue;
            }
            errors.tasks.push(TaskError {
                task: task.id.to_string(),
                input: t.describe_input(task.id),
                failures: task.failures,
                last_error: error.clone(),
            });
        }
        errors
    }
}

/// How a job partitioned its keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PartitioningReport {
    /// `hash` or `range`.
    pub mode: String,
    /// The sampling step of a range-partitioned job.
    pub sample: Option<PhaseReport>,
    /// Keys sampled.
    pub sampled_keys: u64,
    /// Split points chosen (R-1, or fewer when the keys are fewer).
    pub split_points: usize,
    /// Keys that alone held more than a mean partition's share of the sample: each has
    /// a partition to itself, which is larger than the others.
    pub heavy_keys: Vec<HeavyKeyReport>,
    /// Records read by the largest reduce partition over the mean of all (1 is perfect
    /// balance), once reduces have run.
    pub largest_over_mean: Option<f64>,
}

/// A heavy key, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeavyKeyReport {
    /// The key (lossily as UTF-8).
    pub key: String,
    /// Its share of the sample.
    pub share: f64,
    /// Its partition.
    pub partition: u32,
}

impl PartitioningReport {
    fn of(job: &Job, now: Instant) -> PartitioningReport {
        let tasks = &job.tasks;
        let reduces = tasks.reduces();
        let done: Vec<u64> = reduces
            .iter()
            .filter(|t| t.is_done())
            .map(|t| t.stats.records_in)
            .collect();
        let largest_over_mean = (done.len() == reduces.len() && !done.is_empty()).then(|| {
            let mean = done.iter().sum::<u64>() as f64 / done.len() as f64;
            let largest = done.iter().copied().max().unwrap_or(0) as f64;
            if mean > 0.0 {
                largest / mean
            } else {
                1.0
            }
        });
        let chosen = tasks.chosen();
        PartitioningReport {
            mode: tasks.mode().to_string(),
            sample: (!tasks.samples().is_empty())
                .then(|| PhaseReport::of(tasks.samples(), job.timeline.sample_wall(now))),
            sampled_keys: chosen.map_or(0, |c| c.sampled),
            split_points: chosen.map_or(0, |c| c.points.points().len()),
            heavy_keys: chosen
                .map(|c| {
                    c.heavy
                        .iter()
                        .map(|h| HeavyKeyReport {
                            key: String::from_utf8_lossy(&h.key).into_owned(),
                            share: h.share,
                            partition: h.partition,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            largest_over_mean,
        }
    }
}

impl Report {
    /// The report of `job` at `now`, with the `events` counted so far.
    pub fn of(job: &Job, events: EventCounts, now: Instant) -> Report {
        let tl = &job.timeline;
        Report {
            state: state_word(job.end()),
            failure: job.tasks.failure().map(|f| f.to_string()),
            elapsed_secs: tl.elapsed(now).as_secs_f64(),
            workers: job.workers.iter().count(),
            excluded_workers: job
                .workers
                .iter()
                .filter(|(_, w)| w.excluded)
                .map(|(id, w)| ExcludedWorker {
                    id: id.to_string(),
                    host: w.info.host.clone(),
                    failures: w.failures,
                    last_error: w.last_error.clone(),
                })
                .collect(),
            map: PhaseReport::of(job.tasks.maps(), tl.map_wall(now)),
            reduce: PhaseReport::of(job.tasks.reduces(), tl.reduce_wall(now)),
            events,
            partitioning: PartitioningReport::of(job, now),
            speculation: SpeculationReport {
                enabled: job.tasks.speculation().is_some(),
                counts: job.tasks.speculated(),
                slow_workers: job
                    .workers
                    .iter()
                    .filter(|(_, w)| w.slow())
                    .map(|(id, w)| SlowWorker {
                        id: id.to_string(),
                        host: w.info.host.clone(),
                        beaten: w.beaten,
                        tasks_done: w.tasks_done,
                    })
                    .collect(),
            },
            counters: CountersReport::of(job.tasks.totals()),
            errors: ErrorsReport::of(job),
            timeline: TimelineReport::of(job),
        }
    }

    /// The report as JSON: pretty, but each attempt of the timeline (and any other
    /// value nested as deep) on one line, so that a job of 200,000 tasks gives a file
    /// of 200,000 lines rather than two million. It ends with a newline.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        // Into memory, with plain numbers and strings only: this cannot fail.
        if self.write_json(&mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the report as [`Report::to_json`] does, and a newline, to `w` as it goes
    /// (no copy of a big job's report in memory).
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        let mut ser = serde_json::Serializer::with_formatter(w, Shallow::new(3));
        self.serialize(&mut ser).map_err(std::io::Error::other)?;
        ser.into_inner().write_all(b"\n")
    }
}

/// A JSON formatter that is pretty down to `depth` levels of nesting and writes every
/// value nested deeper on one line (`{"a": 1, "b": 2}`).
struct Shallow {
    depth: usize,
    level: usize,
    has_value: bool,
}

impl Shallow {
    fn new(depth: usize) -> Shallow {
        Shallow {
            depth,
            level: 0,
            has_value: false,
        }
    }

    fn open<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value && self.level < self.depth {
            self.newline(w)?;
        }
        w.write_all(c)
    }

    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.level {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn item<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        if self.level <= self.depth {
            if !first {
                w.write_all(b",")?;
            }
            self.newline(w)
        } else if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

impl serde_json::ser::Formatter for Shallow {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `23.0 MiB`.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job {} in {:.2}s with {} worker{}",
            self.state,
            self.elapsed_secs,
            self.workers,
            if self.workers == 1 { "" } else { "s" }
        )?;
        if let Some(why) = &self.failure {
            writeln!(f, "  failure: {why}")?;
        }
        for w in &self.excluded_workers {
            writeln!(
                f,
                "  excluded worker {} on {} after {} failures, last error: {}",
                w.id,
                w.host,
                w.failures,
                w.last_error.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(
            f,
            "  {:<6} {:>8} {:>9} {:>8} {:>10} {:>6} {:>10} {:>10} {:>11} {:>11}",
            "phase",
            "wall",
            "tasks",
            "attempts",
            "reassigned",
            "failed",
            "read",
            "written",
            "records in",
            "records out"
        )?;
        let sample = self.partitioning.sample.as_ref().map(|p| ("sample", p));
        let phases = [("map", &self.map), ("reduce", &self.reduce)];
        for (name, p) in sample.into_iter().chain(phases) {
            writeln!(
                f,
                "  {:<6} {:>7.2}s {:>9} {:>8} {:>10} {:>6} {:>10} {:>10} {:>11} {:>11}",
                name,
                p.wall_secs,
                format!("{}/{}", p.tasks_done, p.tasks),
                p.attempts,
                p.reassigned_tasks,
                p.failed_tasks,
                human_bytes(p.bytes_read as f64),
                human_bytes(p.bytes_written as f64),
                p.records_in,
                p.records_out
            )?;
        }
        let part = &self.partitioning;
        if part.mode == "range" {
            write!(
                f,
                "  range partitioning: {} split points from {} sampled keys",
                part.split_points, part.sampled_keys
            )?;
            if let Some(r) = part.largest_over_mean {
                write!(f, "; largest partition {r:.2}x the mean")?;
            }
            writeln!(f)?;
            for h in &part.heavy_keys {
                writeln!(
                    f,
                    "  heavy key {:?}: {:.1}% of the sample, alone in partition {}",
                    h.key,
                    h.share * 100.0,
                    h.partition
                )?;
            }
        }
        let sp = &self.speculation;
        if sp.counts.started > 0 {
            writeln!(
                f,
                "  backups: {} started, {} won, {} wasted",
                sp.counts.started, sp.counts.won, sp.counts.wasted
            )?;
        }
        for w in &sp.slow_workers {
            writeln!(
                f,
                "  slow worker {} on {}: backups beat {} of its attempts (it finished {} tasks)",
                w.id, w.host, w.beaten, w.tasks_done
            )?;
        }
        for (name, n) in &self.counters.app {
            writeln!(f, "  counter {name:?}: {n}")?;
        }
        for (name, n) in &self.counters.framework {
            if *n > 0 && matches!(*name, "map spills" | "fetch retries") {
                writeln!(f, "  {name}: {n}")?;
            }
        }
        write!(
            f,
            "  map input throughput: {}/s",
            human_bytes(self.map.read_bytes_per_sec)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::status::tests::sample_job;

    #[test]
    fn the_json_is_pretty_down_to_the_attempts_which_take_a_line_each() {
        let (job, now) = sample_job();
        let r = Report::of(&job, EventCounts::default(), now);
        let json = r.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::to_value(&r).unwrap(),
            "the same JSON as serde's"
        );
        assert!(json.starts_with("{\n  \"state\": \"running\",\n"), "{json}");
        assert!(
            json.contains("\n      {\"task\": \"map-0\", \"attempt\": 1, \"worker\": \"w1\", \"start\": 1.0, \"end\": 3.0, \"outcome\": \"done\"},\n"),
            "{json}"
        );
        assert!(json.contains("\"excluded_workers\": [],"), "{json}");
        let tl = &v["timeline"];
        assert_eq!(tl["phases"]["first_map"], 1.0);
        assert!(tl["phases"]["maps_done"].is_null());
        assert_eq!(
            tl["workers"][1],
            serde_json::json!({"id": "w2", "host": "box"})
        );
        assert_eq!(tl["attempts"][1]["outcome"], "running");
        assert_eq!(v["errors"], serde_json::json!({"tasks": [], "omitted": 0}));
    }

    #[test]
    fn report_sums_each_phase() {
        let (job, now) = sample_job();
        let r = Report::of(&job, EventCounts::default(), now);
        assert_eq!(r.state, "running");
        assert_eq!(r.workers, 2);
        assert_eq!(r.elapsed_secs, 4.0);
        let m = &r.map;
        assert_eq!((m.tasks, m.tasks_done, m.attempts), (2, 1, 2));
        assert_eq!(m.wall_secs, 3.0, "first map at 1 s, still running at 4 s");
        assert_eq!((m.bytes_read, m.bytes_written), (100, 40));
        assert_eq!((m.records_in, m.records_out), (20, 5));
        assert_eq!((m.reassigned_tasks, m.failed_tasks), (0, 0));
        assert_eq!(r.reduce.wall_secs, 0.0, "no reduce phase yet");
        assert_eq!(r.reduce.tasks, 1);
    }

    #[test]
    fn report_renders_as_json_and_as_a_table() {
        let (job, now) = sample_job();
        let r = Report::of(&job, EventCounts::default(), now);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["map"]["bytes_read"], 100);
        assert_eq!(v["reduce"]["tasks"], 1);
        assert_eq!(v["state"], "running");
        let text = r.to_string();
        assert!(
            text.starts_with("job running in 4.00s with 2 workers\n"),
            "{text}"
        );
        assert!(
            text.contains("map       3.00s       1/2        2"),
            "{text}"
        );
        assert!(text.contains("100 B"), "{text}");
    }

    #[test]
    fn bytes_read_for_people() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(23.0 * 1024.0 * 1024.0), "23.0 MiB");
    }
}
