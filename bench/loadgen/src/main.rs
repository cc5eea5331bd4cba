//! `mr-loadgen`: measures the coordinator alone. It starts the real `coordinator` binary
//! on a job of `--maps` one-byte splits and `--reduce` partitions, then runs `--workers`
//! simulated workers in this process, each speaking the real protocol over the Unix
//! socket (register, heartbeat, long poll, report; heartbeats on their own connection,
//! sent from a thread of their own as a real worker's process would) and finishing
//! every task at once (or
//! after `--task-ms`) with a fake output: nothing is read or written, so the
//! coordinator's scheduling is the only work. Prints (and writes as JSON) the wall time,
//! task completions per second, the coordinator's CPU per task and peak RSS, and the
//! p50/p99/max latency of heartbeats, polls that got a task, and reports.
//!
//! Usage: mr-loadgen [--maps 200000] [--reduce 5000] [--workers 2000] [--task-ms 0]
//!        [--coordinator target/release/coordinator] [--json FILE]

use clap::Parser;
use hdrhistogram::Histogram;
use mr::auth::{Channel, Token};
use mr::ids::{RequestId, WorkerId};
use mr::rpc::{connect, Addr, CoordinatorClient, Directive, ReportReply, TaskReply, WorkerInfo};
use mr::secure::Guard;
use mr::task::{Location, MapOutputs, OutputTarget, TaskResult, TaskSpec, TaskStats};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Drives the real coordinator with simulated workers and measures it.")]
struct Args {
    /// Map tasks (one-byte splits of one input file).
    #[arg(long, default_value_t = 200_000)]
    maps: u64,
    /// Reduce tasks.
    #[arg(long, default_value_t = 5_000)]
    reduce: u32,
    /// Simulated workers.
    #[arg(long, default_value_t = 2_000)]
    workers: usize,
    /// How long each simulated task takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    task_ms: u64,
    /// The coordinator binary (default: beside this one).
    #[arg(long)]
    coordinator: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    limit_s: u64,
}

/// Latencies in microseconds, merged from every simulated worker.
struct Latencies {
    heartbeat: Histogram<u64>,
    poll: Histogram<u64>,
    report: Histogram<u64>,
}

impl Latencies {
    fn new() -> Latencies {
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
        Latencies {
            heartbeat: h(),
            poll: h(),
            report: h(),
        }
    }

    fn add(&mut self, o: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.heartbeat.add(&o.heartbeat);
        let _ = self.poll.add(&o.poll);
        let _ = self.report.add(&o.report);
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// Shared by the simulated workers.
struct Run {
    addr: Addr,
    guard: Guard,
    dir: PathBuf,
    task_delay: Duration,
    completions: AtomicU64,
    /// Calls that failed while the coordinator ran (after it exits, calls fail by design).
    errors: AtomicU64,
    /// Set once the coordinator has exited.
    over: std::sync::atomic::AtomicBool,
    latencies: Mutex<Latencies>,
    /// The runtime (one thread) that sends every simulated worker's heartbeats: the
    /// workers' polls and reports keep the main one busy, and a heartbeat waiting there
    /// would measure this process, not the coordinator.
    beats: tokio::runtime::Handle,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let coordinator = match &args.coordinator {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("coordinator"),
    };
    if !coordinator.is_file() {
        return Err(format!(
            "no coordinator binary at {} (build with cargo build --release, or give --coordinator)",
            coordinator.display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("mr-loadgen-")
        .tempdir()
        .map_err(|e| format!("cannot make a work directory: {e}"))?;
    let dir = tmp.path().to_path_buf();
    let r = measure(args, &coordinator, &dir);
    if r.is_err() {
        // Kept, with the coordinator's log, for a look.
        let _ = tmp.keep();
    }
    r
}

fn measure(args: &Args, coordinator: &Path, dir: &Path) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let input = dir.join("input");
    std::fs::write(&input, vec![b'x'; args.maps as usize])
        .map_err(|e| format!("cannot write the input: {e}"))?;
    std::fs::create_dir(dir.join("out")).map_err(|e| format!("mkdir out: {e}"))?;
    let sock = dir.join("c.sock");
    let log = std::fs::File::create(dir.join("coordinator.log"))
        .map_err(|e| format!("cannot create the coordinator's log: {e}"))?;
    let started = Instant::now();
    let child = Command::new(coordinator)
        .current_dir(&dir)
        .args(["--addr", &format!("unix:{}", sock.display())])
        .args(["--split-size", "1", "--reduce", &args.reduce.to_string()])
        .args(["--no-journal", "--report", "report.json", "--output", "out"])
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", coordinator.display()))?;
    let pid = child.id() as libc::pid_t;
    while !sock.exists() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the coordinator did not listen within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let listening = started.elapsed();

    let beat_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("heartbeats")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the heartbeat runtime: {e}"))?;
    let run = Arc::new(Run {
        addr: Addr::Unix(sock),
        guard: Guard::insecure_plaintext(Token::none()),
        dir: dir.clone(),
        task_delay: Duration::from_millis(args.task_ms),
        completions: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        over: std::sync::atomic::AtomicBool::new(false),
        latencies: Mutex::new(Latencies::new()),
        beats: beat_rt.handle().clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let limit = Duration::from_secs(args.limit_s);
    let workers = args.workers;
    let drive = {
        let run = run.clone();
        rt.spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..workers {
                set.spawn(worker(run.clone(), i));
            }
            while set.join_next().await.is_some() {}
        })
    };
    // The coordinator's end (its resources, from wait4) is the measurement's end.
    let mut status = 0;
    // SAFETY: plain syscall on our own child; `ru` is a valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let deadline = started + limit;
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(format!(
                "the job did not end within {limit:?}; log in {}",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    run.over.store(true, Ordering::Relaxed);
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), drive).await });
    let cpu = Duration::from_micros(
        (ru.ru_utime.tv_sec as u64 * 1_000_000 + ru.ru_utime.tv_usec as u64)
            + (ru.ru_stime.tv_sec as u64 * 1_000_000 + ru.ru_stime.tv_usec as u64),
    );
    let rss_mib = ru.ru_maxrss as f64 / 1024.0;
    // This process's own CPU: on a small machine it competes with the coordinator.
    // SAFETY: plain syscall; `me` is a valid out-pointer.
    let mut me: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut me) };
    let own_cpu = (me.ru_utime.tv_sec + me.ru_stime.tv_sec) as f64
        + (me.ru_utime.tv_usec + me.ru_stime.tv_usec) as f64 / 1e6;
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let report: serde_json::Value = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();

    let tasks = args.maps + u64::from(args.reduce);
    let done = run.completions.load(Ordering::Relaxed);
    let l = run.latencies.lock().unwrap_or_else(|p| p.into_inner());
    let pct = |h: &Histogram<u64>| {
        serde_json::json!({
            "count": h.len(),
            "p50_ms": h.value_at_quantile(0.50) as f64 / 1000.0,
            "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
            "max_ms": h.max() as f64 / 1000.0,
        })
    };
    let out = serde_json::json!({
        "maps": args.maps,
        "reduces": args.reduce,
        "workers": args.workers,
        "task_ms": args.task_ms,
        "coordinator_exit_ok": exited_ok,
        "job_state": report["state"],
        "listening_s": listening.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "completions": done,
        "completions_per_s": done as f64 / (wall - listening).as_secs_f64(),
        "coordinator_cpu_s": cpu.as_secs_f64(),
        "coordinator_cpu_us_per_task": cpu.as_secs_f64() * 1e6 / tasks as f64,
        "coordinator_peak_rss_mib": rss_mib,
        "loadgen_cpu_s": own_cpu,
        "rpc_errors": run.errors.load(Ordering::Relaxed),
        "workers_registered": report["workers"],
        "heartbeat": pct(&l.heartbeat),
        "poll_with_task": pct(&l.poll),
        "report": pct(&l.report),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&out).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if !exited_ok || report["state"] != "succeeded" {
        return Err(format!(
            "the job did not succeed (state {}); log in {}",
            report["state"],
            dir.display()
        ));
    }
    Ok(())
}

/// One simulated worker: registers, heartbeats, and polls for tasks until told the job
/// is over, finishing each task with a fake output.
async fn worker(run: Arc<Run>, i: usize) {
    let Some(client) = dial(&run, i, Channel::Control).await else {
        return;
    };
    let base = (i as u64 + 1) << 32;
    let seq = Arc::new(AtomicU64::new(0));
    let req = move || RequestId(base | seq.fetch_add(1, Ordering::Relaxed));
    let info = WorkerInfo {
        host: format!("sim{i}"),
        pid: i as u32,
        data_addr: None,
    };
    let Ok(reg) = client
        .register(tarpc::context::current(), req(), info)
        .await
    else {
        run.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let id = reg.worker;
    let interval = Duration::from_millis(reg.heartbeat_interval_ms.max(1));
    let mut mine = Latencies::new();
    let beats = {
        let (run, req) = (run.clone(), req.clone());
        run.beats.clone().spawn(async move {
            match dial(&run, i, Channel::Heartbeat).await {
                Some(client) => heartbeats(client, id, interval, req).await,
                None => Histogram::new(3).expect("valid precision"),
            }
        })
    };
    // The next task, when the last report's answer carried one.
    let mut next: Option<TaskReply> = None;
    loop {
        let reply = match next.take() {
            Some(r) => Ok(r),
            None => {
                let t = Instant::now();
                let reply = client.get_task(tarpc::context::current(), req(), id).await;
                if let Ok(TaskReply::Task(_)) = reply {
                    let _ = mine.poll.record(micros(t.elapsed()));
                }
                reply
            }
        };
        let a = match reply {
            Ok(TaskReply::Task(a)) => a,
            Ok(TaskReply::Wait) => continue,
            Ok(TaskReply::Exit(_)) | Ok(TaskReply::Reregister) => break,
            Err(_) if run.over.load(Ordering::Relaxed) => break,
            Err(_) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !run.task_delay.is_zero() {
            tokio::time::sleep(run.task_delay).await;
        }
        let result = match &a.spec {
            TaskSpec::Map { .. } => TaskResult::Map {
                output: MapOutputs::Dir(run.dir.clone()),
                stats: TaskStats::default(),
            },
            TaskSpec::Reduce { output, .. } => {
                let dir = match output {
                    OutputTarget::Dir(d) => d.clone(),
                    OutputTarget::Coordinator => run.dir.join("out"),
                };
                TaskResult::Reduce {
                    output: Location::Path(out_path(&dir, a.task.index)),
                    stats: TaskStats::default(),
                }
            }
            TaskSpec::Sample { .. } => TaskResult::Sample {
                keys: Vec::new(),
                stats: TaskStats::default(),
            },
        };
        let t = Instant::now();
        let reply = client
            .report(
                tarpc::context::current(),
                req(),
                id,
                a.task,
                a.attempt,
                Ok(result),
            )
            .await;
        let _ = mine.report.record(micros(t.elapsed()));
        match reply {
            Ok(r) => {
                if r.reply == ReportReply::Accepted {
                    run.completions.fetch_add(1, Ordering::Relaxed);
                }
                next = Some(r.next);
            }
            Err(_) if run.over.load(Ordering::Relaxed) => break,
            Err(_) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Ok(h) = beats.await {
        let _ = mine.heartbeat.add(&h);
    }
    run.latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(&mine);
}

/// Connects for `channel`, retrying: thousands connecting at once overflow the socket's
/// listen backlog, and a real worker retries too.
async fn dial(run: &Run, i: usize, channel: Channel) -> Option<CoordinatorClient> {
    let mut tries = 0;
    loop {
        match connect(&run.addr, &run.guard, channel).await {
            Ok(c) => return Some(c),
            Err(_) if tries < 200 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10 + (i as u64 % 40))).await;
            }
            Err(_) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }
}

/// Heartbeats every `interval` until told to exit; returns their latencies.
async fn heartbeats(
    client: CoordinatorClient,
    id: WorkerId,
    interval: Duration,
    req: impl Fn() -> RequestId,
) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = Instant::now();
        match client.heartbeat(tarpc::context::current(), req(), id).await {
            Ok(Directive::Exit(_)) | Ok(Directive::Reregister) => return h,
            Ok(_) => {
                let _ = h.record(micros(t.elapsed()));
            }
            // The coordinator has gone (it exits once the job is over).
            Err(_) => return h,
        }
    }
}

fn out_path(dir: &Path, y: u32) -> PathBuf {
    dir.join(mr::task::output_name(y))
}
