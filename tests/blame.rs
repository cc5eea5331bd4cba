//! A bad machine cannot fail a job: over TCP, each worker in its own work directory, a
//! worker whose disk is full or whose copy of the app fails is excluded and the job
//! finishes on the others; a task that fails everywhere fails the job after four
//! attempts on different workers; and when every worker is excluded the job fails at
//! once, naming them. Asserts on the JSON report, not on log wording.

use mr_tests::*;
use std::time::Duration;

/// The books cut into small splits, so there are enough maps (about 20) for a bad
/// worker to fail three of them.
const SPLITS: &[&str] = &["--split-size", "256KiB", "--reduce", "4"];

fn report(dir: &Dir) -> serde_json::Value {
    dir.report()
}

fn excluded(report: &serde_json::Value) -> Vec<(String, String)> {
    report["excluded_workers"]
        .as_array()
        .expect("excluded_workers")
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap_or_default().to_string(),
                w["last_error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// No temp file anywhere under `dir`.
#[track_caller]
fn assert_no_temp_files(dir: &std::path::Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(mr::atomic::TEMP_PREFIX),
                "temp file left: {}",
                e.path().display()
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// The coordinator's verdict: exactly one `coordinator: job failed` line, its last.
#[track_caller]
fn verdict(stderr: &str, needles: &[&str]) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("coordinator: job failed"))
        .collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", tail(stderr, 30));
    assert_eq!(
        stderr.lines().last(),
        Some(lines[0]),
        "the verdict comes last"
    );
    for n in needles {
        assert!(lines[0].contains(n), "{:?} lacks {n:?}", lines[0]);
    }
    lines[0].to_string()
}

fn coordinator(dir: &Dir, addr: &str, inputs: &[String]) -> Proc {
    coordinator_with(dir, addr, inputs, &[])
}

fn coordinator_with(dir: &Dir, addr: &str, inputs: &[String], more: &[&str]) -> Proc {
    let mut extra = SPLITS.to_vec();
    extra.extend(["--report", "report.json"]);
    extra.extend(more);
    dir.tcp_coordinator(addr, inputs, &extra)
}

/// Waits until the job's status at `http` lists a worker: the first one has registered.
fn wait_registered(http: &str) {
    wait_for_status(http, Duration::from_secs(10), "a worker to register", |s| {
        s["workers"].as_array().is_some_and(|w| !w.is_empty())
    });
}

#[test]
fn a_worker_with_a_full_disk_is_excluded_and_the_job_succeeds_on_the_other() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let full = Tmpfs::mount(&dir.join("full"), "1m");
    full.fill(0);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator_with(&dir, &addr, &inputs, &["--http", &http]);
    let mut bad = dir.tcp_worker(&addr, "full", "wc", &[], &[]);
    wait_registered(&http);
    // The healthy worker is slow to start each task, so the full one gets some.
    let mut good = dir.tcp_worker(&addr, "good", "wc", &["--task-delay", "0.1"], &[]);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in [&mut bad, &mut good] {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&sorted_outputs(&dir.join("out"), 4), &want);
    let r = report(&dir);
    let ex = excluded(&r);
    assert_eq!(ex.len(), 1, "{r:#}");
    assert!(ex[0].1.contains("No space left"), "{r:#}");
    assert_eq!(r["state"], "succeeded");
    // Machine faults do not count against the tasks.
    assert_eq!(r["map"]["failures"], 0, "{r:#}");
    assert_no_temp_files(&dir.join("full"));
    drop(full);
}

#[test]
fn when_every_workers_disk_is_full_the_job_fails_at_once_naming_them() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let disks: Vec<Tmpfs> = ["full1", "full2"]
        .iter()
        .map(|d| {
            let t = Tmpfs::mount(&dir.join(d), "1m");
            t.fill(0);
            t
        })
        .collect();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(&dir, &addr, &inputs);
    let mut ws: Vec<Proc> = ["full1", "full2"]
        .iter()
        .map(|d| dir.tcp_worker(&addr, d, "wc", &[], &[]))
        .collect();
    c.assert_exit(Duration::from_secs(20), Exit::Code(1));
    let line = verdict(&c.stderr(), &["every worker was excluded"]);
    assert!(line.contains("No space left"), "{line}");
    assert_eq!(line.matches(": cannot write output").count(), 2, "{line}");
    for w in &mut ws {
        w.assert_exit(Duration::from_secs(5), Exit::Code(1));
    }
    assert_eq!(excluded(&report(&dir)).len(), 2);
    for d in ["full1", "full2"] {
        assert_no_temp_files(&dir.join(d));
    }
    drop(disks);
}

#[test]
fn a_worker_whose_app_fails_on_every_task_is_excluded() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("faulty", &inputs);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator_with(&dir, &addr, &inputs, &["--http", &http]);
    let mut bad = dir.tcp_worker(&addr, "bad", "faulty", &[], &[("MR_FAULT", "panic-map")]);
    wait_registered(&http);
    let mut good = dir.tcp_worker(&addr, "good", "faulty", &["--task-delay", "0.1"], &[]);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in [&mut bad, &mut good] {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&sorted_outputs(&dir.join("out"), 4), &want);
    let r = report(&dir);
    let ex = excluded(&r);
    assert_eq!(ex.len(), 1, "{r:#}");
    assert!(ex[0].1.contains("map panics on purpose"), "{r:#}");
}

#[test]
fn a_record_that_fails_the_app_fails_the_job_on_four_attempts_on_both_workers() {
    let dir = Dir::new();
    let mut inputs = dir.copy_books();
    inputs.push(dir.write(
        "in/poison.txt",
        "a record that is mr-poison-record to the app\n",
    ));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(&dir, &addr, &inputs);
    let fault = [("MR_FAULT", "panic-record")];
    let mut ws: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|d| dir.tcp_worker(&addr, d, "faulty", &[], &fault))
        .collect();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(1));
    let line = verdict(&c.stderr(), &["poison.txt"]);
    assert!(line.contains("failed 4 times"), "{line}");
    assert!(
        line.contains("map panics on the record 'mr-poison-record'"),
        "{line}"
    );
    for w in &mut ws {
        w.assert_exit(Duration::from_secs(5), Exit::Code(1));
        let tries = w
            .stderr()
            .lines()
            .filter(|l| l.contains("task failed") && l.contains("mr-poison-record"))
            .count();
        assert!(
            tries >= 1,
            "each worker tried it:\n{}",
            tail(&w.stderr(), 20)
        );
    }
    let r = report(&dir);
    assert_eq!(
        excluded(&r),
        Vec::new(),
        "the task is blamed, not the workers"
    );
    assert_eq!(r["map"]["failures"], 4, "{r:#}");
}

#[test]
fn in_shared_directory_mode_a_full_disk_fails_the_job_after_the_retries_leaving_no_temp_file() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    // One machine, one directory for every worker's map output: its full disk is
    // everyone's, so it counts against the task.
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let full = Tmpfs::mount(&dir.join("shared"), "1m");
    full.fill(0);
    let mut args = vec!["--report", "report.json", "--reduce", "2"];
    args.extend(inputs.iter().map(String::as_str));
    let mut c = dir.coordinator(&args);
    let mut ws: Vec<Proc> = (0..2)
        .map(|_| {
            let cmd = dir.worker_command("wc", &["--work-dir", "shared"]);
            dir.spawn("worker", cmd)
        })
        .collect();
    c.assert_exit(Duration::from_secs(30), Exit::Code(1));
    // Whichever comes first, a task's fourth failure or every worker excluded (each
    // failed three tasks on that disk), the one line names the full disk.
    let line = verdict(&c.stderr(), &["No space left"]);
    assert!(
        line.contains("failed 4 times") || line.contains("every worker was excluded"),
        "{line}"
    );
    for w in &mut ws {
        w.assert_exit(Duration::from_secs(5), Exit::Code(1));
    }
    let r = report(&dir);
    assert_eq!(r["state"], "failed", "{r:#}");
    assert!(excluded(&r).len() <= 2, "{r:#}");
    assert_no_temp_files(&dir.join("shared"));
    assert_no_temp_files(dir.path());
    drop(full);
}
