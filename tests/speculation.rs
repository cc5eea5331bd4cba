//! Backup tasks end to end: two live attempts of one task, ordered by holding each
//! attempt on its worker (the `--hold-dir` test hook) until the test releases it. The
//! first attempt to finish wins; the other's worker is told to stop it; the output is
//! the reference's, with one committed copy of each task's output.

use mr_tests::*;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Three small inputs (three maps) and their job's directory, with `hold/` made.
fn job_dir() -> (Dir, Vec<String>, PathBuf) {
    let dir = Dir::new();
    let inputs: Vec<String> = (0..3)
        .map(|i| dir.write(&format!("in-{i}.txt"), format!("a b c {i}\nb c {i} {i}\n")))
        .collect();
    let hold = dir.join("hold");
    fs::create_dir_all(&hold).unwrap();
    (dir, inputs, hold)
}

/// Holds attempt `attempt` of `task` on whichever worker gets it.
fn hold(dir: &std::path::Path, task: &str, attempt: u32) {
    fs::write(dir.join(format!("{task}.{attempt}")), b"").unwrap();
}

fn release(dir: &std::path::Path, task: &str, attempt: u32) {
    fs::remove_file(dir.join(format!("{task}.{attempt}"))).unwrap();
}

fn wait_held(dir: &std::path::Path, task: &str, attempt: u32) {
    let marker = dir.join(format!("{task}.{attempt}.held"));
    wait_until(
        JOB_TIMEOUT,
        &format!("{task} attempt {attempt} to be held"),
        || marker.exists(),
    );
}

/// Runs the wc job over `inputs` with two workers holding as `hold/` says; `between`
/// runs once both are up. Returns the report.
fn run(
    dir: &Dir,
    inputs: &[String],
    hold_dir: &std::path::Path,
    extra: &[&str],
    between: impl FnOnce(),
) -> serde_json::Value {
    let mut args = vec!["--reduce", "1", "--report", "report.json"];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(String::as_str));
    let mut c = dir.coordinator(&args);
    let hold_arg = hold_dir.to_string_lossy().into_owned();
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| {
            dir.spawn(
                "worker",
                dir.worker_command("wc", &["--hold-dir", &hold_arg]),
            )
        })
        .collect();
    between();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(10), Exit::Code(0));
    }
    assert_same_lines(&dir.output_lines(), &dir.expected("wc", inputs));
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
    dir.report()
}

#[test]
fn a_backup_beats_a_held_original_which_is_told_to_stop() {
    let (dir, inputs, hold_dir) = job_dir();
    hold(&hold_dir, "map-0", 1);
    let report = run(&dir, &inputs, &hold_dir, &[], || {
        wait_held(&hold_dir, "map-0", 1)
    });
    let sp = &report["speculation"];
    assert_eq!(sp["enabled"], true);
    assert_eq!(
        (
            sp["started"].as_u64(),
            sp["won"].as_u64(),
            sp["wasted"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(report["events"]["beaten"], 1);
    // The original was abandoned, not finished: nothing late was reported.
    assert_eq!(report["events"]["refused"], 0);
    // The file is still there: only being told to stop let the original go.
    assert!(hold_dir.join("map-0.1").exists());
}

#[test]
fn an_original_that_finishes_first_beats_its_held_backup() {
    let (dir, inputs, hold_dir) = job_dir();
    hold(&hold_dir, "map-0", 1);
    hold(&hold_dir, "map-0", 2);
    let report = run(&dir, &inputs, &hold_dir, &[], || {
        wait_held(&hold_dir, "map-0", 2);
        release(&hold_dir, "map-0", 1);
    });
    let sp = &report["speculation"];
    assert_eq!(
        (
            sp["started"].as_u64(),
            sp["won"].as_u64(),
            sp["wasted"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(report["events"]["beaten"], 1);
    assert_eq!(report["map"]["tasks_done"], 3);
}

#[test]
fn when_both_attempts_finish_at_once_one_output_counts() {
    let (dir, inputs, hold_dir) = job_dir();
    hold(&hold_dir, "map-0", 1);
    hold(&hold_dir, "map-0", 2);
    let report = run(&dir, &inputs, &hold_dir, &[], || {
        wait_held(&hold_dir, "map-0", 2);
        release(&hold_dir, "map-0", 1);
        release(&hold_dir, "map-0", 2);
    });
    let sp = &report["speculation"];
    assert_eq!(sp["started"], 1);
    let (won, wasted) = (sp["won"].as_u64().unwrap(), sp["wasted"].as_u64().unwrap());
    assert_eq!(won + wasted, 1, "one of the two counted: {sp}");
    // The loser was either told to stop in time or reported late and was refused.
    assert_eq!(report["events"]["beaten"], 1);
    assert_eq!(
        report["events"]["completed"], 4,
        "3 maps and 1 reduce, each once"
    );
}

#[test]
fn without_speculation_no_backup_starts() {
    let (dir, inputs, hold_dir) = job_dir();
    let report = run(&dir, &inputs, &hold_dir, &["--no-speculation"], || {});
    assert_eq!(report["speculation"]["enabled"], false);
    assert_eq!(report["speculation"]["started"], 0);
}

/// Cluster mode: workers share nothing; a held reduce is backed up on the other worker,
/// whose output the coordinator stores; the held original is told to stop.
#[test]
fn a_reduce_is_backed_up_in_cluster_mode() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let hold_dir = dir.join("hold");
    fs::create_dir_all(&hold_dir).unwrap();
    hold(&hold_dir, "reduce-0", 1);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut extra = vec!["--reduce", "2", "--report", "report.json"];
    extra.push("--split-size");
    extra.push("64MiB");
    let mut c = dir.tcp_coordinator(&addr, &inputs, &extra);
    let hold_arg = hold_dir.to_string_lossy().into_owned();
    let mut workers: Vec<Proc> = ["a", "b"]
        .iter()
        .map(|w| dir.tcp_worker(&addr, w, "wc", &["--hold-dir", &hold_arg], &[]))
        .collect();
    wait_held(&hold_dir, "reduce-0", 1);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(10), Exit::Code(0));
    }
    assert_same_lines(
        &sorted_outputs(&dir.join("out"), 2),
        &dir.expected("wc", &inputs),
    );
    let report = dir.report();
    let sp = &report["speculation"];
    assert_eq!(
        (sp["started"].as_u64(), sp["won"].as_u64()),
        (Some(1), Some(1)),
        "{sp}"
    );
    assert_eq!(report["events"]["beaten"], 1);
}
