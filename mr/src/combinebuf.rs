//! The map-side buffer for apps with a combiner: records grouped by key in a hash map
//! per partition as they arrive, and folded through the combiner every [`EAGER`] values,
//! so memory holds about one value per distinct key and nothing is sorted but the
//! distinct keys. (Without a combiner every value must be kept: see [`crate::sortbuf`].)

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

#[derive(Default)]
struct Group {
    /// Pending values, each as `len:u32 | bytes`.
    vals: Vec<u8>,
    n: u32,
}

impl Group {
    fn push(&mut self, v: &[u8]) {
        self.vals.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.vals.extend_from_slice(v);
        self.n += 1;
    }

    fn values<'a>(&'a self, out: &mut Vec<&'a [u8]>) {
        out.clear();
        let mut i = 0;
        while i < self.vals.len() {
            let len = u32::from_le_bytes([
                self.vals[i],
                self.vals[i + 1],
                self.vals[i + 2],
                self.vals[i + 3],
            ]) as usize;
            out.push(&self.vals[i + 4..i + 4 + len]);
            i += 4 + len;
        }
    }
}

struct Entry {
    hash: u64,
    key: Box<[u8]>,
    group: Group,
}

/// Key equality without a `memcmp` call for the short keys that dominate text.
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
    parts: Vec<HashTable<Entry>>,
    bytes: usize,
    scratch: Vec<u8>,
}

impl CombineBuffer {
    /// An empty buffer for `n` partitions.
    pub fn new(n: u32) -> Self {
        CombineBuffer {
            parts: (0..n).map(|_| HashTable::new()).collect(),
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
        self.parts.iter().all(|p| p.is_empty())
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
    pub fn push_hashed<E>(
        &mut self,
        p: u32,
        ihash: u32,
        key: &[u8],
        value: &[u8],
        combine: &mut CombineFn<'_, E>,
    ) -> Result<(), E> {
        let part = &mut self.parts[p as usize];
        let hash = table_hash(ihash);
        let group = match part.find_mut(hash, |e| key_eq(&e.key, key)) {
            Some(e) => &mut e.group,
            None => {
                self.bytes += key.len() + KEY_OVERHEAD;
                let entry = Entry {
                    hash,
                    key: key.into(),
                    group: Group {
                        vals: Vec::with_capacity(32),
                        n: 0,
                    },
                };
                &mut part.insert_unique(hash, entry, |e| e.hash).into_mut().group
            }
        };
        let before = group.vals.len();
        group.push(value);
        if group.n >= EAGER {
            let mut values = Vec::with_capacity(group.n as usize);
            group.values(&mut values);
            self.scratch.clear();
            combine(key, &values, &mut self.scratch)?;
            group.vals.clear();
            group.n = 0;
            let combined = std::mem::take(&mut self.scratch);
            group.push(&combined);
            self.scratch = combined;
        }
        self.bytes = self.bytes + group.vals.len() - before;
        Ok(())
    }

    /// Calls `f(key, values)` for every key of partition `p` in key order and empties it.
    pub fn drain_groups<E>(
        &mut self,
        p: u32,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let part = std::mem::take(&mut self.parts[p as usize]);
        let mut entries: Vec<Entry> = part.into_iter().collect();
        for e in &entries {
            self.bytes -= e.key.len() + KEY_OVERHEAD + e.group.vals.len();
        }
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let mut values = Vec::new();
        for e in &entries {
            e.group.values(&mut values);
            f(&e.key, &values)?;
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
