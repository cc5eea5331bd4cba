//! Inputs of awkward shapes, end to end: map output spilled to disk and merged,
//! a single 100 MB line, and 5,000 tiny files. Each must give mrsequential's output.

use mr_tests::{assert_same_lines, Dir, Exit};
use std::time::Duration;

/// Runs `app` over `inputs` with two workers started with `worker_args`, and checks the
/// output against mrsequential's and that nothing temporary is left.
fn run_and_compare(
    d: &Dir,
    app: &str,
    inputs: &[String],
    coord_args: &[&str],
    worker_args: &[&str],
) {
    let want = d.expected(app, inputs);
    let mut args: Vec<&str> = coord_args.to_vec();
    args.extend(inputs.iter().map(String::as_str));
    let mut c = d.coordinator(&args);
    let mut workers: Vec<_> = (0..2)
        .map(|_| d.spawn("worker", d.worker_command(app, worker_args)))
        .collect();
    c.assert_exit(Duration::from_secs(180), Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(20), Exit::Code(0));
    }
    assert_same_lines(&d.output_lines(), &want);
    assert!(
        d.temp_leftovers().is_empty(),
        "temp files left: {:?}",
        d.temp_leftovers()
    );
}

#[test]
fn map_output_over_the_memory_budget_spills_and_merges() {
    let d = Dir::new();
    let inputs = d.copy_books();
    // 64 KiB of buffer per map task forces many sorted runs per task, for an app with a
    // combiner (wc) and one without (the slow fixture, with no delay set).
    run_and_compare(
        &d,
        "wc",
        &inputs,
        &["--split-size", "256KiB"],
        &["--map-memory", "64KiB"],
    );
    for f in d.out_files() {
        std::fs::remove_file(d.join(&f)).unwrap();
    }
    run_and_compare(&d, "testlib_slow", &inputs, &[], &["--map-memory", "64KiB"]);
}

#[test]
fn a_single_100_mb_line() {
    let d = Dir::new();
    let words = ["alpha ", "beta ", "gamma ", "delta ", "épsilon ", "zeta "];
    let mut line = String::with_capacity(100 << 20);
    let mut i = 0;
    while line.len() < 100 << 20 {
        line.push_str(words[i % words.len()]);
        i += 1;
    }
    let input = d.write("one-line.txt", line);
    run_and_compare(&d, "wc", &[input], &["--split-size", "16MiB"], &[]);
    let out = d.output_lines();
    assert_eq!(out.len(), words.len(), "{out:?}");
}

#[test]
fn five_thousand_tiny_files() {
    let d = Dir::new();
    let inputs: Vec<String> = (0..5000)
        .map(|i| {
            d.write(
                &format!("in/f{i:04}.txt"),
                format!("word{} common\n", i % 7),
            )
        })
        .collect();
    run_and_compare(&d, "wc", &inputs, &["--reduce", "3"], &[]);
}
