//! Word count: a word is a maximal run of Unicode letters (Go's `unicode.IsLetter`, i.e.
//! general category L*); the output is each word and how often it occurs.
//! The combiner sums partial counts, so reduce sums too.

use mrapp::{export_app, Emitter};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Go's `unicode.IsLetter`: general category Lu, Ll, Lt, Lm or Lo.
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.general_category_group() == GeneralCategoryGroup::Letter
    }
}

/// Whether each ASCII byte is a letter.
const ASCII_LETTER: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = (i as u8).is_ascii_alphabetic();
        i += 1;
    }
    t
};

/// Whether the char starting at byte `i` of `text` is a letter, and its width.
#[inline]
fn letter_at(text: &str, i: usize) -> (bool, usize) {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        (ASCII_LETTER[b as usize], 1)
    } else {
        // `i` is on a char boundary, so this decodes one char.
        let c = text[i..].chars().next().unwrap_or('\u{fffd}');
        (is_letter(c), c.len_utf8())
    }
}

/// Calls `f` with every word of `text`, in order.
///
/// Text is scanned 64 bytes at a time: for a block of ASCII, a bit mask of its letters
/// (eight bytes per step) gives the words' starts and ends with a few bit operations
/// each, where a byte loop would branch, and mispredict, at every word boundary. A
/// block with any non-ASCII byte is walked a char at a time.
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    // The start of the word under way, if any, and of the next block.
    let mut word = None;
    let mut i = 0;
    while let Some(block) = bytes.get(i..i + 64) {
        match ascii_letter_mask(block) {
            Some(letters) => {
                words_of_mask(text, i, letters, &mut word, &mut f);
                i += 64;
            }
            None => i = walk_chars(text, i, i + 64, &mut word, &mut f),
        }
    }
    walk_chars(text, i, text.len(), &mut word, &mut f);
    if let Some(start) = word {
        f(&text[start..]);
    }
}

/// Calls `f` with each word that ends in the ASCII block at `base` (bit k of `letters`
/// set iff byte `base + k` is a letter), and leaves in `word` the start of one that
/// runs on past it.
#[inline(always)]
fn words_of_mask<'a>(
    text: &'a str,
    base: usize,
    letters: u64,
    word: &mut Option<usize>,
    f: &mut impl FnMut(&'a str),
) {
    // Bits below `from` are done.
    let mut from = 0;
    loop {
        if let Some(start) = *word {
            let ends = !letters & (u64::MAX << from);
            if ends == 0 {
                return;
            }
            let end_bit = ends.trailing_zeros();
            let end = base + end_bit as usize;
            // SAFETY: `start` is where a letter begins (a char boundary) and `end` is an
            // ASCII byte of this block (one too), both within `text`: the checked slice
            // made the same two checks again for every word.
            f(unsafe { text.get_unchecked(start..end) });
            *word = None;
            from = end_bit;
        }
        let starts = letters & (u64::MAX << from);
        if starts == 0 {
            return;
        }
        let start = starts.trailing_zeros();
        *word = Some(base + start as usize);
        from = start;
    }
}

/// Walks `text` a char at a time from `i` (a char boundary) to at least `end` (a char
/// may run past it), calling `f` with each word that ends there and keeping in `word`
/// the start of the one under way. Returns where it stopped: a char boundary.
fn walk_chars<'a>(
    text: &'a str,
    mut i: usize,
    end: usize,
    word: &mut Option<usize>,
    f: &mut impl FnMut(&'a str),
) -> usize {
    while i < end {
        let (letter, width) = letter_at(text, i);
        match (letter, *word) {
            (true, None) => *word = Some(i),
            (false, Some(start)) => {
                f(&text[start..i]);
                *word = None;
            }
            _ => {}
        }
        i += width;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x80 * ONES;

/// For a block of 64 ASCII bytes, bit k set iff byte k is a letter; `None` if any byte
/// is not ASCII.
#[inline(always)]
fn ascii_letter_mask(block: &[u8]) -> Option<u64> {
    let mut letters = 0;
    let mut high = 0;
    for (k, chunk) in block.chunks_exact(8).enumerate() {
        let mut b = [0; 8];
        b.copy_from_slice(chunk);
        let x = u64::from_le_bytes(b);
        high |= x;
        // Per byte, lower-cased (bit 5) with the top bit clear so that the sums below
        // carry into no other byte; their top bits then say y >= 'a' and y > 'z'.
        let y = (x & !HIGH) | (0x20 * ONES);
        let ge_a = y + (0x80 - u64::from(b'a')) * ONES;
        let gt_z = y + (0x80 - u64::from(b'z') - 1) * ONES;
        let top = ge_a & !gt_z & HIGH;
        // Gather the eight top bits into the low byte: byte j's bit lands at bit 56 + j
        // of the product, and no two partial products overlap.
        let bits = (top >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        letters |= bits << (8 * k);
    }
    (high & HIGH == 0).then_some(letters)
}

fn map(_filename: &str, contents: &str, out: &mut Emitter) {
    for_each_word(contents, |w| out.emit(w, "1"));
}

/// Sums the counts (each "1" from map, or a partial sum from the combiner).
fn reduce(_key: &str, values: &[&str]) -> String {
    // Most values are map's "1"s: a length and a byte tell them, and the parser (out of
    // line, so that it is not merged into the test) sees only the combiner's sums.
    let (mut ones, mut rest) = (0u64, 0u64);
    for &v in values {
        if v == "1" {
            ones += 1;
        } else {
            rest += parse_count(v);
        }
    }
    (ones + rest).to_string()
}

#[inline(never)]
fn parse_count(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

export_app!(map: map, reduce: reduce, combine: reduce);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters() {
        let mut words = Vec::new();
        for_each_word("Hello, wörld! it's 42nd—ÉTÉ\tx", |w| words.push(w));
        assert_eq!(words, ["Hello", "wörld", "it", "s", "nd", "ÉTÉ", "x"]);
    }

    /// Random text of ASCII letters, punctuation, and letters and non-letters of two,
    /// three and four bytes, against the definition.
    #[test]
    fn the_block_scanner_finds_the_words_the_definition_does() {
        let alphabet = [
            "a", "Z", "q", " ", ",", "\n", "0", "é", "ß", "—", "中", "𝔸", "😀", "\u{300}",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2_000 {
            let len = round % 300;
            let mut text = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // ASCII only in two rounds of three (so that whole blocks of it occur),
                // else with a non-ASCII char one time in twenty.
                let pick = (seed % 140) as usize;
                let c = if round % 3 != 0 || pick < 133 {
                    alphabet[pick % 7]
                } else {
                    alphabet[7 + pick % 7]
                };
                text.push_str(c);
            }
            let mut got = Vec::new();
            for_each_word(&text, |w| got.push(w));
            let want: Vec<&str> = text
                .split(|c| !is_letter(c))
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(got, want, "in {text:?}");
        }
    }

    #[test]
    fn words_across_blocks_and_at_the_ends() {
        for n in [63, 64, 65, 127, 128, 129, 200] {
            let text = "x".repeat(n);
            let mut got = Vec::new();
            for_each_word(&text, |w| got.push(w));
            assert_eq!(got, [text.as_str()]);
            let text = format!("{} {} é{}", "a".repeat(n), "b".repeat(n), "c".repeat(n));
            let mut got = Vec::new();
            for_each_word(&text, |w| got.push(w.len()));
            assert_eq!(got, [n, n, n + 2]);
        }
    }

    #[test]
    fn reduce_sums_partial_counts() {
        assert_eq!(reduce("a", &["1", "1", "1"]), "3");
        assert_eq!(reduce("a", &["2", "5"]), "7");
    }
}
