//! Packed map output: one file per map task, `mr-X.data`, holding all R partitions,
//! written by every map (in a shared directory and behind a data server alike). At
//! R = 5,000 a map would otherwise create 5,000 files, and at M = 10,000 small maps
//! 100,000; the directory operations of creating, renaming and deleting them cost more
//! than the bytes (Spark's sort-based shuffle and Hadoop write one file plus an index
//! for the same reason).
//!
//! Layout: the R partitions back to back, each a whole intermediate stream
//! ([`crate::intermediate`]: header, records, footer with its own checksum), then the
//! index (integers little-endian):
//! ```text
//! end:u64 × R                     where partition Y ends (it starts where Y-1 ends)
//! R:u32  crc32:u32  "MRX\x01"     crc32 of the ends and R
//! ```
//! `mr-X-Y` is still the name everything uses (the coordinator, the wire, failure
//! reports): [`open`] resolves it to its byte range in `mr-X.data`, or to a file of
//! that name, and readers see the same stream either way.

use crate::intermediate::{FormatError, EMPTY_STREAM_LEN};
use crate::task::packed_name;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const INDEX_MAGIC: &[u8; 4] = b"MRX\x01";

/// The index's fixed tail: R, the checksum and the magic.
const TAIL: u64 = 12;

/// How much of a packed file's end [`locate`] reads at once.
const LAST_READ: u64 = 4096;

/// Collects where each partition ends while they are written one after another into
/// one file, and writes the index after the last.
#[derive(Debug, Default)]
pub struct Index {
    ends: Vec<u64>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Index::default()
    }

    /// The next partition took `size` bytes.
    pub fn push(&mut self, size: u64) {
        let start = self.ends.last().copied().unwrap_or(0);
        self.ends.push(start + size);
    }

    /// Writes the index (after the last partition).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(self.ends.len() * 8 + TAIL as usize);
        for e in &self.ends {
            bytes.extend_from_slice(&e.to_le_bytes());
        }
        let r = u32::try_from(self.ends.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many partitions"))?;
        bytes.extend_from_slice(&r.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(INDEX_MAGIC);
        out.write_all(&bytes)
    }
}

/// A packed file's index, read and checked against its checksum and the file's size.
struct Ends {
    /// The R ends, little-endian u64s as on disk.
    ends: Vec<u8>,
    /// Where the index starts: the partitions' bytes are `0..data_len`.
    data_len: u64,
}

impl Ends {
    fn r(&self) -> u32 {
        (self.ends.len() / 8) as u32
    }

    /// Where partition `y` ends.
    fn end(&self, y: u32) -> u64 {
        let i = y as usize * 8;
        u64::from_le_bytes(self.ends[i..i + 8].try_into().expect("8 bytes"))
    }

    /// Where partition `y` starts.
    fn start(&self, y: u32) -> u64 {
        if y == 0 {
            0
        } else {
            self.end(y - 1)
        }
    }
}

fn corrupt(what: String) -> FormatError {
    FormatError::Corrupt(format!("packed map output: {what}"))
}

/// Reads `file`'s index. One positional read fetches the tail and, up to R = 510, the
/// whole index with it: a reduce opens one packed file per map, so at M = 10,000 small
/// maps every system call here counts. The whole index is read to check it: 40 KB at
/// R = 5,000.
fn read_ends(file: &File) -> Result<Ends, FormatError> {
    let len = file.metadata()?.len();
    if len < TAIL {
        return Err(corrupt(format!("{len} bytes is too short for an index")));
    }
    let mut last = vec![0u8; len.min(LAST_READ) as usize];
    let at = len - last.len() as u64;
    file.read_exact_at(&mut last, at)?;
    let tail: [u8; TAIL as usize] = last[last.len() - TAIL as usize..]
        .try_into()
        .expect("TAIL bytes");
    if &tail[8..] != INDEX_MAGIC {
        return Err(corrupt("bad index magic (truncated?)".into()));
    }
    let r = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(tail[4..8].try_into().expect("4 bytes"));
    let index_len = u64::from(r) * 8 + TAIL;
    if index_len > len {
        return Err(corrupt(format!(
            "an index of {r} partitions in {len} bytes"
        )));
    }
    let ends_len = r as usize * 8;
    let ends: Vec<u8> = if index_len <= last.len() as u64 {
        // The ends are already in `last`: keep them, in place.
        let at = last.len() - index_len as usize;
        last.truncate(at + ends_len);
        last.drain(..at);
        last
    } else {
        let mut ends = vec![0u8; ends_len];
        file.read_exact_at(&mut ends, len - index_len)?;
        ends
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&ends);
    h.update(&tail[..4]);
    if h.finalize() != crc {
        return Err(corrupt("index checksum does not match".into()));
    }
    Ok(Ends {
        ends,
        data_len: len - index_len,
    })
}

/// Where partition `y` lies in a packed file: (offset, length).
pub fn locate(file: &File, y: u32) -> Result<(u64, u64), FormatError> {
    let index = read_ends(file)?;
    if y >= index.r() {
        return Err(corrupt(format!("no partition {y} in {}", index.r())));
    }
    let (start, end) = (index.start(y), index.end(y));
    if start > end || end > index.data_len {
        return Err(corrupt(format!(
            "partition {y} at {start}..{end} of {}",
            index.data_len
        )));
    }
    Ok((start, end - start))
}

/// Checks, cheaply, that the packed file at `path` is a whole map output of `r`
/// partitions: its index is intact and its partitions, each at least an empty
/// stream long, fill the file up to the index. One open and one or two reads,
/// whatever R: a restarted coordinator checks every done map, and reading each
/// partition's framing would be 10^9 reads at M = 200,000 and R = 5,000. A
/// partition's records and its own checksum are checked by the reduce that streams
/// it, which reports damage as a lost output so that the map runs again.
pub fn check(path: &Path, r: u32) -> Result<(), FormatError> {
    let index = read_ends(&File::open(path)?)?;
    if index.r() != r {
        return Err(corrupt(format!("{} partitions, not {r}", index.r())));
    }
    let mut at = 0;
    for y in 0..r {
        let end = index.end(y);
        if end < at + EMPTY_STREAM_LEN {
            return Err(corrupt(format!("partition {y} at {at}..{end}")));
        }
        at = end;
    }
    if at != index.data_len {
        return Err(corrupt(format!(
            "partitions end at {at}, the index starts at {}",
            index.data_len
        )));
    }
    Ok(())
}

/// A byte range of a file, read and sought as if it were the whole file (what an
/// intermediate [`crate::intermediate::Reader`] needs of its input). Reads are
/// positional and seeks only move a cursor, so checking a stream's footer and header
/// costs no `lseek` calls.
#[derive(Debug)]
pub struct Section {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Section {
    /// Bytes `start .. start + len` of `file`.
    pub fn new(file: File, start: u64, len: u64) -> Self {
        Section {
            file,
            start,
            len,
            pos: 0,
        }
    }

    /// The whole of `file`.
    pub fn whole(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Section::new(file, 0, len))
    }

    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file, its offset at the section's start, and the section's length.
    pub fn into_parts(mut self) -> io::Result<(File, u64)> {
        self.file.seek(SeekFrom::Start(self.start))?;
        Ok((self.file, self.len))
    }
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Section {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

/// Opens map output `mr-X-Y` at `path`: partition Y of the packed `mr-X.data` beside
/// it, or, where there is none, a file of that name (the one-partition form of the
/// same stream, which tools and tests write). The packed file is tried first because
/// every map writes one. A missing output is an error of kind `NotFound` either way.
pub fn open(path: &Path) -> Result<Section, FormatError> {
    let plain = || -> Result<Section, FormatError> { Ok(Section::whole(File::open(path)?)?) };
    let Some((dir, map, y)) = split_name(path) else {
        return plain();
    };
    match File::open(dir.join(packed_name(map))) {
        Ok(f) => {
            let (start, len) = locate(&f, y)?;
            Ok(Section::new(f, start, len))
        }
        // Not packed: the plain file, and its error (named as asked) if it is missing too.
        Err(p) if p.kind() == io::ErrorKind::NotFound => plain(),
        Err(p) => Err(p.into()),
    }
}

/// Creates `path` and writes `partitions` to it as a packed map output, partition Y
/// from `partitions[Y]` (used by tests and tools; a map writes its own through
/// [`crate::atomic::AtomicFile`]).
pub fn write_file(path: &Path, partitions: &[Vec<crate::intermediate::Record>]) -> io::Result<()> {
    let mut out = io::BufWriter::new(File::create(path)?);
    let mut index = Index::new();
    for records in partitions {
        let mut w = crate::intermediate::Writer::new(&mut out)?;
        for (k, v) in records {
            w.push(k, v)?;
        }
        index.push(w.finish()?.1);
    }
    index.write_to(&mut out)?;
    out.flush()
}

/// `dir/mr-X-Y` as (dir, X, Y).
fn split_name(path: &Path) -> Option<(&Path, u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let (x, y) = name.strip_prefix("mr-")?.split_once('-')?;
    Some((path.parent()?, x.parse().ok()?, y.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intermediate::{read_all, Reader};
    use crate::task::intermediate_name;

    /// Partition y holds keys "k{y}-{i}" for i < y (partition 0 is empty).
    fn write_packed(dir: &Path, map: u32, r: u32) {
        let partitions: Vec<Vec<_>> = (0..r)
            .map(|y| {
                (0..y)
                    .map(|i| (format!("k{y}-{i}").into_bytes(), b"1".to_vec()))
                    .collect()
            })
            .collect();
        write_file(&dir.join(packed_name(map)), &partitions).unwrap();
    }

    fn records(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut r = Reader::new(open(path).unwrap()).unwrap();
        let (mut k, mut v, mut out) = (Vec::new(), Vec::new(), Vec::new());
        while r.next_into(&mut k, &mut v).unwrap() {
            out.push((k.clone(), v.clone()));
        }
        out
    }

    #[test]
    fn every_partition_of_a_packed_file_reads_as_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        write_packed(dir.path(), 7, 5);
        for y in 0..5 {
            let got = records(&dir.path().join(intermediate_name(7, y)));
            let want: Vec<_> = (0..y)
                .map(|i| (format!("k{y}-{i}").into_bytes(), b"1".to_vec()))
                .collect();
            assert_eq!(got, want, "partition {y}");
        }
        // An index longer than locate's one read of the tail (R = 600).
        write_packed(dir.path(), 8, 600);
        for y in [0, 1, 599] {
            let got = records(&dir.path().join(intermediate_name(8, y)));
            assert_eq!(got.len(), y as usize, "partition {y} of 600");
        }
        // A real mr-X-Y file is read as it is.
        let plain = dir.path().join(intermediate_name(3, 0));
        crate::intermediate::write_file(&plain, [(&b"a"[..], &b"b"[..])]).unwrap();
        assert_eq!(records(&plain), read_all(&plain).unwrap());
    }

    #[test]
    fn a_missing_output_is_not_found_and_a_damaged_index_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let missing = open(&dir.path().join(intermediate_name(1, 0))).unwrap_err();
        assert!(
            matches!(&missing, FormatError::Io(e) if e.kind() == io::ErrorKind::NotFound),
            "{missing:?}"
        );
        write_packed(dir.path(), 1, 3);
        let past = open(&dir.path().join(intermediate_name(1, 3))).unwrap_err();
        assert!(matches!(past, FormatError::Corrupt(_)), "{past:?}");
        let file = dir.path().join(packed_name(1));
        let good = std::fs::read(&file).unwrap();
        // Any flipped byte of the index, and any cut, is caught.
        let index_start = good.len() - (3 * 8 + TAIL as usize);
        for i in index_start..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&file, &bad).unwrap();
            let e = open(&dir.path().join(intermediate_name(1, 2))).unwrap_err();
            assert!(matches!(e, FormatError::Corrupt(_)), "byte {i}: {e:?}");
        }
        for cut in [1, 5, 12, 20, good.len() - 1] {
            std::fs::write(&file, &good[..good.len() - cut]).unwrap();
            let e = open(&dir.path().join(intermediate_name(1, 2))).unwrap_err();
            assert!(matches!(e, FormatError::Corrupt(_)), "cut {cut}: {e:?}");
        }
    }

    #[test]
    fn a_section_seeks_and_reads_only_its_range() {
        let data: Vec<u8> = (0..100u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let mut s = Section::new(File::open(&path).unwrap(), 10, 20);
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, (10..30u8).collect::<Vec<_>>());
        assert_eq!(s.seek(SeekFrom::End(-5)).unwrap(), 15);
        let mut b = [0u8; 10];
        assert_eq!(s.read(&mut b).unwrap(), 5);
        assert_eq!(&b[..5], &[25, 26, 27, 28, 29]);
        assert!(s.seek(SeekFrom::Current(-100)).is_err());
    }
}
