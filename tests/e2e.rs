//! End-to-end jobs that must succeed: real coordinator and worker processes, output
//! compared with mrsequential's.

use mr_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Word counts by an oracle independent of mr: words are maximal runs of ASCII letters
/// (for ASCII input this is exactly wc's rule), output as sorted `word count` lines.
fn ascii_word_counts(text: &[u8]) -> Vec<String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for w in text.split(|b| !b.is_ascii_alphabetic()) {
        if !w.is_empty() {
            *counts
                .entry(String::from_utf8(w.to_vec()).unwrap())
                .or_default() += 1;
        }
    }
    let mut v: Vec<String> = counts.iter().map(|(w, n)| format!("{w} {n}")).collect();
    v.sort();
    v
}

/// Runs the coordinator with `args` and `n` workers of `app` with `env`; asserts that
/// everyone exits 0 and no temp file is left; returns the sorted output lines.
fn run_job(
    dir: &Dir,
    args: &[&str],
    app_name: &str,
    n: usize,
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut c = dir.coordinator(args);
    let mut workers: Vec<Proc> = (0..n).map(|_| dir.worker(app_name, env)).collect();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    // Told by the coordinator that the job is over, not left to find it gone (which
    // takes --coordinator-timeout, 10 s).
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
        assert_told(w, "Succeeded");
    }
    assert_eq!(
        dir.temp_leftovers(),
        Vec::<String>::new(),
        "temp files left"
    );
    assert!(
        !dir.join("c.sock").exists(),
        "the coordinator left its socket behind"
    );
    dir.output_lines()
}

#[test]
fn wc_over_the_books_with_two_workers_matches_mrsequential() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    assert!(want.len() > 10_000, "reference too small: {}", want.len());
    let args: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let got = run_job(&dir, &args, "wc", 2, &[]);
    assert_same_lines(&got, &want);
    // One mr-out-Y per reduce task (default R = 10), and one map task per book.
    let outs = dir.out_files();
    assert_eq!(outs.len(), 10, "{outs:?}");
    assert_eq!(dir.map_outputs(), (0..8).collect::<Vec<_>>());
}

#[test]
fn mrsequential_agrees_with_the_tests_oracle() {
    // The tests compare against the oracle, which shares no buffer with the framework;
    // mrsequential (which does) must agree with it too.
    let dir = Dir::new();
    let inputs = dir.copy_books();
    for app in ["wc", "indexer"] {
        assert_same_lines(&dir.sequential(app, &inputs), &dir.expected(app, &inputs));
    }
}

#[test]
fn long_keys_and_many_keys_sharing_the_combining_table_count_right() {
    // Keys of every length around and far past the combining table's inline size (14
    // bytes), and tens of thousands of distinct keys, so that the table's slots are
    // shared and it grows, all checked against the oracle.
    let dir = Dir::new();
    let mut text = String::new();
    for i in 0..60_000u32 {
        // i in base 26, as letters (a word of its own), padded to lengths 1-40.
        let mut word = String::new();
        let mut n = i;
        loop {
            word.push(char::from(b'a' + (n % 26) as u8));
            n /= 26;
            if n == 0 {
                break;
            }
        }
        let len = 1 + (i as usize * 7919) % 40;
        while word.len() < len {
            word.push('z');
        }
        text.push_str(&word);
        text.push(if i % 13 == 0 { '\n' } else { ' ' });
        if i % 1000 == 0 {
            // A long key, repeated.
            let long: String = std::iter::repeat_n(
                char::from(b'a' + (i / 1000 % 26) as u8),
                300 + i as usize / 10,
            )
            .collect();
            text.push_str(&format!("{long} {long}\n"));
        }
    }
    let input = dir.write("keys.txt", &text);
    let want = dir.expected("wc", std::slice::from_ref(&input));
    assert!(want.len() > 5_000, "{}", want.len());
    let got = run_job(
        &dir,
        &["--reduce", "3", "--split-size", "64KiB", &input],
        "wc",
        2,
        &[],
    );
    assert_same_lines(&got, &want);
}

#[test]
fn indexer_over_the_books_matches_mrsequential() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("indexer", &inputs);
    let mut args = vec!["--reduce", "3"];
    args.extend(inputs.iter().map(String::as_str));
    let got = run_job(&dir, &args, "indexer", 2, &[]);
    assert_same_lines(&got, &want);
    assert_eq!(dir.out_files(), ["mr-out-0", "mr-out-1", "mr-out-2"]);
}

#[test]
fn books_cut_into_64kib_splits_match_mrsequential() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let mut args = vec!["--split-size", "64KiB"];
    args.extend(inputs.iter().map(String::as_str));
    let got = run_job(&dir, &args, "wc", 2, &[]);
    assert_same_lines(&got, &want);
    // Every map task X wrote mr-X.data: M is the number of 64 KiB splits, not of books.
    let expected_maps: u64 = books()
        .iter()
        .map(|b| std::fs::metadata(b).unwrap().len().div_ceil(64 << 10))
        .sum();
    assert!(expected_maps > 8);
    assert_eq!(dir.map_outputs().len() as u64, expected_maps);
}

#[test]
fn tiny_splits_of_crlf_text_without_final_newline_count_each_line_once() {
    let dir = Dir::new();
    let crlf: &[u8] = b"alpha beta\r\ngamma alpha\r\n\r\na_line_much_longer_than_one_split_of_seven_bytes alpha\r\n\r\n\r\nx\r\nno final newline alpha";
    let lf: &[u8] =
        b"one\ntwo two\n\n\nthree three three\nstraddling straddling straddling straddling\nlast";
    let inputs = vec![dir.write("crlf.txt", crlf), dir.write("lf.txt", lf)];
    let want = dir.expected("wc", &inputs);
    let mut both = crlf.to_vec();
    both.push(b'\n');
    both.extend_from_slice(lf);
    assert_same_lines(&want, &ascii_word_counts(&both));
    assert!(want.contains(&"alpha 4".to_string()), "{want:?}");

    let mut args = vec!["--split-size", "7", "--reduce", "3"];
    args.extend(inputs.iter().map(String::as_str));
    let got = run_job(&dir, &args, "wc", 2, &[]);
    assert_same_lines(&got, &want);
    let expected_maps = crlf.len().div_ceil(7) + lf.len().div_ceil(7);
    assert_eq!(dir.map_outputs().len(), expected_maps);
}

#[test]
fn empty_input_and_invalid_utf8_are_handled_like_mrsequential() {
    let dir = Dir::new();
    // 0xFF and a cut-off 3-byte sequence are invalid UTF-8; each decodes to U+FFFD, which
    // is not a letter, so the words around it are separate.
    let bad: &[u8] = b"hello\xffworld caf\xc3\xa9 caf\xc3 na\xe2\x82ive \xc3\xa9t\xc3\xa9\nhello world\n\xfe\xfe\xfe\n";
    let inputs = vec![dir.write("empty.txt", b""), dir.write("bad.txt", bad)];
    let want = dir.expected("wc", &inputs);
    for line in [
        "hello 2", "world 2", "café 1", "caf 1", "na 1", "ive 1", "été 1",
    ] {
        assert!(want.contains(&line.to_string()), "{line:?} not in {want:?}");
    }
    assert_eq!(want.len(), 7, "{want:?}");
    let mut args = vec!["--split-size", "16"];
    args.extend(inputs.iter().map(String::as_str));
    let got = run_job(&dir, &args, "wc", 2, &[]);
    assert_same_lines(&got, &want);
}

#[test]
fn a_job_over_only_an_empty_file_writes_empty_outputs() {
    let dir = Dir::new();
    let inputs = [dir.write("empty.txt", b"")];
    assert_eq!(dir.expected("wc", &inputs), Vec::<String>::new());
    let got = run_job(&dir, &["--reduce", "4", "empty.txt"], "wc", 1, &[]);
    assert_eq!(got, Vec::<String>::new());
    assert_eq!(
        dir.out_files(),
        ["mr-out-0", "mr-out-1", "mr-out-2", "mr-out-3"]
    );
    for f in dir.out_files() {
        assert_eq!(std::fs::metadata(dir.join(&f)).unwrap().len(), 0, "{f}");
    }
}

#[test]
fn a_50_mb_value_goes_through() {
    let dir = Dir::new();
    let inputs = [dir.write("one.txt", b"anything\n")];
    let got = run_job(
        &dir,
        &["--reduce", "2", &inputs[0]],
        "faulty",
        1,
        &[("MR_FAULT", "big-value")],
    );
    assert_eq!(got, ["big 52428800"]);
}
