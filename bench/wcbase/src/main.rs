//! `mr-wcbase`: a hand-written word count, the limit that bench/bench.py holds mr
//! against. It counts the same words as the wc app (mrapps/wc: maximal runs of chars of
//! general category L*, Go's `unicode.IsLetter`) over a list of files, with `--threads`
//! threads (2 by default) and no framework. Each thread takes the next piece of input (a
//! whole file, or a chunk of a large one cut at whitespace) by an atomic index, reads it
//! into one reused buffer, turns each 64-byte block into a bit mask of letter bytes
//! (ASCII eight bytes at a time; other chars decoded with std) and counts the runs of set
//! bits into its own hash tables, whose entries hold words of up to 24 bytes inline
//! (longer ones in an arena). The tables are merged and sorted at the end; `--output
//! FILE` gets `word count` lines in byte order of the words, the format of mrsequential's
//! `mr-out-0`.
//!
//! Invalid UTF-8 counts as the framework counts it: mr decodes input lossily
//! (`String::from_utf8_lossy`: each invalid sequence becomes U+FFFD, which is not a
//! letter), so an invalid sequence just ends a word. Taking each invalid byte as a
//! one-byte non-letter gives exactly the same words: such a sequence is a lead byte and
//! continuation bytes, and no continuation byte starts a char.
//!
//! Usage: mr-wcbase [--threads 2] [--output FILE] [--chunk-size BYTES] FILES...

use clap::Parser;
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Counts words like the wc app, by hand: the baseline of bench/bench.py.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Write `word count` lines, sorted by word, to this file (else only a summary on
    /// stderr).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Files larger than this many bytes are cut into chunks of about this size (at
    /// whitespace), so that every thread has work even with one big file.
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    chunk_size: u64,
    /// Input files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr-wcbase: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let t0 = Instant::now();
    let counters = count(&args.files, args.threads.into(), args.chunk_size)?;
    let t_count = t0.elapsed();
    let words = merge(&counters);
    if let Some(path) = &args.output {
        write_output(path, &words)?;
    }
    eprintln!(
        "mr-wcbase: {} files, {} words, {} distinct; {:.3} s counting, {:.3} s in all",
        args.files.len(),
        words.iter().map(|&(_, n)| n).sum::<u64>(),
        words.len(),
        t_count.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Counts the words of `files` with `threads` threads; one `Counter` per thread.
fn count(files: &[PathBuf], threads: usize, chunk: u64) -> Result<Vec<Counter>, String> {
    let units = plan(files, chunk)?;
    let next = AtomicUsize::new(0);
    // Set by the first thread that fails, so that the others stop taking work.
    let failed = AtomicBool::new(false);
    let counters: Vec<Result<Counter, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let r = count_units(files, &units, &next, &failed);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    counters.into_iter().collect()
}

/// Every word of every counter with its total, sorted by the word's bytes. Words have no
/// byte below b'A', and the line's space is below it, so this is also the byte order of
/// the `word count` lines, the order `sort` gives mrsequential's output in the C locale.
fn merge(counters: &[Counter]) -> Vec<(&[u8], u64)> {
    let mut all = Vec::with_capacity(counters.iter().map(Counter::len).sum());
    for c in counters {
        c.for_each(|w, n| all.push((w, n)));
    }
    all.sort_unstable_by(|a: &(&[u8], u64), b| a.0.cmp(b.0));
    let mut merged: Vec<(&[u8], u64)> = Vec::with_capacity(all.len());
    for (w, n) in all {
        match merged.last_mut() {
            Some(last) if last.0 == w => last.1 += n,
            _ => merged.push((w, n)),
        }
    }
    merged
}

fn write_output(path: &Path, words: &[(&[u8], u64)]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let file = File::create(path).map_err(err)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for &(w, n) in words {
        out.write_all(w).map_err(err)?;
        writeln!(out, " {n}").map_err(err)?;
    }
    out.into_inner()
        .map_err(|e| err(e.into_error()))?
        .sync_all()
        .map_err(err)
}

/// A piece of work: bytes `offset..offset + len` of file `file`, widened to whitespace
/// (see `read_unit`). `last`: the file's last piece, read to its end whatever its size.
struct Unit {
    file: usize,
    offset: u64,
    len: u64,
    last: bool,
}

/// Cuts the files into units of at most about `chunk` bytes, by their size now.
fn plan(files: &[PathBuf], chunk: u64) -> Result<Vec<Unit>, String> {
    let mut units = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("input {}: {e} (check the path)", path.display()))?
            .len();
        let n = size.div_ceil(chunk).max(1);
        for k in 0..n {
            units.push(Unit {
                file: i,
                offset: k * chunk,
                len: chunk.min(size.saturating_sub(k * chunk)),
                last: k + 1 == n,
            });
        }
    }
    Ok(units)
}

/// One thread's loop: takes units by the shared index until none is left.
fn count_units(
    files: &[PathBuf],
    units: &[Unit],
    next: &AtomicUsize,
    failed: &AtomicBool,
) -> Result<Counter, String> {
    let mut counter = Counter::new();
    let mut buf = Vec::new();
    while !failed.load(Ordering::Relaxed) {
        let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let path = &files[unit.file];
        let (start, end) = read_unit(path, unit, &mut buf)
            .map_err(|e| format!("input {}: {e}", path.display()))?;
        // The scanner reads whole blocks, and `Counter::add` whole keys, past the end of
        // the text: pad with zero bytes (not letters) so that those reads stay in the
        // buffer and find no word there.
        buf.truncate(end);
        buf.resize(end + PAD, 0);
        counter.count_words(&buf, start, end);
    }
    Ok(counter)
}

/// Whether a byte may end a unit. ASCII whitespace is never part of a word, nor of a
/// UTF-8 sequence, nor of an invalid sequence that lossy decoding would turn into one
/// U+FFFD; so cutting there changes no word.
fn is_cut(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Reads `unit` into `buf` and returns the part of it to count, `start..end`. A unit
/// owns the text from the first whitespace at or after its offset (or the file's start)
/// to the first whitespace at or after its end (or the file's end): consecutive units
/// meet exactly, and a unit with no whitespace in its range is empty (its text belongs
/// to the one before).
fn read_unit(path: &Path, unit: &Unit, buf: &mut Vec<u8>) -> std::io::Result<(usize, usize)> {
    let mut f = File::open(path)?;
    buf.clear();
    // Room for the unit, some of the next, and the padding, in one allocation (and none
    // after the first unit of a thread).
    buf.reserve(
        usize::try_from(unit.len)
            .unwrap_or(usize::MAX)
            .saturating_add(2 * PAD + (64 << 10)),
    );
    if unit.offset > 0 {
        f.seek(SeekFrom::Start(unit.offset))?;
    }
    if unit.last {
        // `read_to_end` fills spare capacity without zeroing it first.
        f.read_to_end(buf)?;
    } else {
        (&mut f).take(unit.len).read_to_end(buf)?;
    }
    let start = if unit.offset == 0 {
        0
    } else {
        match buf.iter().position(|&b| is_cut(b)) {
            Some(i) => i,
            None => return Ok((0, 0)),
        }
    };
    if !unit.last {
        // Read on to the next whitespace (or the end of the file).
        loop {
            let from = buf.len();
            let got = (&mut f).take(64 << 10).read_to_end(buf)?;
            if got == 0 {
                break;
            }
            if let Some(i) = buf[from..].iter().position(|&b| is_cut(b)) {
                buf.truncate(from + i);
                break;
            }
        }
    }
    Ok((start, buf.len()))
}

/// The wc app's letter (`mrapps/wc`'s `is_letter`): general category Lu, Ll, Lt, Lm, Lo.
fn is_letter(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Letter
}

/// For the non-ASCII byte at `text[i]`: whether it starts a letter, and how many bytes
/// to step over. An invalid byte is a non-letter one byte wide (see the module doc).
#[cold]
fn non_ascii_at(text: &[u8], i: usize) -> (bool, usize) {
    let width = match text[i] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (false, 1),
    };
    // std decides validity (overlong forms, surrogates, the range of code points).
    match text
        .get(i..i + width)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next())
    {
        Some(c) => (is_letter(c), width),
        None => (false, 1),
    }
}

/// A char of several bytes that began in the last block and goes on in the next: how
/// many of its bytes are in the next block, and whether it is a letter.
#[derive(Default)]
struct Carry {
    bytes: u32,
    letter: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x80 * ONES;

/// Per byte of `x`, the top bit is set iff the byte is an ASCII letter (A-Z, a-z); the
/// other bits are clear. (Eight bytes at a time; a 256-entry table would take one.)
#[inline(always)]
fn ascii_letters(x: u64) -> u64 {
    // Lower case (an ASCII letter differs from its upper case in bit 5 only), top bit
    // cleared so that the additions below carry into no other byte.
    let y = (x & !HIGH) | (0x20 * ONES);
    // Top bit set iff y >= b'a', resp. iff y > b'z'.
    let ge_a = y + (0x80 - b'a' as u64) * ONES;
    let gt_z = y + (0x80 - b'z' as u64 - 1) * ONES;
    ge_a & !gt_z & !x & HIGH
}

/// The top bit of each byte of `x` (whose other bits are clear), gathered into the low
/// 8 bits: bit k is byte k's.
#[inline(always)]
fn gather_high_bits(x: u64) -> u64 {
    // Byte k's bit lands at bit 56 + k of the product; no two partial products overlap,
    // so nothing carries.
    (x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bit k set iff byte k of `block` (the 64 bytes at `text[base..]`, padding past its
/// end) is a byte of a letter. Bytes of non-ASCII chars are decoded; `carry` carries a
/// char that straddles two blocks.
#[inline(always)]
fn letter_mask(text: &[u8], block: &[u8; 64], base: usize, carry: &mut Carry) -> u64 {
    let mut letters = 0;
    let mut high = 0;
    for k in 0..8 {
        let x = load(block, 8 * k);
        letters |= gather_high_bits(ascii_letters(x)) << (8 * k);
        high |= x & HIGH;
    }
    if high == 0 && carry.bytes == 0 {
        return letters;
    }
    non_ascii_mask(text, block, base, letters, carry)
}

/// `letter_mask` for a block with non-ASCII bytes: decodes each char that has any, in
/// order, and sets the bits of its bytes if it is a letter.
#[cold]
fn non_ascii_mask(
    text: &[u8],
    block: &[u8; 64],
    base: usize,
    mut letters: u64,
    carry: &mut Carry,
) -> u64 {
    let mut high = 0;
    for k in 0..8 {
        high |= gather_high_bits(load(block, 8 * k) & HIGH) << (8 * k);
    }
    // The rest of a char begun in the last block (at most 3 bytes).
    let done = carry.bytes;
    if carry.letter {
        letters |= low_bits(done);
    }
    *carry = Carry::default();
    high &= !low_bits(done);
    while high != 0 {
        let k = high.trailing_zeros();
        let (letter, width) = non_ascii_at(text, base + k as usize);
        let next = k + width as u32;
        if letter {
            letters |= low_bits(next) & !low_bits(k);
        }
        if next > 64 {
            *carry = Carry {
                bytes: next - 64,
                letter,
            };
        }
        high &= !low_bits(next);
    }
    letters
}

/// A mask of the low `n` bits (all 64 from 64 up).
#[inline(always)]
fn low_bits(n: u32) -> u64 {
    u64::MAX.checked_shr(64 - n.min(64)).unwrap_or(0)
}

/// A mask of the low `n` bytes of a u64 (all 8 from 8 up).
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    low_bits(8 * n.min(8) as u32)
}

/// The 8 bytes at `buf[i..]`, little-endian (one unaligned load).
#[inline(always)]
fn load(buf: &[u8], i: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Words of up to this many bytes are kept inside their table entry.
const KEY_BYTES: usize = 24;
/// Zero bytes after the text in the buffer: one block of the scanner, and more than a
/// key.
const PAD: usize = 64;
/// The low byte of `Entry::meta` for a word kept in the arena.
const LONG: u64 = 0xff;

/// An entry of the table of words of up to 8 bytes (95% of the words of the bundled
/// books), 16 bytes: four to a cache line, so that this table (16,222 such words in the
/// books, 512 KiB) stays in the L2 cache. With one table of 32-byte entries for all
/// words, the count took 1.7x as long: most of it waiting for the entries' loads. `key`
/// is the word, zero-padded; words have no zero bytes, so `key` alone tells words apart.
#[derive(Clone, Copy)]
struct Short {
    key: [u8; 8],
    count: u64,
}

/// An entry of the table of longer words, 32 bytes. A word of up to 24 bytes is in
/// `key`, zero-padded, and the low byte of `meta` is its length. A longer word is in
/// the arena: `key` holds its offset and length as two little-endian u64s, and the low
/// byte of `meta` is `LONG`. The count is `meta >> 8`.
#[derive(Clone, Copy)]
struct Entry {
    key: [u8; KEY_BYTES],
    meta: u64,
}

impl Entry {
    /// The three little-endian u64s of `key`.
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        [0, 1, 2].map(|k| load(&self.key, 8 * k))
    }
}

/// `w` as the bytes of an entry's key.
#[inline(always)]
fn key_bytes(w: &[u64; 3]) -> [u8; KEY_BYTES] {
    let mut key = [0; KEY_BYTES];
    for (k, x) in w.iter().enumerate() {
        key[8 * k..8 * k + 8].copy_from_slice(&x.to_le_bytes());
    }
    key
}

/// One thread's counts.
struct Counter {
    short: HashTable<Short>,
    table: HashTable<Entry>,
    /// The bytes of the words longer than `KEY_BYTES`.
    arena: Vec<u8>,
    hasher: FixedState,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            short: HashTable::with_capacity(4096),
            table: HashTable::with_capacity(1024),
            arena: Vec::new(),
            // A fixed seed: runs are repeatable, and nobody attacks a benchmark's table.
            hasher: FixedState::default(),
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.table.len()
    }

    #[inline(always)]
    fn hash_short(hasher: &FixedState, key: u64) -> u64 {
        let mut h = hasher.build_hasher();
        h.write_u64(key);
        h.finish()
    }

    #[inline(always)]
    fn hash_inline(hasher: &FixedState, w: &[u64; 3]) -> u64 {
        let mut h = hasher.build_hasher();
        h.write_u128(w[0] as u128 | (w[1] as u128) << 64);
        h.write_u64(w[2]);
        h.finish()
    }

    fn hash_entry(hasher: &FixedState, arena: &[u8], e: &Entry) -> u64 {
        let w = e.words();
        if e.meta & 0xff == LONG {
            hasher.hash_one(&arena[w[0] as usize..][..w[1] as usize])
        } else {
            Self::hash_inline(hasher, &w)
        }
    }

    /// Counts every word of `buf[start..end]`; `buf` extends at least `PAD` zero bytes
    /// past `end`.
    ///
    /// The text goes by in blocks of 64 bytes, each turned into a mask with a bit set for
    /// every byte of a letter (`letter_mask`); words are the runs of set bits, found with
    /// bit operations, so the only branch that depends on the words is the loop over the
    /// words of a block. (The byte-at-a-time loop with a 256-entry class table that this
    /// replaced mispredicted at both ends of every word; on the 1 GiB corpus the whole
    /// count got 1.8x faster without it.)
    fn count_words(&mut self, buf: &[u8], start: usize, end: usize) {
        let text = &buf[..end];
        // The start of the word that runs through the end of the last block, if any.
        let mut open: Option<usize> = None;
        let mut carry = Carry::default();
        let mut base = start;
        while base < end {
            let Some(block) = buf[base..].first_chunk::<64>() else {
                break; // never: the padding is a whole block
            };
            let letters = letter_mask(text, block, base, &mut carry);
            // Bit k of `prev`: whether byte k - 1 is a letter (for k = 0, the last byte
            // of the last block).
            let prev = letters << 1 | open.is_some() as u64;
            let mut starts = letters & !prev;
            let mut ends = !letters & prev;
            if let Some(word) = open {
                if ends == 0 {
                    // The word runs through this whole block too.
                    base += 64;
                    continue;
                }
                self.add(buf, word, base + ends.trailing_zeros() as usize);
                ends &= ends - 1;
                open = None;
            }
            // Starts and ends alternate: each start's end is the next end, if it is in
            // this block.
            while starts != 0 {
                let word = base + starts.trailing_zeros() as usize;
                starts &= starts - 1;
                if ends == 0 {
                    open = Some(word);
                    break;
                }
                self.add(buf, word, base + ends.trailing_zeros() as usize);
                ends &= ends - 1;
            }
            base += 64;
        }
        if let Some(word) = open {
            // The last block was full, its last byte a letter: the word ends at `end`
            // (which is at whitespace or the end of the file).
            self.add(buf, word, end);
        }
    }

    /// Counts the word `buf[start..end]` once; `buf` extends at least `KEY_BYTES` past
    /// `end`, so its first `KEY_BYTES` bytes may be loaded whole and masked.
    #[inline(always)]
    fn add(&mut self, buf: &[u8], start: usize, end: usize) {
        let len = end - start;
        let hasher = &self.hasher;
        let w0 = load(buf, start);
        if len <= 8 {
            let key = w0 & low_bytes(len);
            let h = Self::hash_short(hasher, key);
            let bytes = key.to_le_bytes();
            match self.short.find_mut(h, |e| e.key == bytes) {
                Some(e) => e.count += 1,
                None => {
                    let e = Short {
                        key: bytes,
                        count: 1,
                    };
                    self.short.insert_unique(h, e, |e| {
                        Self::hash_short(hasher, u64::from_le_bytes(e.key))
                    });
                }
            }
        } else if len <= KEY_BYTES {
            let w = [
                w0,
                load(buf, start + 8) & low_bytes(len - 8),
                load(buf, start + 16) & low_bytes(len.saturating_sub(16)),
            ];
            let h = Self::hash_inline(hasher, &w);
            let key = key_bytes(&w);
            let tag = len as u64;
            let arena = &self.arena;
            match self
                .table
                .find_mut(h, |e| e.key == key && e.meta & 0xff == tag)
            {
                Some(e) => e.meta += 1 << 8,
                None => {
                    let e = Entry {
                        key,
                        meta: 1 << 8 | tag,
                    };
                    self.table
                        .insert_unique(h, e, |e| Self::hash_entry(hasher, arena, e));
                }
            }
        } else {
            self.add_long(&buf[start..end]);
        }
    }

    #[cold]
    fn add_long(&mut self, word: &[u8]) {
        let hasher = &self.hasher;
        let h = hasher.hash_one(word);
        let arena = &self.arena;
        let found = self.table.find_mut(h, |e| {
            let [offset, len, _] = e.words();
            e.meta & 0xff == LONG
                && len == word.len() as u64
                && &arena[offset as usize..][..word.len()] == word
        });
        match found {
            Some(e) => e.meta += 1 << 8,
            None => {
                let e = Entry {
                    key: key_bytes(&[arena.len() as u64, word.len() as u64, 0]),
                    meta: 1 << 8 | LONG,
                };
                self.table
                    .insert_unique(h, e, |e| Self::hash_entry(hasher, arena, e));
                self.arena.extend_from_slice(word);
            }
        }
    }

    /// Calls `f` with every word and its count, in no order.
    fn for_each<'a>(&'a self, mut f: impl FnMut(&'a [u8], u64)) {
        for e in &self.short {
            let len = e.key.iter().position(|&b| b == 0).unwrap_or(8);
            f(&e.key[..len], e.count);
        }
        for e in &self.table {
            let tag = e.meta & 0xff;
            let word: &[u8] = if tag == LONG {
                let [offset, len, _] = e.words();
                &self.arena[offset as usize..][..len as usize]
            } else {
                &e.key[..tag as usize]
            };
            f(word, e.meta >> 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The words of `inputs` as the framework sees them: lossy decoding, then runs of
    /// the wc app's letters, char by char.
    fn reference(inputs: &[Vec<u8>]) -> BTreeMap<Vec<u8>, u64> {
        let mut counts = BTreeMap::new();
        for bytes in inputs {
            let text = String::from_utf8_lossy(bytes);
            let mut word = String::new();
            for c in text.chars().chain(std::iter::once(' ')) {
                if is_letter(c) {
                    word.push(c);
                } else if !word.is_empty() {
                    *counts.entry(word.as_bytes().to_vec()).or_insert(0) += 1;
                    word.clear();
                }
            }
        }
        counts
    }

    fn to_map(words: &[(&[u8], u64)]) -> BTreeMap<Vec<u8>, u64> {
        words.iter().map(|&(w, n)| (w.to_vec(), n)).collect()
    }

    /// Pseudo-random text from pieces that test the edges: multi-byte letters and
    /// non-letters (combining marks, a letter number, which `char::is_alphabetic` would
    /// take, unlike the wc app), invalid and truncated UTF-8, words around 8, 16, 24
    /// bytes and longer.
    fn random_text(seed: u64, len: usize) -> Vec<u8> {
        let pieces: &[&[u8]] = &[
            b"a",
            b"Z",
            b"q",
            b" ",
            b"\n",
            b"\t",
            b",",
            b"'",
            b"0",
            b"\r\n",
            "é".as_bytes(),
            "ß".as_bytes(),
            "中文".as_bytes(),
            "𝒜".as_bytes(),
            "Ⅷ".as_bytes(),
            "\u{301}".as_bytes(),
            "\u{903}".as_bytes(),
            "ǅ".as_bytes(),
            "ʰ".as_bytes(),
            "\u{a0}".as_bytes(),
            "—".as_bytes(),
            "😀".as_bytes(),
            b"\x80",
            b"\xe2\x82",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf5",
            b"\xff",
            b"\xf0\x9f\x98",
            b"\xc3",
            b"abcdefgh",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopqrstuvwx",
            b"abcdefghijklmnopqrstuvwxy",
            b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
        ];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut out = Vec::new();
        while out.len() < len {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x >> 32) as usize;
            // Mostly short ASCII words, so that blocks are like text.
            let piece = if k & 1 == 0 {
                pieces[k / 2 % 3]
            } else {
                pieces[k / 2 % pieces.len()]
            };
            out.extend_from_slice(piece);
        }
        out
    }

    fn count_buffer(text: &[u8]) -> Counter {
        let mut buf = text.to_vec();
        buf.resize(text.len() + PAD, 0);
        let mut c = Counter::new();
        c.count_words(&buf, 0, text.len());
        c
    }

    #[test]
    fn ascii_letters_are_std_ascii_alphabetic() {
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                let bytes = [b, c, c, b, b, c, b, c];
                let got = gather_high_bits(ascii_letters(u64::from_le_bytes(bytes)));
                let want = (0..8).fold(0, |m, k| m | (bytes[k].is_ascii_alphabetic() as u64) << k);
                assert_eq!(got, want, "bytes {bytes:?}");
            }
        }
    }

    #[test]
    fn words_are_the_wc_apps() {
        let text = "Hello, wörld! it's 42nd—ÉTÉ\tx Ⅷ a\u{301}b".as_bytes();
        let c = count_buffer(text);
        let got = to_map(&merge(std::slice::from_ref(&c)));
        let want: BTreeMap<Vec<u8>, u64> =
            ["Hello", "wörld", "it", "s", "nd", "ÉTÉ", "x", "a", "b"]
                .iter()
                .map(|w| (w.as_bytes().to_vec(), 1))
                .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn random_text_counts_like_the_reference() {
        for seed in 1..40 {
            let text = random_text(seed, 1 + seed as usize * 997);
            let c = count_buffer(&text);
            assert_eq!(
                to_map(&merge(std::slice::from_ref(&c))),
                reference(&[text]),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn chunks_and_threads_change_no_count() {
        let dir = std::env::temp_dir().join(format!("mr-wcbase-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let texts: Vec<Vec<u8>> = vec![
            random_text(7, 50_000),
            Vec::new(),
            b"oneword".repeat(40),
            random_text(8, 3_000),
            b"ends in a letter \xc3".to_vec(),
        ];
        let files: Vec<PathBuf> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let p = dir.join(format!("in-{i}.txt"));
                std::fs::write(&p, t).unwrap();
                p
            })
            .collect();
        let want = reference(&texts);
        for chunk in [1, 2, 3, 64, 1000, 1 << 20] {
            for threads in [1, 2, 3] {
                let counters = count(&files, threads, chunk).unwrap();
                assert_eq!(
                    to_map(&merge(&counters)),
                    want,
                    "chunk {chunk}, threads {threads}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_input_is_named() {
        let missing = PathBuf::from("/nonexistent/mr-wcbase-input.txt");
        let err = count(std::slice::from_ref(&missing), 2, 1 << 20)
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/mr-wcbase-input.txt"), "{err}");
    }
}
