//! The map-side buffer for apps with a combiner: records grouped by key in one hash
//! table for all partitions as they arrive, and folded through the combiner every
//! [`EAGER`] values, so memory holds about one value per distinct key and nothing is
//! sorted but the distinct keys, by (partition, key), once, when the buffer is drained.
//! (Without a combiner every value must be kept: see [`crate::sortbuf`].)
//!
//! One table rather than one per partition: ten small tables cost about 7% more than
//! one (docs/performance.md). Its allocations go back to a pool when the buffer is
//! dropped, so a worker's next task starts with a warm table instead of growing a new
//! one through its first page faults.

use crate::intermediate::Writer;
use crate::sortbuf::WriteError;
use hashbrown::HashTable;
use std::io::Write;

/// Values of one key are combined once this many are pending.
pub const EAGER: u32 = 256;

/// A combiner as a plain closure: `(key, values, out)`.
pub type CombineFn<'a, E> = dyn FnMut(&[u8], &[&[u8]], &mut Vec<u8>) -> Result<(), E> + 'a;

/// The pending values of one key, as runs of equal values (map output repeats values a
/// lot: wc's "1"), split in two so that the common push touches one 32-byte table entry.
///
/// The hot part lives in the entry ([`Entry`]): the count of pending values and the open
/// run's value when short. The cold part ([`Cold`], in a side array) holds the closed
/// runs, stored once each as `len:u32 | count:u32 | bytes`, and the partition. A long
/// open value is the tail of `closed`, its header's count written when the run closes.
#[derive(Default)]
struct Cold {
    closed: Vec<u8>,
    /// Where the long open run's header starts in `closed`.
    open_at: usize,
    /// The key's partition.
    part: u32,
    /// Values in closed runs: the open run holds `Entry::n - n_closed`.
    n_closed: u32,
}

/// Values up to this long are kept in the entry itself while their run is open.
const SMALL: usize = 7;

/// `Entry::run_len` when there is no open run.
const NO_RUN: u8 = 0xFE;

/// `Entry::run_len` when the open run's value is longer than [`SMALL`] (so it is the
/// tail of `Cold::closed`).
const LONG_RUN: u8 = 0xFF;

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Keys up to this long are stored in the table entry itself, so a lookup compares
/// them without chasing a pointer (profiles show that miss dominating otherwise).
/// Nearly every word of a text is this short.
const INLINE_KEY: usize = 14;

/// A key, inline when short. A long one sits behind a thin pointer (a box of a boxed
/// slice), which keeps the whole enum at 16 bytes.
enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY],
    },
    #[allow(clippy::box_collection, clippy::redundant_allocation)]
    Heap(Box<Box<[u8]>>),
}

impl Key {
    fn new(k: &[u8]) -> Key {
        if k.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..k.len()].copy_from_slice(k);
            Key::Inline {
                len: k.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(Box::new(k.into()))
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(b) => &b[..],
        }
    }
}

/// One key and the hot part of its pending values: half a cache line. The table of a
/// task's distinct words is then half the size it was with 64-byte entries (22k words
/// of text: 700 KB, inside this machine's L2), and the common push (key found, value
/// equal to the last) reads and writes that one entry only.
#[repr(align(32))]
struct Entry {
    key: Key,
    /// Values pending (closed runs and the open one).
    n: u32,
    /// The index of this key's [`Cold`] part.
    cold: u32,
    /// The open run's value when it is at most [`SMALL`] bytes long.
    small: [u8; SMALL],
    /// The open run's value length, or [`NO_RUN`] or [`LONG_RUN`].
    run_len: u8,
}

impl Entry {
    /// Adds one value when it extends the open short run: the common case, which needs
    /// nothing but this entry.
    #[inline]
    fn push_fast(&mut self, v: &[u8]) -> bool {
        let len = self.run_len as usize;
        if len == v.len() && key_eq(&self.small[..len.min(SMALL)], v) {
            self.n += 1;
            true
        } else {
            false
        }
    }

    /// Adds one value (any case).
    fn push(&mut self, cold: &mut Cold, v: &[u8]) {
        if self.push_fast(v) {
            return;
        }
        if self.run_len == LONG_RUN && self.long_open(cold) == v {
            self.n += 1;
            return;
        }
        self.close_run(cold);
        self.n += 1;
        if v.len() <= SMALL {
            self.run_len = v.len() as u8;
            self.small[..v.len()].copy_from_slice(v);
        } else {
            self.run_len = LONG_RUN;
            cold.open_at = cold.closed.len();
            cold.closed
                .extend_from_slice(&(v.len() as u32).to_le_bytes());
            cold.closed.extend_from_slice(&0u32.to_le_bytes());
            cold.closed.extend_from_slice(v);
        }
    }

    /// The long open run's value.
    fn long_open<'a>(&self, cold: &'a Cold) -> &'a [u8] {
        &cold.closed[cold.open_at + 8..]
    }

    /// Moves the open run, if any, into `closed`.
    fn close_run(&mut self, cold: &mut Cold) {
        let count = self.n - cold.n_closed;
        match self.run_len {
            NO_RUN => return,
            LONG_RUN => {
                let at = cold.open_at + 4;
                cold.closed[at..at + 4].copy_from_slice(&count.to_le_bytes());
            }
            len => {
                let len = len as usize;
                cold.closed.extend_from_slice(&(len as u32).to_le_bytes());
                cold.closed.extend_from_slice(&count.to_le_bytes());
                cold.closed.extend_from_slice(&self.small[..len]);
            }
        }
        cold.n_closed = self.n;
        self.run_len = NO_RUN;
    }

    fn clear(&mut self, cold: &mut Cold) {
        cold.closed.clear();
        cold.n_closed = 0;
        self.n = 0;
        self.run_len = NO_RUN;
    }

    /// Every pending value, in the order pushed.
    fn values<'a>(&'a self, cold: &'a Cold, out: &mut Vec<&'a [u8]>) {
        out.clear();
        let open = self.n - cold.n_closed;
        let mut i = 0;
        while i < cold.closed.len() {
            let len = read_u32(&cold.closed, i) as usize;
            let v = &cold.closed[i + 8..i + 8 + len];
            // A long open run is the tail of `closed`, with a count of 0 in its header.
            let count = if self.run_len == LONG_RUN && i == cold.open_at {
                open
            } else {
                read_u32(&cold.closed, i + 4)
            };
            out.extend(std::iter::repeat_n(v, count as usize));
            i += 8 + len;
        }
        if self.run_len as usize <= SMALL {
            let v = &self.small[..self.run_len as usize];
            out.extend(std::iter::repeat_n(v, open as usize));
        }
    }
}

/// Equality without a `memcmp` call for the short keys (and values) that dominate text.
#[inline]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() > 16 {
            a == b
        } else {
            a.iter().zip(b).all(|(x, y)| x == y)
        }
}

/// The table hash: foldhash (hashbrown's own default, a few multiplies for a short key)
/// with a fixed seed. The partition function (`ihash`, FNV-1a a byte at a time) is
/// slower and only needed for a key the table has not seen, so it is not used here.
#[inline]
fn table_hash(key: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    const STATE: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6d72);
    let mut h = STATE.build_hasher();
    h.write(key);
    h.finish()
}

/// Buffered, combining map output for `n` partitions.
pub struct CombineBuffer {
    table: HashTable<Entry>,
    /// Every key's cold part, by `Entry::cold`; emptied when the buffer is.
    colds: Vec<Cold>,
    /// The entries being drained, sorted by (partition, key), and the first not yet
    /// drained; empty while records are pushed.
    sorted: Vec<Entry>,
    next: usize,
    bytes: usize,
    scratch: Vec<u8>,
}

/// Fixed cost charged per distinct key: its entry and cold part.
const KEY_OVERHEAD: usize =
    std::mem::size_of::<Entry>() + std::mem::size_of::<Cold>() + std::mem::size_of::<usize>();

/// The allocations of a dropped buffer, for the next one.
type Spare = (HashTable<Entry>, Vec<Entry>, Vec<Cold>);

/// The allocations of dropped buffers, for the next ones.
static POOL: std::sync::Mutex<Vec<Spare>> = std::sync::Mutex::new(Vec::new());

/// Buffers kept in the pool, at most (one per map task a process runs at once).
const POOL_SIZE: usize = 4;

/// Tables with room for more entries than this are not kept (8 MiB each): one task
/// with millions of keys must not pin that memory for the rest of the worker's life.
const POOL_MAX_ENTRIES: usize = 1 << 18;

/// Room for this many entries up front: text has thousands of distinct words per task.
const START_ENTRIES: usize = 1 << 14;

impl CombineBuffer {
    /// An empty buffer for `n` partitions.
    pub fn new(_n: u32) -> Self {
        let spare = POOL.lock().ok().and_then(|mut p| p.pop());
        let (table, sorted, colds) = spare.unwrap_or_else(|| {
            (
                HashTable::with_capacity(START_ENTRIES),
                Vec::new(),
                Vec::with_capacity(START_ENTRIES),
            )
        });
        CombineBuffer {
            table,
            colds,
            sorted,
            next: 0,
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// Approximate memory held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty() && self.next == self.sorted.len()
    }

    /// Adds one record, combining that key's values once [`EAGER`] are pending. `part`
    /// gives the key's partition; it is called only for a key not buffered yet (a key
    /// has one partition), so the partition function is not run for every record.
    #[inline]
    pub fn push<E>(
        &mut self,
        key: &[u8],
        value: &[u8],
        part: impl FnOnce() -> u32,
        combine: &mut CombineFn<'_, E>,
    ) -> Result<(), E> {
        if !self.sorted.is_empty() {
            self.unsort();
        }
        let hash = table_hash(key);
        let entry = match self.table.find_mut(hash, |e| key_eq(e.key.as_slice(), key)) {
            Some(e) => {
                if e.push_fast(value) {
                    if e.n < EAGER {
                        return Ok(());
                    }
                    let cold = &mut self.colds[e.cold as usize];
                    let before = cold.closed.len();
                    let result = Self::combine(e, cold, key, &mut self.scratch, combine);
                    self.bytes = self.bytes + cold.closed.len() - before;
                    return result;
                }
                e
            }
            None => {
                self.bytes += key.len() + KEY_OVERHEAD;
                let cold = self.colds.len() as u32;
                self.colds.push(Cold {
                    part: part(),
                    ..Cold::default()
                });
                let entry = Entry {
                    key: Key::new(key),
                    n: 0,
                    cold,
                    small: [0; SMALL],
                    run_len: NO_RUN,
                };
                self.table
                    .insert_unique(hash, entry, |e| table_hash(e.key.as_slice()))
                    .into_mut()
            }
        };
        let cold = &mut self.colds[entry.cold as usize];
        let before = cold.closed.len();
        entry.push(cold, value);
        let result = if entry.n >= EAGER {
            Self::combine(entry, cold, key, &mut self.scratch, combine)
        } else {
            Ok(())
        };
        self.bytes = self.bytes + cold.closed.len() - before;
        result
    }

    /// Folds a key's pending values into one through the combiner.
    #[cold]
    fn combine<E>(
        entry: &mut Entry,
        cold: &mut Cold,
        key: &[u8],
        scratch: &mut Vec<u8>,
        combine: &mut CombineFn<'_, E>,
    ) -> Result<(), E> {
        let mut values = Vec::with_capacity(entry.n as usize);
        entry.values(cold, &mut values);
        scratch.clear();
        combine(key, &values, scratch)?;
        entry.clear(cold);
        entry.push(cold, scratch);
        Ok(())
    }

    /// Puts entries not yet drained back into the table (records pushed after a
    /// partial drain; the worker always drains every partition first).
    #[cold]
    fn unsort(&mut self) {
        let rest: Vec<Entry> = self.sorted.drain(self.next..).collect();
        self.sorted.clear();
        self.next = 0;
        for e in rest {
            let hash = table_hash(e.key.as_slice());
            self.table
                .insert_unique(hash, e, |e| table_hash(e.key.as_slice()));
        }
    }

    /// Moves every entry out of the table (which keeps its room), sorted by
    /// (partition, key).
    fn sort(&mut self) {
        if !self.sorted.is_empty() {
            self.unsort();
        }
        self.sorted.extend(self.table.drain());
        let colds = &self.colds;
        self.sorted.sort_unstable_by(|a, b| {
            (colds[a.cold as usize].part, a.key.as_slice())
                .cmp(&(colds[b.cold as usize].part, b.key.as_slice()))
        });
        self.next = 0;
    }

    /// Calls `f(key, values)` for every key of partition `p` in key order and empties it.
    pub fn drain_groups<E>(
        &mut self,
        p: u32,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let part = |colds: &[Cold], e: &Entry| colds[e.cold as usize].part;
        if !self.table.is_empty()
            || self
                .sorted
                .get(self.next)
                .is_some_and(|e| part(&self.colds, e) > p)
        {
            self.sort();
        }
        // Entries of earlier partitions not asked for are skipped past, not lost: they
        // stay in `sorted` until the buffer is pushed to again (see `unsort`).
        let colds = &self.colds;
        let start = self.next + self.sorted[self.next..].partition_point(|e| part(colds, e) < p);
        let end = start + self.sorted[start..].partition_point(|e| part(colds, e) == p);
        let mut values = Vec::new();
        for e in &self.sorted[start..end] {
            let cold = &colds[e.cold as usize];
            self.bytes -= e.key.as_slice().len() + KEY_OVERHEAD + cold.closed.len();
            e.values(cold, &mut values);
            f(e.key.as_slice(), &values)?;
        }
        if start == self.next {
            self.next = end;
        } else {
            // Drained out of order: take the partition out so it is not drained twice.
            self.sorted.drain(start..end);
        }
        if self.next == self.sorted.len() {
            self.sorted.clear();
            self.next = 0;
            if self.table.is_empty() {
                self.colds.clear();
            }
        }
        Ok(())
    }

    /// Writes partition `p` in key order, one combined record per key, and empties it.
    pub fn write_partition<W: Write, E>(
        &mut self,
        p: u32,
        combine: &mut CombineFn<'_, E>,
        w: &mut Writer<W>,
    ) -> Result<u64, WriteError<E>> {
        let before = w.count();
        let mut out = Vec::new();
        self.drain_groups(p, |k, vs| -> Result<(), WriteError<E>> {
            if vs.len() == 1 {
                w.push(k, vs[0])?;
            } else {
                out.clear();
                combine(k, vs, &mut out).map_err(WriteError::Combine)?;
                w.push(k, &out)?;
            }
            Ok(())
        })?;
        Ok(w.count() - before)
    }
}

impl Drop for CombineBuffer {
    fn drop(&mut self) {
        if self.table.capacity() > POOL_MAX_ENTRIES {
            return;
        }
        let mut spare = (
            std::mem::take(&mut self.table),
            std::mem::take(&mut self.sorted),
            std::mem::take(&mut self.colds),
        );
        spare.0.clear();
        spare.1.clear();
        spare.2.clear();
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_SIZE {
                pool.push(spare);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(_k: &[u8], vs: &[&[u8]], out: &mut Vec<u8>) -> Result<(), ()> {
        let total: u64 = vs
            .iter()
            .map(|v| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap())
            .sum();
        out.extend_from_slice(total.to_string().as_bytes());
        Ok(())
    }

    /// Every (key, sum) of partition `p`, drained.
    fn drain(b: &mut CombineBuffer, p: u32) -> Vec<(String, String)> {
        let mut got = Vec::new();
        b.drain_groups(p, |k, vs| {
            let mut out = Vec::new();
            sum(k, vs, &mut out)?;
            got.push((
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(out).unwrap(),
            ));
            Ok::<(), ()>(())
        })
        .unwrap();
        got
    }

    #[test]
    fn one_table_drains_each_partition_in_key_order_in_any_order_of_partitions() {
        let pairs = |b: &mut CombineBuffer, n: u32| {
            for i in 0..n {
                let k = format!("k{:02}", (i * 7) % 30);
                b.push(k.as_bytes(), b"1", || i % 3, &mut sum).unwrap();
            }
        };
        // Key kNN goes to partition i % 3 of its first push; keys are pushed to one
        // partition only, as a partitioner does, so derive the expectation the same way.
        let mut want: Vec<Vec<(String, String)>> = vec![Vec::new(); 3];
        let mut first: std::collections::BTreeMap<String, (u32, u64)> = Default::default();
        for i in 0..90u32 {
            let k = format!("k{:02}", (i * 7) % 30);
            first.entry(k).or_insert((i % 3, 0)).1 += 1;
        }
        for (k, (p, n)) in &first {
            want[*p as usize].push((k.clone(), n.to_string()));
        }
        let mut b = CombineBuffer::new(3);
        let push_same = |b: &mut CombineBuffer| {
            for i in 0..90u32 {
                let k = format!("k{:02}", (i * 7) % 30);
                let p = first[&k].0;
                b.push(k.as_bytes(), b"1", || p, &mut sum).unwrap();
            }
        };
        push_same(&mut b);
        assert_eq!(drain(&mut b, 1), want[1]);
        assert_eq!(drain(&mut b, 0), want[0]);
        assert_eq!(drain(&mut b, 1), [], "a partition drains once");
        // Pushing again after a partial drain keeps what was not drained.
        push_same(&mut b);
        let twice = |w: &[(String, String)]| -> Vec<(String, String)> {
            w.iter()
                .map(|(k, n)| (k.clone(), (2 * n.parse::<u64>().unwrap()).to_string()))
                .collect()
        };
        assert_eq!(drain(&mut b, 2), twice(&want[2]));
        assert_eq!(drain(&mut b, 0), want[0]);
        assert_eq!(drain(&mut b, 1), want[1]);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        drop(b);
        // A new buffer (its table from the pool) starts empty.
        let mut b = CombineBuffer::new(3);
        assert!(b.is_empty());
        pairs(&mut b, 0);
        assert_eq!(drain(&mut b, 0), []);
    }

    #[test]
    fn an_entry_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn runs_of_short_and_long_values_come_back_in_order() {
        let long_a: &[u8] = b"a value longer than SMALL";
        let long_b: &[u8] = b"another long one";
        let seq: Vec<&[u8]> = vec![
            b"1",
            b"1",
            long_a,
            long_a,
            b"22",
            long_b,
            b"1",
            b"1",
            b"1",
            long_b,
            b"",
            b"1234567",
            b"1234567",
            b"12345678",
            b"12345678",
            long_a,
        ];
        for cut in 0..=seq.len() {
            let mut e = Entry {
                key: Key::new(b"k"),
                n: 0,
                cold: 0,
                small: [0; SMALL],
                run_len: NO_RUN,
            };
            let mut cold = Cold::default();
            for v in &seq[..cut] {
                e.push(&mut cold, v);
            }
            let mut out = Vec::new();
            e.values(&cold, &mut out);
            assert_eq!(out, &seq[..cut], "after {cut} pushes");
            assert_eq!(e.n as usize, cut);
            drop(out);
            e.clear(&mut cold);
            let mut out = Vec::new();
            e.values(&cold, &mut out);
            assert!(out.is_empty(), "cleared after {cut} pushes");
        }
    }

    #[test]
    fn combines_eagerly_and_drains_in_key_order() {
        let mut b = CombineBuffer::new(1);
        let mut calls = 0;
        let mut c = |k: &[u8], vs: &[&[u8]], out: &mut Vec<u8>| {
            calls += 1;
            sum(k, vs, out)
        };
        for i in 0..1000 {
            let key: &[u8] = if i % 10 == 0 { b"rare" } else { b"common" };
            b.push(key, b"1", || 0, &mut c).unwrap();
        }
        assert!(calls > 0, "eager combining happened");
        assert!(b.bytes() < 2000, "memory stays small: {}", b.bytes());
        let mut got = Vec::new();
        b.drain_groups(0, |k, vs| {
            let mut out = Vec::new();
            sum(k, vs, &mut out)?;
            got.push((
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(out).unwrap(),
            ));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            got,
            [
                ("common".to_string(), "900".to_string()),
                ("rare".to_string(), "100".to_string())
            ]
        );
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }
}
