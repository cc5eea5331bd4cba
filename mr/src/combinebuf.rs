//! The map-side buffer for apps with a combiner: records grouped by key in hash tables
//! for all partitions as they arrive, and folded through the combiner every [`EAGER`]
//! values, so memory holds about one value per distinct key and nothing is sorted but
//! the distinct keys, by (partition, key), once, when the buffer is drained. (Without a
//! combiner every value must be kept: see [`crate::sortbuf`].)
//!
//! Built for the one lookup per record that dominates a map's time (docs/performance.md):
//! - keys of up to 7 bytes (most words of a text) live in a table of 16-byte slots
//!   probed linearly, one read a hit ([`Flat`]), and keys of 8 to 15 bytes in a
//!   hashbrown table of 24-byte slots, each key packed into machine words,
//!   so that a lookup hashes and compares in registers and a task's distinct words stay
//!   in the L2 cache (22k words of text: about 360 KB). Longer keys sit in an arena.
//! - a slot holds only the key, the count of pending values and a flag saying whether
//!   the open run of equal values is the buffer's common value (the first value pushed:
//!   wc's "1"). Everything else about a key (closed runs of values, its partition) is in
//!   a side array touched only when a key's value changes.
//! - the partition function runs once per distinct key, not per record.
//!
//! One set of tables rather than one per partition: ten small tables cost about 7% more
//! than one. The allocations go back to a pool when the buffer is dropped, so a
//! worker's next task starts with warm tables instead of growing new ones through
//! their first page faults.

use crate::intermediate::Writer;
use crate::plugin::ValueRef;
use crate::sortbuf::WriteError;
use hashbrown::HashTable;
use mrapp::abi::MrBytes;
use std::io::Write;

/// Values of one key are combined once this many are pending.
pub const EAGER: u32 = 256;

/// A combiner as a plain closure: `(key, values, out)`. The values come in the plugin
/// ABI's form, so that they reach the app's combiner without a copy.
pub type CombineFn<'a, E> = dyn FnMut(&[u8], &[ValueRef<'_>], &mut Vec<u8>) -> Result<(), E> + 'a;

/// Keys of at most this many bytes go in one word (with their length in the top byte).
const ONE_WORD: usize = 7;
/// Keys of at most this many bytes go in two words; longer ones in the arena.
const TWO_WORDS: usize = 15;
/// The top byte of a key's last word: its length, or this for a key in the arena.
const IN_ARENA: u64 = 0xff;
const LEN_SHIFT: u32 = 56;
const LOW_56: u64 = (1 << LEN_SHIFT) - 1;

/// The common value is kept only if at most this long.
const COMMON_MAX: usize = 64;

/// The bytes of `s` (at most 8) as a little-endian word, zero-padded, without a copy
/// loop: two overlapping loads whose common bytes are equal.
#[inline(always)]
fn load_partial(s: &[u8]) -> u64 {
    let n = s.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        let hi = u64::from(u32::from_le_bytes([s[n - 4], s[n - 3], s[n - 2], s[n - 1]]));
        lo | (hi << (8 * (n - 4)))
    } else if n > 0 {
        u64::from(s[0])
            | (u64::from(s[n / 2]) << (8 * (n / 2)))
            | (u64::from(s[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

/// A key of at most [`ONE_WORD`] bytes as one word.
#[inline(always)]
fn pack1(k: &[u8]) -> u64 {
    load_partial(k) | ((k.len() as u64) << LEN_SHIFT)
}

/// A key of [`ONE_WORD`] + 1 to [`TWO_WORDS`] bytes as two words.
#[inline(always)]
fn pack2(k: &[u8]) -> [u64; 2] {
    [
        load_partial(&k[..8]),
        load_partial(&k[8..]) | ((k.len() as u64) << LEN_SHIFT),
    ]
}

/// A key in the arena: its offset, and its length under the [`IN_ARENA`] tag.
fn arena_key(offset: usize, len: usize) -> [u64; 2] {
    [offset as u64, (IN_ARENA << LEN_SHIFT) | len as u64]
}

/// foldhash's mixing step: the two halves of a 128-bit product, folded.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

const SEED_0: u64 = 0x243f_6a88_85a3_08d3;
const SEED_1: u64 = 0x1319_8a2e_0370_7344;

#[inline(always)]
fn hash1(w: u64) -> u64 {
    fold_mul(w ^ SEED_0, SEED_1)
}

#[inline(always)]
fn hash2(w: [u64; 2]) -> u64 {
    fold_mul(w[0] ^ SEED_0, w[1] ^ SEED_1)
}

/// The hash of a key in the arena: foldhash over its bytes.
fn hash_bytes(key: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    const STATE: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6d72);
    let mut h = STATE.build_hasher();
    h.write(key);
    h.finish()
}

/// Equality without a `memcmp` call for the short values that dominate.
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() > 16 {
            a == b
        } else {
            a.iter().zip(b).all(|(x, y)| x == y)
        }
}

/// `Hot::meta`'s flag: the open run's value is the buffer's common value.
const COMMON_OPEN: u32 = 1 << 31;

/// What a slot holds besides its key: 8 bytes.
#[derive(Clone, Copy)]
struct Hot {
    /// Values pending (closed runs and the open one).
    n: u32,
    /// The index of the key's [`Cold`] part, and [`COMMON_OPEN`].
    meta: u32,
}

impl Hot {
    fn cold(self) -> usize {
        (self.meta & !COMMON_OPEN) as usize
    }

    fn common_open(self) -> bool {
        self.meta & COMMON_OPEN != 0
    }
}

/// A table slot: the key in `W` words and its hot state.
struct Slot<const W: usize> {
    key: [u64; W],
    hot: Hot,
}

/// `Cold::open_at` when the open run, if any, is not in `closed`.
const NO_OPEN: usize = usize::MAX;

/// The rest of a key's pending values: runs of equal values, closed ones stored once
/// each in `closed` as `len:u32 | count:u32 | bytes`. An open run other than the
/// common value is the tail of `closed`, its header's count written when it closes.
#[derive(Default)]
struct Cold {
    closed: Vec<u8>,
    /// Where the open run's header is in `closed`, or [`NO_OPEN`].
    open_at: usize,
    /// The key's partition.
    part: u32,
    /// Values in closed runs: the open one holds `Hot::n - n_closed`.
    n_closed: u32,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The value operations of one key, on its hot and cold parts and the buffer's common
/// value.
struct Values<'a> {
    hot: &'a mut Hot,
    cold: &'a mut Cold,
    common: Option<&'a [u8]>,
}

impl Values<'_> {
    /// Adds one value (any case; the caller has tried the common one already).
    fn push(&mut self, v: &[u8]) {
        if self.hot.common_open() && self.common.is_some_and(|c| bytes_eq(c, v)) {
            self.hot.n += 1;
            return;
        }
        if self.cold.open_at != NO_OPEN && bytes_eq(&self.cold.closed[self.cold.open_at + 8..], v) {
            self.hot.n += 1;
            return;
        }
        self.close_run();
        self.hot.n += 1;
        if self.common.is_some_and(|c| bytes_eq(c, v)) {
            self.hot.meta |= COMMON_OPEN;
        } else {
            let closed = &mut self.cold.closed;
            self.cold.open_at = closed.len();
            closed.extend_from_slice(&(v.len() as u32).to_le_bytes());
            closed.extend_from_slice(&0u32.to_le_bytes());
            closed.extend_from_slice(v);
        }
    }

    /// Closes the open run, if any.
    fn close_run(&mut self) {
        let count = self.hot.n - self.cold.n_closed;
        let closed = &mut self.cold.closed;
        if self.hot.common_open() {
            let c = self.common.unwrap_or_default();
            closed.extend_from_slice(&(c.len() as u32).to_le_bytes());
            closed.extend_from_slice(&count.to_le_bytes());
            closed.extend_from_slice(c);
            self.hot.meta &= !COMMON_OPEN;
        } else if self.cold.open_at != NO_OPEN {
            let at = self.cold.open_at + 4;
            closed[at..at + 4].copy_from_slice(&count.to_le_bytes());
            self.cold.open_at = NO_OPEN;
        }
        self.cold.n_closed = self.hot.n;
    }

    fn clear(&mut self) {
        self.cold.closed.clear();
        self.cold.open_at = NO_OPEN;
        self.cold.n_closed = 0;
        self.hot.n = 0;
        self.hot.meta &= !COMMON_OPEN;
    }
}

/// The form a key's values are handed out in.
trait Form {
    type V<'a>: Copy;
    fn wrap(bytes: &[u8]) -> Self::V<'_>;
}

/// Plain slices (what reduce takes).
struct Slices;

impl Form for Slices {
    type V<'a> = &'a [u8];
    fn wrap(bytes: &[u8]) -> &[u8] {
        bytes
    }
}

/// The plugin ABI's form (what the combiner takes, without a copy).
struct Refs;

impl Form for Refs {
    type V<'a> = ValueRef<'a>;
    fn wrap(bytes: &[u8]) -> ValueRef<'_> {
        ValueRef::from(bytes)
    }
}

/// Every pending value of a key, in the order pushed.
fn values<'a, F: Form>(
    hot: Hot,
    cold: &'a Cold,
    common: Option<&'a [u8]>,
    out: &mut Vec<F::V<'a>>,
) {
    out.clear();
    let open = hot.n - cold.n_closed;
    let mut i = 0;
    while i < cold.closed.len() {
        let len = read_u32(&cold.closed, i) as usize;
        let v = &cold.closed[i + 8..i + 8 + len];
        let count = if i == cold.open_at {
            open
        } else {
            read_u32(&cold.closed, i + 4)
        };
        out.extend(std::iter::repeat_n(F::wrap(v), count as usize));
        i += 8 + len;
    }
    if hot.common_open() {
        out.extend(std::iter::repeat_n(
            F::wrap(common.unwrap_or_default()),
            open as usize,
        ));
    }
}

/// A key taken out of the tables to be drained: its two words as bytes (so that an
/// inline key is a prefix of them), and its hot state.
struct Drained {
    key: [u8; 16],
    hot: Hot,
}

impl Drained {
    fn new(w: [u64; 2], hot: Hot) -> Drained {
        let mut key = [0; 16];
        key[..8].copy_from_slice(&w[0].to_le_bytes());
        key[8..].copy_from_slice(&w[1].to_le_bytes());
        Drained { key, hot }
    }

    fn words(&self) -> [u64; 2] {
        let mut a = [0; 8];
        let mut b = [0; 8];
        a.copy_from_slice(&self.key[..8]);
        b.copy_from_slice(&self.key[8..]);
        [u64::from_le_bytes(a), u64::from_le_bytes(b)]
    }

    /// The key's bytes.
    fn key<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        let [w0, w1] = self.words();
        if w1 >> LEN_SHIFT == IN_ARENA {
            let (at, len) = (w0 as usize, (w1 & LOW_56) as usize);
            &arena[at..at + len]
        } else {
            &self.key[..(w1 >> LEN_SHIFT) as usize]
        }
    }

    /// Bytes the key holds in the arena.
    fn arena_bytes(&self) -> usize {
        let w1 = self.words()[1];
        if w1 >> LEN_SHIFT == IN_ARENA {
            (w1 & LOW_56) as usize
        } else {
            0
        }
    }
}

/// The hash of a two-word slot (inline, or a key in `arena`).
fn hash_long(key: [u64; 2], arena: &[u8]) -> u64 {
    if key[1] >> LEN_SHIFT == IN_ARENA {
        let (at, len) = (key[0] as usize, (key[1] & LOW_56) as usize);
        hash_bytes(&arena[at..at + len])
    } else {
        hash2(key)
    }
}

/// An empty slot of a [`Flat`] table: no packed short key is this, as its top byte is
/// a length of at most [`ONE_WORD`].
const EMPTY: u64 = u64::MAX;

/// The table of short keys: open addressing with linear probing over slots that hold
/// the key itself, so that a lookup is one read that depends on the hash (the slot)
/// where hashbrown's is two (its control bytes, then the slot): the lookup's latency is
/// most of what a word costs (docs/performance.md, "One read a lookup"). Keys are never
/// removed one by one, only all at once, so probing needs no tombstones.
struct Flat {
    /// A power of two of slots, at most three quarters full.
    slots: Vec<Slot<1>>,
    /// The indices of the slots in use, so that draining and clearing cost the keys
    /// held, not the table's size (a worker's pooled table outlives many small tasks).
    used: Vec<u32>,
}

impl Flat {
    fn with_capacity(n: usize) -> Flat {
        let slots = (n + n / 3 + 1).next_power_of_two().max(8);
        Flat {
            slots: (0..slots)
                .map(|_| Slot {
                    key: [EMPTY],
                    hot: Hot { n: 0, meta: 0 },
                })
                .collect(),
            used: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.used.len()
    }

    fn capacity(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    /// The index of `w`'s slot, or of the empty slot where it would go.
    #[inline(always)]
    fn probe(&self, w: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash1(w) as usize & mask;
        loop {
            let k = self.slots[i].key[0];
            if k == w || k == EMPTY {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    #[inline(always)]
    fn find_mut(&mut self, w: u64) -> Option<&mut Hot> {
        let i = self.probe(w);
        let s = &mut self.slots[i];
        (s.key[0] == w).then_some(&mut s.hot)
    }

    /// Adds `w`, which is not in the table.
    fn insert_unique(&mut self, w: u64, hot: Hot) -> &mut Hot {
        if self.len() >= self.capacity() {
            self.grow();
        }
        let i = self.probe(w);
        debug_assert_eq!(self.slots[i].key[0], EMPTY);
        self.used.push(i as u32);
        self.slots[i] = Slot { key: [w], hot };
        &mut self.slots[i].hot
    }

    #[cold]
    fn grow(&mut self) {
        let mut bigger = Flat::with_capacity(self.slots.len());
        bigger.used.reserve(self.used.len());
        for &i in &self.used {
            let s = &self.slots[i as usize];
            bigger.insert_unique(s.key[0], s.hot);
        }
        *self = bigger;
    }

    /// Empties the table, calling `f` on each key and its state.
    fn drain(&mut self, mut f: impl FnMut(u64, Hot)) {
        for &i in &self.used {
            let s = &mut self.slots[i as usize];
            f(s.key[0], s.hot);
            s.key[0] = EMPTY;
        }
        self.used.clear();
    }
}

/// The tables of keys: short ones in one-word slots, longer ones in two-word slots
/// (inline, or pointing into `arena`).
struct Tables {
    short: Flat,
    long: HashTable<Slot<2>>,
    arena: Vec<u8>,
}

impl Tables {
    fn with_capacity(n: usize) -> Tables {
        Tables {
            short: Flat::with_capacity(n),
            long: HashTable::with_capacity(n / 4),
            arena: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.short.len() == 0 && self.long.is_empty()
    }

    fn capacity(&self) -> usize {
        self.short.capacity() + self.long.capacity()
    }

    fn clear(&mut self) {
        self.short.drain(|_, _| {});
        self.long.clear();
        self.arena.clear();
    }

    /// The hot state of `key`, if it is in the tables.
    ///
    /// A lookup, then on a miss [`Tables::add`], rather than one call that also adds: a
    /// hit (nearly every record) then neither checks for room nor looks for a free slot
    /// on its way, and nothing the new key would need is built before the lookup.
    #[inline(always)]
    fn find(&mut self, key: &[u8]) -> Option<&mut Hot> {
        if key.len() <= ONE_WORD {
            let w = pack1(key);
            self.short.find_mut(w)
        } else if key.len() <= TWO_WORDS {
            let w = pack2(key);
            self.long
                .find_mut(hash2(w), |s| s.key == w)
                .map(|s| &mut s.hot)
        } else {
            self.find_in_arena(key)
        }
    }

    #[inline(never)]
    fn find_in_arena(&mut self, key: &[u8]) -> Option<&mut Hot> {
        let tag = (IN_ARENA << LEN_SHIFT) | key.len() as u64;
        let Tables { long, arena, .. } = self;
        long.find_mut(hash_bytes(key), |s| {
            s.key[1] == tag && {
                let at = s.key[0] as usize;
                arena[at..at + key.len()] == *key
            }
        })
        .map(|s| &mut s.hot)
    }

    /// Adds `key`, which is not in the tables, with the hot state `hot`.
    #[cold]
    #[inline(never)]
    fn add(&mut self, key: &[u8], hot: Hot) -> &mut Hot {
        let Tables { short, long, arena } = self;
        if key.len() <= ONE_WORD {
            let w = pack1(key);
            return short.insert_unique(w, hot);
        }
        let (w, h) = if key.len() <= TWO_WORDS {
            let w = pack2(key);
            (w, hash2(w))
        } else {
            let w = arena_key(arena.len(), key.len());
            arena.extend_from_slice(key);
            (w, hash_bytes(key))
        };
        let arena = &*arena;
        let slot = Slot { key: w, hot };
        &mut long
            .insert_unique(h, slot, |s| hash_long(s.key, arena))
            .into_mut()
            .hot
    }

    /// Puts a drained key back.
    fn put_back(&mut self, d: Drained) {
        let w = d.words();
        if w[1] >> LEN_SHIFT <= ONE_WORD as u64 {
            let w = w[0] | (w[1] & !LOW_56);
            self.short.insert_unique(w, d.hot);
        } else {
            let h = hash_long(w, &self.arena);
            let Tables { long, arena, .. } = self;
            long.insert_unique(h, Slot { key: w, hot: d.hot }, |s| hash_long(s.key, arena));
        }
    }

    /// Moves every key out (the tables keep their room; the arena its keys).
    fn drain_into(&mut self, out: &mut Vec<Drained>) {
        out.reserve(self.short.len());
        self.short
            .drain(|w, hot| out.push(Drained::new([w & LOW_56, w & !LOW_56], hot)));
        out.extend(self.long.drain().map(|s| Drained::new(s.key, s.hot)));
    }
}

/// Buffered, combining map output for `n` partitions.
pub struct CombineBuffer {
    tables: Tables,
    /// Every key's cold part, by `Hot::cold`; emptied when the buffer is.
    colds: Vec<Cold>,
    /// The first short value pushed (with a new key: see `push`), which a key's open run can
    /// refer to with a flag instead of holding it. Never changed once set.
    common: Option<Vec<u8>>,
    /// The keys being drained, sorted by (partition, key), and the first not yet
    /// drained; empty while records are pushed.
    sorted: Vec<Drained>,
    next: usize,
    bytes: usize,
    scratch: Vec<u8>,
    eager: Eager,
}

/// Fixed cost charged per distinct key: a slot, its control byte and spare room, and
/// its cold part.
const KEY_OVERHEAD: usize = 2 * std::mem::size_of::<Slot<2>>() + std::mem::size_of::<Cold>();

/// The allocations of a dropped buffer, for the next one.
type Spare = (Tables, Vec<Cold>, Vec<Drained>);

/// The allocations of dropped buffers, for the next ones.
static POOL: std::sync::Mutex<Vec<Spare>> = std::sync::Mutex::new(Vec::new());

/// Buffers kept in the pool, at most (one per map task a process runs at once).
const POOL_SIZE: usize = 4;

/// Tables with room for more keys than this are not kept: one task with millions of
/// keys must not pin that memory for the rest of the worker's life.
const POOL_MAX_ENTRIES: usize = 1 << 18;

/// Room for this many keys up front: text has thousands of distinct words per task.
const START_ENTRIES: usize = 1 << 14;

/// A new key's cold part, with its partition; returns the key's hot state. Charges
/// `bytes` for the key (of `key_len` bytes).
fn new_cold(colds: &mut Vec<Cold>, bytes: &mut usize, part: u32, key_len: usize) -> Hot {
    // Keys longer than two words are copied into the arena.
    *bytes += KEY_OVERHEAD + if key_len > TWO_WORDS { key_len } else { 0 };
    colds.push(Cold {
        part,
        open_at: NO_OPEN,
        ..Cold::default()
    });
    Hot {
        n: 0,
        meta: (colds.len() - 1) as u32,
    }
}

impl CombineBuffer {
    /// An empty buffer for `n` partitions.
    pub fn new(_n: u32) -> Self {
        let spare = POOL.lock().ok().and_then(|mut p| p.pop());
        let (tables, colds, sorted) = spare.unwrap_or_else(|| {
            (
                Tables::with_capacity(START_ENTRIES),
                Vec::with_capacity(START_ENTRIES),
                Vec::new(),
            )
        });
        CombineBuffer {
            tables,
            colds,
            common: None,
            sorted,
            next: 0,
            bytes: 0,
            scratch: Vec::new(),
            eager: Eager::default(),
        }
    }

    /// Approximate memory held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.next == self.sorted.len()
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
        let CombineBuffer {
            tables,
            colds,
            common,
            bytes,
            scratch,
            eager,
            ..
        } = self;
        let hot = match tables.find(key) {
            Some(hot) => hot,
            None => {
                // The first short value pushed becomes the common one. The first record
                // is always a new key's, so the look is made here, not for every record.
                if common.is_none() && value.len() <= COMMON_MAX {
                    *common = Some(value.to_vec());
                }
                tables.add(key, new_cold(colds, bytes, part(), key.len()))
            }
        };
        let common = common.as_deref();
        if hot.common_open() && common.is_some_and(|c| bytes_eq(c, value)) {
            // The common case: the value is the one this key's open run repeats, and
            // nothing but the slot is touched.
            hot.n += 1;
            if hot.n < EAGER {
                return Ok(());
            }
        } else {
            push_cold(hot, colds, bytes, common, value);
            if hot.n < EAGER {
                return Ok(());
            }
        }
        combine_key(hot, colds, bytes, common, key, scratch, eager, combine)
    }

    /// The common case of [`push`](Self::push) alone: a short key already buffered,
    /// whose open run is the common value, receiving that value again below [`EAGER`].
    /// True if the record was taken; false (nothing changed) leaves it to `push`.
    /// Small enough for a caller to inline into its per-record path and keep the rest
    /// out of line, so that the path most records take needs no saved registers
    /// (docs/performance.md, "The per-record path").
    #[inline(always)]
    pub fn push_common(&mut self, key: &[u8], value: &[u8]) -> bool {
        // No look at `sorted`: while it holds keys the tables are empty, so the lookup
        // misses and `push` puts them back.
        if key.len() > ONE_WORD {
            return false;
        }
        let Some(common) = self.common.as_deref() else {
            return false;
        };
        if !bytes_eq(common, value) {
            return false;
        }
        let w = pack1(key);
        match self.tables.short.find_mut(w) {
            Some(hot) if hot.common_open() && hot.n + 1 < EAGER => {
                hot.n += 1;
                true
            }
            _ => false,
        }
    }

    /// Puts keys not yet drained back into the tables (records pushed after a partial
    /// drain; the worker always drains every partition first).
    #[cold]
    fn unsort(&mut self) {
        let rest: Vec<Drained> = self.sorted.drain(self.next..).collect();
        self.sorted.clear();
        self.next = 0;
        for d in rest {
            self.tables.put_back(d);
        }
    }

    /// Moves every key out of the tables, sorted by (partition, key).
    fn sort(&mut self) {
        if !self.sorted.is_empty() {
            self.unsort();
        }
        self.tables.drain_into(&mut self.sorted);
        let (colds, arena) = (&self.colds, &self.tables.arena);
        self.sorted.sort_unstable_by(|a, b| {
            (colds[a.hot.cold()].part, a.key(arena)).cmp(&(colds[b.hot.cold()].part, b.key(arena)))
        });
        self.next = 0;
    }

    /// Calls `f(key, values)` for every key of partition `p` in key order and empties it.
    pub fn drain_groups<E>(
        &mut self,
        p: u32,
        f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain_as::<Slices, E>(p, f)
    }

    /// [`CombineBuffer::drain_groups`] with the values in form `F`.
    fn drain_as<F: Form, E>(
        &mut self,
        p: u32,
        mut f: impl FnMut(&[u8], &[F::V<'_>]) -> Result<(), E>,
    ) -> Result<(), E> {
        let part = |colds: &[Cold], d: &Drained| colds[d.hot.cold()].part;
        if !self.tables.is_empty()
            || self
                .sorted
                .get(self.next)
                .is_some_and(|d| part(&self.colds, d) > p)
        {
            self.sort();
        }
        // Keys of earlier partitions not asked for are skipped past, not lost: they
        // stay in `sorted` until the buffer is pushed to again (see `unsort`).
        let (colds, arena, common) = (&self.colds, &self.tables.arena, self.common.as_deref());
        let start = self.next + self.sorted[self.next..].partition_point(|d| part(colds, d) < p);
        let end = start + self.sorted[start..].partition_point(|d| part(colds, d) == p);
        let mut vs = Vec::new();
        for d in &self.sorted[start..end] {
            let cold = &colds[d.hot.cold()];
            self.bytes -= KEY_OVERHEAD + d.arena_bytes() + cold.closed.len();
            values::<F>(d.hot, cold, common, &mut vs);
            f(d.key(arena), &vs)?;
        }
        // The slices borrow the tables, which are emptied below.
        drop(vs);
        if start == self.next {
            self.next = end;
        } else {
            // Drained out of order: take the partition out so it is not drained twice.
            self.sorted.drain(start..end);
        }
        if self.next == self.sorted.len() {
            self.sorted.clear();
            self.next = 0;
            if self.tables.is_empty() {
                self.colds.clear();
                self.tables.arena.clear();
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
        self.drain_as::<Refs, _>(p, |k, vs| -> Result<(), WriteError<E>> {
            if vs.len() == 1 {
                w.push(k, vs[0].as_bytes())?;
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

/// Adds a value past the common case: the key's cold part is needed.
#[inline(never)]
fn push_cold(
    hot: &mut Hot,
    colds: &mut [Cold],
    bytes: &mut usize,
    common: Option<&[u8]>,
    v: &[u8],
) {
    let cold = &mut colds[hot.cold()];
    let before = cold.closed.len();
    Values { hot, cold, common }.push(v);
    *bytes = *bytes + cold.closed.len() - before;
}

/// Folds a key's pending values into one through the combiner.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn combine_key<E>(
    hot: &mut Hot,
    colds: &mut [Cold],
    bytes: &mut usize,
    common: Option<&[u8]>,
    key: &[u8],
    scratch: &mut Vec<u8>,
    eager: &mut Eager,
    combine: &mut CombineFn<'_, E>,
) -> Result<(), E> {
    let cold = &mut colds[hot.cold()];
    let before = cold.closed.len();
    scratch.clear();
    combine(key, eager.fill(*hot, cold, common), scratch)?;
    let mut key_values = Values { hot, cold, common };
    key_values.clear();
    key_values.push(scratch);
    *bytes = *bytes + cold.closed.len() - before;
    Ok(())
}

/// The values [`combine_key`] hands the combiner, kept from call to call. Entries from
/// `clean` on already hold the buffer's common value (which never changes), so a key
/// whose values are mostly the common one, the usual case, is handed over after a few
/// writes, not one per value.
#[derive(Default)]
struct Eager {
    raw: Vec<MrBytes>,
    clean: usize,
}

// SAFETY: the pointers in `raw` are read only by `fill`, which rewrites every entry
// except those of the common value, itself owned by the same buffer.
unsafe impl Send for Eager {}

impl Eager {
    /// Every pending value of a key, in the order pushed.
    fn fill<'a>(
        &'a mut self,
        hot: Hot,
        cold: &'a Cold,
        common: Option<&'a [u8]>,
    ) -> &'a [ValueRef<'a>] {
        let Eager { raw, clean } = self;
        let mut set = |at: usize, v: MrBytes| {
            if at < raw.len() {
                raw[at] = v;
            } else {
                raw.push(v);
            }
        };
        let open = hot.n - cold.n_closed;
        let (mut at, mut i) = (0, 0);
        while i < cold.closed.len() {
            let len = read_u32(&cold.closed, i) as usize;
            let v = MrBytes::from_slice(&cold.closed[i + 8..i + 8 + len]);
            let count = if i == cold.open_at {
                open
            } else {
                read_u32(&cold.closed, i + 4)
            };
            for _ in 0..count {
                set(at, v);
                at += 1;
            }
            i += 8 + len;
        }
        let end = if hot.common_open() {
            let c = MrBytes::from_slice(common.unwrap_or_default());
            let end = at + open as usize;
            for j in at..end.min(*clean) {
                set(j, c);
            }
            if raw.len() < end {
                raw.resize(end, c);
            }
            // Entries past `end` are the common value if they were from `clean` on.
            *clean = if *clean <= end { at } else { *clean };
            end
        } else {
            *clean = (*clean).max(at);
            at
        };
        // SAFETY: `raw[..end]` holds slices of `cold` and `common`, both borrowed for
        // `'a`: those before `at` were written above, the rest are the common value.
        unsafe { ValueRef::from_raw(&raw[..end]) }
    }
}

impl Drop for CombineBuffer {
    fn drop(&mut self) {
        if self.tables.capacity() > POOL_MAX_ENTRIES {
            return;
        }
        let mut spare = (
            std::mem::replace(&mut self.tables, Tables::with_capacity(0)),
            std::mem::take(&mut self.colds),
            std::mem::take(&mut self.sorted),
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

    /// A fixed pseudo-random sequence (xorshift64), so that a failing case repeats.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The bytes of values handed to a combiner.
    fn refs<'a>(vs: &[ValueRef<'a>]) -> Vec<&'a [u8]> {
        vs.iter().map(|v| v.as_bytes()).collect()
    }

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
                b.push(k.as_bytes(), b"1", || i % 3, &mut |k, vs, out| {
                    sum(k, &refs(vs), out)
                })
                .unwrap();
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
                b.push(k.as_bytes(), b"1", || p, &mut |k, vs, out| {
                    sum(k, &refs(vs), out)
                })
                .unwrap();
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
    fn flat_table_grows_drains_and_is_reused() {
        // From a small table through many doublings; the empty key packs to 0, which
        // must be a key like any other, not an empty slot.
        let mut t = Flat::with_capacity(0);
        let keys: Vec<u64> = (0..100_000u32)
            .map(|i| pack1(format!("{i:x}").as_bytes()))
            .chain([pack1(b"")])
            .collect();
        for round in 0..2 {
            for (i, &w) in keys.iter().enumerate() {
                assert!(
                    t.find_mut(w).is_none(),
                    "round {round}: key {i} before its insert"
                );
                t.insert_unique(
                    w,
                    Hot {
                        n: i as u32,
                        meta: 0,
                    },
                )
                .n += 1;
            }
            assert_eq!(t.len(), keys.len());
            assert!(t.len() <= t.capacity() && t.capacity() < t.slots.len());
            for (i, &w) in keys.iter().enumerate() {
                assert_eq!(t.find_mut(w).map(|h| h.n), Some(i as u32 + 1));
            }
            assert!(t.find_mut(pack1(b"zzzzzzz")).is_none());
            let mut seen = Vec::new();
            t.drain(|w, hot| seen.push((w, hot.n)));
            seen.sort_unstable();
            let mut want: Vec<(u64, u32)> = keys
                .iter()
                .enumerate()
                .map(|(i, &w)| (w, i as u32 + 1))
                .collect();
            want.sort_unstable();
            assert_eq!(seen, want);
            assert_eq!(t.len(), 0);
            assert!(
                t.slots.iter().all(|s| s.key[0] == EMPTY),
                "drain empties every slot"
            );
        }
    }

    #[test]
    fn slots_are_small() {
        assert_eq!(std::mem::size_of::<Slot<1>>(), 16);
        assert_eq!(std::mem::size_of::<Slot<2>>(), 24);
        assert_eq!(std::mem::size_of::<Drained>(), 24);
    }

    #[test]
    fn packed_keys_come_back_whole() {
        for len in 0..=TWO_WORDS {
            for fill in [0u8, 1, 0xff, b'x'] {
                let mut key: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ fill).collect();
                if len > 0 {
                    key[len - 1] = fill;
                }
                let w = if len <= ONE_WORD {
                    let w = pack1(&key);
                    [w & LOW_56, w & !LOW_56]
                } else {
                    pack2(&key)
                };
                let d = Drained::new(w, Hot { n: 0, meta: 0 });
                assert_eq!(d.key(&[]), &key[..], "length {len}");
            }
        }
    }

    #[test]
    fn runs_of_common_short_and_long_values_come_back_in_order() {
        let long_a: &[u8] = b"a value longer than sixteen bytes";
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
            b"",
            b"1234567",
            b"1",
            b"12345678",
            b"12345678",
            long_a,
            b"1",
        ];
        for common in [None, Some(&b"1"[..]), Some(&b"22"[..]), Some(long_a)] {
            for cut in 0..=seq.len() {
                let mut hot = Hot { n: 0, meta: 0 };
                let mut cold = Cold {
                    open_at: NO_OPEN,
                    ..Cold::default()
                };
                let mut vals = Values {
                    hot: &mut hot,
                    cold: &mut cold,
                    common,
                };
                for v in &seq[..cut] {
                    vals.push(v);
                }
                let mut out = Vec::new();
                values::<Slices>(hot, &cold, common, &mut out);
                assert_eq!(out, &seq[..cut], "after {cut} pushes, common {common:?}");
                assert_eq!(hot.n as usize, cut);
                drop(out);
                Values {
                    hot: &mut hot,
                    cold: &mut cold,
                    common,
                }
                .clear();
                let mut out = Vec::new();
                values::<Slices>(hot, &cold, common, &mut out);
                assert!(out.is_empty(), "cleared after {cut} pushes");
            }
        }
    }

    /// Keys of every length from 0 to 40 bytes (each of the three kinds of slot), with
    /// NUL bytes and shared prefixes, values of several lengths, against a model: the
    /// combiner joins values with commas, so the result shows every value once, in the
    /// order pushed, however often combining ran.
    #[test]
    fn every_kind_of_key_keeps_its_values_in_order() {
        fn join(_k: &[u8], vs: &[&[u8]], out: &mut Vec<u8>) -> Result<(), ()> {
            out.extend_from_slice(&vs.join(&b","[..]));
            Ok(())
        }
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let keys: Vec<Vec<u8>> = (0..=40)
            .flat_map(|len| {
                [
                    vec![b'k'; len],
                    (0..len)
                        .map(|i| if i % 3 == 0 { 0 } else { b'a' + i as u8 })
                        .collect(),
                    vec![0; len],
                ]
            })
            .collect();
        let vals: [&[u8]; 5] = [b"1", b"1", b"", b"a", b"a value of over sixteen bytes"];
        let mut b = CombineBuffer::new(4);
        let mut model: std::collections::BTreeMap<(u32, Vec<u8>), Vec<&[u8]>> = Default::default();
        for _ in 0..20_000 {
            let k = &keys[(next() % keys.len() as u64) as usize];
            let v = vals[(next() % vals.len() as u64) as usize];
            let p = (k.len() % 4) as u32;
            // Half the records as the worker sends them (the inlined common case
            // first), half through `push` alone.
            if next().is_multiple_of(2) && b.push_common(k, v) {
                assert!(k.len() <= ONE_WORD && b.common.as_deref() == Some(v));
            } else {
                b.push(k, v, || p, &mut |k, vs, out| join(k, &refs(vs), out))
                    .unwrap();
            }
            model.entry((p, k.clone())).or_default().push(v);
        }
        let mut got = Vec::new();
        for p in 0..4 {
            b.drain_groups(p, |k, vs| {
                let mut out = Vec::new();
                join(k, vs, &mut out)?;
                got.push(((p, k.to_vec()), out));
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        assert_eq!(got.len(), model.len());
        for (g, (key, vs)) in got.iter().zip(&model) {
            assert_eq!(&g.0, key, "keys in (partition, key) order");
            // No value has a comma, and a key has at least one value: splitting the
            // joined result gives back the values.
            let back: Vec<&[u8]> = g.1.split(|&c| c == b',').collect();
            assert_eq!(&back, vs, "values of {key:?}");
        }
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn the_common_case_alone_takes_only_a_known_short_key_with_the_common_value() {
        let mut b = CombineBuffer::new(1);
        let calls = std::cell::Cell::new(0);
        let push = |b: &mut CombineBuffer, k: &[u8], v: &[u8]| {
            b.push(k, v, || 0, &mut |k, vs, out| {
                calls.set(calls.get() + 1);
                sum(k, &refs(vs), out)
            })
            .unwrap()
        };
        assert!(!b.push_common(b"word", b"1"), "no common value yet");
        push(&mut b, b"word", b"1");
        assert!(!b.push_common(b"other", b"1"), "a key not buffered");
        push(&mut b, b"longerkey", b"1");
        assert!(!b.push_common(b"longerkey", b"1"), "a key over one word");
        assert!(!b.push_common(b"word", b"2"), "not the common value");
        // "word" holds 1 value; the common case takes it up to EAGER - 1, then `push`
        // combines the EAGER-th.
        for _ in 2..EAGER {
            assert!(b.push_common(b"word", b"1"));
        }
        assert!(!b.push_common(b"word", b"1"), "the EAGER-th value combines");
        push(&mut b, b"word", b"1");
        assert_eq!(calls.get(), 1);
        push(&mut b, b"word", b"2");
        assert!(
            !b.push_common(b"word", b"1"),
            "the open run is not the common value"
        );
        push(&mut b, b"word", b"1");
        assert!(b.push_common(b"word", b"1"), "the common run is open again");
        assert_eq!(
            drain(&mut b, 0),
            [
                ("longerkey".to_string(), "1".to_string()),
                ("word".to_string(), (u64::from(EAGER) + 4).to_string())
            ]
        );
    }

    /// The combiner's values reuse the common value's entries from call to call
    /// (`Eager`): with keys whose runs of other values fall at different places, each
    /// call must still see exactly the key's values, in order.
    #[test]
    fn eager_combining_sees_each_keys_own_values() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let keys: [&[u8]; 3] = [b"a", b"a longer key", b"a key longer than two words"];
        let mut b = CombineBuffer::new(1);
        let mut model: Vec<Vec<u8>> = vec![Vec::new(); keys.len()];
        let mut calls = 0;
        for _ in 0..3 * 2_000 {
            let i = (next() % 3) as usize;
            let v: &[u8] = match next() % 10 {
                0 => b"x",
                1 => b"yy",
                _ => b"1",
            };
            if b.push_common(keys[i], v) {
                assert!(i == 0 && v == b"1");
            } else {
                b.push(keys[i], v, || 0, &mut |_, vs, out| {
                    calls += 1;
                    let vs = refs(vs);
                    out.extend_from_slice(&vs.join(&b","[..]));
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
            if !model[i].is_empty() {
                model[i].push(b',');
            }
            model[i].extend_from_slice(v);
        }
        assert!(calls >= 15, "combined eagerly: {calls} calls");
        let mut got = Vec::new();
        b.drain_groups(0, |k, vs| {
            got.push((k.to_vec(), vs.join(&b","[..])));
            Ok::<(), ()>(())
        })
        .unwrap();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> =
            keys.iter().map(|k| k.to_vec()).zip(model).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn combines_eagerly_and_drains_in_key_order() {
        let mut b = CombineBuffer::new(1);
        let mut calls = 0;
        let mut c = |k: &[u8], vs: &[ValueRef<'_>], out: &mut Vec<u8>| {
            calls += 1;
            sum(k, &refs(vs), out)
        };
        for i in 0..1000 {
            let key: &[u8] = if i % 10 == 0 { b"rare" } else { b"common" };
            b.push(key, b"1", || 0, &mut c).unwrap();
        }
        assert!(calls > 0, "eager combining happened");
        assert!(b.bytes() < 2000, "memory stays small: {}", b.bytes());
        assert_eq!(
            drain(&mut b, 0),
            [
                ("common".to_string(), "900".to_string()),
                ("rare".to_string(), "100".to_string())
            ]
        );
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }
}
