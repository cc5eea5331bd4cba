//! Inverted index: for each word, the number of documents containing it and their names,
//! sorted (`N doc1,doc2,...`). Words as in `wc`: maximal runs of Unicode letters.

use mrapp::{export_app, Emitter};
use std::collections::BTreeSet;

/// A word is a maximal run of letters (Go's `unicode.IsLetter`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_letter(c))
        .filter(|w| !w.is_empty())
}

fn is_letter(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.general_category_group() == GeneralCategoryGroup::Letter
    }
}

/// One pair (word, document) per distinct word of the document.
fn map(document: &str, contents: &str, out: &mut Emitter) {
    let distinct: BTreeSet<&str> = words(contents).collect();
    for w in distinct {
        out.emit(w, document);
    }
}

fn reduce(_key: &str, values: &[&str]) -> String {
    let mut docs: Vec<&str> = values.to_vec();
    docs.sort_unstable();
    format!("{} {}", docs.len(), docs.join(","))
}

export_app!(map: map, reduce: reduce);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_counts_and_sorts_documents() {
        assert_eq!(reduce("w", &["b.txt", "a.txt"]), "2 a.txt,b.txt");
    }

    #[test]
    fn words_split_on_non_letters() {
        assert_eq!(words("a1b  c-d").collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }
}
