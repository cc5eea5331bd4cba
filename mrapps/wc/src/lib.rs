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

/// Calls `f` with every word of `text`, in order.
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (letter, width) = if b < 0x80 {
            (b.is_ascii_alphabetic(), 1)
        } else {
            // Not ASCII: decode one char (text is valid UTF-8, so this cannot fail).
            let c = text[i..].chars().next().unwrap_or('\u{fffd}');
            (is_letter(c), c.len_utf8())
        };
        match (letter, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                f(&text[s..i]);
                start = None;
            }
            _ => {}
        }
        i += width;
    }
    if let Some(s) = start {
        f(&text[s..]);
    }
}

fn map(_filename: &str, contents: &str, out: &mut Emitter) {
    for_each_word(contents, |w| out.emit(w, "1"));
}

/// Sums the counts (each "1" from map, or a partial sum from the combiner).
fn reduce(_key: &str, values: &[&str]) -> String {
    let total: u64 = values.iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum();
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
