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

/// Fixed cost charged per distinct key (map entry, vector headers).
const KEY_OVERHEAD: usize = 64;

/// A combiner as a plain closure: `(key, values, out)`.
pub type CombineFn<'a, E> = dyn FnMut(&[u8], &[&[u8]], &mut Vec<u8>) -> Result<(), E> + 'a;

/// The pending values of one key, as runs of equal values (map output repeats values a
/// lot: wc's "1"). Closed runs are stored once each in `closed` as
/// `len:u32 | count:u32 | bytes`. The open run (the one the next equal value extends)
/// keeps its count here, and its value too when short, so that the common case, a value
/// equal to the last, touches nothing but the table entry. A longer open value is the
/// tail of `closed`, its header's count written when the run closes.
#[derive(Default)]
struct Group {
    closed: Vec<u8>,
    /// The open run's value when it is at most [`SMALL`] bytes long.
    small: [u8; SMALL],
    /// The open run's value length.
    run_len: u32,
    /// The open run's count; 0 when there is no open run.
    run_count: u32,
    /// Values pending (the sum of all counts).
    n: u32,
}

/// Values up to this long are kept in the group itself while their run is open.
const SMALL: usize = 4;

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Group {
    #[inline]
    fn push(&mut self, v: &[u8]) {
        if self.run_count > 0 && self.run_len as usize == v.len() && key_eq(self.open_value(), v) {
            self.run_count += 1;
            self.n += 1;
            return;
        }
        self.close_run();
        self.run_len = v.len() as u32;
        self.run_count = 1;
        self.n += 1;
        if v.len() <= SMALL {
            self.small[..v.len()].copy_from_slice(v);
        } else {
            self.closed.extend_from_slice(&self.run_len.to_le_bytes());
            self.closed.extend_from_slice(&0u32.to_le_bytes());
            self.closed.extend_from_slice(v);
        }
    }

    /// The open run's value.
    #[inline]
    fn open_value(&self) -> &[u8] {
        let len = self.run_len as usize;
        if len <= SMALL {
            &self.small[..len]
        } else {
            &self.closed[self.closed.len() - len..]
        }
    }

    /// Moves the open run, if any, into `closed`.
    fn close_run(&mut self) {
        if self.run_count == 0 {
            return;
        }
        let len = self.run_len as usize;
        if len <= SMALL {
            self.closed.extend_from_slice(&self.run_len.to_le_bytes());
            self.closed.extend_from_slice(&self.run_count.to_le_bytes());
            self.closed.extend_from_slice(&self.small[..len]);
        } else {
            let at = self.closed.len() - len - 4;
            self.closed[at..at + 4].copy_from_slice(&self.run_count.to_le_bytes());
        }
        self.run_count = 0;
    }

    /// Bytes held outside the table entry.
    fn heap_bytes(&self) -> usize {
        self.closed.len()
    }

    fn clear(&mut self) {
        self.closed.clear();
        self.run_count = 0;
        self.n = 0;
    }

    fn values<'a>(&'a self, out: &mut Vec<&'a [u8]>) {
        out.clear();
        // A long open run is the tail of `closed`, with a count of 0 in its header.
        let open_long = self.run_count > 0 && self.run_len as usize > SMALL;
        let mut i = 0;
        while i < self.closed.len() {
            let len = read_u32(&self.closed, i) as usize;
            let v = &self.closed[i + 8..i + 8 + len];
            let last = i + 8 + len == self.closed.len();
            let count = if last && open_long {
                self.run_count
            } else {
                read_u32(&self.closed, i + 4)
            };
            out.extend(std::iter::repeat_n(v, count as usize));
            i += 8 + len;
        }
        if self.run_count > 0 && !open_long {
            out.extend(std::iter::repeat_n(
                self.open_value(),
                self.run_count as usize,
            ));
        }
    }
}

/// Keys up to this long are stored in the table entry itself, so a lookup compares
/// them without chasing a pointer (profiles show that miss dominating otherwise). Sized
/// so that an entry fills one cache line; nearly every word of a text is this short.
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

/// One key and its pending values: one cache line, so the common push (the key found,
/// its value equal to the last) reads and writes a single line.
#[repr(align(64))]
struct Entry {
    /// The key's `ihash`; the table hash is derived from it when the table grows.
    ihash: u32,
    /// The key's partition.
    part: u32,
    key: Key,
    group: Group,
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

/// The table hash, derived from the key's `ihash` (computed anyway for partitioning)
/// so that each record is hashed once: a multiply spreads the 31 bits over 64, and the
/// fold brings high bits down to the low bits that pick the bucket.
fn table_hash(ihash: u32) -> u64 {
    let x = u64::from(ihash).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 32)
}

/// Buffered, combining map output for `n` partitions.
pub struct CombineBuffer {
    table: HashTable<Entry>,
    /// The entries being drained, sorted by (partition, key), and the first not yet
    /// drained; empty while records are pushed.
    sorted: Vec<Entry>,
    next: usize,
    bytes: usize,
    scratch: Vec<u8>,
}

/// The allocations of dropped buffers, for the next ones.
static POOL: std::sync::Mutex<Vec<(HashTable<Entry>, Vec<Entry>)>> =
    std::sync::Mutex::new(Vec::new());

/// Buffers kept in the pool, at most (one per map task a process runs at once).
const POOL_SIZE: usize = 4;

/// Tables with room for more entries than this are not kept (16 MiB each): one task
/// with millions of keys must not pin that memory for the rest of the worker's life.
const POOL_MAX_ENTRIES: usize = 1 << 18;

/// Room for this many entries up front: text has thousands of distinct words per task.
const START_ENTRIES: usize = 1 << 14;

impl CombineBuffer {
    /// An empty buffer for `n` partitions.
    pub fn new(_n: u32) -> Self {
        let spare = POOL.lock().ok().and_then(|mut p| p.pop());
        let (table, sorted) =
            spare.unwrap_or_else(|| (HashTable::with_capacity(START_ENTRIES), Vec::new()));
        CombineBuffer {
            table,
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

    /// Adds one record to partition `p`, combining that key's values once [`EAGER`] are
    /// pending.
    pub fn push<E>(
        &mut self,
        p: u32,
        key: &[u8],
        value: &[u8],
        combine: &mut CombineFn<'_, E>,
    ) -> Result<(), E> {
        self.push_hashed(p, crate::partition::ihash(key), key, value, combine)
    }

    /// [`CombineBuffer::push`] for a caller that has the key's `ihash` already.
    #[inline]
    pub fn push_hashed<E>(
        &mut self,
        p: u32,
        ihash: u32,
        key: &[u8],
        value: &[u8],
        combine: &mut CombineFn<'_, E>,
    ) -> Result<(), E> {
        if !self.sorted.is_empty() {
            self.unsort();
        }
        let hash = table_hash(ihash);
        // A key has one partition, so the key alone tells entries apart.
        let group = match self.table.find_mut(hash, |e| key_eq(e.key.as_slice(), key)) {
            Some(e) => &mut e.group,
            None => {
                self.bytes += key.len() + KEY_OVERHEAD;
                let entry = Entry {
                    ihash,
                    part: p,
                    key: Key::new(key),
                    group: Group::default(),
                };
                &mut self
                    .table
                    .insert_unique(hash, entry, |e| table_hash(e.ihash))
                    .into_mut()
                    .group
            }
        };
        let before = group.heap_bytes();
        group.push(value);
        if group.n >= EAGER {
            let mut values = Vec::with_capacity(group.n as usize);
            group.values(&mut values);
            self.scratch.clear();
            combine(key, &values, &mut self.scratch)?;
            group.clear();
            let combined = std::mem::take(&mut self.scratch);
            group.push(&combined);
            self.scratch = combined;
        }
        self.bytes = self.bytes + group.heap_bytes() - before;
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
            let hash = table_hash(e.ihash);
            self.table.insert_unique(hash, e, |e| table_hash(e.ihash));
        }
    }

    /// Moves every entry out of the table (which keeps its room), sorted by
    /// (partition, key).
    fn sort(&mut self) {
        if !self.sorted.is_empty() {
            self.unsort();
        }
        self.sorted.extend(self.table.drain());
        self.sorted
            .sort_unstable_by(|a, b| (a.part, a.key.as_slice()).cmp(&(b.part, b.key.as_slice())));
        self.next = 0;
    }

    /// Calls `f(key, values)` for every key of partition `p` in key order and empties it.
    pub fn drain_groups<E>(
        &mut self,
        p: u32,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.table.is_empty() || self.sorted.get(self.next).is_some_and(|e| e.part > p) {
            self.sort();
        }
        // Entries of earlier partitions not asked for are skipped past, not lost: they
        // stay in `sorted` until the buffer is pushed to again (see `unsort`).
        let start = self.next + self.sorted[self.next..].partition_point(|e| e.part < p);
        let end = start + self.sorted[start..].partition_point(|e| e.part == p);
        let mut values = Vec::new();
        for e in &self.sorted[start..end] {
            self.bytes -= e.key.as_slice().len() + KEY_OVERHEAD + e.group.heap_bytes();
            e.group.values(&mut values);
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
        let mut table = std::mem::take(&mut self.table);
        let mut sorted = std::mem::take(&mut self.sorted);
        table.clear();
        sorted.clear();
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_SIZE {
                pool.push((table, sorted));
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
                b.push(i % 3, k.as_bytes(), b"1", &mut sum).unwrap();
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
                b.push(p, k.as_bytes(), b"1", &mut sum).unwrap();
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
    fn an_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        assert_eq!(std::mem::size_of::<Entry>(), 64);
    }

    #[test]
    fn runs_of_short_and_long_values_come_back_in_order() {
        let long_a: &[u8] = b"a value longer than SMALL";
        let long_b: &[u8] = b"another long one";
        let seq: Vec<&[u8]> = vec![
            b"1", b"1", long_a, long_a, b"22", long_b, b"1", b"1", b"1", long_b, b"",
        ];
        for cut in 0..=seq.len() {
            let mut g = Group::default();
            for v in &seq[..cut] {
                g.push(v);
            }
            let mut out = Vec::new();
            g.values(&mut out);
            assert_eq!(out, &seq[..cut], "after {cut} pushes");
            assert_eq!(g.n as usize, cut);
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
            b.push(0, key, b"1", &mut c).unwrap();
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
