//! Total order: the sort app over gensort records with `--partition range`, checked by
//! `valsort` (order inside and across `mr-out-0..R-1`, the record count, and a checksum
//! of every record against the input's), balance read from the report, the journal's
//! split points across a coordinator restart, and the bad inputs.

use coordinator::journal::{Record, DEFAULT_PATH};
use mr::ids::TaskKind;
use mr_tests::*;
use std::time::Duration;

/// Writes `files` gensort files of `records` each (numbered on from one to the next)
/// with extra gensort `flags`; returns their names.
fn gensort(dir: &Dir, files: u64, records: u64, flags: &[&str]) -> Vec<String> {
    (0..files)
        .map(|i| {
            let name = format!("in-{i}.dat");
            let mut c = dir.command("gensort");
            c.arg("-a")
                .args(["-b", &(i * records).to_string()])
                .args(flags)
                .arg(records.to_string())
                .arg(&name);
            let (e, err) = dir.run("gensort", c, Duration::from_secs(60));
            assert_eq!(e, Exit::Code(0), "gensort failed:\n{err}");
            name
        })
        .collect()
}

/// Runs valsort over `out/mr-out-0..r` in partition order against `inputs`; returns its
/// exit and output.
fn valsort(dir: &Dir, inputs: &[String], r: u32) -> (Exit, String) {
    let mut c = dir.command("valsort");
    for i in inputs {
        c.args(["--input", i]);
    }
    c.args((0..r).map(|y| format!("out/mr-out-{y}")));
    let mut p = dir.spawn("valsort", c);
    let e = p.wait(Duration::from_secs(60));
    (e, format!("{}{}", p.stdout(), p.stderr()))
}

/// Sorts `inputs` with a coordinator (range partitioning, R = `r`, `extra` flags) and
/// two workers; returns the report.
fn sort_job(dir: &Dir, inputs: &[String], r: u32, extra: &[&str]) -> serde_json::Value {
    let r = r.to_string();
    let mut args = vec!["--partition", "range", "-r", &r, "--output", "out"];
    args.extend(["--report", "report.json"]);
    args.extend(extra);
    args.extend(inputs.iter().map(String::as_str));
    std::fs::create_dir_all(dir.join("out")).expect("mkdir out");
    let mut c = dir.coordinator(&args);
    let mut workers: Vec<Proc> = (0..2).map(|_| dir.worker("sort", &[])).collect();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(10), Exit::Code(0));
    }
    dir.report()
}

fn largest_over_mean(report: &serde_json::Value) -> f64 {
    report["partitioning"]["largest_over_mean"]
        .as_f64()
        .expect("largest_over_mean once every reduce is done")
}

#[test]
fn a_range_partitioned_sort_is_one_sorted_whole_and_balanced() {
    let dir = Dir::new();
    // 4 files of 1.5 MB, cut into 1 MiB splits: 8 maps.
    let inputs = gensort(&dir, 4, 15_000, &[]);
    let report = sort_job(&dir, &inputs, 5, &["--split-size", "1MiB"]);
    let (e, out) = valsort(&dir, &inputs, 5);
    assert_eq!(e, Exit::Code(0), "{out}");
    assert!(out.contains("Records: 60000"), "{out}");
    let part = &report["partitioning"];
    assert_eq!(part["mode"], "range");
    assert_eq!(part["split_points"], 4);
    assert_eq!(part["heavy_keys"].as_array().map(Vec::len), Some(0));
    let ratio = largest_over_mean(&report);
    assert!(ratio <= 1.2, "largest partition {ratio:.3}x the mean");
    // Sampling runs before the maps and is reported as its own phase.
    assert_eq!(part["sample"]["tasks_done"], part["sample"]["tasks"]);
    assert_eq!(report["map"]["tasks_done"], 8);
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}

#[test]
fn skewed_keys_stay_within_the_balance_target() {
    let dir = Dir::new();
    let inputs = gensort(&dir, 2, 40_000, &["--skew"]);
    let report = sort_job(&dir, &inputs, 8, &[]);
    let (e, out) = valsort(&dir, &inputs, 8);
    assert_eq!(e, Exit::Code(0), "{out}");
    let ratio = largest_over_mean(&report);
    assert!(ratio <= 1.5, "largest partition {ratio:.3}x the mean");
}

#[test]
fn a_key_heavier_than_a_partition_is_reported_and_still_sorted() {
    let dir = Dir::new();
    // 20 distinct keys, Zipf-weighted: the heaviest holds about a quarter of the records.
    let inputs = gensort(&dir, 2, 20_000, &["--skew", "--distinct", "20"]);
    let report = sort_job(&dir, &inputs, 8, &[]);
    let (e, out) = valsort(&dir, &inputs, 8);
    assert_eq!(e, Exit::Code(0), "{out}");
    let heavy = report["partitioning"]["heavy_keys"]
        .as_array()
        .expect("heavy keys");
    assert!(!heavy.is_empty(), "{report}");
    assert!(heavy[0]["share"].as_f64().unwrap() > 1.0 / 8.0);
}

#[test]
fn partitions_far_larger_than_the_workers_memory_spill_and_merge() {
    let dir = Dir::new();
    // 6 MB of records, a 256 KiB map buffer (about 24 spilled runs per map) and reduces
    // that merge 2 files at a time (merge passes over the 6 map outputs).
    let inputs = gensort(&dir, 2, 30_000, &[]);
    let r = "2";
    let mut args = vec!["--partition", "range", "-r", r, "--output", "out"];
    args.extend(["--split-size", "1MiB"]);
    args.extend(inputs.iter().map(String::as_str));
    std::fs::create_dir_all(dir.join("out")).expect("mkdir out");
    let mut c = dir.coordinator(&args);
    let small = ["--map-memory", "256KiB", "--merge-fan-in", "2"];
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| dir.spawn("worker", dir.worker_command("sort", &small)))
        .collect();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(10), Exit::Code(0));
    }
    let (e, out) = valsort(&dir, &inputs, 2);
    assert_eq!(e, Exit::Code(0), "{out}");
    assert!(out.contains("Records: 60000"), "{out}");
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}

#[test]
fn fewer_distinct_keys_than_partitions_leave_the_last_outputs_empty() {
    let dir = Dir::new();
    let inputs = gensort(&dir, 1, 5_000, &["--distinct", "3"]);
    let report = sort_job(&dir, &inputs, 8, &[]);
    let (e, out) = valsort(&dir, &inputs, 8);
    assert_eq!(e, Exit::Code(0), "{out}");
    assert_eq!(report["partitioning"]["split_points"], 2);
    for y in 3..8 {
        let len = std::fs::metadata(dir.join(&format!("out/mr-out-{y}")))
            .expect("every mr-out file is written")
            .len();
        assert_eq!(len, 0, "mr-out-{y}");
    }
}

/// The journal's split points records.
fn split_point_records(dir: &Dir) -> usize {
    let text = std::fs::read_to_string(dir.join(DEFAULT_PATH)).unwrap_or_default();
    text.lines()
        .filter(|l| {
            matches!(
                serde_json::from_str::<Record>(l),
                Ok(Record::SplitPoints { .. })
            )
        })
        .count()
}

fn maps_done(dir: &Dir) -> usize {
    let text = std::fs::read_to_string(dir.join(DEFAULT_PATH)).unwrap_or_default();
    text.lines()
        .filter(|l| {
            matches!(serde_json::from_str::<Record>(l),
                Ok(Record::Done { task, .. }) if task.kind == TaskKind::Map)
        })
        .count()
}

#[test]
fn a_restarted_coordinator_partitions_by_the_journaled_split_points() {
    let dir = Dir::new();
    let inputs = gensort(&dir, 6, 5_000, &[]);
    std::fs::create_dir_all(dir.join("out")).expect("mkdir out");
    let mut args = vec!["--partition", "range", "-r", "4", "--output", "out"];
    args.extend(inputs.iter().map(String::as_str));
    let mut first = dir.coordinator(&args);
    // The last map is held (its first attempt and a backup), so that the kill lands in
    // the map phase.
    let hold = dir.join("hold");
    std::fs::create_dir(&hold).unwrap();
    for attempt in [1, 2] {
        std::fs::write(hold.join(format!("map-5.{attempt}")), b"").unwrap();
    }
    let hold_arg = hold.to_string_lossy().into_owned();
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| {
            dir.spawn(
                "worker",
                dir.worker_command("sort", &["--hold-dir", &hold_arg]),
            )
        })
        .collect();
    wait_until(
        JOB_TIMEOUT,
        "the split points and a map in the journal",
        || split_point_records(&dir) == 1 && maps_done(&dir) >= 1,
    );
    first.kill();
    release_holds(&hold);
    let mut again = vec!["--report", "report.json"];
    again.extend(&args);
    let mut second = dir.coordinator(&again);
    second.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(20), Exit::Code(0));
    }
    // Not sampled again: one set of split points, and no sample task ran after the
    // restart.
    assert_eq!(split_point_records(&dir), 1);
    let report = dir.report();
    assert_eq!(
        report["partitioning"]["sample"]["wall_secs"], 0.0,
        "sampled again: {report}"
    );
    assert_eq!(report["partitioning"]["split_points"], 3);
    let (e, out) = valsort(&dir, &inputs, 4);
    assert_eq!(e, Exit::Code(0), "{out}");
}

#[test]
fn a_line_shorter_than_a_key_fails_the_job_with_one_clear_line() {
    let dir = Dir::new();
    let mut inputs = gensort(&dir, 1, 1_000, &[]);
    dir.write("short.dat", b"short\r\n");
    inputs.push("short.dat".into());
    let mut args = vec!["--partition", "range", "-r", "2", "--output", "out"];
    args.extend(inputs.iter().map(String::as_str));
    std::fs::create_dir_all(dir.join("out")).expect("mkdir out");
    let mut c = dir.coordinator(&args);
    let _w = dir.worker("sort", &[]);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(1));
    let err = c.stderr();
    let last = err.lines().last().unwrap_or_default();
    for needle in [
        "job failed",
        "short.dat",
        "not a record with a 10-byte ASCII key",
    ] {
        assert!(last.contains(needle), "last line {last:?} lacks {needle:?}");
    }
    let outputs = std::fs::read_dir(dir.join("out")).expect("out").count();
    assert_eq!(outputs, 0, "no output of a failed job");
}

#[test]
fn an_empty_input_sorts_to_empty_outputs() {
    let dir = Dir::new();
    dir.write("empty.dat", b"");
    let inputs = vec!["empty.dat".to_string()];
    let report = sort_job(&dir, &inputs, 3, &[]);
    assert_eq!(report["partitioning"]["split_points"], 0);
    let (e, out) = valsort(&dir, &inputs, 3);
    assert_eq!(e, Exit::Code(0), "{out}");
    assert!(out.contains("Records: 0"), "{out}");
}

#[test]
fn mr_run_sorts_in_one_process() {
    let dir = Dir::new();
    let inputs = gensort(&dir, 3, 4_000, &[]);
    let mut c = dir.command("mr");
    c.args(["run", "--app"])
        .arg(app("sort"))
        .args(["--partition", "range", "-r", "3", "-w", "2", "-o", "out"])
        .args(&inputs);
    let (e, err) = dir.run("mr", c, JOB_TIMEOUT);
    assert_eq!(e, Exit::Code(0), "{err}");
    let (e, out) = valsort(&dir, &inputs, 3);
    assert_eq!(e, Exit::Code(0), "{out}");
}

#[test]
fn a_bad_partition_flag_is_one_clear_line() {
    let dir = Dir::new();
    dir.write("in.txt", b"x\n");
    let (e, err) = dir.run(
        "coordinator",
        {
            let mut c = dir.command("coordinator");
            c.args(["--partition", "ranged", "in.txt"]);
            c
        },
        Duration::from_secs(10),
    );
    assert_eq!(e, Exit::Code(2));
    assert!(err.contains("use `hash` (the default) or `range`"), "{err}");
}
