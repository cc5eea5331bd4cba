//! One chaos run: a coordinator and 4 workers in a fresh directory, a seeded loop that
//! kills, freezes and slows workers until the coordinator exits, then the checks:
//! (a) the output equals the reference, (b) no `mr-out-*` was ever seen partial, (c) no
//! temp file is left, (d) every process exited in time.

use crate::corpus::{sorted_lines, Corpus};
use crate::rng::Rng;
use crate::watch::{outputs, Watcher};
use crate::Bins;
use anyhow::{anyhow, bail, Context, Result};
use mr_tests::{Exit, Proc};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Workers alive at any time.
const WORKERS: usize = 4;
/// R.
const REDUCES: usize = 10;
/// Split size: ~32 map tasks over 50 MiB, so there is time for chaos to land.
const SPLIT_SIZE: &str = "2MiB";
/// Delay before each task of a slow worker (longer than an idle worker's, shorter than
/// the task timeout, so slow attempts sometimes time out and sometimes finish).
const SLOW_DELAY: &str = "1.5";
/// Delay before each task of a normal worker, so the job lasts long enough for chaos
/// to hit workers in the middle of tasks (wc itself maps 2 MiB in a few ms).
const PACE_DELAY: &str = "0.7";
/// The coordinator must have exited this long after it started.
const COORDINATOR_LIMIT: Duration = Duration::from_secs(120);
/// Every worker must have exited this long after the coordinator.
const WORKER_LIMIT: Duration = Duration::from_secs(15);
/// How often the driver looks at its processes.
const TICK: Duration = Duration::from_millis(20);

/// What one passing run did.
pub struct Summary {
    kills: u32,
    freezes: u32,
    late_refused: usize,
    slow: u32,
    early_exits: u32,
    elapsed: Duration,
    dir: Option<PathBuf>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kills={} freezes={} late_refused={} slow={} elapsed={:.1}s",
            self.kills,
            self.freezes,
            self.late_refused,
            self.slow,
            self.elapsed.as_secs_f64()
        )?;
        if self.early_exits > 0 {
            write!(f, " early_worker_exits={}", self.early_exits)?;
        }
        if let Some(d) = &self.dir {
            write!(f, " dir={}", d.display())?;
        }
        Ok(())
    }
}

/// A worker process (the test harness's [`Proc`]: its stderr in `worker-N.err` in the
/// run directory, killed if still running when dropped).
struct Worker {
    n: usize,
    proc: Proc,
    frozen_until: Option<Instant>,
    exited: bool,
}

/// Every process of a run; whatever is still running when it is dropped is killed (by
/// each [`Proc`]'s own drop).
struct Procs {
    coordinator: Proc,
    workers: Vec<Worker>,
}

/// Everything a run needs to start processes.
struct Env<'a> {
    bins: &'a Bins,
    dir: &'a Path,
    sock: String,
}

impl Env<'_> {
    fn start_coordinator(&self, files: &[PathBuf]) -> Proc {
        let mut c = Command::new(&self.bins.coordinator);
        c.current_dir(self.dir)
            .env("RUST_LOG", "info")
            .args(["--addr", &format!("unix:{}", self.sock)])
            .args(["--reduce", &REDUCES.to_string()])
            .args(["--task-timeout", "2", "--worker-timeout", "1"])
            .args(["--split-size", SPLIT_SIZE])
            .args(files);
        Proc::spawn("coordinator", c, self.dir)
    }

    fn start_worker(&self, n: usize, slow: bool) -> Worker {
        let mut c = Command::new(&self.bins.worker);
        c.current_dir(self.dir)
            .env("RUST_LOG", "info")
            .args(["--coordinator", &format!("unix:{}", self.sock)])
            .args(["--coordinator-timeout", "3"])
            .args(["--task-delay", if slow { SLOW_DELAY } else { PACE_DELAY }])
            .arg(&self.bins.wc);
        Worker {
            n,
            proc: Proc::spawn(&format!("worker-{n}"), c, self.dir),
            frozen_until: None,
            exited: false,
        }
    }
}

/// Runs one seed; on failure the error is the reason, and the run directory is kept.
pub fn run(seed: u64, bins: &Bins, corpus: &Corpus, keep: bool) -> Result<Summary> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("mr-chaos-{seed}-"))
        .tempdir()
        .context("cannot create the run directory")?;
    let result = run_in(seed, bins, corpus, tmp.path());
    match result {
        Ok(mut summary) if keep => {
            summary.dir = Some(tmp.keep());
            Ok(summary)
        }
        Ok(summary) => Ok(summary),
        Err(e) => {
            let dir = tmp.keep();
            Err(e.context(format!("run dir kept: {}", dir.display())))
        }
    }
}

fn run_in(seed: u64, bins: &Bins, corpus: &Corpus, dir: &Path) -> Result<Summary> {
    let started = Instant::now();
    let env = Env {
        bins,
        dir,
        sock: dir.join("c.sock").to_string_lossy().into_owned(),
    };
    let mut rng = Rng::new(seed);
    let watcher = Watcher::start(dir);
    let mut procs = Procs {
        coordinator: env.start_coordinator(&corpus.files),
        workers: Vec::new(),
    };
    wait_for_socket(&mut procs.coordinator, Path::new(&env.sock))?;

    let mut s = Summary {
        kills: 0,
        freezes: 0,
        late_refused: 0,
        slow: 0,
        early_exits: 0,
        elapsed: Duration::ZERO,
        dir: None,
    };
    // One or two of the first workers are slow; replacements are slow now and then.
    let first_slow = 1 + rng.below(2);
    for n in 0..WORKERS {
        let slow = n < first_slow;
        s.slow += u32::from(slow);
        procs.workers.push(env.start_worker(n, slow));
    }

    // The chaos loop, until the coordinator exits.
    let mut next_event = started + Duration::from_secs_f64(rng.range(0.5, 1.5));
    let status = loop {
        std::thread::sleep(TICK);
        let now = Instant::now();
        if let Some(status) = procs.coordinator.try_wait() {
            break status;
        }
        if now - started > COORDINATOR_LIMIT {
            bail!("coordinator still running after {COORDINATOR_LIMIT:?} (hang)");
        }
        resume_due(&mut procs.workers, now)?;
        // A worker that quits while the job runs (rather than being told it is over) is
        // noted and replaced, so the job can still finish.
        let mut quit = Vec::new();
        for w in procs.workers.iter_mut().filter(|w| !w.exited) {
            if let Some(st) = w.proc.try_wait() {
                w.exited = true;
                let log = w.proc.stderr();
                if st != Exit::Code(0) {
                    let last = log.lines().last().unwrap_or("").trim();
                    bail!("worker-{} failed while the job ran ({st:?}): {last}", w.n);
                }
                if !log.contains("Job(Succeeded)") {
                    eprintln!(
                        "chaos seed={seed}: worker-{} quit during the job ({st:?}); replacing it",
                        w.n
                    );
                    quit.push(w.n);
                }
            }
        }
        for _ in quit {
            s.early_exits += 1;
            let n = procs.workers.len();
            procs.workers.push(env.start_worker(n, false));
        }
        if now >= next_event {
            chaos_event(&mut rng, &env, &mut procs.workers, &mut s)?;
            next_event = now + Duration::from_secs_f64(rng.range(0.8, 2.5));
        }
    };
    let coordinator_exit = Instant::now();

    // Every worker must follow the coordinator out within the limit.
    loop {
        let now = Instant::now();
        resume_due(&mut procs.workers, now)?;
        for w in procs.workers.iter_mut().filter(|w| !w.exited) {
            if w.proc.try_wait().is_some() {
                w.exited = true;
            }
        }
        let left: Vec<String> = procs
            .workers
            .iter()
            .filter(|w| !w.exited)
            .map(|w| format!("worker-{} (pid {})", w.n, w.proc.pid()))
            .collect();
        if left.is_empty() {
            break;
        }
        if now - coordinator_exit > WORKER_LIMIT {
            drop(procs); // kills them
            bail!(
                "{} still running {WORKER_LIMIT:?} after the coordinator exited",
                left.join(", ")
            );
        }
        std::thread::sleep(TICK);
    }
    let observed = watcher.finish();
    s.elapsed = started.elapsed();
    check_status(status, &procs.coordinator)?;

    // (b) Every content ever seen of an output is its final content.
    let finals = outputs(dir);
    for (name, contents) in &observed {
        let fin = std::fs::read(dir.join(name)).with_context(|| format!("{name} vanished"))?;
        if let Some(bad) = contents.iter().find(|c| **c != fin) {
            bail!(
                "{name} was seen partial or different: {} bytes observed, final has {} bytes",
                bad.len(),
                fin.len()
            );
        }
    }
    // (a) The output is the reference, byte for byte once sorted.
    let names: Vec<&str> = finals.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = (0..REDUCES).map(|y| format!("mr-out-{y}")).collect();
    let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
    want_sorted.sort();
    if names != want_sorted {
        bail!(
            "output files are {names:?}, expected mr-out-0..{}",
            REDUCES - 1
        );
    }
    let mut contents = Vec::new();
    for (name, path) in &finals {
        contents.push(std::fs::read(path).with_context(|| format!("cannot read {name}"))?);
    }
    let got = sorted_lines(contents.iter().map(Vec::as_slice));
    if got != corpus.reference {
        bail!("{}", first_difference(&got, &corpus.reference));
    }
    // (c) No temp file outlives the processes.
    let temps = temp_files(dir)?;
    if !temps.is_empty() {
        bail!("temp files left behind: {}", temps.join(", "));
    }
    let log = procs.coordinator.stderr();
    s.late_refused = log.lines().filter(|l| l.contains("refused")).count();
    Ok(s)
}

/// Waits until the coordinator listens (or fails to start).
fn wait_for_socket(coordinator: &mut Proc, sock: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if let Some(st) = coordinator.try_wait() {
            bail!("coordinator exited at start ({st:?}); see coordinator.err");
        }
        if Instant::now() > deadline {
            bail!("coordinator not listening on {} after 10s", sock.display());
        }
        std::thread::sleep(TICK);
    }
    Ok(())
}

/// Sends SIGCONT to every frozen worker whose time has come.
fn resume_due(workers: &mut [Worker], now: Instant) -> Result<()> {
    for w in workers.iter_mut() {
        if w.frozen_until.is_some_and(|t| now >= t) {
            w.proc.signal(libc::SIGCONT);
            w.frozen_until = None;
        }
    }
    Ok(())
}

/// One random act: kill a worker and start a replacement, freeze one past the task
/// timeout, or do nothing this time.
fn chaos_event(rng: &mut Rng, env: &Env, workers: &mut Vec<Worker>, s: &mut Summary) -> Result<()> {
    let awake: Vec<usize> = (0..workers.len())
        .filter(|&i| !workers[i].exited && workers[i].frozen_until.is_none())
        .collect();
    let frozen = workers.iter().filter(|w| w.frozen_until.is_some()).count();
    let roll = rng.below(100);
    if awake.is_empty() {
        return Ok(());
    }
    let victim = awake[rng.below(awake.len())];
    if roll < 40 {
        let w = &mut workers[victim];
        w.proc.kill();
        w.exited = true;
        s.kills += 1;
        let slow = rng.chance(0.3);
        s.slow += u32::from(slow);
        let n = workers.len();
        workers.push(env.start_worker(n, slow));
    } else if roll < 85 && frozen < 2 {
        let w = &mut workers[victim];
        w.proc.signal(libc::SIGSTOP);
        w.frozen_until = Some(Instant::now() + Duration::from_secs_f64(rng.range(2.5, 3.5)));
        s.freezes += 1;
    }
    Ok(())
}

fn check_status(status: Exit, coordinator: &Proc) -> Result<()> {
    if status == Exit::Code(0) {
        return Ok(());
    }
    let log = coordinator.stderr();
    let last = log.lines().last().unwrap_or("").trim();
    Err(anyhow!(
        "coordinator exited with {status:?}; last log line: {last}"
    ))
}

fn temp_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(mr::atomic::TEMP_PREFIX) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Describes where two sorted outputs first differ.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let mut g = got.split(|&b| b == b'\n');
    let mut w = want.split(|&b| b == b'\n');
    for line in 1.. {
        match (g.next(), w.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                let show = |l: Option<&[u8]>| {
                    l.map_or("<end>".to_string(), |l| {
                        String::from_utf8_lossy(l).into_owned()
                    })
                };
                return format!(
                    "output differs from mrsequential at sorted line {line}: got {:?}, want {:?}",
                    show(a),
                    show(b)
                );
            }
        }
    }
    unreachable!("the loop returns")
}
