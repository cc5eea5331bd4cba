//! Jobs bigger than the open-file limit: under `ulimit -n 1024` (soft and hard), a job of
//! thousands of maps succeeds, because a reduce merges its inputs in passes of a bounded
//! fan-in rather than opening every `mr-X-Y` at once.

use mr_tests::*;
use std::process::Command;
use std::time::Duration;

/// Small input files: every one a map task.
fn many_inputs(dir: &Dir, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let words: String = (0..40)
                .map(|j| format!("w{} ", (i * 7 + j * 13) % 997))
                .collect();
            dir.write(&format!("in/f{i:05}.txt"), format!("{words}\nfile{i}\n"))
        })
        .collect()
}

fn limited(mut c: Command) -> Command {
    limit_open_files(&mut c, 1024);
    c
}

#[test]
fn a_job_of_more_maps_than_open_files_succeeds_under_ulimit_1024() {
    let dir = Dir::new();
    let inputs = many_inputs(&dir, 2500);
    let want = dir.expected("wc", &inputs);
    let mut c = dir.command("coordinator");
    c.arg("--addr")
        .arg(dir.addr())
        .args(["--no-journal", "--reduce", "3"])
        .args(&inputs);
    let mut c = dir.spawn("coordinator", limited(c));
    let mut ws: Vec<Proc> = (0..2)
        .map(|_| dir.spawn("worker", limited(dir.worker_command("wc", &[]))))
        .collect();
    c.assert_exit(Duration::from_secs(120), Exit::Code(0));
    for w in &mut ws {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&dir.output_lines(), &want);
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}
