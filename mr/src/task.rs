//! The task model as it travels between coordinator and worker: what a map task reads
//! (an input [`Split`]), where a task's files live ([`Location`]), what a worker is
//! asked to do ([`Assignment`]) and what it reports back ([`TaskResult`], [`TaskFailure`]).

use crate::ids::{Attempt, TaskId};
use crate::partition::Partitioning;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A byte range of one input file. The reader of a split owns every line that *starts*
/// inside `[offset, offset + len)`; see [`crate::split`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Split {
    /// The input file, as given on the coordinator's command line (map sees this name).
    pub path: PathBuf,
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}..{}]",
            self.path.display(),
            self.offset,
            self.offset + self.len
        )
    }
}

/// Where a file produced by a task lives. Data in the protocol rather than a naming
/// convention, so that files need not share one directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Location {
    /// A path the readers can open: on a filesystem shared with them, or, for a reduce
    /// output stored by the coordinator, on the coordinator's machine.
    Path(PathBuf),
    /// A file kept by the worker that wrote it, fetched from its data server
    /// ([`crate::data`]).
    Remote {
        /// The worker's data server, `HOST:PORT`.
        server: String,
        /// The file's name there (`mr-X-Y`).
        name: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Remote { server, name } => write!(f, "{name} on {server}"),
        }
    }
}

/// Name of map task X's output for partition Y: the one place it is spelled.
pub fn intermediate_name(map: u32, partition: u32) -> String {
    format!("mr-{map}-{partition}")
}

/// Name of map task X's packed output, every partition in one file (see
/// [`crate::packed`]): the one place it is spelled.
pub fn packed_name(map: u32) -> String {
    format!("mr-{map}.data")
}

/// Name of partition Y's final output, `mr-out-Y`: the one place it is spelled.
pub fn output_name(partition: u32) -> String {
    format!("mr-out-{partition}")
}

/// Where a finished map's output lives: `mr-X-Y` for every partition Y, all in one
/// place, so one value per map (not one location per partition: at R = 5,000 that is
/// what keeps reports, the journal and the coordinator's table small).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MapOutputs {
    /// In this directory, which the readers share.
    Dir(PathBuf),
    /// On the data server of the worker that wrote them, `HOST:PORT`.
    Server(String),
}

impl MapOutputs {
    /// Where map `map`'s output for `partition` is.
    pub fn location(&self, map: u32, partition: u32) -> Location {
        let name = intermediate_name(map, partition);
        match self {
            MapOutputs::Dir(d) => Location::Path(d.join(name)),
            MapOutputs::Server(server) => Location::Remote {
                server: server.clone(),
                name,
            },
        }
    }

    /// Whether it lives on the disk of the worker that wrote it (and is lost with it).
    pub fn on_workers_disk(&self) -> bool {
        matches!(self, MapOutputs::Server(_))
    }
}

/// How a map task gets its split's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SplitSource {
    /// Read the input path directly (the worker shares the coordinator's filesystem).
    #[default]
    Path,
    /// Stream them from the coordinator's data plane.
    Coordinator,
}

/// Where a reduce task puts `mr-out-Y`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputTarget {
    /// Into this directory, shared with the coordinator.
    Dir(PathBuf),
    /// Streamed to the coordinator, which stores it in its output directory.
    Coordinator,
}

/// One map task's output for one partition, as a reduce task needs to find it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapOutput {
    /// The map task X that wrote `mr-X-Y`.
    pub map: u32,
    /// The attempt of map X that wrote it: with a shared directory a re-run writes the
    /// same path, so only the attempt tells a report about the old file from one about
    /// the new.
    pub attempt: Attempt,
    /// Where it is.
    pub location: Location,
}

impl MapOutput {
    /// This output, reported unusable.
    pub fn lost(&self, cause: LossCause, error: impl Into<String>) -> TaskFailure {
        TaskFailure::LostMapOutput {
            map: self.map,
            attempt: self.attempt,
            location: self.location.clone(),
            cause,
            error: error.into(),
        }
    }
}

/// Where every map's output is, as a reduce task learns it: for each place (a shared
/// directory, or a worker's data server), runs of consecutive maps written there by
/// one attempt number. It does not depend on the partition (each reduce derives its
/// own `mr-X-Y`), so the coordinator builds it once for all R reduces, and it stays
/// small whatever M is: one run for a whole shared directory, and a few numbers per
/// map at worst, where a list of every map's location was about 85 bytes of JSON each
/// (over the 16 MiB frame limit at M = 200,000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapInputs {
    /// Each place with its runs, in the order places first appear.
    pub places: Vec<(MapOutputs, Vec<MapRun>)>,
    /// Maps in all.
    pub maps: u32,
}

/// Maps `first .. first + len`, all written by attempt `attempt`; a tuple on the wire
/// (`[first, len, attempt]`), to keep it short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapRun(pub u32, pub u32, pub Attempt);

impl MapInputs {
    /// Builds them from every map's (index, attempt, place), in map order.
    pub fn build<'a>(maps: impl IntoIterator<Item = (u32, Attempt, &'a MapOutputs)>) -> Self {
        let mut out = MapInputs::default();
        let mut index: std::collections::HashMap<&'a MapOutputs, usize> = Default::default();
        for (m, attempt, place) in maps {
            out.maps += 1;
            let i = *index.entry(place).or_insert_with(|| {
                out.places.push((place.clone(), Vec::new()));
                out.places.len() - 1
            });
            let runs = &mut out.places[i].1;
            match runs.last_mut() {
                Some(MapRun(first, len, a)) if *a == attempt && *first + *len == m => *len += 1,
                _ => runs.push(MapRun(m, 1, attempt)),
            }
        }
        out
    }

    /// Partition `y` of every map's output, in map order: what the reduce of `y` reads.
    pub fn for_partition(&self, y: u32) -> Vec<MapOutput> {
        let mut v = Vec::with_capacity(self.maps as usize);
        for (place, runs) in &self.places {
            for MapRun(first, len, attempt) in runs {
                for m in *first..*first + *len {
                    v.push(MapOutput {
                        map: m,
                        attempt: *attempt,
                        location: place.location(m, y),
                    });
                }
            }
        }
        v.sort_unstable_by_key(|o| o.map);
        v
    }
}

/// Why a reduce could not use a map output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LossCause {
    /// It is not there: its server has no such file, or the shared directory has none.
    Missing,
    /// It was read and is damaged (a bad checksum, cut short, unreadable).
    Corrupt,
    /// Its server could not be reached, or the transfer broke off: the output may be
    /// whole and the reducer's own network at fault, so one reducer's word is not
    /// enough to run the map again while its worker is alive.
    Unreachable,
}

/// The work itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskSpec {
    /// Map one split into `n_reduce` partitions written as `mr-X-Y`.
    Map {
        /// The input.
        split: Split,
        /// How to read it.
        source: SplitSource,
        /// R, the number of reduce partitions.
        n_reduce: u32,
        /// How keys are assigned to the partitions.
        partitioning: Partitioning,
    },
    /// Run map over `pieces` (small ranges spread over the input) and report a uniform
    /// sample of at most `max_keys` of the keys it emits.
    Sample {
        /// The pieces of input.
        pieces: Vec<Split>,
        /// How to read them.
        source: SplitSource,
        /// The most keys to report.
        max_keys: u32,
    },
    /// Merge partition Y of every map output and write `mr-out-Y`.
    Reduce {
        /// Where every map's output is (shared by all the reduces of the job).
        inputs: std::sync::Arc<MapInputs>,
        /// Where the final output goes.
        output: OutputTarget,
    },
}

/// A task handed to a worker: which task, which attempt, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The task.
    pub task: TaskId,
    /// The attempt; the report must carry it back.
    pub attempt: Attempt,
    /// The work.
    pub spec: TaskSpec,
}

/// An app's named counters (`mrapp::count`), as one attempt reports them. Sorted by
/// name, so that reports and journals list them in one order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// Adds `delta` to `name`, unless that would make more than `max` names; returns
    /// whether it was added.
    pub fn add_within(&mut self, name: &str, delta: u64, max: usize) -> bool {
        if let Some(n) = self.0.get_mut(name) {
            *n = n.saturating_add(delta);
            true
        } else if self.0.len() < max {
            self.0.insert(name.to_string(), delta);
            true
        } else {
            false
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counters) {
        for (name, &n) in &other.0 {
            // No zero is kept, so that a sum and the same sum taken apart compare equal.
            if n == 0 {
                continue;
            }
            match self.0.get_mut(name) {
                Some(c) => *c = c.saturating_add(n),
                None => {
                    self.0.insert(name.clone(), n);
                }
            }
        }
    }

    /// Takes back every count of `other` (a done map reopened: its output, and so its
    /// counts, no longer stand). A count that reaches zero is removed.
    pub fn unmerge(&mut self, other: &Counters) {
        for (name, n) in &other.0 {
            if let Some(c) = self.0.get_mut(name) {
                *c = c.saturating_sub(*n);
                if *c == 0 {
                    self.0.remove(name);
                }
            }
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Counters a worker reports with a finished task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskStats {
    /// Input bytes read.
    pub bytes_read: u64,
    /// Output bytes written.
    pub bytes_written: u64,
    /// Records in (map: pairs emitted; reduce: intermediate records read).
    pub records_in: u64,
    /// Records out (map: records written after combining; reduce: output lines).
    pub records_out: u64,
    /// Sorted runs spilled to disk (map: its buffer passed the memory budget; reduce:
    /// runs of a merge in passes).
    pub spills: u64,
    /// Fetches of map output tried again after a failure (reduce, cluster mode).
    pub fetch_retries: u64,
    /// The app's own counters.
    #[serde(skip_serializing_if = "Counters::is_empty")]
    pub counters: Counters,
}

/// What a finished task produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskResult {
    /// A sample of the keys map emits.
    Sample {
        /// The keys, in no order.
        keys: Vec<Vec<u8>>,
        /// Counters (records in: keys emitted; out: keys kept).
        stats: TaskStats,
    },
    /// `mr-X-Y` for every partition Y.
    Map {
        /// Where they are.
        output: MapOutputs,
        /// Counters.
        stats: TaskStats,
    },
    /// The final output file.
    Reduce {
        /// `mr-out-Y`.
        output: Location,
        /// Counters.
        stats: TaskStats,
    },
}

/// What went wrong on a worker's own machine, classified from the OS error, so that
/// the coordinator can blame the machine rather than the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LocalFault {
    /// The disk (or a quota) is full.
    NoSpace,
    /// The file system is read-only.
    ReadOnly,
    /// Permission denied.
    Permission,
    /// The process or the system is out of file descriptors.
    TooManyFiles,
    /// Out of memory.
    NoMemory,
    /// Any other I/O error (a bad disk, say).
    Io,
}

impl LocalFault {
    /// Classifies an OS error.
    pub fn of(e: &std::io::Error) -> LocalFault {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => LocalFault::NoSpace,
            Some(libc::EROFS) => LocalFault::ReadOnly,
            Some(libc::EACCES | libc::EPERM) => LocalFault::Permission,
            Some(libc::EMFILE | libc::ENFILE) => LocalFault::TooManyFiles,
            Some(libc::ENOMEM) => LocalFault::NoMemory,
            _ if e.kind() == std::io::ErrorKind::OutOfMemory => LocalFault::NoMemory,
            _ => LocalFault::Io,
        }
    }

    /// Whether the error is a shortage of a local resource (files, memory) rather than
    /// a fault of a file: such an error is never evidence that a map output is lost.
    pub fn is_resource_shortage(e: &std::io::Error) -> bool {
        matches!(
            LocalFault::of(e),
            LocalFault::TooManyFiles | LocalFault::NoMemory | LocalFault::NoSpace
        )
    }
}

impl fmt::Display for LocalFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalFault::NoSpace => "no space",
            LocalFault::ReadOnly => "read-only file system",
            LocalFault::Permission => "permission denied",
            LocalFault::TooManyFiles => "too many open files",
            LocalFault::NoMemory => "out of memory",
            LocalFault::Io => "I/O error",
        })
    }
}

/// Who a failure is held against: the coordinator decides on this, never on message
/// text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The task itself (the app failed on its input, or the input cannot be read): it
    /// would fail anywhere, so it counts towards the task's failure limit.
    Task,
    /// The machine that ran it (its disk, its file descriptors, its network): the task
    /// is retried elsewhere without counting, and the worker collects a strike.
    Worker,
    /// Another task's output (a reduce found map X's output lost): map X re-runs.
    Map(u32),
}

/// Why a task failed, as an enum so the coordinator can act on the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TaskFailure {
    /// The app's map or reduce panicked.
    #[error("{message}")]
    App {
        /// The panic message.
        message: String,
    },
    /// The map input could not be read.
    #[error("cannot read input {path}: {error}")]
    Input {
        /// The input path.
        path: PathBuf,
        /// The OS error.
        error: String,
    },
    /// A map output needed by a reduce task is missing or corrupt; the map must re-run.
    #[error("intermediate output of map-{map} at {location} is unusable: {error}")]
    LostMapOutput {
        /// The map task whose output is lost.
        map: u32,
        /// The attempt of the map that wrote it (as the reduce was told).
        attempt: Attempt,
        /// Where it was expected.
        location: Location,
        /// What was wrong, by kind.
        cause: LossCause,
        /// What was wrong.
        error: String,
    },
    /// The worker's own machine failed it: its work directory cannot be written, it ran
    /// out of file descriptors or memory.
    #[error("{what}: {error}")]
    Local {
        /// The kind of fault.
        fault: LocalFault,
        /// What the worker was doing ("cannot write output", ...).
        what: String,
        /// The OS error.
        error: String,
    },
    /// The worker could not move bytes to or from the coordinator (the data plane
    /// broke off); the worker's link is blamed, the task is retried.
    #[error("{what}: {error}")]
    Network {
        /// What the worker was doing.
        what: String,
        /// What went wrong.
        error: String,
    },
}

impl TaskFailure {
    /// A local I/O error while doing `what`, classified.
    pub fn local(what: impl Into<String>, e: &std::io::Error) -> Self {
        TaskFailure::Local {
            fault: LocalFault::of(e),
            what: what.into(),
            error: e.to_string(),
        }
    }

    /// Who the failure is held against.
    pub fn blame(&self) -> Blame {
        match self {
            TaskFailure::App { .. } | TaskFailure::Input { .. } => Blame::Task,
            TaskFailure::LostMapOutput { map, .. } => Blame::Map(*map),
            TaskFailure::Local { .. } | TaskFailure::Network { .. } => Blame::Worker,
        }
    }
}

/// What a task is now, in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskNow {
    /// Waiting for a worker.
    Idle,
    /// Running this attempt.
    Running(Attempt),
    /// Done by this attempt.
    Done(Attempt),
}

impl fmt::Display for TaskNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskNow::Idle => write!(f, "idle"),
            TaskNow::Running(a) => write!(f, "running attempt {a}"),
            TaskNow::Done(a) => write!(f, "done by attempt {a}"),
        }
    }
}

/// Why the coordinator refused a report (or a reduce output), typed on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No such task.
    #[error("no such task")]
    UnknownTask,
    /// The attempt is not the task's current in-progress attempt (it was revoked, or
    /// the task is done).
    #[error("attempt {reported} is stale (task is {now})")]
    Stale {
        /// The attempt reported.
        reported: Attempt,
        /// What the task is now.
        now: TaskNow,
    },
    /// The attempt is current but another worker holds it.
    #[error("attempt {0} belongs to another worker")]
    WrongWorker(Attempt),
    /// A result that does not fit the task: a map result without one output per
    /// partition, a reduce result for a map, or output for a task that has none.
    #[error("result does not fit the task: {got} outputs, expected {want}")]
    BadResult {
        /// Outputs reported.
        got: usize,
        /// Outputs expected.
        want: usize,
    },
    /// A loss report about a map task that does not exist.
    #[error("no such map task: map-{0}")]
    UnknownMap(u32),
}

/// The outcome a worker reports for one attempt.
pub type TaskOutcome = Result<TaskResult, TaskFailure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_inputs_are_runs_per_place_and_expand_to_every_map_in_order() {
        let dir = MapOutputs::Dir("/shared".into());
        let a = MapOutputs::Server("a:1".into());
        let b = MapOutputs::Server("b:1".into());
        // Maps 0-3 in the shared directory (map 2 re-run as attempt 2), 4 and 6 on a,
        // 5 on b.
        let maps = [
            (0, Attempt(1), &dir),
            (1, Attempt(1), &dir),
            (2, Attempt(2), &dir),
            (3, Attempt(1), &dir),
            (4, Attempt(1), &a),
            (5, Attempt(1), &b),
            (6, Attempt(1), &a),
        ];
        let inputs = MapInputs::build(maps);
        assert_eq!(inputs.maps, 7);
        assert_eq!(inputs.places.len(), 3);
        assert_eq!(
            inputs.places[0].1,
            [
                MapRun(0, 2, Attempt(1)),
                MapRun(2, 1, Attempt(2)),
                MapRun(3, 1, Attempt(1))
            ]
        );
        assert_eq!(
            inputs.places[1].1,
            [MapRun(4, 1, Attempt(1)), MapRun(6, 1, Attempt(1))]
        );
        let want: Vec<MapOutput> = maps
            .iter()
            .map(|(m, attempt, place)| MapOutput {
                map: *m,
                attempt: *attempt,
                location: place.location(*m, 3),
            })
            .collect();
        assert_eq!(inputs.for_partition(3), want);
    }

    #[test]
    fn a_whole_shared_directory_is_one_run_whatever_m_is() {
        let dir = MapOutputs::Dir("/shared/directory/of/the/job".into());
        let inputs = MapInputs::build((0..200_000).map(|m| (m, Attempt(1), &dir)));
        assert_eq!(inputs.places[0].1, [MapRun(0, 200_000, Attempt(1))]);
        let json = serde_json::to_string(&inputs).unwrap();
        assert!(json.len() < 200, "{json}");
        assert_eq!(inputs.for_partition(9).len(), 200_000);
    }
}
