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

use mr::atomic::{AtomicFile, TEMP_PREFIX};
use mr::combinebuf::CombineBuffer;
use mr::intermediate::{MergeError, Merger, Reader, Writer};
use mr::partition::{ihash, Modulo};
use mr::plugin::{App, AppError};
use mr::sortbuf::{SortBuffer, WriteError};
use mr::task::{Location, MapOutput, Split, TaskFailure, TaskOutcome, TaskResult, TaskStats};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use tempfile::TempPath;

/// Memory for the read buffers of a reduce task's merge, shared by its M inputs.
const MERGE_BUFFERS: usize = 32 << 20;

/// Name of map task X's output for partition Y.
pub fn intermediate_name(map: u32, partition: u32) -> String {
    format!("mr-{map}-{partition}")
}

/// Name of partition Y's final output.
pub fn output_name(partition: u32) -> String {
    format!("mr-out-{partition}")
}

fn output_err(e: impl std::fmt::Display) -> TaskFailure {
    TaskFailure::Output {
        error: e.to_string(),
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
enum Buffer {
    Sort(SortBuffer),
    Combine(CombineBuffer),
}

impl Buffer {
    fn new(app: &App, n_reduce: u32) -> Self {
        if app.has_combiner() {
            Buffer::Combine(CombineBuffer::new(n_reduce))
        } else {
            Buffer::Sort(SortBuffer::new(n_reduce))
        }
    }

    /// Adds one record. Called once per record, so it returns a small error (a boxed
    /// failure) rather than a whole `TaskFailure` by value.
    #[inline]
    fn push(
        &mut self,
        app: &App,
        parts: &Modulo,
        k: &[u8],
        v: &[u8],
    ) -> Result<(), Box<TaskFailure>> {
        let h = ihash(k);
        let p = parts.of(h);
        match self {
            Buffer::Sort(b) => b.push(p, k, v).map_err(|e| Box::new(output_err(e))),
            Buffer::Combine(b) => b
                .push_hashed(p, h, k, v, &mut |k, vs, out| app.combine(k, vs, out))
                .map_err(|e| Box::new(app_err(e))),
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
        p: u32,
        w: &mut Writer<W>,
    ) -> Result<u64, TaskFailure> {
        match self {
            Buffer::Sort(b) => b.write_partition::<_, AppError>(p, None, w),
            Buffer::Combine(b) => {
                b.write_partition(p, &mut |k, vs, out| app.combine(k, vs, out), w)
            }
        }
        .map_err(write_error)
    }

    /// Sorts, combines and writes every partition as one run each (a spill).
    fn spill(
        &mut self,
        app: &App,
        dir: &Path,
        runs: &mut [Vec<TempPath>],
    ) -> Result<(), TaskFailure> {
        tracing::debug!(
            bytes = self.bytes(),
            "map buffer over budget; spilling a sorted run"
        );
        for (p, run) in runs.iter_mut().enumerate() {
            let tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(dir)
                .map_err(output_err)?;
            let (file, path) = tmp.into_parts();
            let mut w = Writer::new(BufWriter::with_capacity(1 << 20, file)).map_err(output_err)?;
            self.write_partition(app, p as u32, &mut w)?;
            w.finish()
                .map_err(output_err)?
                .0
                .flush()
                .map_err(output_err)?;
            run.push(path);
        }
        Ok(())
    }
}

/// Reads the lines `split` owns from the local filesystem.
pub fn read_split(split: &Split) -> Result<Vec<u8>, TaskFailure> {
    mr::split::read_split(split).map_err(|e| TaskFailure::Input {
        path: split.path.clone(),
        error: e.to_string(),
    })
}

/// Runs map task `map` over `bytes`, the lines of a split of the input `filename`,
/// writing `mr-{map}-Y` for Y in 0..n_reduce into `dir`. Past `memory` bytes of buffered
/// output, sorted runs spill to disk and are merged at the end.
pub fn run_map(
    app: &App,
    map: u32,
    filename: &str,
    bytes: Vec<u8>,
    n_reduce: u32,
    dir: &Path,
    memory: usize,
) -> TaskOutcome {
    let bytes_read = bytes.len() as u64;
    let contents = mr::split::decode_input(bytes);

    let mut buf = Buffer::new(app, n_reduce);
    let parts = Modulo::new(n_reduce);
    let mut runs: Vec<Vec<TempPath>> = (0..n_reduce).map(|_| Vec::new()).collect();
    let mut records_in = 0u64;
    let mut failed: Option<Box<TaskFailure>> = None;
    app.map(filename, &contents, |k, v| {
        if failed.is_some() {
            return;
        }
        records_in += 1;
        if let Err(e) = buf.push(app, &parts, k, v) {
            failed = Some(e);
        } else if buf.bytes() > memory {
            if let Err(e) = buf.spill(app, dir, &mut runs) {
                failed = Some(Box::new(e));
            }
        }
    })
    .map_err(app_err)?;
    if let Some(f) = failed {
        return Err(*f);
    }
    drop(contents);

    let spilled = runs.iter().any(|r| !r.is_empty());
    if spilled && !buf.is_empty() {
        buf.spill(app, dir, &mut runs)?;
    }
    let mut outputs = Vec::with_capacity(n_reduce as usize);
    let mut stats = TaskStats {
        bytes_read,
        records_in,
        ..TaskStats::default()
    };
    for p in 0..n_reduce {
        let dest = dir.join(intermediate_name(map, p));
        let file = AtomicFile::create(&dest).map_err(output_err)?;
        let mut w = Writer::new(file).map_err(output_err)?;
        if spilled {
            merge_runs(app, &runs[p as usize], &mut w)?;
        } else {
            buf.write_partition(app, p, &mut w)?;
        }
        stats.records_out += w.count();
        let (file, size) = w.finish().map_err(output_err)?;
        stats.bytes_written += size;
        file.commit(false).map_err(output_err)?;
        outputs.push(Location::Path(dest));
    }
    Ok(TaskResult::Map { outputs, stats })
}

/// Merges the spilled runs of one partition into `w`, combining across runs.
fn merge_runs<W: Write>(
    app: &App,
    runs: &[TempPath],
    w: &mut Writer<W>,
) -> Result<(), TaskFailure> {
    let readers = runs
        .iter()
        .map(|path| Reader::open(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(output_err)?;
    let merger = Merger::new(readers).map_err(output_err)?;
    let mut out = Vec::new();
    merger
        .for_each_group(|k, vs| -> Result<(), TaskFailure> {
            if app.has_combiner() && vs.len() > 1 {
                out.clear();
                app.combine(k, vs, &mut out).map_err(app_err)?;
                w.push(k, &out).map_err(output_err)
            } else {
                vs.iter().try_for_each(|v| w.push(k, v)).map_err(output_err)
            }
        })
        .map_err(|e| match e {
            MergeError::Consumer(f) => f,
            MergeError::Input { error, .. } => output_err(error),
        })?;
    Ok(())
}

/// Runs reduce task `partition` over the map outputs `inputs`, writing
/// `mr-out-{partition}` into `out_dir`.
pub fn run_reduce(app: &App, partition: u32, inputs: &[MapOutput], out_dir: &Path) -> TaskOutcome {
    let lost = |input: &MapOutput, error: String| TaskFailure::LostMapOutput {
        map: input.map,
        location: input.location.clone(),
        error,
    };
    let mut readers = Vec::with_capacity(inputs.len());
    let mut bytes_read = 0;
    // Read buffers share a fixed budget, so memory does not grow with M.
    let buffer = (MERGE_BUFFERS / inputs.len().max(1)).clamp(8 << 10, 256 << 10);
    for input in inputs {
        let path = local_path(input)?;
        bytes_read += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        readers.push(Reader::open_buffered(path, buffer).map_err(|e| lost(input, e.to_string()))?);
    }
    let merge_err = |e: MergeError<TaskFailure>| match e {
        MergeError::Consumer(f) => f,
        MergeError::Input { index, error } => lost(&inputs[index], error.to_string()),
    };
    let merger = Merger::new(readers).map_err(|e| match e {
        MergeError::Input { index, error } => lost(&inputs[index], error.to_string()),
        MergeError::Consumer(never) => match never {},
    })?;
    let dest = out_dir.join(output_name(partition));
    let mut out = AtomicFile::create(&dest).map_err(output_err)?;
    let mut result = Vec::new();
    let mut lines = 0u64;
    let mut bytes_written = 0u64;
    let records_in = merger
        .for_each_group(|key, values| -> Result<(), TaskFailure> {
            result.clear();
            app.reduce(key, values, &mut result).map_err(app_err)?;
            write_line(&mut out, key, &result).map_err(output_err)?;
            lines += 1;
            bytes_written += key.len() as u64 + result.len() as u64 + 2;
            Ok(())
        })
        .map_err(|e| match merge_err(e) {
            // Damaged input can make the app fail (a corrupt key is not UTF-8) before the
            // checksum at the end of that input is reached: blame the input, so that its
            // map re-runs, rather than the app, which would fail the same way every time.
            f @ TaskFailure::App { .. } => first_damaged(inputs).unwrap_or(f),
            f => f,
        })?;
    out.commit(true).map_err(output_err)?;
    Ok(TaskResult::Reduce {
        output: Location::Path(dest),
        stats: TaskStats {
            bytes_read,
            bytes_written,
            records_in,
            records_out: lines,
        },
    })
}

/// The path of a map output on this machine (the worker fetches remote ones first).
fn local_path(input: &MapOutput) -> Result<&Path, TaskFailure> {
    match &input.location {
        Location::Path(p) => Ok(p),
        remote => Err(TaskFailure::LostMapOutput {
            map: input.map,
            location: remote.clone(),
            error: "not fetched to this machine".into(),
        }),
    }
}

/// The first input that is not a whole, intact intermediate file, as a lost map output.
fn first_damaged(inputs: &[MapOutput]) -> Option<TaskFailure> {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    inputs.iter().find_map(|input| {
        let path = local_path(input).ok()?;
        let check = Reader::open(path).and_then(|mut r| {
            while r.next_into(&mut key, &mut value)? {}
            Ok(())
        });
        check.err().map(|e| TaskFailure::LostMapOutput {
            map: input.map,
            location: input.location.clone(),
            error: e.to_string(),
        })
    })
}

fn write_line(out: &mut impl Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(key)?;
    out.write_all(b" ")?;
    out.write_all(value)?;
    out.write_all(b"\n")
}
