//! Reading an input split on line boundaries.
//!
//! Rule: a split `[offset, offset + len)` owns every line that *starts* inside it. So its
//! reader skips the partial first line (unless the split starts the file: a line starts at
//! `offset` only if byte `offset - 1` is `\n`) and reads past its end to finish its last
//! line. Every line is then read by exactly one split, whatever the split size. Lines end
//! at `\n`; a `\r` before it stays part of the line, as it would with one split per file.

use crate::task::Split;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Reads the lines owned by `split`, bytes as they are in the file, into memory this
/// thread's previous input gave back with [`recycle`].
pub fn read_split(split: &Split) -> io::Result<Vec<u8>> {
    let file = File::open(&split.path)?;
    read_split_from(file, split.offset, split.len)
}

/// Reads all of the file at `path` (as one split would), into recycled memory.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    read_range(file, 0, len)
}

fn read_split_from(file: File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let (start, end) = owned_range(&file, offset, len)?;
    read_range(file, start, end)
}

/// The bytes `[start, end)` of `file`, read straight into the buffer (no `BufReader`:
/// one copy, from the page cache).
fn read_range(mut file: File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(start))?;
    let mut out = SPARE.take();
    out.clear();
    out.reserve_exact((end - start) as usize);
    match file.take(end - start).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => {
            recycle(out);
            Err(e)
        }
    }
}

thread_local! {
    /// The last input's memory, kept for the next read on this thread. A fresh buffer
    /// of a split's size is new pages from the kernel, each faulted in and zeroed while
    /// the read copies into it: about a tenth of a word count's CPU
    /// (docs/performance.md, "The input's memory").
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Larger buffers are freed rather than kept: a thread holds at most this much between
/// tasks (the default split is 64 MiB).
const KEEP_AT_MOST: usize = 128 << 20;

/// Gives an input's memory (from [`read_split`] or [`read_whole`], or any other) back,
/// for the next read on this thread to reuse.
pub fn recycle(bytes: Vec<u8>) {
    let spare = SPARE.take();
    let keep = bytes.capacity() <= KEEP_AT_MOST && bytes.capacity() > spare.capacity();
    SPARE.set(if keep { bytes } else { spare });
}

/// The bytes `[start, end)` of `file` holding the lines that the split
/// `[offset, offset + len)` owns: from the first line that starts inside it to the end of
/// the line that holds its last byte. Empty (`start == end`) if no line starts inside.
pub fn owned_range(file: &File, offset: u64, len: u64) -> io::Result<(u64, u64)> {
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(64 << 10, file);
    // Where the first owned line starts.
    let start = if offset == 0 {
        0
    } else {
        r.seek(SeekFrom::Start(offset - 1))?;
        let n = skip_line(&mut r)?;
        offset - 1 + n
    };
    let end = (offset + len).min(file_len);
    if start >= end {
        return Ok((start.min(file_len), start.min(file_len)));
    }
    // Then to the end of the line that holds byte `end - 1`.
    r.seek(SeekFrom::Start(end - 1))?;
    let n = skip_line(&mut r)?;
    Ok((start, end - 1 + n))
}

/// Reads past the next `\n` (or to the end); returns how many bytes that was.
fn skip_line(r: &mut impl BufRead) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(n + i as u64 + 1);
            }
            None => {
                let len = buf.len();
                r.consume(len);
                n += len as u64;
            }
        }
    }
}

/// Cuts a file of `file_len` bytes into splits of at most `split_size` bytes. A file no
/// larger than the split size (an empty one included) is one split.
pub fn plan_splits(path: &Path, file_len: u64, split_size: u64) -> Vec<Split> {
    let split_size = split_size.max(1);
    if file_len <= split_size {
        return vec![Split {
            path: path.to_path_buf(),
            offset: 0,
            len: file_len,
        }];
    }
    (0..file_len.div_ceil(split_size))
        .map(|i| {
            let offset = i * split_size;
            Split {
                path: path.to_path_buf(),
                offset,
                len: split_size.min(file_len - offset),
            }
        })
        .collect()
}

/// Turns input bytes into text. Policy: invalid UTF-8 sequences become U+FFFD
/// (lossy decoding), so an app always sees valid text; valid input is not copied.
pub fn decode_input(bytes: Vec<u8>) -> String {
    // simdutf8's check, then std's conversion without a second one.
    if simdutf8::basic::from_utf8(&bytes).is_ok() {
        // SAFETY: just checked to be UTF-8.
        return unsafe { String::from_utf8_unchecked(bytes) };
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    recycle(bytes);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_via_splits(content: &[u8], split_size: u64) -> Vec<u8> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let mut all = Vec::new();
        for s in plan_splits(f.path(), content.len() as u64, split_size) {
            all.extend(read_split(&s).unwrap());
        }
        all
    }

    #[test]
    fn every_split_size_reads_each_line_exactly_once() {
        let cases: [&[u8]; 6] = [
            b"alpha beta\ngamma\n\ndelta epsilon zeta\neta\n",
            b"no final newline\nsecond line",
            b"crlf line one\r\ncrlf two\r\n\r\nlast\r\n",
            b"\n\n\nx\n",
            b"one long line without any newline at all",
            b"",
        ];
        for content in cases {
            for split_size in 1..=content.len().max(1) as u64 + 2 {
                assert_eq!(
                    lines_via_splits(content, split_size),
                    content,
                    "split size {split_size} for {:?}",
                    String::from_utf8_lossy(content)
                );
            }
        }
    }

    #[test]
    fn a_line_straddling_a_boundary_goes_to_the_split_it_starts_in() {
        let content = b"aaaa\nbbbbbbbb\ncc\n";
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let splits = plan_splits(f.path(), content.len() as u64, 8);
        assert_eq!(splits.len(), 3);
        assert_eq!(read_split(&splits[0]).unwrap(), b"aaaa\nbbbbbbbb\n");
        assert_eq!(read_split(&splits[1]).unwrap(), b"cc\n");
        assert_eq!(read_split(&splits[2]).unwrap(), b"");
    }

    #[test]
    fn a_recycled_input_is_read_into_again() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"first\nsecond\n").unwrap();
        let first = read_whole(f.path()).unwrap();
        assert_eq!(first, b"first\nsecond\n");
        let at = first.as_ptr();
        recycle(first);
        let splits = plan_splits(f.path(), 13, 6);
        let again = read_split(&splits[1]).unwrap();
        assert_eq!(again, b"second\n");
        assert_eq!(again.as_ptr(), at, "the recycled memory was not reused");
        // A smaller buffer does not replace a larger spare.
        recycle(again);
        recycle(Vec::with_capacity(1));
        let third = read_whole(f.path()).unwrap();
        assert_eq!(third.as_ptr(), at);
    }

    #[test]
    fn input_is_decoded_lossily_and_valid_text_is_not_copied() {
        let valid = "word wörd 単語\n".as_bytes().to_vec();
        let at = valid.as_ptr();
        let text = decode_input(valid);
        assert_eq!(text, "word wörd 単語\n");
        assert_eq!(text.as_ptr(), at);
        assert_eq!(decode_input(b"a\xffb\xc3".to_vec()), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn small_and_empty_files_are_one_split() {
        assert_eq!(plan_splits(Path::new("x"), 0, 64).len(), 1);
        assert_eq!(plan_splits(Path::new("x"), 64, 64).len(), 1);
        assert_eq!(plan_splits(Path::new("x"), 65, 64).len(), 2);
    }
}
