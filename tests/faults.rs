//! Faults during a job: apps that panic, intermediate files lost or corrupted between
//! the map and reduce phases, and a frozen worker whose late report must be refused.

use coordinator::journal::Record;
use mr_tests::*;
use std::fs;
use std::time::Duration;

/// A job of the faulty app in mode `fault` over the books with 2 workers must fail:
/// coordinator exit 1 with one `job failed` line naming the task and the panic, workers
/// told the job failed, no output.
fn app_panic_fails_the_job(fault: &str, task_prefix: &str, message: &str) {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let args: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut c = dir.coordinator(&args);
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| dir.worker("faulty", &[("MR_FAULT", fault)]))
        .collect();
    c.assert_exit(JOB_TIMEOUT, Exit::Code(1));
    let err = c.stderr();
    // One line gives the verdict with the task and the app's message (the report above
    // it may mention the failure too, but not all of it on one line).
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("job failed") && l.contains(task_prefix) && l.contains(message))
        .collect();
    assert_eq!(failed.len(), 1, "stderr:\n{err}");
    let line = failed[0];
    assert!(line.starts_with("coordinator: job failed: "), "{line:?}");
    assert!(line.contains("failed 4 times"), "{line:?}");
    // The last line is the verdict.
    assert_eq!(err.lines().last(), Some(line), "stderr:\n{err}");
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(5), Exit::Code(1));
        assert_told(w, "Failed");
        let werr = w.stderr();
        assert!(
            werr.lines()
                .last()
                .is_some_and(|l| l.contains("the job failed")),
            "{}: stderr:\n{}",
            w.name(),
            tail(&werr, 20)
        );
    }
    assert_eq!(dir.out_files(), Vec::<String>::new());
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}

#[test]
fn a_map_that_panics_fails_the_job_after_four_attempts() {
    app_panic_fails_the_job("panic-map", "map-", "map panics on purpose");
}

#[test]
fn a_reduce_that_panics_fails_the_job_after_four_attempts() {
    app_panic_fails_the_job("panic-reduce", "reduce-", "reduce panics on purpose");
}

/// With one worker, reduces run in order 0..R-1 and the first reduce call sleeps, so
/// right after the map phase the map outputs can be damaged (two whole files, and the
/// last partition's range of two others) before the reduces that read them start.
/// Each damaged output must be reported by the first reduce that reads it, the
/// coordinator must re-run the maps that wrote them, and the output must be right.
#[test]
fn lost_and_corrupt_intermediate_files_make_their_maps_run_again() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let (want, counters) = dir.expected_counted("testlib_slow", &inputs);
    let mut args = vec!["--report", "report.json"];
    args.extend(inputs.iter().map(String::as_str));
    let mut c = dir.coordinator(&args);
    let mut w = dir.worker("testlib_slow", &[("MR_SLOW_FIRST_REDUCE_MS", "2000")]);
    let (m, r) = (8u32, 10u32);
    wait_until(Duration::from_secs(30), "the map phase", || {
        dir.map_outputs() == (0..m).collect::<Vec<_>>()
    });
    let last = r - 1;
    // Each map wrote one packed file; partition `last` is a byte range of it.
    let name = |x: u32| dir.join(&mr::task::packed_name(x));
    let range = |x: u32| {
        let f = fs::File::open(name(x)).unwrap();
        let (at, len) = mr::packed::locate(&f, last).unwrap();
        (at as usize, len as usize)
    };
    // Damaged copies replace the files by rename, as a new inode: a reduce of another
    // partition that already has a file open goes on reading its intact range.
    let replace = |x: u32, bytes: &[u8]| {
        let tmp = dir.join("damaged.tmp");
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, name(x)).unwrap();
    };
    // Map 0's output: gone.
    fs::remove_file(name(0)).unwrap();
    // Map 1's partition: a key byte becomes invalid UTF-8 (the first key starts after
    // the 4-byte header and the 8-byte lengths).
    let (at, len) = range(1);
    assert!(len > 40, "partition {last} of map 1 is too small");
    let mut b = fs::read(name(1)).unwrap();
    b[at + 12] = 0xff;
    replace(1, &b);
    // Map 2's file: truncated, which cuts its index.
    let b = fs::read(name(2)).unwrap();
    replace(2, &b[..b.len() - 10]);
    // Map 3's partition: one bit flipped in the middle.
    let (at, len) = range(3);
    let mut b = fs::read(name(3)).unwrap();
    b[at + len / 2] ^= 0x01;
    replace(3, &b);

    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    assert_told(&w, "Succeeded");
    assert_same_lines(&dir.output_lines(), &want);
    // The journal records each damaged map's output as lost (a reopened map), once,
    // and nothing else.
    let mut reopened: Vec<u32> = dir
        .journal()
        .into_iter()
        .filter_map(|r| match r {
            Record::Reopened { task } => Some(task.index),
            _ => None,
        })
        .collect();
    reopened.sort_unstable();
    assert_eq!(reopened, [0, 1, 2, 3]);
    // Nothing else was lost or failed: the four reduce attempts that found them are the
    // only failures, none counted against a task but against its map.
    let r = dir.report();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(r["events"]["failed"], 4, "{r:#}");
    assert_eq!(r["events"]["reopened_maps"], 4, "{r:#}");
    assert_eq!(r["reduce"]["failures"], 0, "{r:#}");
    // The four maps ran twice; their counts count once (the first attempts' left with
    // their outputs).
    assert_eq!(r["counters"]["app"], counters, "{r:#}");
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}

/// A worker frozen (SIGSTOP) in the middle of a map misses its heartbeats and loses the
/// task; a second worker takes it over. When the first wakes up (SIGCONT), its first
/// heartbeat tells it to abandon the attempt taken back; if its report gets there first,
/// the coordinator refuses the late completion. Either way the job is still right and
/// everyone exits.
#[test]
fn a_late_report_from_a_frozen_worker_is_refused() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let (want, counters) = dir.expected_counted("testlib_slow", &inputs);
    let http = format!("127.0.0.1:{}", free_port());
    // No backups: w1's maps sleep 1 s, the backup rule's floor, so on a slow machine a
    // backup of one could start and its beaten attempt's refused report would be
    // counted with the one this test is about.
    let mut args = vec![
        "--task-timeout",
        "10",
        "--worker-timeout",
        "1",
        "--no-speculation",
        "--report",
        "report.json",
        "--http",
        &http,
    ];
    args.extend(inputs.iter().map(String::as_str));
    let mut c = dir.coordinator(&args);
    let slow = [("MR_SLOW_MAP_MS", "1000")];
    let mut w1 = {
        let mut cmd = dir.worker_command("testlib_slow", &["--coordinator-timeout", "5"]);
        cmd.envs(slow);
        dir.spawn("worker1", cmd)
    };
    let map0 = |s: &serde_json::Value| task_status(s, "map-0").cloned().unwrap_or_default();
    let wait = Duration::from_secs(10);
    wait_for_status(&http, wait, "map-0 running on w1", |s| {
        map0(s)["state"] == "running" && map0(s)["worker"] == "w1"
    });
    // w1 is now inside map 0's one-second sleep.
    w1.signal(libc::SIGSTOP);
    wait_for_status(&http, wait, "map-0 taken back from w1", |s| {
        map0(s)["reassignments"] == 1
    });
    let mut w2 = {
        let mut cmd = dir.worker_command("testlib_slow", &["--coordinator-timeout", "5"]);
        cmd.envs([("MR_SLOW_MAP_MS", "300")]);
        dir.spawn("worker2", cmd)
    };
    wait_for_status(&http, wait, "map-0 attempt 2 on w2", |s| {
        map0(s)["attempt"] == 2 && map0(s)["worker"] == "w2"
    });
    w1.signal(libc::SIGCONT);

    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in [&mut w1, &mut w2] {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
        assert_told(w, "Succeeded");
    }
    assert_same_lines(&dir.output_lines(), &want);
    // One attempt taken back (map 0's first): abandoned when told, or its late report
    // refused, whichever came first (the heartbeat and the task race on waking).
    let r = dir.report();
    assert_eq!(r["events"]["revoked"], 1, "{r:#}");
    assert_eq!(r["map"]["reassigned_tasks"], 1, "{r:#}");
    assert_eq!(r["map"]["failures"], 0, "{r:#}");
    let err = w1.stderr();
    let (refused, abandoned) = (
        err.contains("report refused"),
        err.contains("attempt abandoned"),
    );
    assert!(refused != abandoned, "worker1 stderr:\n{err}");
    assert_eq!(r["events"]["refused"], u64::from(refused), "{r:#}");
    // The revoked attempt's counts never count, even when its report came.
    assert_eq!(r["counters"]["app"], counters, "{r:#}");
    assert_eq!(r["counters"]["app"]["map calls"], 8, "{r:#}");
    // The timeline has it so: w1's attempt lost with w1 (and ending at its refused
    // report, if it sent one), the second attempt done on w2.
    let attempt = |n: u64| {
        r["timeline"]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["task"] == "map-0" && a["attempt"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no attempt {n} of map-0: {r:#}"))
    };
    let (first, second) = (attempt(1), attempt(2));
    assert_eq!(first["worker"], "w1", "{first}");
    assert_eq!(
        first["outcome"],
        if refused { "refused" } else { "lost" },
        "{first}"
    );
    assert_eq!(
        (&second["worker"], &second["outcome"]),
        (&"w2".into(), &"done".into()),
        "{second}"
    );
    assert_eq!(dir.temp_leftovers(), Vec::<String>::new());
}
