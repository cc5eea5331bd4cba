//! Reading an input split on line boundaries.
//!
//! Rule: a split `[offset, offset + len)` owns every line that *starts* inside it. So its
//! reader skips the partial first line (unless the split starts the file: a line starts at
//! `offset` only if byte `offset - 1` is `\n`) and reads past its end to finish its last
//! line. Every line is then read by exactly one split, whatever the split size. Lines end
//! at `\n`; a `\r` before it stays part of the line, as it would with one split per file.

use crate::task::Split;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Reads the lines owned by `split`, bytes as they are in the file.
pub fn read_split(split: &Split) -> io::Result<Vec<u8>> {
    let file = File::open(&split.path)?;
    read_split_from(file, split.offset, split.len)
}

fn read_split_from(file: File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    // Find where the first owned line starts.
    let start = if offset == 0 {
        0
    } else {
        r.seek(SeekFrom::Start(offset - 1))?;
        let mut skipped = Vec::new();
        let n = r.read_until(b'\n', &mut skipped)? as u64;
        offset - 1 + n
    };
    let end = offset + len;
    if start >= end || start >= file_len {
        return Ok(Vec::new());
    }
    r.seek(SeekFrom::Start(start))?;
    let mut out = Vec::with_capacity((end - start).min(file_len - start) as usize + 256);
    // Everything up to `end`, then the rest of the line that contains byte `end - 1`.
    (&mut r).take(end - start).read_to_end(&mut out)?;
    if out.last().is_some_and(|&b| b != b'\n') {
        r.read_until(b'\n', &mut out)?;
    }
    Ok(out)
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
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
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
    fn small_and_empty_files_are_one_split() {
        assert_eq!(plan_splits(Path::new("x"), 0, 64).len(), 1);
        assert_eq!(plan_splits(Path::new("x"), 64, 64).len(), 1);
        assert_eq!(plan_splits(Path::new("x"), 65, 64).len(), 2);
    }
}
