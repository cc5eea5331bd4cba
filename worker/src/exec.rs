//! Running one task: map (read the split, call the app, partition, sort, combine,
//! spill past the memory budget, write `mr-X-Y`) and reduce (merge `mr-*-Y`, call the
//! app per key, write `mr-out-Y`). Synchronous: the worker runs it off the async runtime.
//!
//! Every file is written to a temp file and renamed into place, so a reader never sees
//! a partial file. Two attempts of one task may both rename (a revoked attempt that was
//! only frozen wakes up and finishes): that is harmless, because apps are
//! deterministic, so both attempts write identical bytes, and rename is atomic, so a
//! reader sees one complete copy or the other, never a mix. The coordinator refuses the
//! late report, so nothing is counted twice.
//!
//! An attempt the coordinator says to abandon (another attempt finished first, or it
//! was taken back) sets its [`Stop`]: the task checks it between steps and stops with
//! [`Halt::Stopped`], its temp files deleted as they are dropped. (A call into the app
//! cannot be interrupted: the check comes when it returns.)

use mr::atomic::{AtomicFile, TEMP_PREFIX};
use mr::combinebuf::CombineBuffer;
use mr::intermediate::{FormatError, MergeError, Merger, Reader, Writer};
use mr::packed::Section;
use mr::partition::{Partitioner, Partitioning, Reservoir};
use mr::plugin::{App, AppError, ValueBatches};
use mr::sortbuf::{SortBuffer, WriteError};
use mr::task::{
    Counters, LocalFault, Location, LossCause, MapOutput, MapOutputs, Split, TaskFailure,
    TaskResult, TaskStats,
};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempPath;

/// Tells a running task to stop (set from the heartbeat loop, read by the task).
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the task to stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Halt::Stopped)` if it was asked to.
    pub fn check(&self) -> Result<(), Halt> {
        if self.is_set() {
            Err(Halt::Stopped)
        } else {
            Ok(())
        }
    }

    /// Sleeps for `d`, or less if asked to stop meanwhile.
    pub fn sleep(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while !self.is_set() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// Why a task ended without a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Halt {
    /// It failed: to be reported.
    Failed(TaskFailure),
    /// It was told to stop: nothing to report.
    Stopped,
}

impl From<TaskFailure> for Halt {
    fn from(f: TaskFailure) -> Halt {
        Halt::Failed(f)
    }
}

/// A task's end: its result, or why there is none.
pub type Outcome = Result<TaskResult, Halt>;

/// Records between two looks at the [`Stop`] while the app emits.
const CHECK_EVERY: u64 = 1 << 12;

/// Memory for the read buffers of a reduce task's merge, shared by the inputs of one
/// merge pass.
const MERGE_BUFFERS: usize = 32 << 20;

/// Files merged at once by a reduce task (Hadoop's `io.sort.factor`). A reduce of more
/// map outputs merges them in passes, `MERGE_FAN_IN` at a time, into sorted runs, so
/// that it never holds more than this many files open whatever M is.
pub const MERGE_FAN_IN: usize = 100;

/// The most of one key's values handed to reduce at once (bytes, values): a key with
/// more streams to an app that reads them as a stream, so memory holds one batch.
const VALUE_BATCH: (usize, usize) = (4 << 20, 1 << 16);

pub use mr::task::{intermediate_name, output_name, packed_name};

/// Writing this worker's own files failed: its machine is blamed, not the task.
fn output_err(e: io::Error) -> TaskFailure {
    TaskFailure::local("cannot write output", &e)
}

/// Reading back a file this task wrote itself (a spill or a merge run) failed.
fn scratch_err(e: FormatError) -> TaskFailure {
    match e {
        FormatError::Io(e) => TaskFailure::local("cannot read back a temporary run", &e),
        FormatError::Corrupt(error) => TaskFailure::Local {
            fault: LocalFault::Io,
            what: "a temporary run came back damaged".into(),
            error,
        },
    }
}

fn app_err(e: AppError) -> TaskFailure {
    TaskFailure::App { message: e.0 }
}

fn write_error(e: WriteError<AppError>) -> TaskFailure {
    match e {
        WriteError::Io(e) => output_err(e),
        WriteError::Combine(e) => app_err(e),
    }
}

/// The map-side buffer: hash-grouped and combined as records arrive when the app has a
/// combiner, otherwise every record kept and sorted when written.
// One per map task, so its size does not matter; boxing the larger variant would put
// a pointer's load on every record's path.
#[allow(clippy::large_enum_variant)]
enum Buffer {
    Sort(SortBuffer),
    Combine(CombineBuffer),
}

impl Buffer {
    /// A buffer for `n_reduce` partitions; without a combiner, room for `expect` bytes
    /// of records reserved up front.
    fn new(app: &App, n_reduce: u32, expect: usize) -> Self {
        if app.has_combiner() {
            Buffer::Combine(CombineBuffer::new(n_reduce))
        } else {
            Buffer::Sort(SortBuffer::with_capacity(n_reduce, expect))
        }
    }

    /// Adds one record and says whether the buffer now holds more than `memory` bytes.
    /// Called once per record, so it returns a small error (a boxed failure) rather
    /// than a whole `TaskFailure` by value, and looks at the buffer's kind once.
    #[inline]
    fn push(
        &mut self,
        app: &App,
        counters: &mut Counters,
        parts: &Partitioner,
        k: &[u8],
        v: &[u8],
        memory: usize,
    ) -> Result<bool, Box<TaskFailure>> {
        match self {
            Buffer::Sort(b) => match b.push(parts.of_key(k), k, v) {
                Ok(()) => Ok(b.bytes() > memory),
                Err(e) => Err(Box::new(output_err(e))),
            },
            // The partition is computed only for a key the table has not seen.
            Buffer::Combine(b) => {
                match b.push(k, v, || parts.of_key(k), &mut |k, vs, out| {
                    app.combine_values(k, vs, counters, out)
                }) {
                    Ok(()) => Ok(b.bytes() > memory),
                    Err(e) => Err(Box::new(app_err(e))),
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Buffer::Sort(b) => b.bytes(),
            Buffer::Combine(b) => b.bytes(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Buffer::Sort(b) => b.is_empty(),
            Buffer::Combine(b) => b.is_empty(),
        }
    }

    /// Writes partition `p` sorted (and combined, with a combiner) and empties it.
    fn write_partition<W: Write>(
        &mut self,
        app: &App,
        counters: &mut Counters,
        p: u32,
        w: &mut Writer<W>,
    ) -> Result<u64, TaskFailure> {
        match self {
            Buffer::Sort(b) => b.write_partition::<_, AppError>(p, None, w),
            Buffer::Combine(b) => b.write_partition(
                p,
                &mut |k, vs, out| app.combine_values(k, vs, counters, out),
                w,
            ),
        }
        .map_err(write_error)
    }

    /// Sorts, combines and writes every partition as one run each (a spill).
    fn spill(
        &mut self,
        app: &App,
        counters: &mut Counters,
        dir: &Path,
        runs: &mut [Vec<TempPath>],
    ) -> Result<(), TaskFailure> {
        tracing::debug!(
            bytes = self.bytes(),
            "map buffer over budget; spilling a sorted run"
        );
        for (p, run) in runs.iter_mut().enumerate() {
            run.push(write_run(dir, |w| {
                self.write_partition(app, counters, p as u32, w).map(|_| ())
            })?);
        }
        Ok(())
    }
}

/// What map's emit callback updates for each record, in one struct: the callback
/// follows one pointer to it, where a closure over as many locals held a reference to
/// each and reloaded them (and spilled them to the stack) around every record.
struct Emits<'a> {
    buf: Buffer,
    combined: Counters,
    records_in: u64,
    spills: u64,
    /// Set once the task failed or was told to stop: later records are ignored.
    halt: Option<Box<Halt>>,
    runs: Vec<Vec<TempPath>>,
    app: &'a App,
    parts: Partitioner,
    memory: usize,
    dir: &'a Path,
    stop: &'a Stop,
}

impl Emits<'_> {
    /// Buffers one record of map's output, spilling the buffer when it is over budget.
    ///
    /// The path nearly every record of a combining app takes (a known key, the common
    /// value) is inlined here and the rest is out of line: inlined whole, the rest's
    /// registers were saved and restored around every record.
    #[inline(always)]
    fn record(&mut self, k: &[u8], v: &[u8]) {
        if let Buffer::Combine(b) = &mut self.buf {
            if self.halt.is_none()
                && !(self.records_in + 1).is_multiple_of(CHECK_EVERY)
                && b.push_common(k, v)
            {
                self.records_in += 1;
                return;
            }
        }
        self.record_any(k, v)
    }

    /// [`Emits::record`] for any record.
    #[inline(never)]
    fn record_any(&mut self, k: &[u8], v: &[u8]) {
        if self.halt.is_some() {
            return;
        }
        self.records_in += 1;
        if self.records_in.is_multiple_of(CHECK_EVERY) && self.stop.is_set() {
            self.halt = Some(Box::new(Halt::Stopped));
            return;
        }
        match self
            .buf
            .push(self.app, &mut self.combined, &self.parts, k, v, self.memory)
        {
            Ok(false) => {}
            Ok(true) => self.spill(),
            Err(e) => self.halt = Some(Box::new(Halt::Failed(*e))),
        }
    }

    #[cold]
    fn spill(&mut self) {
        self.spills += 1;
        if let Err(e) = self
            .buf
            .spill(self.app, &mut self.combined, self.dir, &mut self.runs)
        {
            self.halt = Some(Box::new(Halt::Failed(e)));
        }
    }
}

/// Reads the lines `split` owns from the local filesystem.
pub fn read_split(split: &Split) -> Result<Vec<u8>, TaskFailure> {
    mr::split::read_split(split).map_err(|e| TaskFailure::Input {
        path: split.path.clone(),
        error: e.to_string(),
    })
}

/// Runs sample task `index`: map over each piece (its path and its lines), keeping a
/// uniform sample of at most `max_keys` of the keys emitted. Nothing is written.
pub fn run_sample(
    app: &App,
    index: u32,
    pieces: Vec<(String, Vec<u8>)>,
    max_keys: u32,
    stop: &Stop,
) -> Outcome {
    let mut sample = Reservoir::new(max_keys as usize, u64::from(index));
    let mut bytes_read = 0;
    for (filename, bytes) in pieces {
        stop.check()?;
        bytes_read += bytes.len() as u64;
        let contents = mr::split::decode_input(bytes);
        // A sample's counts are not the job's: the maps that follow count again.
        app.map(&filename, &contents, &mut Counters::default(), |k, _| {
            sample.offer(k)
        })
        .map_err(app_err)?;
        mr::split::recycle(contents.into_bytes());
    }
    let records_in = sample.seen();
    let keys = sample.into_items();
    Ok(TaskResult::Sample {
        stats: TaskStats {
            bytes_read,
            records_in,
            records_out: keys.len() as u64,
            ..TaskStats::default()
        },
        keys,
    })
}

/// Runs map task `map` over `bytes`, the lines of a split of the input `filename`,
/// writing its partitions Y in 0..n_reduce (`mr-{map}-Y`, partitioned by `partitioning`)
/// into one packed file `mr-{map}.data` in `dir`.
/// Past `memory` bytes of buffered output, sorted runs spill to disk and are merged at
/// the end.
#[allow(clippy::too_many_arguments)]
pub fn run_map(
    app: &App,
    map: u32,
    filename: &str,
    bytes: Vec<u8>,
    n_reduce: u32,
    partitioning: &Partitioning,
    dir: &Path,
    memory: usize,
    stop: &Stop,
) -> Outcome {
    let bytes_read = bytes.len() as u64;
    let contents = mr::split::decode_input(bytes);

    // Without a combiner the records are about as many bytes as the input (a sort: the
    // same): reserving that much up front spares the arenas' doubling (a copy of
    // everything written so far each time, and the page faults of each new block).
    let mut emits = Emits {
        buf: Buffer::new(app, n_reduce, contents.len().min(memory)),
        combined: Counters::default(),
        records_in: 0,
        spills: 0,
        halt: None,
        runs: (0..n_reduce).map(|_| Vec::new()).collect(),
        app,
        parts: Partitioner::new(partitioning, n_reduce),
        memory,
        dir,
        stop,
    };
    // Map's counts and the combiner's (in `emits`), kept apart because map's call is
    // still going on while the combiner runs inside it.
    let mut counters = Counters::default();
    app.map(filename, &contents, &mut counters, |k, v| {
        emits.record(k, v)
    })
    .map_err(app_err)?;
    let Emits {
        mut buf,
        mut combined,
        records_in,
        mut spills,
        halt,
        mut runs,
        ..
    } = emits;
    if let Some(halt) = halt {
        return Err(*halt);
    }
    stop.check()?;
    mr::split::recycle(contents.into_bytes());

    let spilled = runs.iter().any(|r| !r.is_empty());
    if spilled && !buf.is_empty() {
        spills += 1;
        buf.spill(app, &mut combined, dir, &mut runs)?;
    }
    let mut stats = TaskStats {
        bytes_read,
        records_in,
        spills,
        ..TaskStats::default()
    };
    // Partition p, sorted (and combined), from the buffer or merged from the spills.
    let mut fill = |p: u32, w: &mut Writer<&mut AtomicFile>| -> Result<(), Halt> {
        stop.check()?;
        if spilled {
            merge_runs(app, &mut combined, &runs[p as usize], w)?;
        } else {
            buf.write_partition(app, &mut combined, p, w)?;
        }
        Ok(())
    };
    // One file, every partition in it, then the index; committed once. One file a map
    // rather than R: at R = 10 and M = 10,000 the directory operations of creating and
    // renaming 100,000 small files cost more than their bytes (mr::packed).
    let mut file = AtomicFile::create(&dir.join(packed_name(map))).map_err(output_err)?;
    let mut index = mr::packed::Index::new();
    for p in 0..n_reduce {
        let mut w = Writer::new(&mut file).map_err(output_err)?;
        fill(p, &mut w)?;
        stats.records_out += w.count();
        let (_, size) = w.finish().map_err(output_err)?;
        stats.bytes_written += size;
        index.push(size);
    }
    index.write_to(&mut file).map_err(output_err)?;
    file.commit(false).map_err(output_err)?;
    counters.merge(&combined);
    stats.counters = counters;
    Ok(TaskResult::Map {
        output: MapOutputs::Dir(dir.to_path_buf()),
        stats,
    })
}

/// Merges the spilled runs of one partition into `w`, combining across runs.
fn merge_runs<W: Write>(
    app: &App,
    counters: &mut Counters,
    runs: &[TempPath],
    w: &mut Writer<W>,
) -> Result<(), TaskFailure> {
    let readers = runs
        .iter()
        .map(|path| Reader::open(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(scratch_err)?;
    let merger = Merger::new(readers).map_err(|e| match e {
        MergeError::Input { error, .. } => scratch_err(error),
        MergeError::Consumer(never) => match never {},
    })?;
    let mut out = Vec::new();
    merger
        .for_each_group(|k, vs| -> Result<(), TaskFailure> {
            if app.has_combiner() && vs.len() > 1 {
                out.clear();
                app.combine(k, vs, counters, &mut out).map_err(app_err)?;
                w.push(k, &out).map_err(output_err)
            } else {
                vs.iter().try_for_each(|v| w.push(k, v)).map_err(output_err)
            }
        })
        .map_err(|e| match e {
            MergeError::Consumer(f) => f,
            MergeError::Input { error, .. } => scratch_err(error),
        })?;
    Ok(())
}

/// A reduce input as this worker reads it: the map output (at a local path), and, for
/// a fetched copy that shares one file with other copies, the byte range that is its.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The map output, located here.
    pub output: MapOutput,
    /// (offset, length) in the file at the output's path; None: the whole `mr-X-Y`.
    pub range: Option<(u64, u64)>,
}

impl From<MapOutput> for Input {
    fn from(output: MapOutput) -> Input {
        Input {
            output,
            range: None,
        }
    }
}

/// Runs reduce task `partition` over the map outputs `inputs`, writing
/// `mr-out-{partition}` into `out_dir`. More than `fan_in` inputs are first merged in
/// passes into sorted runs in `scratch` (deleted when done).
pub fn run_reduce(
    app: &App,
    partition: u32,
    inputs: &[Input],
    out_dir: &Path,
    scratch: &Path,
    fan_in: usize,
    stop: &Stop,
) -> Outcome {
    let fan_in = fan_in.max(2);
    // Counted as the inputs are opened, once each: at M = 10,000 small maps a reduce's
    // time is mostly opening them.
    let mut bytes_read = 0;
    let runs = merge_passes(inputs, scratch, fan_in, stop, &mut bytes_read)?;
    let spills = runs.as_ref().map_or(0, |r| r.len() as u64);
    let sources: Vec<Source<'_>> = match &runs {
        Some(runs) => runs.iter().map(Source::Run).collect(),
        None => inputs.iter().map(Source::Input).collect(),
    };
    let merger = open_merger(&sources, &mut bytes_read)?;
    let dest = out_dir.join(output_name(partition));
    let mut out = AtomicFile::create(&dest).map_err(output_err)?;
    let mut result = Vec::new();
    let mut lines = 0u64;
    let mut bytes_written = 0u64;
    let raw = app.raw_output();
    let mut groups = 0u64;
    let mut counters = Counters::default();
    let records_in = merger
        .for_each_group_streaming(VALUE_BATCH, |key, first, rest| -> Result<(), Halt> {
            groups += 1;
            if groups.is_multiple_of(CHECK_EVERY) {
                stop.check()?;
            }
            result.clear();
            match rest {
                None => app.reduce(key, first, &mut counters, &mut result),
                Some(rest) => {
                    let mut rest = Checked { rest, stop };
                    app.reduce_stream(key, first, &mut rest, &mut counters, &mut result)
                }
            }
            .map_err(app_err)?;
            // A stop noticed while a long key streamed.
            stop.check()?;
            if raw {
                // The app wrote its own lines (the sort app: the records as they came).
                out.write_all(&result).map_err(output_err)?;
                bytes_written += result.len() as u64;
                lines += result.iter().filter(|&&b| b == b'\n').count() as u64;
            } else {
                write_line(&mut out, key, &result).map_err(output_err)?;
                bytes_written += key.len() as u64 + result.len() as u64 + 2;
                lines += 1;
            }
            Ok(())
        })
        .map_err(|e| match e {
            MergeError::Consumer(h) => h,
            MergeError::Input { index, error } => Halt::Failed(sources[index].failure(error)),
        })
        .map_err(|h| match h {
            // Damaged input can make the app fail (a corrupt key is not UTF-8) before the
            // checksum at the end of that input is reached: blame the input, so that its
            // map re-runs, rather than the app, which would fail the same way every time.
            // (With merge passes, damage is found while writing the runs, before any
            // app call.)
            Halt::Failed(f @ TaskFailure::App { .. }) if runs.is_none() => {
                Halt::Failed(first_damaged(inputs).unwrap_or(f))
            }
            h => h,
        })?;
    stop.check()?;
    out.commit(true).map_err(output_err)?;
    Ok(TaskResult::Reduce {
        output: Location::Path(dest),
        stats: TaskStats {
            bytes_read,
            bytes_written,
            records_in,
            records_out: lines,
            spills,
            counters,
            ..TaskStats::default()
        },
    })
}

/// A key's values past the first batch, ended early when the attempt is told to stop
/// (one key may stream for minutes).
struct Checked<'a, 'b> {
    rest: &'a mut dyn ValueBatches,
    stop: &'b Stop,
}

impl ValueBatches for Checked<'_, '_> {
    fn next_batch(&mut self) -> Option<mr::plugin::ValueBatch<'_>> {
        if self.stop.is_set() {
            return None;
        }
        self.rest.next_batch()
    }
}

/// One input of a merge: a map output (whose damage means the map must re-run) or a
/// run this task wrote itself (whose damage is this machine's fault).
enum Source<'a> {
    Input(&'a Input),
    Run(&'a TempPath),
}

impl Source<'_> {
    /// Opens it for reading; adds a map output's bytes to `read`.
    fn open(&self, buffer: usize, read: &mut u64) -> Result<Reader<Section>, TaskFailure> {
        match self {
            // A file `mr-X-Y`, or its range of a packed `mr-X.data`.
            Source::Input(input) => {
                let section = open_input(input)?;
                *read += section.len();
                Reader::with_capacity(section, buffer).map_err(|e| input_err(&input.output, e))
            }
            Source::Run(path) => std::fs::File::open(path)
                .and_then(Section::whole)
                .map_err(FormatError::from)
                .and_then(|s| Reader::with_capacity(s, buffer))
                .map_err(scratch_err),
        }
    }

    fn failure(&self, e: FormatError) -> TaskFailure {
        match self {
            Source::Input(input) => input_err(&input.output, e),
            Source::Run(_) => scratch_err(e),
        }
    }
}

/// A map output that cannot be read: lost (the map re-runs), unless the error is this
/// machine running short of a resource (file descriptors, memory), which says nothing
/// about the file and is this worker's own failure.
fn input_err(input: &MapOutput, e: FormatError) -> TaskFailure {
    match e {
        FormatError::Io(e) if LocalFault::is_resource_shortage(&e) => {
            TaskFailure::local(format!("cannot open the output of map-{}", input.map), &e)
        }
        FormatError::Io(e) if e.kind() == io::ErrorKind::NotFound => {
            input.lost(LossCause::Missing, e.to_string())
        }
        e => input.lost(LossCause::Corrupt, e.to_string()),
    }
}

/// Opens every source of one merge, sharing the read-buffer budget; adds the bytes of
/// the map outputs among them to `read`.
fn open_merger(sources: &[Source<'_>], read: &mut u64) -> Result<Merger<Section>, TaskFailure> {
    // Read buffers share a fixed budget, so memory does not grow with the fan-in.
    let buffer = (MERGE_BUFFERS / sources.len().max(1)).clamp(8 << 10, 256 << 10);
    let readers = sources
        .iter()
        .map(|s| s.open(buffer, read))
        .collect::<Result<Vec<_>, _>>()?;
    Merger::new(readers).map_err(|e| match e {
        MergeError::Input { index, error } => sources[index].failure(error),
        MergeError::Consumer(never) => match never {},
    })
}

/// Merges `inputs` down to at most `fan_in` sorted runs, `fan_in` files at a time, or
/// returns None when there are few enough to merge in one pass. Runs are made of
/// consecutive inputs, and the final merge keeps them in order, so every key's values
/// reach reduce in map order, exactly as a single pass would give them.
fn merge_passes(
    inputs: &[Input],
    scratch: &Path,
    fan_in: usize,
    stop: &Stop,
    read: &mut u64,
) -> Result<Option<Vec<TempPath>>, Halt> {
    if inputs.len() <= fan_in {
        return Ok(None);
    }
    let mut level: Vec<TempPath> = inputs
        .chunks(fan_in)
        .map(|chunk| {
            stop.check()?;
            let sources: Vec<Source<'_>> = chunk.iter().map(Source::Input).collect();
            Ok(merge_to_run(&sources, scratch, read)?)
        })
        .collect::<Result<_, Halt>>()?;
    while level.len() > fan_in {
        level = level
            .chunks(fan_in)
            .map(|chunk| {
                stop.check()?;
                let sources: Vec<Source<'_>> = chunk.iter().map(Source::Run).collect();
                Ok(merge_to_run(&sources, scratch, &mut 0)?)
            })
            .collect::<Result<_, Halt>>()?;
    }
    Ok(Some(level))
}

/// Merges `sources` record by record (no app call) into one sorted run in `scratch`.
fn merge_to_run(
    sources: &[Source<'_>],
    scratch: &Path,
    read: &mut u64,
) -> Result<TempPath, TaskFailure> {
    let merger = open_merger(sources, read)?;
    write_run(scratch, |w| {
        merger
            .for_each_group(|k, vs| vs.iter().try_for_each(|v| w.push(k, v)))
            .map(|_| ())
            .map_err(|e| match e {
                MergeError::Consumer(e) => output_err(e),
                MergeError::Input { index, error } => sources[index].failure(error),
            })
    })
}

/// A temporary sorted run in `dir` (a map's spill, a reduce's merge pass), filled by
/// `fill`; deleted when the returned path is dropped, so a failed task leaves none.
fn write_run(
    dir: &Path,
    fill: impl FnOnce(&mut Writer<BufWriter<std::fs::File>>) -> Result<(), TaskFailure>,
) -> Result<TempPath, TaskFailure> {
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(output_err)?;
    let (file, path) = tmp.into_parts();
    let mut w = Writer::new(BufWriter::with_capacity(1 << 20, file)).map_err(output_err)?;
    fill(&mut w)?;
    w.finish()
        .map_err(output_err)?
        .0
        .flush()
        .map_err(output_err)?;
    Ok(path)
}

/// A reduce input's bytes here: `mr-X-Y` (a file, or its range of a packed `mr-X.data`),
/// or a fetched copy's range of a file it shares with other copies.
fn open_input(input: &Input) -> Result<Section, TaskFailure> {
    let path = local_path(&input.output)?;
    match input.range {
        None => mr::packed::open(path),
        Some((at, len)) => std::fs::File::open(path)
            .map(|f| Section::new(f, at, len))
            .map_err(FormatError::from),
    }
    .map_err(|e| input_err(&input.output, e))
}

/// The path of a map output on this machine (the worker fetches remote ones first).
fn local_path(input: &MapOutput) -> Result<&Path, TaskFailure> {
    match &input.location {
        Location::Path(p) => Ok(p),
        _ => Err(input.lost(LossCause::Missing, "not fetched to this machine")),
    }
}

/// The first input that is not a whole, intact intermediate file, as a lost map output.
fn first_damaged(inputs: &[Input]) -> Option<TaskFailure> {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    inputs.iter().find_map(|input| {
        let bytes = open_input(input).ok()?;
        let check = Reader::new(bytes).and_then(|mut r| {
            while r.next_into(&mut key, &mut value)? {}
            Ok(())
        });
        check
            .err()
            .map(|e| input.output.lost(LossCause::Corrupt, e.to_string()))
    })
}

fn write_line(out: &mut impl Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(key)?;
    out.write_all(b" ")?;
    out.write_all(value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every group (key, values) a merge of `sources` yields, in order.
    fn groups(sources: &[Source<'_>]) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        open_merger(sources, &mut 0)
            .unwrap()
            .for_each_group(|k, vs| -> Result<(), TaskFailure> {
                out.push((k.to_vec(), vs.iter().map(|v| v.to_vec()).collect()));
                Ok(())
            })
            .unwrap();
        out
    }

    /// `n` sorted map outputs in `dir`: keys overlap across inputs, and each value names
    /// its input, so the order of a key's values is checked too.
    fn inputs(dir: &Path, n: u32) -> Vec<Input> {
        (0..n)
            .map(|m| {
                let path = dir.join(intermediate_name(m, 0));
                let mut keys: Vec<String> = (0..(m % 7 + 1))
                    .map(|i| format!("k{:03}", (m * 31 + i * 17) % 50))
                    .collect();
                keys.sort();
                let file = std::fs::File::create(&path).unwrap();
                let mut w = Writer::new(BufWriter::new(file)).unwrap();
                for k in &keys {
                    w.push(k.as_bytes(), format!("m{m}").as_bytes()).unwrap();
                }
                w.finish().unwrap();
                Input::from(MapOutput {
                    map: m,
                    attempt: mr::ids::Attempt(1),
                    location: Location::Path(path),
                })
            })
            .collect()
    }

    #[test]
    fn merging_in_passes_gives_exactly_the_single_pass_result() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 250);
        let single: Vec<Source<'_>> = inputs.iter().map(Source::Input).collect();
        let want = groups(&single);
        assert!(want.iter().any(|(_, vs)| vs.len() > 3), "keys must repeat");
        for fan_in in [2, 3, 7, MERGE_FAN_IN] {
            let runs = merge_passes(&inputs, scratch.path(), fan_in, &Stop::default(), &mut 0)
                .unwrap()
                .expect("more inputs than the fan-in");
            assert!(runs.len() <= fan_in, "fan-in {fan_in}: {} runs", runs.len());
            let sources: Vec<Source<'_>> = runs.iter().map(Source::Run).collect();
            assert_eq!(groups(&sources), want, "fan-in {fan_in}");
            drop(runs);
            let left = std::fs::read_dir(scratch.path()).unwrap().count();
            assert_eq!(left, 0, "runs are deleted once dropped");
        }
        assert!(
            merge_passes(&inputs, scratch.path(), 250, &Stop::default(), &mut 0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_stopped_merge_ends_without_a_result_and_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 20);
        let stop = Stop::default();
        stop.set();
        let r = merge_passes(&inputs, scratch.path(), 3, &stop, &mut 0);
        assert_eq!(r.err(), Some(Halt::Stopped));
        let left = std::fs::read_dir(scratch.path()).unwrap().count();
        assert_eq!(left, 0, "no run is left in the scratch directory");
        let t0 = std::time::Instant::now();
        stop.sleep(Duration::from_secs(5));
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "a stopped task does not sleep on"
        );
    }

    #[test]
    fn a_missing_input_is_lost_map_output_even_in_a_merge_pass() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 10);
        std::fs::remove_file(dir.path().join(intermediate_name(6, 0))).unwrap();
        let Err(f) = merge_passes(&inputs, dir.path(), 3, &Stop::default(), &mut 0) else {
            panic!("a missing input must fail the merge")
        };
        assert!(
            matches!(f, Halt::Failed(TaskFailure::LostMapOutput { map: 6, .. })),
            "{f:?}"
        );
    }

    #[test]
    fn running_out_of_file_descriptors_is_the_workers_fault_not_a_lost_map() {
        let input = MapOutput {
            map: 3,
            attempt: mr::ids::Attempt(1),
            location: Location::Path("mr-3-0".into()),
        };
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let f = input_err(&input, FormatError::Io(emfile));
        assert!(
            matches!(
                f,
                TaskFailure::Local {
                    fault: LocalFault::TooManyFiles,
                    ..
                }
            ),
            "{f:?}"
        );
        assert_eq!(f.blame(), mr::task::Blame::Worker);
        let gone = io::Error::from(io::ErrorKind::NotFound);
        let f = input_err(&input, FormatError::Io(gone));
        assert_eq!(f.blame(), mr::task::Blame::Map(3));
    }
}
