//! The map-side buffer: records per reduce partition in one byte arena each, sorted by
//! key and optionally combined when written out (to the final `mr-X-Y`, or to a spilled
//! run when the buffer outgrows its memory budget).

use crate::intermediate::Writer;
use std::io::{self, Write};

#[derive(Clone, Copy)]
struct Rec {
    /// The key's first 8 bytes, big-endian, zero-padded: comparing these orders most
    /// pairs of keys without touching the arena (a cache miss per comparison, which
    /// dominated sorting a partition of short keys). Equal prefixes compare the keys.
    prefix: u64,
    off: usize,
    klen: u32,
    vlen: u32,
}

#[derive(Default)]
struct Part {
    data: Vec<u8>,
    recs: Vec<Rec>,
}

impl Part {
    fn key(&self, r: &Rec) -> &[u8] {
        &self.data[r.off..r.off + r.klen as usize]
    }
    fn value(&self, r: &Rec) -> &[u8] {
        let start = r.off + r.klen as usize;
        &self.data[start..start + r.vlen as usize]
    }
}

/// How many records ahead of the one written [`SortBuffer::drain_groups`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Hints the CPU to load the cache line of `data[off]` (a no-op where there is no such
/// hint): gathering records in sorted order is otherwise a cache miss per record.
#[inline]
fn prefetch(data: &[u8], off: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = data.get(off) {
        // SAFETY: a prefetch never faults and reads nothing; the pointer is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch(
                b as *const u8 as *const i8,
                std::arch::x86_64::_MM_HINT_T0,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, off);
}

/// A combiner: `(key, values, out)` appends the combined value to `out`.
pub type Combine<'a, E> = &'a mut dyn FnMut(&[u8], &[&[u8]], &mut Vec<u8>) -> Result<(), E>;

/// Failure while writing a partition: I/O or the combiner.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// Writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The combiner failed.
    #[error("{0}")]
    Combine(E),
}

/// Buffered map output for `n` partitions.
pub struct SortBuffer {
    parts: Vec<Part>,
    bytes: usize,
}

impl SortBuffer {
    /// An empty buffer for `n` partitions.
    pub fn new(n: u32) -> Self {
        SortBuffer {
            parts: (0..n).map(|_| Part::default()).collect(),
            bytes: 0,
        }
    }

    /// An empty buffer for `n` partitions with room for about `bytes` bytes of records
    /// spread evenly over them (a guess: a partition that outgrows it grows as usual).
    pub fn with_capacity(n: u32, bytes: usize) -> Self {
        let per = bytes / n.max(1) as usize;
        SortBuffer {
            parts: (0..n)
                .map(|_| Part {
                    data: Vec::with_capacity(per + per / 8),
                    recs: Vec::new(),
                })
                .collect(),
            bytes: 0,
        }
    }

    /// Adds one record to partition `p`. Keys and values over 4 GiB are refused.
    pub fn push(&mut self, p: u32, key: &[u8], value: &[u8]) -> io::Result<()> {
        let (Ok(klen), Ok(vlen)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "key or value larger than 4 GiB",
            ));
        };
        let part = &mut self.parts[p as usize];
        part.recs.push(Rec {
            prefix: crate::intermediate::key_prefix(key),
            off: part.data.len(),
            klen,
            vlen,
        });
        part.data.extend_from_slice(key);
        part.data.extend_from_slice(value);
        self.bytes += key.len() + value.len() + std::mem::size_of::<Rec>();
        Ok(())
    }

    /// Approximate memory held by the records (arena plus index).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no record is buffered.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.recs.is_empty())
    }

    /// Sorts partition `p` by key (ties in insertion order), calls `f(key, values)` once
    /// per distinct key in key order, and empties the partition.
    pub fn drain_groups<E>(
        &mut self,
        p: u32,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut part = std::mem::take(&mut self.parts[p as usize]);
        self.bytes -= part.data.len() + part.recs.len() * std::mem::size_of::<Rec>();
        let mut order = std::mem::take(&mut part.recs);
        order.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| part.key(a).cmp(part.key(b)))
                .then(a.off.cmp(&b.off))
        });
        let mut values: Vec<&[u8]> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            // Records leave in key order, so from all over the arena: ask for the one a
            // few places ahead now, so it is in cache when its turn comes.
            if let Some(ahead) = order.get(i + PREFETCH_AHEAD) {
                prefetch(&part.data, ahead.off);
            }
            let first = order[i];
            let key = part.key(&first);
            values.clear();
            values.push(part.value(&first));
            i += 1;
            // The same key only if the prefix is the same (no look into the arena else).
            while i < order.len() && order[i].prefix == first.prefix && part.key(&order[i]) == key {
                values.push(part.value(&order[i]));
                i += 1;
            }
            f(key, &values)?;
        }
        Ok(())
    }

    /// Sorts partition `p`, writes it to `w` (one record per key through `combine` when
    /// given) and empties it. Returns the number of records written.
    pub fn write_partition<W: Write, E>(
        &mut self,
        p: u32,
        mut combine: Option<Combine<'_, E>>,
        w: &mut Writer<W>,
    ) -> Result<u64, WriteError<E>> {
        let before = w.count();
        let mut out = Vec::new();
        self.drain_groups(p, |key, values| -> Result<(), WriteError<E>> {
            match combine.as_mut() {
                None => {
                    for v in values {
                        w.push(key, v)?;
                    }
                }
                Some(combine) => {
                    out.clear();
                    combine(key, values, &mut out).map_err(WriteError::Combine)?;
                    w.push(key, &out)?;
                }
            }
            Ok(())
        })?;
        Ok(w.count() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intermediate::Reader;
    use std::io::Cursor;

    fn read_all(bytes: Vec<u8>) -> Vec<(String, String)> {
        let mut r = Reader::new(Cursor::new(bytes)).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        while r.next_into(&mut k, &mut v).unwrap() {
            out.push((
                String::from_utf8(k.clone()).unwrap(),
                String::from_utf8(v.clone()).unwrap(),
            ));
        }
        out
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn sorts_by_key_and_keeps_insertion_order_of_equal_keys() {
        let mut b = SortBuffer::new(2);
        for (k, v) in [("b", "1"), ("a", "x"), ("b", "2"), ("a", "y")] {
            b.push(0, k.as_bytes(), v.as_bytes()).unwrap();
        }
        b.push(1, b"z", b"9").unwrap();
        let mut w = Writer::new(Vec::new()).unwrap();
        let n = b.write_partition::<_, ()>(0, None, &mut w).unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            read_all(w.finish().unwrap().0),
            pairs(&[("a", "x"), ("a", "y"), ("b", "1"), ("b", "2")])
        );
        assert!(!b.is_empty());
        let mut w = Writer::new(Vec::new()).unwrap();
        b.write_partition::<_, ()>(1, None, &mut w).unwrap();
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn keys_sharing_a_prefix_or_padded_with_zero_bytes_sort_bytewise() {
        let keys: Vec<&[u8]> = vec![
            b"abcdefghi",
            b"a\x00",
            b"",
            b"abcdefgh\x00",
            b"a",
            b"abcdefgh",
            b"a\x01",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x00",
            b"abcdefgh",
            b"\xff",
        ];
        let mut b = SortBuffer::new(1);
        for (i, k) in keys.iter().enumerate() {
            b.push(0, k, i.to_string().as_bytes()).unwrap();
        }
        let mut got = Vec::new();
        b.drain_groups::<()>(0, |k, vs| {
            got.push((k.to_vec(), vs.len()));
            Ok(())
        })
        .unwrap();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        want.sort();
        want.dedup();
        assert_eq!(got.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), want);
        assert_eq!(
            got.iter().find(|(k, _)| k == b"abcdefgh").map(|g| g.1),
            Some(2)
        );
    }

    #[test]
    fn combine_makes_one_record_per_key() {
        let mut b = SortBuffer::new(1);
        for k in ["x", "y", "x", "x"] {
            b.push(0, k.as_bytes(), b"1").unwrap();
        }
        let mut sum = |_k: &[u8], vs: &[&[u8]], out: &mut Vec<u8>| -> Result<(), ()> {
            out.extend_from_slice(vs.len().to_string().as_bytes());
            Ok(())
        };
        let mut w = Writer::new(Vec::new()).unwrap();
        let n = b.write_partition(0, Some(&mut sum), &mut w).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            read_all(w.finish().unwrap().0),
            pairs(&[("x", "3"), ("y", "1")])
        );
    }
}
