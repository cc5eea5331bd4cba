//! Inverted index: for each word, the number of documents containing it and their names,
//! sorted (`N doc1,doc2,...`). Words as in `wc`: maximal runs of Unicode letters.
//! The combiner merges a map task's documents per word into one newline-separated value.

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

/// The distinct documents named by `values`, sorted. A value is one document name, or
/// several separated by newlines (the combiner's output). A document may come from
/// several map tasks when it is cut into splits, hence the dedup.
fn distinct_docs<'a>(values: &[&'a str]) -> Vec<&'a str> {
    let mut docs: Vec<&str> = values.iter().flat_map(|v| v.split('\n')).collect();
    docs.sort_unstable();
    docs.dedup();
    docs
}

fn reduce(_key: &str, values: &[&str]) -> String {
    let docs = distinct_docs(values);
    format!("{} {}", docs.len(), docs.join(","))
}

/// Folds a map task's pairs of one word into one value: its documents, one per line.
fn combine(_key: &str, values: &[&str]) -> String {
    distinct_docs(values).join("\n")
}

export_app!(map: map, reduce: reduce, combine: combine);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_counts_and_sorts_documents() {
        assert_eq!(reduce("w", &["b.txt", "a.txt"]), "2 a.txt,b.txt");
    }

    #[test]
    fn documents_seen_by_several_splits_or_combined_count_once() {
        assert_eq!(
            reduce("w", &["a.txt", "b.txt\na.txt", "a.txt"]),
            "2 a.txt,b.txt"
        );
        assert_eq!(combine("w", &["b.txt", "a.txt", "b.txt"]), "a.txt\nb.txt");
    }

    #[test]
    fn words_split_on_non_letters() {
        assert_eq!(words("a1b  c-d").collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }
}
