//! The `mr-X-Y` file format, its streaming reader and writer, and the k-way merge of
//! sorted files used by both the map side (merging spilled runs) and the reduce side.
//!
//! Layout (all integers little-endian), documented in `docs/intermediate-format.md`:
//! ```text
//! header  "MRI\x01"
//! record* klen:u32 vlen:u32 key[klen] value[vlen]      (sorted by key bytes)
//! footer  "MRF\x01" count:u64 crc32:u32                 (crc32 of all record bytes)
//! ```
//! The footer lets a reader tell a whole file from a truncated, corrupted or foreign one:
//! a reduce task that finds one reports the map output as lost and the map re-runs.
//! Keys and values must be UTF-8 (apps are promised it); a record that is not is corrupt.

use crate::plugin::{ValueBatch, ValueBatches};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: &[u8; 4] = b"MRI\x01";
const FOOTER_MAGIC: &[u8; 4] = b"MRF\x01";
const FOOTER_LEN: u64 = 16;

/// The length of a stream of no records: its header and footer.
pub const EMPTY_STREAM_LEN: u64 = HEADER.len() as u64 + FOOTER_LEN;

/// Why an intermediate file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are not a whole, intact intermediate file.
    #[error("corrupt intermediate file: {0}")]
    Corrupt(String),
}

/// Records are gathered into chunks of about this size before they are checksummed
/// and written: one CRC update and one write per chunk rather than three tiny ones per
/// record (the CRC's fast path needs long inputs; a 10-byte key takes the slow one).
const WRITE_CHUNK: usize = 64 << 10;

/// Writes records (already in key order) followed by the footer.
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    /// Records not yet checksummed and written.
    pending: Vec<u8>,
    count: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a file on `out` by writing the header.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(HEADER)?;
        Ok(Writer {
            out,
            crc: crc32fast::Hasher::new(),
            pending: Vec::with_capacity(WRITE_CHUNK + 256),
            count: 0,
            bytes: HEADER.len() as u64,
        })
    }

    /// Appends one record. Keys must come in non-decreasing byte order.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let (klen, vlen) = match (u32::try_from(key.len()), u32::try_from(value.len())) {
            (Ok(k), Ok(v)) => (k, v),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "key or value larger than 4 GiB",
                ))
            }
        };
        self.pending.extend_from_slice(&klen.to_le_bytes());
        self.pending.extend_from_slice(&vlen.to_le_bytes());
        self.pending.extend_from_slice(key);
        self.pending.extend_from_slice(value);
        self.count += 1;
        self.bytes += 8 + key.len() as u64 + value.len() as u64;
        if self.pending.len() >= WRITE_CHUNK {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        self.crc.update(&self.pending);
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the footer and returns the sink and the total file size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_pending()?;
        let mut footer = [0u8; FOOTER_LEN as usize];
        footer[..4].copy_from_slice(FOOTER_MAGIC);
        footer[4..12].copy_from_slice(&self.count.to_le_bytes());
        footer[12..].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        self.out.write_all(&footer)?;
        self.out.flush()?;
        Ok((self.out, self.bytes + FOOTER_LEN))
    }
}

/// Reads records in order and checks count and checksum once the last one is read.
/// It reads the file in chunks into its own buffer and checksums each chunk as it
/// arrives (one CRC update per chunk, not three tiny ones per record); a record is
/// copied once, from the chunk into the caller's key and value.
pub struct Reader<R: Read> {
    input: R,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// Record bytes not yet read from the input.
    unread: u64,
    /// Record bytes not yet parsed.
    remaining: u64,
    expect_count: u64,
    expect_crc: u32,
    crc: crc32fast::Hasher,
    count: u64,
}

/// Whether `b` is UTF-8; ASCII (most keys and values) is checked inline, word by word.
#[inline]
fn is_utf8(b: &[u8]) -> bool {
    b.is_ascii() || std::str::from_utf8(b).is_ok()
}

/// The default chunk of a reader.
const READ_CHUNK: usize = 256 << 10;

impl Reader<File> {
    /// Opens an intermediate file, reading its header and footer.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        Self::open_buffered(path, READ_CHUNK)
    }

    /// [`Reader::open`] with chunks of `capacity` bytes (a merge of many inputs keeps
    /// one buffer per input at once).
    pub fn open_buffered(path: &Path, capacity: usize) -> Result<Self, FormatError> {
        Reader::with_capacity(File::open(path)?, capacity)
    }
}

impl<R: Read + Seek> Reader<R> {
    /// Reads header and footer of a seekable input, leaving it at the first record.
    pub fn new(input: R) -> Result<Self, FormatError> {
        Self::with_capacity(input, READ_CHUNK)
    }

    /// [`Reader::new`] with chunks of `capacity` bytes.
    pub fn with_capacity(mut input: R, capacity: usize) -> Result<Self, FormatError> {
        let len = input.seek(SeekFrom::End(0))?;
        if len < HEADER.len() as u64 + FOOTER_LEN {
            return Err(FormatError::Corrupt(format!(
                "{len} bytes is too short for header and footer"
            )));
        }
        input.seek(SeekFrom::End(-(FOOTER_LEN as i64)))?;
        let mut footer = [0u8; FOOTER_LEN as usize];
        input.read_exact(&mut footer)?;
        if &footer[..4] != FOOTER_MAGIC {
            return Err(FormatError::Corrupt("bad footer magic (truncated?)".into()));
        }
        let expect_count = u64::from_le_bytes(footer[4..12].try_into().expect("8 bytes"));
        let expect_crc = u32::from_le_bytes(footer[12..].try_into().expect("4 bytes"));
        input.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; 4];
        input.read_exact(&mut header)?;
        if &header != HEADER {
            return Err(FormatError::Corrupt("bad header magic".into()));
        }
        let records = len - HEADER.len() as u64 - FOOTER_LEN;
        // No bigger than the records: a small file gets a small buffer.
        let capacity = capacity.clamp(64, (records as usize).max(64));
        Ok(Reader {
            input,
            buf: vec![0; capacity],
            pos: 0,
            end: 0,
            unread: records,
            remaining: records,
            expect_count,
            expect_crc,
            crc: crc32fast::Hasher::new(),
            count: 0,
        })
    }
}

impl<R: Read> Reader<R> {
    /// Makes at least `n` unparsed bytes available in the buffer (`n` is within the
    /// records left, so the file holds them unless it was cut short).
    fn want(&mut self, n: usize) -> Result<(), FormatError> {
        if self.end - self.pos >= n {
            return Ok(());
        }
        // Move what is left to the front; grow for a record larger than the buffer.
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            let room = (self.buf.len() - self.end).min(self.unread as usize);
            let got = self.input.read(&mut self.buf[self.end..self.end + room])?;
            if got == 0 {
                return Err(FormatError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends before its footer says",
                )));
            }
            self.crc.update(&self.buf[self.end..self.end + got]);
            self.end += got;
            self.unread -= got as u64;
        }
        Ok(())
    }

    /// Reads the next record into `key` and `value`; `Ok(false)` at the (verified) end.
    pub fn next_into(
        &mut self,
        key: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> Result<bool, FormatError> {
        if self.remaining == 0 {
            let crc = self.crc.clone().finalize();
            if self.count != self.expect_count {
                return Err(FormatError::Corrupt(format!(
                    "{} records, footer says {}",
                    self.count, self.expect_count
                )));
            }
            if crc != self.expect_crc {
                return Err(FormatError::Corrupt(format!(
                    "checksum {crc:08x}, footer says {:08x}",
                    self.expect_crc
                )));
            }
            return Ok(false);
        }
        if self.remaining < 8 {
            return Err(FormatError::Corrupt("record header cut short".into()));
        }
        self.want(8)?;
        let head = &self.buf[self.pos..self.pos + 8];
        let klen = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as u64;
        let vlen = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as u64;
        let len = 8 + klen + vlen;
        if len > self.remaining {
            return Err(FormatError::Corrupt(format!(
                "record of {len} bytes overruns the {} bytes left",
                self.remaining
            )));
        }
        self.want(len as usize)?;
        let k = self.pos + 8;
        let v = k + klen as usize;
        let rec_end = v + vlen as usize;
        // Apps are promised UTF-8 (the ABI contract): a damaged record must not reach
        // them before the checksum at the end of the file would have caught it.
        if !is_utf8(&self.buf[k..v]) || !is_utf8(&self.buf[v..rec_end]) {
            return Err(FormatError::Corrupt("record is not UTF-8".into()));
        }
        key.clear();
        key.extend_from_slice(&self.buf[k..v]);
        value.clear();
        value.extend_from_slice(&self.buf[v..rec_end]);
        self.pos = rec_end;
        self.remaining -= len;
        self.count += 1;
        Ok(true)
    }
}

/// Creates `path` and writes `records` to it as an intermediate file (used by tests and
/// tools; tasks write through [`crate::atomic::AtomicFile`]).
pub fn write_file<'a>(
    path: &Path,
    records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> io::Result<u64> {
    let mut w = Writer::new(BufWriter::new(File::create(path)?))?;
    for (k, v) in records {
        w.push(k, v)?;
    }
    Ok(w.finish()?.1)
}

/// One record, owned.
pub type Record = (Vec<u8>, Vec<u8>);

/// Reads a whole intermediate file (for tools and tests; tasks stream).
pub fn read_all(path: &Path) -> Result<Vec<Record>, FormatError> {
    let mut r = Reader::open(path)?;
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    while r.next_into(&mut k, &mut v)? {
        out.push((k.clone(), v.clone()));
    }
    Ok(out)
}

/// An error while merging: which input failed, or what the consumer returned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError<E> {
    /// Input number `index` could not be read.
    #[error("input {index}: {error}")]
    Input {
        /// Position of the input in the list given to [`Merger::new`].
        index: usize,
        /// What went wrong.
        error: FormatError,
    },
    /// The consumer failed.
    #[error("{0}")]
    Consumer(E),
}

struct Source<R: Read> {
    reader: Reader<R>,
    /// `key`'s first 8 bytes as a number (see [`key_prefix`]): most comparisons of the
    /// heap end on it, without a call to compare the bytes.
    prefix: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The first 8 bytes of `key`, big-endian, zero-padded: a smaller prefix means a smaller
/// key; equal prefixes say nothing.
#[inline]
pub fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

impl<R: Read> Source<R> {
    /// Reads the next record; false at the end.
    fn advance(&mut self) -> Result<bool, FormatError> {
        let live = self.reader.next_into(&mut self.key, &mut self.value)?;
        self.prefix = key_prefix(&self.key);
        Ok(live)
    }
}

/// Merges sorted intermediate inputs and hands out one group per distinct key, in key
/// order; within a group, values come in input order. Memory holds one record per
/// input plus the values of the current key only.
pub struct Merger<R: Read> {
    sources: Vec<Source<R>>,
    /// Min-heap of indices into `sources`, ordered by (key, index).
    heap: Vec<usize>,
    /// Records read so far.
    pub records_read: u64,
}

impl<R: Read> Merger<R> {
    /// Primes every input with its first record.
    pub fn new(readers: Vec<Reader<R>>) -> Result<Self, MergeError<std::convert::Infallible>> {
        let mut sources = Vec::with_capacity(readers.len());
        let mut heap = Vec::with_capacity(readers.len());
        let mut records_read = 0;
        for (index, reader) in readers.into_iter().enumerate() {
            let mut s = Source {
                reader,
                prefix: 0,
                key: Vec::new(),
                value: Vec::new(),
            };
            let live = s
                .advance()
                .map_err(|error| MergeError::Input { index, error })?;
            if live {
                heap.push(index);
                records_read += 1;
            }
            sources.push(s);
        }
        let mut m = Merger {
            sources,
            heap,
            records_read,
        };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (sa, sb) = (&self.sources[a], &self.sources[b]);
        (sa.prefix, sa.key.as_slice(), a) < (sb.prefix, sb.key.as_slice(), b)
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.less(self.heap[l], self.heap[m]) {
                m = l;
            }
            if r < n && self.less(self.heap[r], self.heap[m]) {
                m = r;
            }
            if m == i {
                return;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }

    /// Appends the values of the group of `key` (with prefix `prefix`) to `arena`, each
    /// value's end in `ends`, until the group ends or the batch holds `max_bytes` or
    /// `max_values` (and at least one value). Returns whether the group has more.
    fn fill(
        &mut self,
        key: &[u8],
        prefix: u64,
        arena: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        max: (usize, usize),
    ) -> Result<bool, (usize, FormatError)> {
        while let Some(&top) = self.heap.first() {
            let s = &self.sources[top];
            // Bytes are compared only when the prefixes are the same.
            if s.prefix != prefix || s.key != key {
                return Ok(false);
            }
            if !ends.is_empty() && (arena.len() >= max.0 || ends.len() >= max.1) {
                return Ok(true);
            }
            let s = &mut self.sources[top];
            arena.extend_from_slice(&s.value);
            ends.push(arena.len());
            let live = s.advance().map_err(|error| (top, error))?;
            if live {
                self.records_read += 1;
            } else {
                self.heap.swap_remove(0);
            }
            self.sift_down(0);
        }
        Ok(false)
    }

    /// Calls `f(key, values)` once per distinct key, in key order, with all of the key's
    /// values at once.
    pub fn for_each_group<E>(
        self,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<u64, MergeError<E>> {
        self.for_each_group_streaming((usize::MAX, usize::MAX), |k, first, rest| {
            debug_assert!(rest.is_none(), "an unbounded batch holds the whole group");
            f(k, first)
        })
    }

    /// Calls `f(key, first, rest)` once per distinct key, in key order. `first` holds the
    /// key's first values, up to `batch` (bytes, values); when the key has more, `rest`
    /// yields them batch by batch as `f` asks, read from the inputs only then, so that
    /// memory holds one batch whatever the key's number of values. Values `f` leaves
    /// unread are skipped.
    pub fn for_each_group_streaming<E>(
        mut self,
        batch: (usize, usize),
        mut f: impl FnMut(&[u8], &[&[u8]], Option<&mut dyn ValueBatches>) -> Result<(), E>,
    ) -> Result<u64, MergeError<E>> {
        let input = |(index, error)| MergeError::Input { index, error };
        let mut group_key = Vec::new();
        let mut arena: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        // The slices handed to `f`, their allocation kept from group to group (a sort
        // has as many groups as records).
        let mut spare: Vec<&'static [u8]> = Vec::new();
        let mut later = Later::default();
        while let Some(&top) = self.heap.first() {
            group_key.clear();
            group_key.extend_from_slice(&self.sources[top].key);
            let group_prefix = self.sources[top].prefix;
            arena.clear();
            ends.clear();
            let more = self
                .fill(&group_key, group_prefix, &mut arena, &mut ends, batch)
                .map_err(input)?;
            let mut values = recycle(std::mem::take(&mut spare));
            slices(&arena, &ends, &mut values);
            let done = if more {
                let mut rest = Rest {
                    merger: &mut self,
                    key: &group_key,
                    prefix: group_prefix,
                    batch,
                    later: &mut later,
                    more: true,
                    error: None,
                };
                let done = f(&group_key, &values, Some(&mut rest));
                // Skip what `f` did not read, one batch at a time (unless it failed:
                // the merge ends here).
                if done.is_ok() {
                    while rest.next_batch().is_some() {}
                }
                if let Some(e) = rest.error.take() {
                    return Err(input(e));
                }
                done
            } else {
                f(&group_key, &values, None)
            };
            spare = recycle(values);
            done.map_err(MergeError::Consumer)?;
        }
        Ok(self.records_read)
    }
}

/// Yields the slices of `arena` that end at each of `ends` into `values`.
fn slices<'a>(arena: &'a [u8], ends: &[usize], values: &mut Vec<&'a [u8]>) {
    let mut start = 0;
    for &end in ends {
        values.push(&arena[start..end]);
        start = end;
    }
}

/// Buffers of the batches after a group's first, kept from group to group.
#[derive(Default)]
struct Later {
    arena: Vec<u8>,
    ends: Vec<usize>,
}

/// The values of a group past its first batch, read from the merge as they are asked.
struct Rest<'m, R: Read> {
    merger: &'m mut Merger<R>,
    key: &'m [u8],
    prefix: u64,
    batch: (usize, usize),
    later: &'m mut Later,
    more: bool,
    /// An input that failed while reading: the group's values end there, and the merge
    /// fails once `f` returns.
    error: Option<(usize, FormatError)>,
}

impl<R: Read> ValueBatches for Rest<'_, R> {
    fn next_batch(&mut self) -> Option<ValueBatch<'_>> {
        if !self.more {
            return None;
        }
        let l = &mut *self.later;
        l.arena.clear();
        l.ends.clear();
        match self
            .merger
            .fill(self.key, self.prefix, &mut l.arena, &mut l.ends, self.batch)
        {
            Ok(more) => self.more = more,
            Err(e) => {
                self.more = false;
                self.error = Some(e);
                return None;
            }
        }
        if l.ends.is_empty() {
            return None;
        }
        Some(ValueBatch {
            arena: &l.arena,
            ends: &l.ends,
        })
    }
}

/// An empty vector of another lifetime in `v`'s allocation: a collect from an empty
/// iterator of same-sized items reuses it, so borrowed slices can be gathered group by
/// group without an allocation each.
fn recycle<'a, 'b>(mut v: Vec<&'a [u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { &[] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_streamed_group_yields_every_value_in_order_and_unread_values_are_skipped() {
        let a = encode(&[("k", "1"), ("k", "2"), ("k", "3"), ("z", "9")]);
        let b = encode(&[("k", "4"), ("k", "5"), ("y", "8")]);
        let merger = || {
            Merger::new(vec![
                Reader::new(Cursor::new(a.clone())).unwrap(),
                Reader::new(Cursor::new(b.clone())).unwrap(),
            ])
            .unwrap()
        };
        let mut all = Vec::new();
        merger()
            .for_each_group(|k, vs| -> Result<(), ()> {
                all.push((
                    k.to_vec(),
                    vs.iter().map(|v| v.to_vec()).collect::<Vec<_>>(),
                ));
                Ok(())
            })
            .unwrap();
        // Two values per batch: "k" streams in three batches.
        let mut streamed = Vec::new();
        let mut batches = 0;
        merger()
            .for_each_group_streaming((usize::MAX, 2), |k, first, rest| -> Result<(), ()> {
                let mut vs: Vec<Vec<u8>> = first.iter().map(|v| v.to_vec()).collect();
                if let Some(rest) = rest {
                    while let Some(b) = rest.next_batch() {
                        batches += 1;
                        vs.extend(b.iter().map(|v| v.to_vec()));
                    }
                }
                streamed.push((k.to_vec(), vs));
                Ok(())
            })
            .unwrap();
        assert_eq!(streamed, all);
        assert_eq!(batches, 2, "k's values after its first two");
        // A consumer that reads none of a long group still sees every key after it.
        let mut keys = Vec::new();
        let read = merger()
            .for_each_group_streaming((1, 1), |k, _, _| -> Result<(), ()> {
                keys.push(k.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(keys, [b"k".to_vec(), b"y".to_vec(), b"z".to_vec()]);
        assert_eq!(read, 7);
    }

    fn encode(records: &[(&str, &str)]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new()).unwrap();
        for (k, v) in records {
            w.push(k.as_bytes(), v.as_bytes()).unwrap();
        }
        w.finish().unwrap().0
    }

    fn decode(bytes: Vec<u8>) -> Result<Vec<(String, String)>, FormatError> {
        let mut r = Reader::new(Cursor::new(bytes))?;
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        while r.next_into(&mut k, &mut v)? {
            out.push((
                String::from_utf8(k.clone()).unwrap(),
                String::from_utf8(v.clone()).unwrap(),
            ));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_including_empty_keys_values_and_files() {
        let recs = [("", ""), ("a", "1"), ("a", ""), ("héllo wörld", "x y\nz")];
        let got = decode(encode(&recs)).unwrap();
        let want: Vec<_> = recs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(decode(encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn every_single_byte_flip_and_every_truncation_is_detected() {
        let bytes = encode(&[("alpha", "1"), ("beta", "22"), ("gamma", "333")]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(bad).is_err(), "flip at byte {i} not detected");
        }
        for n in 0..bytes.len() {
            assert!(
                decode(bytes[..n].to_vec()).is_err(),
                "truncation to {n} not detected"
            );
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        let mut bytes = encode(&[("k", "v")]);
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(bytes), Err(FormatError::Corrupt(_))));
    }

    #[test]
    fn merge_groups_keys_across_inputs_in_order() {
        let inputs = [
            encode(&[("a", "1"), ("c", "1"), ("c", "2")]),
            encode(&[]),
            encode(&[("a", "3"), ("b", "1"), ("d", "1")]),
        ];
        let readers = inputs
            .iter()
            .map(|b| Reader::new(Cursor::new(b.clone())).unwrap())
            .collect();
        let mut groups = Vec::new();
        let n = Merger::new(readers)
            .unwrap()
            .for_each_group(|k, vs| {
                let vs: Vec<String> = vs
                    .iter()
                    .map(|v| String::from_utf8(v.to_vec()).unwrap())
                    .collect();
                groups.push((String::from_utf8(k.to_vec()).unwrap(), vs.join(",")));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(
            groups,
            [("a", "1,3"), ("b", "1"), ("c", "1,2"), ("d", "1")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn merge_names_the_corrupt_input() {
        let good = encode(&[("a", "1")]);
        let mut bad = encode(&[("b", "1"), ("c", "1")]);
        let at = bad.len() - 20;
        bad[at] ^= 1;
        let readers = vec![
            Reader::new(Cursor::new(good)).unwrap(),
            Reader::new(Cursor::new(bad)).unwrap(),
        ];
        let err = Merger::new(readers)
            .unwrap()
            .for_each_group(|_, _| Ok::<(), ()>(()))
            .unwrap_err();
        assert!(matches!(err, MergeError::Input { index: 1, .. }), "{err:?}");
    }
}
