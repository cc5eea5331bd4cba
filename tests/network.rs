//! Network mode on one machine: coordinator and workers over TCP, each worker in its own
//! work directory, sharing nothing but loopback. Map output stays with its worker and is
//! fetched by reducers; splits stream from the coordinator; outputs come back to it.
//! (tests/cluster/run.sh does the same across network namespaces, with isolated disks.)

use mr_tests::*;
use std::path::Path;
use std::time::Duration;

/// A TCP coordinator with the test token, writing into `out/`.
fn coordinator(dir: &Dir, addr: &str, inputs: &[String], extra: &[&str]) -> Proc {
    dir.tcp_coordinator(addr, inputs, extra)
}

/// A wc worker in its own directory `work` (created if needed).
fn worker(dir: &Dir, addr: &str, work: &str, extra: &[&str]) -> Proc {
    dir.tcp_worker(addr, work, "wc", extra, &[])
}

fn sorted_output(out: &Path) -> Vec<String> {
    sorted_outputs(out, 10)
}

#[track_caller]
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("read work dir")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{} still holds {left:?}", dir.display());
}

/// Starts workers in w1, w2 and w3 and lets the job end; checks that everyone exits 0,
/// the output equals `want`, and every work directory is left empty. Returns the workers.
/// `registered` workers have already joined (through the status page at `http`).
fn run_to_the_end(
    dir: &Dir,
    addr: &str,
    http: &str,
    registered: usize,
    c: &mut Proc,
    want: &[String],
) -> Vec<Proc> {
    let gate = Gate::new(dir, "gate", Gate::every_task());
    let mut ws: Vec<Proc> = WORK_DIRS
        .iter()
        .map(|w| worker(dir, addr, w, &gate.args()))
        .collect();
    gate.open_when_registered(http, registered + WORK_DIRS.len());
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in &mut ws {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&sorted_output(&dir.join("out")), want);
    for w in WORK_DIRS {
        assert_empty(&dir.join(w));
    }
    ws
}

/// Holds the workers given it before the attempts it names, until every worker has
/// joined. Without it the first worker to start can finish the 18 small tasks before
/// the last has connected, on a loaded machine, and the coordinator is gone by then:
/// that worker exits 1, unable to reach it, as it should.
struct Gate(std::path::PathBuf);

impl Gate {
    /// A gate in `dir/name` holding attempts 1 to 4 of each of `tasks`.
    fn new(dir: &Dir, name: &str, tasks: Vec<String>) -> Gate {
        let path = dir.join(name);
        std::fs::create_dir(&path).unwrap();
        for t in tasks {
            for a in 1..=4 {
                std::fs::write(path.join(format!("{t}.{a}")), b"").unwrap();
            }
        }
        Gate(path)
    }

    /// Every task of the books job: 8 maps, 10 reduces.
    fn every_task() -> Vec<String> {
        let maps = (0..8).map(|x| format!("map-{x}"));
        maps.chain(Gate::reduces()).collect()
    }

    fn reduces() -> impl Iterator<Item = String> {
        (0..10).map(|y| format!("reduce-{y}"))
    }

    /// The worker flags that pass through this gate.
    fn args(&self) -> [&str; 2] {
        [
            "--hold-dir",
            self.0.to_str().expect("a UTF-8 test directory"),
        ]
    }

    /// Opens the gate once `n` workers have registered with the coordinator at `http`.
    fn open_when_registered(self, http: &str, n: usize) {
        wait_for_status(http, Duration::from_secs(30), "the workers to join", |s| {
            s["counts"]["workers"].as_u64() >= Some(n as u64)
        });
        release_holds(&self.0);
    }
}

const WORK_DIRS: [&str; 3] = ["w1", "w2", "w3"];

/// Starts a worker in w1 that holds the first attempt of every reduce (the test hook:
/// it waits while a file named for the attempt exists in the returned directory), and
/// waits until it has done all 8 maps.
fn one_worker_does_every_map(dir: &Dir, addr: &str, http: &str) -> (Proc, std::path::PathBuf) {
    let hold = dir.join("hold");
    std::fs::create_dir(&hold).unwrap();
    for y in 0..10 {
        std::fs::write(hold.join(format!("reduce-{y}.1")), b"").unwrap();
    }
    let hold_arg = hold.to_string_lossy().into_owned();
    let w1 = worker(dir, addr, "w1", &["--hold-dir", &hold_arg]);
    wait_for_status(
        http,
        Duration::from_secs(30),
        "all 8 maps to complete",
        |s| s["counts"]["maps_done"] == 8,
    );
    (w1, hold)
}

#[test]
fn workers_in_separate_directories_share_nothing_and_clean_up() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(
        &dir,
        &addr,
        &inputs,
        &["--report", "report.json", "--http", &http],
    );
    let ws = run_to_the_end(&dir, &addr, &http, 0, &mut c, &want);
    // Every output was sent back to the coordinator, once each (out/ holds exactly the
    // ten, checked above), and nothing was written beside the inputs.
    let r = dir.report();
    assert_eq!(r["reduce"]["tasks_done"], 10, "{r:#}");
    assert_eq!(r["events"]["refused"], 0, "{r:#}");
    assert!(dir.any_intermediates().is_empty() && dir.temp_leftovers().is_empty());
    for p in std::iter::once(&c).chain(&ws) {
        assert!(!p.stderr().contains(TOKEN), "the token leaked into a log");
    }
}

#[test]
fn a_killed_workers_map_output_is_made_again() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(
        &dir,
        &addr,
        &inputs,
        &[
            "--worker-timeout",
            "1",
            "--report",
            "report.json",
            "--http",
            &http,
        ],
    );
    // One worker does every map, then holds the first reduce it gets...
    let (mut w1, hold) = one_worker_does_every_map(&dir, &addr, &http);
    wait_until(Duration::from_secs(30), "w1 to hold a reduce", || {
        (0..10).any(|y| hold.join(format!("reduce-{y}.1.held")).exists())
    });
    // ...and dies with all the map output on its disk.
    w1.kill();
    release_holds(&hold);
    let stale: Vec<_> = std::fs::read_dir(dir.join("w1")).unwrap().collect();
    assert_eq!(stale.len(), 1, "the killed worker's map output directory");
    // A replacement in the same directory clears the dead one's files; two more help.
    run_to_the_end(&dir, &addr, &http, 1, &mut c, &want);
    // The maps whose output died with w1 ran again (found so by a reducer, or by w1
    // missing its heartbeats: whichever comes first).
    let r = dir.report();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert!(r["events"]["reopened_maps"].as_u64() >= Some(1), "{r:#}");
}

#[test]
fn damage_inside_a_packed_map_output_makes_the_map_run_again() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(
        &dir,
        &addr,
        &inputs,
        &["--report", "report.json", "--http", &http],
    );
    // One worker does every map and holds the reduces it takes, so the map output is
    // on its disk, whole, before anyone reads it.
    let (mut w1, hold) = one_worker_does_every_map(&dir, &addr, &http);
    // Each map wrote one packed file: every partition in it, then the index.
    let shuffle = std::fs::read_dir(dir.join("w1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("w1's map output directory");
    let packed = shuffle.join(mr::task::packed_name(0));
    let mut names: Vec<String> = std::fs::read_dir(&shuffle)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mr-"))
        .collect();
    names.sort();
    let want_names: Vec<String> = (0..8).map(mr::task::packed_name).collect();
    assert_eq!(names, want_names, "one packed file per map, no mr-X-Y");
    // The first key of partition 0 of map 0 (after its 4-byte header and 8 bytes of
    // lengths) becomes invalid UTF-8; the index stays intact.
    let mut b = std::fs::read(&packed).unwrap();
    b[12] = 0xff;
    std::fs::write(&packed, &b).unwrap();
    let gate = Gate::new(&dir, "gate", Gate::every_task());
    let mut others: Vec<Proc> = ["w2", "w3"]
        .iter()
        .map(|w| worker(&dir, &addr, w, &gate.args()))
        .collect();
    gate.open_when_registered(&http, 3);
    release_holds(&hold);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in std::iter::once(&mut w1).chain(&mut others) {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&sorted_output(&dir.join("out")), &want);
    let r = dir.report();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert!(r["events"]["reopened_maps"].as_u64() >= Some(1), "{r:#}");
}

#[test]
fn a_worker_with_the_wrong_token_leaves_no_trace() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(&dir, &addr, &inputs, &[]);
    std::fs::create_dir(dir.join("intruder")).unwrap();
    let mut w = dir.command("worker");
    w.env("MR_TOKEN", "not-the-token")
        .args(["--coordinator", &addr, "--work-dir", "intruder"])
        .arg(app("wc"));
    let (exit, err) = dir.run("intruder", w, Duration::from_secs(10));
    assert_eq!(exit, Exit::Code(1), "{err}");
    assert_one_line(
        &err,
        &["worker:", "refused this worker", "token does not match"],
    );
    // Refused before it opened a data port or wrote anything.
    assert!(!err.contains("serving map output"), "{err}");
    assert_empty(&dir.join("intruder"));
    c.kill();
    assert!(c.stderr().contains("authentication failed"));
}

#[test]
fn with_shared_inputs_a_worker_that_cannot_read_them_streams_them() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    let addr = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(&dir, &addr, &inputs, &["--shared-inputs", "--http", &http]);
    // w2 runs elsewhere, where the (relative) input paths do not exist: it must stream
    // them. Once it has, w1 joins from the job's directory and reads them itself; w2
    // waits at its first reduce until w1 has joined (else it could finish the job first).
    std::fs::create_dir(dir.join("elsewhere")).unwrap();
    let gate = Gate::new(&dir, "gate", Gate::reduces().collect());
    let mut w2 = dir.command("worker");
    w2.current_dir(dir.join("elsewhere"))
        .env("MR_TOKEN", TOKEN)
        .args(["--coordinator", &addr, "--work-dir", "."])
        .args(["--task-delay", "0.05"])
        .args(gate.args())
        .arg(app("wc"));
    let mut w2 = dir.spawn("worker", w2);
    w2.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("streaming it from the coordinator")
    });
    let mut w1 = worker(&dir, &addr, "w1", &["--task-delay", "0.05"]);
    gate.open_when_registered(&http, 2);
    c.assert_exit(JOB_TIMEOUT, Exit::Code(0));
    for w in [&mut w1, &mut w2] {
        w.assert_exit(Duration::from_secs(5), Exit::Code(0));
    }
    assert_same_lines(&sorted_output(&dir.join("out")), &want);
    let log1 = w1.stderr();
    assert!(
        !log1.contains("streaming it from the coordinator"),
        "{log1}"
    );
}
