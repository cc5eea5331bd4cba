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

/// Calls `f` with every word of `text`, in order. Tight loops over ASCII; other
/// chars are decoded one at a time.
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    let n = text.len();
    let mut i = 0;
    while i < n {
        // Skip to the start of a word.
        let (letter, width) = letter_at(text, i);
        if !letter {
            i += width;
            continue;
        }
        let start = i;
        i += width;
        // Run to its end.
        while i < n {
            let (letter, width) = letter_at(text, i);
            if !letter {
                break;
            }
            i += width;
        }
        f(&text[start..i]);
    }
}

fn map(_filename: &str, contents: &str, out: &mut Emitter) {
    for_each_word(contents, |w| out.emit(w, "1"));
}

/// Sums the counts (each "1" from map, or a partial sum from the combiner).
fn reduce(_key: &str, values: &[&str]) -> String {
    // Most values are map's "1"s: skip the parser for them.
    let total: u64 = values
        .iter()
        .map(|&v| {
            if v == "1" {
                1
            } else {
                v.parse::<u64>().unwrap_or(0)
            }
        })
        .sum();
    total.to_string()
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

    #[test]
    fn reduce_sums_partial_counts() {
        assert_eq!(reduce("a", &["1", "1", "1"]), "3");
        assert_eq!(reduce("a", &["2", "5"]), "7");
    }
}
