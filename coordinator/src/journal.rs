//! The coordinator's journal: an append-only JSON-lines file of the job's task state
//! changes, fsynced at every completion, from which a restarted coordinator picks the
//! job up: done tasks whose files are intact stay done, everything else is idle again.
//!
//! The file is kept zero-filled ahead of its last record (`PREALLOCATE`), so
//! that a record overwrites blocks the file already has: its `fdatasync` then writes the
//! one data block and not the inode too (a file that grows must sync its new size, a
//! second disk write per completion). A reader stops at the first line that is not a
//! record, which the zeros never are.

use crate::effect::SyncWhen;
use crate::task::{Chosen, TaskTable};
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::intermediate::FormatError;
use mr::task::{intermediate_name, packed_name, Location, MapOutputs, TaskResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The default journal file, in the coordinator's working directory.
pub const DEFAULT_PATH: &str = "mr-coordinator.journal";

/// What identifies a job: a journal is resumed only by the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobKey {
    /// The input files, as given.
    pub inputs: Vec<PathBuf>,
    /// R.
    pub n_reduce: u32,
    /// The split size (it decides M).
    pub split_size: u64,
    /// How keys are partitioned (journals from before range partitioning are hash).
    #[serde(default)]
    pub partition: mr::partition::PartitionMode,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// First line: which job.
    Job {
        /// The job.
        key: JobKey,
    },
    /// A coordinator process started on this journal (1 for the first).
    Start {
        /// Its number; worker ids carry it so ids never repeat across restarts.
        incarnation: u32,
    },
    /// A task was handed out (not fsynced: only keeps attempt numbers increasing).
    Assigned {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
    },
    /// A task's output is final (on disk before the worker hears "accepted", or, for a
    /// map, soon after: see [`SyncWhen`]).
    Done {
        /// The task.
        task: TaskId,
        /// The attempt that finished it.
        attempt: Attempt,
        /// The worker that finished it.
        worker: WorkerId,
        /// What it produced.
        result: TaskResult,
    },
    /// The split points of a range-partitioned job, chosen from the sample tasks' keys
    /// (fsynced before the first map is handed out; the sample tasks' own results are
    /// not journaled: without this record they run again).
    SplitPoints {
        /// The points and what they were chosen from.
        chosen: Chosen,
    },
    /// A done map task's output was lost; it runs again.
    Reopened {
        /// The map task.
        task: TaskId,
    },
    /// The job ended; a journal that says so is not resumed.
    Finished {
        /// Whether it succeeded.
        succeeded: bool,
    },
}

/// What the journal says about a job that did not finish.
#[derive(Debug, Default)]
pub struct Replay {
    /// The incarnation of the process now starting.
    pub incarnation: u32,
    /// The highest attempt handed out per task.
    pub attempts: BTreeMap<TaskId, u32>,
    /// Tasks that were done, with their result.
    pub done: BTreeMap<TaskId, (Attempt, WorkerId, TaskResult)>,
    /// The split points, if chosen.
    pub split_points: Option<Chosen>,
}

/// How far ahead of its records the journal file is zero-filled, at least and at most
/// at a time: as much again as it holds, between these. So a size change (an inode
/// write) comes once per many records, and a small job's journal stays small.
const PREALLOCATE: (u64, u64) = (64 << 10, 4 << 20);

/// An open journal.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Where the records end and the next is written.
    len: u64,
    /// The file's length: zeros from `len` to here.
    allocated: u64,
}

/// Why a journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O on the journal file.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `--resume` was asked but there is nothing to resume.
    #[error("journal {0}: no unfinished job of these inputs to resume; run without --resume to start it")]
    NothingToResume(PathBuf),
}

/// Reads the whole records of a journal, and the length in bytes of the part of the
/// file they fill: a line cut short by a crash (no newline, or not a record) can only be
/// the last, and everything from it on is not part of the journal.
fn read_records(path: &Path) -> io::Result<(Vec<Record>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut good = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice(&line[..n - 1]) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        good += n as u64;
    }
    Ok((out, good))
}

/// Folds the records of one job into a replay, or `None` if they are not a resumable
/// run of `key` (another job, a finished one, or no journal).
pub fn replay(records: &[Record], key: &JobKey) -> Option<Replay> {
    match records.first() {
        Some(Record::Job { key: k }) if k == key => {}
        _ => return None,
    }
    let mut r = Replay::default();
    for rec in records {
        match rec {
            Record::Job { .. } => {}
            Record::Start { incarnation } => r.incarnation = r.incarnation.max(*incarnation),
            Record::Assigned { task, attempt } => {
                let a = r.attempts.entry(*task).or_default();
                *a = (*a).max(attempt.0);
            }
            Record::Done {
                task,
                attempt,
                worker,
                result,
            } => {
                let a = r.attempts.entry(*task).or_default();
                *a = (*a).max(attempt.0);
                r.done.insert(*task, (*attempt, *worker, result.clone()));
            }
            Record::Reopened { task } => {
                r.done.remove(task);
            }
            Record::SplitPoints { chosen } => r.split_points = Some(chosen.clone()),
            Record::Finished { .. } => return None,
        }
    }
    r.incarnation += 1;
    Some(r)
}

impl Journal {
    /// Opens the journal at `path` for the job `key`. An unfinished journal of the same
    /// job is replayed and appended to; anything else is replaced by a new journal.
    /// With `require_resume`, a journal to resume must exist.
    pub fn open(
        path: &Path,
        key: &JobKey,
        require_resume: bool,
    ) -> Result<(Journal, Replay), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (records, good) = read_records(path).map_err(io_err)?;
        let (file, replay, len) = match replay(&records, key) {
            Some(replay) => {
                // Cut a torn last line (and the zeros after the records) off before
                // writing: a record glued to a torn one would be unreadable, and with
                // it everything this run records.
                let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
                file.set_len(good).map_err(io_err)?;
                (file, replay, good)
            }
            None if require_resume => return Err(JournalError::NothingToResume(path.into())),
            None => {
                let file = File::create(path).map_err(io_err)?;
                let replay = Replay {
                    incarnation: 1,
                    ..Replay::default()
                };
                (file, replay, 0)
            }
        };
        let mut j = Journal {
            file,
            path: path.to_path_buf(),
            len,
            allocated: len,
        };
        if replay.incarnation == 1 {
            j.append(&Record::Job { key: key.clone() }, false)
                .map_err(io_err)?;
        }
        j.append(
            &Record::Start {
                incarnation: replay.incarnation,
            },
            true,
        )
        .map_err(io_err)?;
        Ok((j, replay))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where its records end, in bytes (the file is longer: zeros follow).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no records yet (never true once opened).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one record; with `sync`, it is on disk when this returns.
    pub fn append(&mut self, record: &Record, sync: bool) -> io::Result<()> {
        self.append_all(std::slice::from_ref(record), sync)
    }

    /// Appends records in one write; with `sync`, they are on disk when this returns.
    pub fn append_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Record>,
        sync: bool,
    ) -> io::Result<()> {
        let mut lines = Vec::new();
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(io::Error::other)?;
            lines.push(b'\n');
        }
        let end = self.len + lines.len() as u64;
        if end > self.allocated {
            // Zeros first, then the records over them: the size changes here, once per
            // many records, and the next sync writes it with them.
            let (least, most) = PREALLOCATE;
            let to = (end + self.allocated.clamp(least, most)).next_multiple_of(least);
            write_zeros(&self.file, self.allocated, to)?;
            self.allocated = to;
        }
        self.file.write_all_at(&lines, self.len)?;
        self.len = end;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Writes real zeros over `from..to` of `file`: blocks that are only reserved
/// (`fallocate`) or a hole would still change the file's metadata when first written.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Writes the journal for the service: records are appended in order (the callers hold
/// the job lock, so the order of records is the order of the changes), and each is
/// synced when its [`SyncWhen`] says.
///
/// A record synced before a reply is synced on the waiting handler's own thread, outside
/// the job lock: the first waiter that finds no sync running writes everything appended
/// so far and fsyncs it, and waiters arriving meanwhile are covered by the next one
/// (group commit). Handing those records to a writer thread cost two task switches per
/// completion (the thread woken to write, the handler woken when it was done), as much
/// CPU as the sync itself at low concurrency. A disk that stalls holds the runtime thread
/// of the handler that syncs, not the job lock: heartbeats have their own thread, so
/// workers stay alive; in the coordinator binary, whose runtime has one thread, other
/// calls wait for the disk too (they could do little else: no such record can be
/// accepted until it is back).
///
/// A record synced soon (a map's completion) is synced by the writer's own thread,
/// woken when one is appended: nobody waits for it, so its worker computes its next task
/// while the disk works, and completions arriving during a sync share the next one.
/// Waiting for each map's sync held both workers idle about a third of a job of 10,000
/// small maps.
///
/// Unsynced records (a task handed out) wait for the next sync, or are written (not
/// synced) once `HELD_BACK` of them wait. They may be lost in a crash either way, which
/// costs only a reused attempt number, and the simulator cuts unsynced records off at its
/// crashes.
pub struct Writer {
    inner: std::sync::Arc<Inner>,
    /// The thread that syncs records synced soon (`None`: it could not be started, and
    /// they are synced before the reply instead).
    syncer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    state: std::sync::Mutex<State>,
    /// Woken when a sync ends (for waiting handlers).
    synced: tokio::sync::Notify,
    /// Signalled when a sync ends (for the closing thread).
    returned: std::sync::Condvar,
    /// Signalled when the syncer has work (a record to sync soon, or the close).
    wanted: std::sync::Condvar,
}

struct State {
    /// `None` while a sync has it.
    journal: Option<Journal>,
    /// Appended, not yet written.
    pending: Vec<Record>,
    /// Synced records appended so far, counted.
    appended: u64,
    /// How many of them are on disk (or failed to get there, which is logged).
    durable: u64,
    /// The number (in `appended`) of the last record to sync soon.
    soon: u64,
    /// Whether the syncer sleeps on `wanted`: only then is it signalled (a condvar's
    /// signal is a system call even when nobody waits).
    syncer_sleeps: bool,
    /// Whether the closing thread waits for a sync under way: only then is `returned`
    /// signalled (a sync ends after every completion).
    closing: bool,
}

/// Unsynced records held back, at most, before they are written without a sync.
const HELD_BACK: usize = 256;

/// A synced record on its way to disk; [`Durable::wait`] returns once it is there (or
/// once writing it failed, which is logged: the job goes on, it could just not be
/// resumed after a crash). Dropped unawaited, the record is written with the next sync,
/// at the latest when the journal closes.
#[must_use = "a synced record is durable only once wait() returns"]
pub struct Durable(Option<(std::sync::Arc<Inner>, u64)>);

impl Durable {
    /// Nothing to wait for (no journal, or an unsynced record).
    pub fn none() -> Durable {
        Durable(None)
    }

    /// Whether there is something to wait for.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Waits until the record is on disk, syncing it here if no sync is running.
    pub async fn wait(self) {
        let Some((inner, seq)) = self.0 else {
            return;
        };
        loop {
            // Interest first, so that a sync ending between the look and the wait is
            // not missed.
            let ended = inner.synced.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if inner.sync_unless_running(seq) {
                return;
            }
            ended.await;
        }
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether synced record `seq` is on disk, after syncing everything appended if no
    /// sync was running (false: one is, and `seq` may not be in it).
    fn sync_unless_running(&self, seq: u64) -> bool {
        let st = self.state();
        st.durable >= seq || self.sync_if_idle(st)
    }

    /// Writes and syncs everything appended unless a sync is running (then false),
    /// releasing the lock for the disk.
    fn sync_if_idle(&self, mut st: std::sync::MutexGuard<'_, State>) -> bool {
        let Some(mut journal) = st.journal.take() else {
            return false;
        };
        let batch = std::mem::take(&mut st.pending);
        let upto = st.appended;
        drop(st);
        write_logged(&mut journal, &batch, true);
        self.sync_ended(journal, upto);
        true
    }

    /// Puts the journal back after a sync that made synced records up to `upto`
    /// durable, and wakes whoever waits for it.
    fn sync_ended(&self, journal: Journal, upto: u64) {
        let mut st = self.state();
        st.journal = Some(journal);
        st.durable = st.durable.max(upto);
        let closing = st.closing;
        // A record to sync soon may have come during a handler's sync, which left the
        // syncer asleep.
        let syncer = st.soon > st.durable && st.syncer_sleeps;
        if syncer {
            st.syncer_sleeps = false;
        }
        drop(st);
        self.synced.notify_waiters();
        if closing {
            self.returned.notify_all();
        }
        if syncer {
            self.wanted.notify_one();
        }
    }

    /// The syncer's loop: syncs while records to sync soon are not on disk, sleeps
    /// otherwise, and returns at the close (which writes what is left).
    fn sync_soon(&self) {
        let mut st = self.state();
        loop {
            if st.closing {
                return;
            }
            // A handler's sync may have the journal: its end wakes us.
            if st.soon > st.durable && st.journal.is_some() {
                self.sync_if_idle(st);
                st = self.state();
                continue;
            }
            st.syncer_sleeps = true;
            st = self.wanted.wait(st).unwrap_or_else(|p| p.into_inner());
            st.syncer_sleeps = false;
        }
    }
}

impl Writer {
    /// Writes `journal` from now on.
    pub fn new(journal: Journal) -> Writer {
        let inner = std::sync::Arc::new(Inner {
            state: std::sync::Mutex::new(State {
                journal: Some(journal),
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                soon: 0,
                syncer_sleeps: false,
                closing: false,
            }),
            synced: tokio::sync::Notify::new(),
            returned: std::sync::Condvar::new(),
            wanted: std::sync::Condvar::new(),
        });
        let syncer = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("journal-sync".into())
                .spawn(move || inner.sync_soon())
        };
        let syncer = match syncer {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the journal's syncer thread; every completion is synced before its reply");
                None
            }
        };
        Writer { inner, syncer }
    }

    /// Appends `record`, to be synced `when` it says; the returned handle, if any
    /// ([`Durable::is_some`]), is to be waited for before the reply.
    pub fn append(&self, record: Record, when: SyncWhen) -> Durable {
        let mut st = self.inner.state();
        st.pending.push(record);
        // Without a syncer, nobody else would sync it.
        let when = match when {
            SyncWhen::Soon if self.syncer.is_none() => SyncWhen::BeforeReply,
            when => when,
        };
        match when {
            SyncWhen::BeforeReply => {
                st.appended += 1;
                Durable(Some((self.inner.clone(), st.appended)))
            }
            SyncWhen::Soon => {
                st.appended += 1;
                st.soon = st.appended;
                // A sleeping syncer is woken once; one that is syncing takes this record
                // with its next sync, and a handler's sync under way wakes it at its end.
                let wake = st.syncer_sleeps && st.journal.is_some();
                if wake {
                    st.syncer_sleeps = false;
                }
                drop(st);
                if wake {
                    self.inner.wanted.notify_one();
                }
                Durable::none()
            }
            SyncWhen::WithNext => {
                if st.pending.len() >= HELD_BACK {
                    // Written to the page cache only (no sync), unless a sync is under
                    // way: it takes them with the next.
                    let st = &mut *st;
                    if let Some(journal) = st.journal.as_mut() {
                        write_logged(journal, &st.pending, false);
                        st.pending.clear();
                    }
                }
                Durable::none()
            }
        }
    }

    /// Writes out and syncs everything appended (after a sync under way), and closes
    /// the journal.
    pub fn close(self) {
        // Drop does it.
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut st = self.inner.state();
        // A handler's sync may be running on another thread: it puts the journal back.
        st.closing = true;
        let syncer = std::mem::replace(&mut st.syncer_sleeps, false);
        drop(st);
        if syncer {
            self.inner.wanted.notify_one();
        }
        // The syncer sees the close once its sync (if any) ends.
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
        let mut st = self.inner.state();
        while st.journal.is_none() {
            st = self
                .inner
                .returned
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        if let Some(mut journal) = st.journal.take() {
            let batch = std::mem::take(&mut st.pending);
            write_logged(&mut journal, &batch, true);
        }
        // Whatever waits now has nothing left to wait for.
        st.durable = st.appended;
        drop(st);
        self.inner.synced.notify_waiters();
    }
}

/// Writes `records` (and syncs, with `sync`); a failure is logged, not fatal: the job
/// goes on, it just could not be resumed after a crash.
fn write_logged(journal: &mut Journal, records: &[Record], sync: bool) {
    if let Err(e) = journal.append_all(records, sync) {
        tracing::warn!(journal = %journal.path().display(), error = %e, "cannot write the journal");
    }
}

/// Whether a finished task's files are still there and whole, cheaply: a map's packed
/// `mr-X.data` with an intact index whose R partitions fill it ([`mr::packed::check`]:
/// one open a map, whatever R), or, where a map's output is plain `mr-X-Y` files, the
/// header and footer of each. Records and their checksums are checked by the reduce
/// that reads them, which reports damage as a lost output, and the map runs again.
///
/// Map output on a worker's own disk cannot be checked from here: it counts as intact,
/// and if it is gone, the reduce that cannot fetch it reports it lost and the map runs
/// again. `n_reduce` is R.
pub fn outputs_intact(task: TaskId, result: &TaskResult, n_reduce: u32) -> bool {
    match result {
        TaskResult::Map {
            output: MapOutputs::Dir(dir),
            ..
        } => match mr::packed::check(&dir.join(packed_name(task.index)), n_reduce) {
            Ok(()) => true,
            Err(FormatError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => (0..n_reduce)
                .all(|y| {
                    mr::intermediate::Reader::open(&dir.join(intermediate_name(task.index, y)))
                        .is_ok()
                }),
            Err(_) => false,
        },
        TaskResult::Map {
            output: MapOutputs::Server(_),
            ..
        } => true,
        TaskResult::Reduce { output, .. } => match output {
            Location::Path(p) => p.is_file(),
            Location::Remote { .. } => true,
        },
        // Kept by the coordinator itself.
        TaskResult::Sample { .. } => true,
    }
}

/// Applies a replay to a fresh task table: attempt counters continue, and done tasks
/// whose files are intact are done again. Returns the tasks restored as done.
pub fn restore(tasks: &mut TaskTable, replay: &Replay) -> Vec<TaskId> {
    let n = tasks.n_reduce();
    restore_with(tasks, replay, |t, r| outputs_intact(t, r, n))
}

/// [`restore`], with `intact` saying whether a finished task's files are still there
/// (the simulator's disks are not the file system).
pub fn restore_with(
    tasks: &mut TaskTable,
    replay: &Replay,
    intact: impl Fn(TaskId, &TaskResult) -> bool,
) -> Vec<TaskId> {
    for (task, attempts) in &replay.attempts {
        tasks.set_attempts(*task, *attempts);
    }
    let mut restored = Vec::new();
    // Before any map: a map's output depends on them.
    if let Some(chosen) = &replay.split_points {
        if tasks.restore_split_points(chosen.clone()) {
            restored.extend(tasks.samples().iter().map(|t| t.id));
        }
    }
    // Maps first, then reduces. A reduce's committed output stays final even if a map
    // it read must run again (its output was lost): only the reduces still to do need
    // that map.
    let ordered = replay
        .done
        .iter()
        .filter(|(t, _)| t.kind == TaskKind::Map)
        .chain(
            replay
                .done
                .iter()
                .filter(|(t, _)| t.kind == TaskKind::Reduce),
        );
    for (task, (attempt, worker, result)) in ordered {
        if intact(*task, result) && tasks.restore_done(*task, *attempt, *worker, result.clone()) {
            restored.push(*task);
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr::task::{Split, TaskStats};
    use std::time::Duration;

    fn key() -> JobKey {
        JobKey {
            inputs: vec!["a.txt".into(), "b.txt".into()],
            n_reduce: 1,
            split_size: 64 << 20,
            partition: mr::partition::PartitionMode::Hash,
        }
    }

    fn table(dir: &Path) -> TaskTable {
        let splits = ["a.txt", "b.txt"]
            .iter()
            .map(|p| Split {
                path: p.into(),
                offset: 0,
                len: 1,
            })
            .collect();
        TaskTable::new(splits, 1, dir.into(), Duration::from_secs(10), 4)
    }

    /// Map `m`'s output as maps write it: one packed `mr-m.data` of R = 3 partitions.
    fn write_packed(dir: &Path, m: u32) -> PathBuf {
        let partitions: Vec<Vec<_>> = (0..3)
            .map(|y| vec![(format!("k{y}").into_bytes(), b"1".to_vec())])
            .collect();
        let path = dir.join(packed_name(m));
        mr::packed::write_file(&path, &partitions).unwrap();
        path
    }

    #[test]
    fn a_packed_map_output_is_intact_only_while_its_index_is_whole_and_fills_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_packed(dir.path(), 4);
        let Record::Done { task, result, .. } = map_done(dir.path(), 4) else {
            unreachable!()
        };
        std::fs::remove_file(dir.path().join("mr-4-0")).unwrap();
        assert!(outputs_intact(task, &result, 3));
        // Of another R: not restored.
        assert!(!outputs_intact(task, &result, 2));
        assert!(!outputs_intact(task, &result, 4));
        // Cut anywhere, or any byte of its index flipped: not restored.
        let good = std::fs::read(&path).unwrap();
        for cut in [1, 5, 12, 30, good.len() / 2, good.len()] {
            std::fs::write(&path, &good[..good.len() - cut]).unwrap();
            assert!(!outputs_intact(task, &result, 3), "cut {cut}");
        }
        for i in good.len() - (3 * 8 + 12)..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(!outputs_intact(task, &result, 3), "index byte {i}");
        }
        // A record or footer damaged is left to the reduce that streams it (it
        // reports the output lost): the restart check reads no partition.
        let footer = good.len() - (3 * 8 + 12) - 16;
        let mut bad = good.clone();
        bad[footer] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        assert!(outputs_intact(task, &result, 3));
        std::fs::write(&path, &good).unwrap();
        assert!(outputs_intact(task, &result, 3));
        // Gone: not restored either.
        std::fs::remove_file(&path).unwrap();
        assert!(!outputs_intact(task, &result, 3));
        // `data` zero bytes, then an index of these partition sizes.
        let indexed = |data: usize, sizes: [u64; 3]| {
            let mut file = vec![0u8; data];
            let mut index = mr::packed::Index::new();
            for size in sizes {
                index.push(size);
            }
            index.write_to(&mut file).unwrap();
            std::fs::write(&path, &file).unwrap();
        };
        // An index whose partitions are too short to be streams: not restored.
        indexed(60, [20, 10, 30]);
        assert!(!outputs_intact(task, &result, 3));
        // Nor one whose partitions stop short of the index (bytes between them).
        indexed(70, [20, 20, 20]);
        assert!(!outputs_intact(task, &result, 3));
    }

    #[test]
    fn plain_map_outputs_are_intact_only_while_every_partition_reads() {
        let dir = tempfile::tempdir().unwrap();
        let Record::Done { task, result, .. } = map_done(dir.path(), 5) else {
            unreachable!()
        };
        for y in 1..3 {
            let path = dir.path().join(intermediate_name(5, y));
            mr::intermediate::write_file(&path, [(&b"k"[..], &b"v"[..])]).unwrap();
        }
        assert!(outputs_intact(task, &result, 3));
        let last = dir.path().join(intermediate_name(5, 2));
        let good = std::fs::read(&last).unwrap();
        std::fs::write(&last, &good[..good.len() - 1]).unwrap();
        assert!(!outputs_intact(task, &result, 3));
        std::fs::remove_file(&last).unwrap();
        assert!(!outputs_intact(task, &result, 3));
    }

    fn map_done(dir: &Path, m: u32) -> Record {
        let path = dir.join(format!("mr-{m}-0"));
        mr::intermediate::write_file(&path, [(&b"k"[..], &b"v"[..])]).unwrap();
        Record::Done {
            task: TaskId::map(m),
            attempt: Attempt(2),
            worker: WorkerId::first_run(7),
            result: TaskResult::Map {
                output: mr::task::MapOutputs::Dir(dir.into()),
                stats: TaskStats::default(),
            },
        }
    }

    #[test]
    fn an_unfinished_job_resumes_with_intact_outputs_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, replay) = Journal::open(&path, &key(), false).unwrap();
        assert_eq!(replay.incarnation, 1);
        j.append(
            &Record::Assigned {
                task: TaskId::map(0),
                attempt: Attempt(2),
            },
            false,
        )
        .unwrap();
        j.append(&map_done(dir.path(), 0), true).unwrap();
        j.append(&map_done(dir.path(), 1), true).unwrap();
        // Map 1's output disappears while the coordinator is down.
        std::fs::remove_file(dir.path().join("mr-1-0")).unwrap();
        drop(j);

        let (_j, replay) = Journal::open(&path, &key(), true).unwrap();
        assert_eq!(replay.incarnation, 2);
        let mut t = table(dir.path());
        let restored = restore(&mut t, &replay);
        assert_eq!(restored, vec![TaskId::map(0)]);
        assert!(!t.maps_done());
        // Map 1 runs again, with an attempt number above any seen before.
        let a = t
            .assign(WorkerId::first_run(9), std::time::Instant::now())
            .unwrap();
        assert_eq!((a.task, a.attempt), (TaskId::map(1), Attempt(3)));
    }

    #[test]
    fn a_committed_reduce_stays_done_when_a_map_it_read_was_lost_meanwhile() {
        // Found by the simulator: the reduce ran again because one map had to.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, &key(), false).unwrap();
        j.append(&map_done(dir.path(), 0), true).unwrap();
        j.append(&map_done(dir.path(), 1), true).unwrap();
        let out = dir.path().join("mr-out-0");
        std::fs::write(&out, b"k 1\n").unwrap();
        j.append(
            &Record::Done {
                task: TaskId::reduce(0),
                attempt: Attempt(1),
                worker: WorkerId::first_run(7),
                result: TaskResult::Reduce {
                    output: Location::Path(out),
                    stats: TaskStats::default(),
                },
            },
            true,
        )
        .unwrap();
        drop(j);
        std::fs::remove_file(dir.path().join("mr-1-0")).unwrap();
        let (_j, replay) = Journal::open(&path, &key(), true).unwrap();
        let mut t = table(dir.path());
        let restored = restore(&mut t, &replay);
        assert_eq!(restored, vec![TaskId::map(0), TaskId::reduce(0)]);
        assert!(
            t.is_done(),
            "every reduce is done: the lost map is not needed"
        );
        t.audit().unwrap();
    }

    #[test]
    fn what_a_run_records_after_a_torn_line_survives_the_next_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, &key(), false).unwrap();
        j.append(&map_done(dir.path(), 0), true).unwrap();
        let end = j.len();
        drop(j);
        // The first run crashes in the middle of a line: its start is on disk, the rest
        // of the block still the zeros it was preallocated with.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"{\"event\":\"done\",\"task\":", end)
            .unwrap();
        drop(f);
        // The second run finishes map 1, then crashes too.
        let (mut j, replay) = Journal::open(&path, &key(), true).unwrap();
        // The torn line is ignored: map 0's record still counts.
        assert_eq!(replay.done.len(), 1);
        assert_eq!(replay.incarnation, 2);
        j.append(&map_done(dir.path(), 1), true).unwrap();
        drop(j);
        // The third run sees both maps done, and is incarnation 3.
        let (_, replay) = Journal::open(&path, &key(), true).unwrap();
        assert_eq!(replay.incarnation, 3);
        assert_eq!(
            replay.done.keys().copied().collect::<Vec<_>>(),
            vec![TaskId::map(0), TaskId::map(1)]
        );
    }

    #[tokio::test]
    async fn the_writer_keeps_order_and_a_synced_record_is_on_disk_when_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (j, _) = Journal::open(&path, &key(), false).unwrap();
        let w = Writer::new(j);
        for a in 1..=50 {
            let _ = w.append(
                Record::Assigned {
                    task: TaskId::map(0),
                    attempt: Attempt(a),
                },
                SyncWhen::WithNext,
            );
        }
        w.append(map_done(dir.path(), 0), SyncWhen::BeforeReply)
            .wait()
            .await;
        // Durable means readable by a restarted coordinator, with nothing lost or out
        // of order.
        let (records, _) = read_records(&path).unwrap();
        let attempts: Vec<u32> = records
            .iter()
            .filter_map(|r| match r {
                Record::Assigned { attempt, .. } => Some(attempt.0),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, (1..=50).collect::<Vec<_>>());
        assert!(matches!(records.last(), Some(Record::Done { .. })));
        w.close();
    }

    #[tokio::test]
    async fn a_record_synced_soon_gets_to_disk_with_nobody_waiting_and_before_a_later_reply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (j, _) = Journal::open(&path, &key(), false).unwrap();
        let w = Writer::new(j);
        assert!(w.syncer.is_some());
        let done_on_disk = |m: u32| {
            read_records(&path).unwrap().0.iter().any(|r| {
                matches!(r,
                Record::Done { task, .. } if *task == TaskId::map(m))
            })
        };
        // Nothing to wait for: the syncer writes and syncs it.
        let d = w.append(map_done(dir.path(), 0), SyncWhen::Soon);
        assert!(!d.is_some());
        let inner = w.inner.clone();
        loop {
            let ended = inner.synced.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if inner.state().durable >= 1 {
                break;
            }
            tokio::time::timeout(std::time::Duration::from_secs(10), ended)
                .await
                .expect("the syncer synced the record");
        }
        assert!(done_on_disk(0));
        // Many at once, then one synced before a reply: once that one is waited for,
        // every earlier one is on disk too, in order.
        for m in 1..100 {
            assert!(!w.append(map_done(dir.path(), m), SyncWhen::Soon).is_some());
        }
        w.append(map_done(dir.path(), 100), SyncWhen::BeforeReply)
            .wait()
            .await;
        let done: Vec<u32> = read_records(&path)
            .unwrap()
            .0
            .iter()
            .filter_map(|r| match r {
                Record::Done { task, .. } => Some(task.index),
                _ => None,
            })
            .collect();
        assert_eq!(done, (0..=100).collect::<Vec<_>>());
        // The close stops the syncer (it would hang here otherwise) and loses nothing.
        let _ = w.append(map_done(dir.path(), 101), SyncWhen::Soon);
        w.close();
        assert!(done_on_disk(101));
    }

    #[test]
    fn unsynced_records_are_held_back_until_a_batch_fills_or_the_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (j, _) = Journal::open(&path, &key(), false).unwrap();
        let on_disk = || read_records(&path).unwrap().0.len();
        let base = on_disk(); // Job and Start
        let w = Writer::new(j);
        let assigned = |a| Record::Assigned {
            task: TaskId::map(0),
            attempt: Attempt(a),
        };
        for a in 1..HELD_BACK as u32 {
            let _ = w.append(assigned(a), SyncWhen::WithNext);
        }
        assert_eq!(on_disk(), base, "held back");
        // The batch is full: it is written.
        let _ = w.append(assigned(HELD_BACK as u32), SyncWhen::WithNext);
        assert_eq!(on_disk(), base + HELD_BACK);
        // What is held at close, and a synced record nobody waited for, are written
        // before close returns.
        let _ = w.append(assigned(HELD_BACK as u32 + 1), SyncWhen::WithNext);
        drop(w.append(map_done(dir.path(), 0), SyncWhen::BeforeReply));
        assert_eq!(on_disk(), base + HELD_BACK);
        w.close();
        assert_eq!(on_disk(), base + HELD_BACK + 2);
    }

    #[test]
    fn close_waits_for_a_sync_under_way_then_writes_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (j, _) = Journal::open(&path, &key(), false).unwrap();
        let w = Writer::new(j);
        let inner = w.inner.clone();
        // A handler's sync has taken the journal (as sync_unless_running does) ...
        let journal = inner.state().journal.take().unwrap();
        // ... when a record is appended and the writer closes on another thread.
        drop(w.append(map_done(dir.path(), 0), SyncWhen::BeforeReply));
        let (tx, rx) = std::sync::mpsc::channel();
        let closer = std::thread::spawn(move || {
            w.close();
            tx.send(()).unwrap();
        });
        // The closer says it waits (under the lock) before it waits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !inner.state().closing {
            assert!(
                std::time::Instant::now() < deadline,
                "the closer never waited"
            );
            std::thread::yield_now();
        }
        assert!(
            rx.try_recv().is_err(),
            "close returned while a sync had the journal"
        );
        inner.sync_ended(journal, 0);
        // The end of that sync wakes the closer, which writes the record left.
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the end of a sync woke the closing thread");
        closer.join().unwrap();
        let (records, _) = read_records(&path).unwrap();
        assert!(records.iter().any(|r| matches!(r,
            Record::Done { task, .. } if *task == TaskId::map(0))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn completions_waiting_together_share_syncs_and_all_are_on_disk_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (j, _) = Journal::open(&path, &key(), false).unwrap();
        let w = std::sync::Arc::new(Writer::new(j));
        // One lock for the appends, as the job lock orders them in the service.
        let order = std::sync::Arc::new(std::sync::Mutex::new(()));
        let mut handlers = Vec::new();
        for m in 0..64u32 {
            let (w, order, dir) = (w.clone(), order.clone(), dir.path().to_path_buf());
            handlers.push(tokio::spawn(async move {
                let durable = {
                    let _g = order.lock().unwrap();
                    w.append(map_done(&dir, m), SyncWhen::BeforeReply)
                };
                durable.wait().await;
                // Once its wait returns, a completion is on disk.
                let (records, _) = read_records(&dir.join("j")).unwrap();
                assert!(records.iter().any(|r| matches!(r,
                    Record::Done { task, .. } if *task == TaskId::map(m))));
            }));
        }
        for h in handlers {
            h.await.unwrap();
        }
        let (records, _) = read_records(&path).unwrap();
        let done = records
            .iter()
            .filter(|r| matches!(r, Record::Done { .. }))
            .count();
        assert_eq!(done, 64);
        // A second wait on a record already synced by another's sync returns at once.
        let first = w.append(map_done(dir.path(), 64), SyncWhen::BeforeReply);
        let second = w.append(map_done(dir.path(), 65), SyncWhen::BeforeReply);
        first.wait().await;
        let before = read_records(&path).unwrap().0.len();
        second.wait().await;
        assert_eq!(
            read_records(&path).unwrap().0.len(),
            before,
            "synced together"
        );
    }

    #[test]
    fn a_restart_partitions_by_the_journaled_split_points_without_sampling_again() {
        use mr::partition::{PartitionMode, Partitioning};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let key = JobKey {
            n_reduce: 3,
            partition: PartitionMode::Range,
            ..key()
        };
        let range_table = || {
            let splits = (0..4)
                .map(|i| Split {
                    path: format!("in-{i}").into(),
                    offset: 0,
                    len: 100,
                })
                .collect();
            TaskTable::new(splits, 3, dir.path().into(), Duration::from_secs(10), 4)
                .with_partitioning(PartitionMode::Range)
        };
        // First run: sample, choose, journal the points as the job does.
        let mut first = range_table();
        let now = std::time::Instant::now();
        while let Some(a) = first.assign(WorkerId::first_run(1), now) {
            assert_eq!(a.task.kind, TaskKind::Sample, "maps wait for the points");
            let keys = (0..30).map(|k| vec![b'a' + (k % 26) as u8]).collect();
            let result = TaskResult::Sample {
                keys,
                stats: TaskStats::default(),
            };
            first
                .complete(WorkerId::first_run(1), a.task, a.attempt, result, now)
                .unwrap();
            if first.chosen().is_some() {
                break;
            }
        }
        let chosen = first.chosen().cloned().unwrap();
        assert_eq!(chosen.points.points().len(), 2);
        let (mut j, _) = Journal::open(&path, &key, false).unwrap();
        j.append(
            &Record::SplitPoints {
                chosen: chosen.clone(),
            },
            true,
        )
        .unwrap();
        drop(j);
        // The restart: the same points, no sample task to run, maps carry the points.
        let (_, replay) = Journal::open(&path, &key, true).unwrap();
        let mut second = range_table();
        let restored = restore(&mut second, &replay);
        assert_eq!(restored.len(), second.samples().len());
        assert_eq!(second.chosen(), Some(&chosen));
        let a = second.assign(WorkerId::first_run(2), now).unwrap();
        match a.spec {
            mr::task::TaskSpec::Map { partitioning, .. } => {
                assert_eq!(partitioning, Partitioning::Range(chosen.points.clone()))
            }
            other => panic!("expected a map, got {other:?}"),
        }
        second.audit().unwrap();
        // A journal of the hash job is not this job's.
        assert!(Journal::open(
            &path,
            &JobKey {
                partition: PartitionMode::Hash,
                ..key.clone()
            },
            true
        )
        .is_err());
    }

    #[test]
    fn another_or_finished_job_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _) = Journal::open(&path, &key(), false).unwrap();
        j.append(&map_done(dir.path(), 0), true).unwrap();
        drop(j);
        let mut other = key();
        other.n_reduce = 5;
        assert!(matches!(
            Journal::open(&path, &other, true),
            Err(JournalError::NothingToResume(_))
        ));
        // Without --resume a new journal replaces it.
        let (mut j, replay) = Journal::open(&path, &other, false).unwrap();
        assert!(replay.done.is_empty());
        j.append(&Record::Finished { succeeded: true }, true)
            .unwrap();
        drop(j);
        assert!(
            Journal::open(&path, &other, true).is_err(),
            "finished jobs are not resumed"
        );
    }
}
