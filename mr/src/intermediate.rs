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

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: &[u8; 4] = b"MRI\x01";
const FOOTER_MAGIC: &[u8; 4] = b"MRF\x01";
const FOOTER_LEN: u64 = 16;

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

/// Writes records (already in key order) followed by the footer.
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
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
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&klen.to_le_bytes());
        head[4..].copy_from_slice(&vlen.to_le_bytes());
        self.crc.update(&head);
        self.crc.update(key);
        self.crc.update(value);
        self.out.write_all(&head)?;
        self.out.write_all(key)?;
        self.out.write_all(value)?;
        self.count += 1;
        self.bytes += 8 + key.len() as u64 + value.len() as u64;
        Ok(())
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the footer and returns the sink and the total file size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
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
pub struct Reader<R: Read> {
    input: R,
    remaining: u64,
    expect_count: u64,
    expect_crc: u32,
    crc: crc32fast::Hasher,
    count: u64,
}

impl Reader<BufReader<File>> {
    /// Opens an intermediate file, reading its header and footer.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        Self::open_buffered(path, 256 << 10)
    }

    /// [`Reader::open`] with a read buffer of `capacity` bytes (a merge of many inputs
    /// keeps one buffer per input open at once).
    pub fn open_buffered(path: &Path, capacity: usize) -> Result<Self, FormatError> {
        let file = File::open(path)?;
        Reader::new(BufReader::with_capacity(capacity, file))
    }
}

impl<R: Read + Seek> Reader<R> {
    /// Reads header and footer of a seekable input, leaving it at the first record.
    pub fn new(mut input: R) -> Result<Self, FormatError> {
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
        Ok(Reader {
            input,
            remaining: len - HEADER.len() as u64 - FOOTER_LEN,
            expect_count,
            expect_crc,
            crc: crc32fast::Hasher::new(),
            count: 0,
        })
    }
}

impl<R: Read> Reader<R> {
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
        let mut head = [0u8; 8];
        if self.remaining < 8 {
            return Err(FormatError::Corrupt("record header cut short".into()));
        }
        self.input.read_exact(&mut head)?;
        let klen = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as u64;
        let vlen = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as u64;
        if 8 + klen + vlen > self.remaining {
            return Err(FormatError::Corrupt(format!(
                "record of {} bytes overruns the {} bytes left",
                8 + klen + vlen,
                self.remaining
            )));
        }
        read_exact_into(&mut self.input, key, klen as usize)?;
        read_exact_into(&mut self.input, value, vlen as usize)?;
        // Apps are promised UTF-8 (the ABI contract): a damaged record must not reach
        // them before the checksum at the end of the file would have caught it.
        if std::str::from_utf8(key).is_err() || std::str::from_utf8(value).is_err() {
            return Err(FormatError::Corrupt("record is not UTF-8".into()));
        }
        self.crc.update(&head);
        self.crc.update(key);
        self.crc.update(value);
        self.remaining -= 8 + klen + vlen;
        self.count += 1;
        Ok(true)
    }
}

fn read_exact_into(r: &mut impl Read, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    buf.clear();
    buf.resize(n, 0);
    r.read_exact(buf)
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
    key: Vec<u8>,
    value: Vec<u8>,
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
                key: Vec::new(),
                value: Vec::new(),
            };
            let live = s
                .reader
                .next_into(&mut s.key, &mut s.value)
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
        (sa.key.as_slice(), a) < (sb.key.as_slice(), b)
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

    /// Calls `f(key, values)` once per distinct key, in key order.
    pub fn for_each_group<E>(
        mut self,
        mut f: impl FnMut(&[u8], &[&[u8]]) -> Result<(), E>,
    ) -> Result<u64, MergeError<E>> {
        let mut group_key = Vec::new();
        let mut arena: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        while let Some(&top) = self.heap.first() {
            group_key.clear();
            group_key.extend_from_slice(&self.sources[top].key);
            arena.clear();
            ends.clear();
            while let Some(&top) = self.heap.first() {
                if self.sources[top].key != group_key {
                    break;
                }
                let s = &mut self.sources[top];
                arena.extend_from_slice(&s.value);
                ends.push(arena.len());
                let live = s
                    .reader
                    .next_into(&mut s.key, &mut s.value)
                    .map_err(|error| MergeError::Input { index: top, error })?;
                if live {
                    self.records_read += 1;
                } else {
                    self.heap.swap_remove(0);
                }
                self.sift_down(0);
            }
            let mut start = 0;
            let values: Vec<&[u8]> = ends
                .iter()
                .map(|&end| {
                    let v = &arena[start..end];
                    start = end;
                    v
                })
                .collect();
            f(&group_key, &values).map_err(MergeError::Consumer)?;
        }
        Ok(self.records_read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
