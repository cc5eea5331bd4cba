//! Helpers for mr's end-to-end tests, in the style of ripgrep's `tests/util.rs`.
//!
//! Every test gets a [`Dir`]: a fresh temp directory that is the working directory of
//! every process the test starts, with the coordinator on a Unix socket inside it. The
//! processes are the real release binaries (`coordinator`, `worker`, `mrsequential`)
//! and app libraries from `target/release`, built once per test binary by [`bins`].
//!
//! Nothing here can hang a test: every wait has a deadline, and a [`Proc`] kills its
//! process when dropped (printing the tail of its log if the test is failing).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The target directory the test binary itself was built into (`<target>/<profile>/deps/<exe>`),
/// so that a custom `CARGO_TARGET_DIR` or `build.target-dir` is honoured.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A cargo command in the workspace root, for tests that build what they run. Without
/// the variables cargo sets for a test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …):
/// build scripts such as ring's watch them, so passing them on would make every such
/// build rebuild those crates and everything above them, and flip back after.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&k.as_ref())
        {
            c.env_remove(k.as_ref());
        }
    }
    c
}

/// `target/release`, after `cargo build --release --workspace` has run once in this test
/// binary (so the binaries and apps match the sources under test). Set
/// `MR_TESTS_NO_BUILD=1` to use whatever is there.
pub fn bins() -> &'static Path {
    static BINS: OnceLock<PathBuf> = OnceLock::new();
    BINS.get_or_init(|| {
        let target = target_dir();
        if std::env::var_os("MR_TESTS_NO_BUILD").is_none() {
            let out = cargo()
                .args(["build", "--release", "--workspace", "--quiet"])
                .env("CARGO_TARGET_DIR", &target)
                .stdin(Stdio::null())
                .output()
                .expect("cannot run cargo");
            assert!(
                out.status.success(),
                "cargo build --release --workspace failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let release = target.join("release");
        for bin in ["coordinator", "worker", "mrsequential"] {
            assert!(
                release.join(bin).is_file(),
                "{} is missing",
                release.join(bin).display()
            );
        }
        release
    })
}

/// The path of app `name`'s library (`wc` → `target/release/libwc.so`).
pub fn app(name: &str) -> PathBuf {
    bins().join(format!("lib{name}.so"))
}

/// The 8 books in `data/`.
pub fn books() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(workspace_root().join("data"))
        .expect("data/")
        .map(|e| e.expect("data/ entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("pg-") && n.ends_with(".txt")
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 8, "expected the 8 books in data/");
    v
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

/// A running (or finished) child process whose stdout and stderr go to files in the
/// test's directory. Killed (SIGKILL) on drop if still running.
pub struct Proc {
    name: String,
    pid: libc::pid_t,
    // Kept so std does not close our handles; we reap the process ourselves (wait4).
    _child: std::process::Child,
    exit: Option<Exit>,
    max_rss_kib: u64,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `cmd`, sending its output to `<log_dir>/<name>.out` / `.err`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let stdout = log_dir.join(format!("{name}.out"));
        let stderr = log_dir.join(format!("{name}.err"));
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("create stdout log"))
            .stderr(fs::File::create(&stderr).expect("create stderr log"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            pid: child.id() as libc::pid_t,
            _child: child,
            exit: None,
            max_rss_kib: 0,
            stdout,
            stderr,
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Reaps the process if it has ended.
    pub fn try_wait(&mut self) -> Option<Exit> {
        if self.exit.is_some() {
            return self.exit;
        }
        let mut status = 0;
        // SAFETY: plain syscall on our own child; `ru` is a valid out-pointer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == self.pid {
            self.max_rss_kib = ru.ru_maxrss as u64;
            self.exit = Some(if libc::WIFEXITED(status) {
                Exit::Code(libc::WEXITSTATUS(status))
            } else {
                Exit::Signal(libc::WTERMSIG(status))
            });
        } else if r < 0 {
            panic!(
                "wait4({}) for {}: {}",
                self.pid,
                self.name,
                std::io::Error::last_os_error()
            );
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to end. On timeout, kills it and panics
    /// with its log.
    pub fn wait(&mut self, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_wait() {
                return e;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?}; stderr:\n{}",
                    self.name,
                    tail(&self.stderr(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits like [`Proc::wait`] and asserts the exit status.
    pub fn assert_exit(&mut self, timeout: Duration, want: Exit) {
        let got = self.wait(timeout);
        assert_eq!(
            got,
            want,
            "{} exited with {got:?}, expected {want:?}; stderr:\n{}",
            self.name,
            tail(&self.stderr(), 60)
        );
    }

    /// Peak resident set size in KiB (known once the process has been reaped).
    pub fn max_rss_kib(&self) -> u64 {
        assert!(self.exit.is_some(), "{} has not been reaped", self.name);
        self.max_rss_kib
    }

    /// Sends `sig` to the process (if it is still running).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.try_wait().is_none() {
            // SAFETY: our unreaped child, so the pid cannot have been reused.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Kills and reaps the process.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.try_wait().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// Waits until stderr has a line for which `pred` holds; returns it. Panics after
    /// `timeout`, or if the process exits first.
    pub fn wait_for_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let err = self.stderr();
            if let Some(l) = err.lines().find(|l| pred(l)) {
                return l.to_string();
            }
            if let Some(e) = self.try_wait() {
                panic!(
                    "{} exited ({e:?}) before logging the awaited line; stderr:\n{}",
                    self.name,
                    tail(&err, 60)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not log the awaited line within {timeout:?}; stderr:\n{}",
                    self.name,
                    tail(&err, 60)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let running = self.try_wait().is_none();
        if running {
            self.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} (pid {}, {}) stderr tail:\n{}",
                self.name,
                self.pid,
                if running {
                    "killed by the test harness".to_string()
                } else {
                    format!("{:?}", self.exit)
                },
                tail(&self.stderr(), 30)
            );
        }
    }
}

fn read_lossy(p: &Path) -> String {
    let mut b = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut b);
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A temp directory that is the working directory of every process of one test.
/// Removed at the end, unless the test fails with `MR_TESTS_KEEP` set (then its path
/// is printed, with every process's log under `logs/`).
pub struct Dir {
    tmp: tempfile::TempDir,
    logs: PathBuf,
    seq: std::cell::Cell<u32>,
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("MR_TESTS_KEEP").is_some() {
            let dir = std::mem::replace(
                &mut self.tmp,
                tempfile::Builder::new()
                    .prefix("mrt-empty")
                    .tempdir()
                    .expect("tempdir"),
            );
            eprintln!("----- kept the test directory {}", dir.keep().display());
        }
    }
}

impl Default for Dir {
    fn default() -> Self {
        Self::new()
    }
}

impl Dir {
    /// A fresh directory (and the binaries built).
    pub fn new() -> Dir {
        bins();
        let tmp = tempfile::Builder::new()
            .prefix("mrt")
            .tempdir()
            .expect("tempdir");
        let logs = tmp.path().join("logs");
        fs::create_dir(&logs).expect("logs dir");
        Dir {
            tmp,
            logs,
            seq: std::cell::Cell::new(0),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// The coordinator address of this test: a Unix socket in the directory.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.join("c.sock").display())
    }

    /// Writes `contents` to `name` (relative to the directory); returns `name`, which is
    /// how the processes (whose cwd is the directory) see it.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, contents).expect("write");
        name.to_string()
    }

    /// Copies the 8 books into `in/`; returns their relative paths.
    pub fn copy_books(&self) -> Vec<String> {
        fs::create_dir_all(self.join("in")).expect("mkdir in");
        books()
            .iter()
            .map(|b| {
                let name = format!("in/{}", b.file_name().unwrap().to_string_lossy());
                fs::copy(b, self.join(&name)).expect("copy book");
                name
            })
            .collect()
    }

    /// Makes the directory usable by other users (for the unprivileged-user test).
    pub fn open_to_all(&self) {
        for p in [self.path(), &self.logs] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).expect("chmod");
        }
    }

    fn unique(&self, name: &str) -> String {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        format!("{n:02}-{name}")
    }

    /// A command for release binary `bin`, run in the directory, with a clean log filter.
    pub fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(bins().join(bin));
        c.current_dir(self.path()).env_remove("RUST_LOG");
        c
    }

    /// Starts `cmd` with its output logged under `name`.
    pub fn spawn(&self, name: &str, cmd: Command) -> Proc {
        Proc::spawn(&self.unique(name), cmd, &self.logs)
    }

    /// Runs `cmd` to completion (at most `timeout`).
    pub fn run(&self, name: &str, cmd: Command, timeout: Duration) -> (Exit, String) {
        let mut p = self.spawn(name, cmd);
        let e = p.wait(timeout);
        (e, p.stderr())
    }

    /// Starts a coordinator on this test's socket with `args` (flags and inputs) and
    /// waits until it listens (or exits).
    pub fn coordinator(&self, args: &[&str]) -> Proc {
        let mut c = self.command("coordinator");
        c.arg("--addr").arg(self.addr()).args(args);
        let mut p = self.spawn("coordinator", c);
        let sock = self.join("c.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() && p.try_wait().is_none() {
            assert!(
                Instant::now() < deadline,
                "coordinator did not listen within 10 s; stderr:\n{}",
                p.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        p
    }

    /// A worker command for `app` on this test's socket, with extra `args`.
    pub fn worker_command(&self, app_name: &str, args: &[&str]) -> Command {
        let mut c = self.command("worker");
        c.arg("--coordinator")
            .arg(self.addr())
            .args(args)
            .arg(app(app_name));
        c
    }

    /// Starts a worker for `app` with environment `env`.
    pub fn worker(&self, app_name: &str, env: &[(&str, &str)]) -> Proc {
        let mut c = self.worker_command(app_name, &[]);
        c.envs(env.iter().copied());
        self.spawn("worker", c)
    }

    /// A TCP coordinator (nothing shared with its workers) on `addr` with the test token
    /// [`TOKEN`], no journal, writing into `out/`; waits until it listens.
    pub fn tcp_coordinator(&self, addr: &str, inputs: &[String], extra: &[&str]) -> Proc {
        let mut c = self.command("coordinator");
        c.env("MR_TOKEN", TOKEN)
            .args(["--listen", addr, "--no-journal", "--output", "out"])
            .args(extra)
            .args(inputs);
        let mut p = self.spawn("coordinator", c);
        wait_until(Duration::from_secs(10), "the coordinator to listen", || {
            assert!(
                p.try_wait().is_none(),
                "coordinator exited:\n{}",
                p.stderr()
            );
            std::net::TcpStream::connect(addr).is_ok()
        });
        p
    }

    /// A TCP worker of `app_name` in its own directory `work` (created if needed), with
    /// extra `args` and environment `env`.
    pub fn tcp_worker(
        &self,
        addr: &str,
        work: &str,
        app_name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        fs::create_dir_all(self.join(work)).expect("mkdir");
        let mut w = self.command("worker");
        w.env("MR_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .args(["--coordinator", addr, "--work-dir", work])
            .args(args)
            .arg(app(app_name));
        self.spawn("worker", w)
    }

    /// The records of the coordinator's journal in this directory (its default path),
    /// in order; a line cut short by a kill is not one.
    pub fn journal(&self) -> Vec<coordinator::journal::Record> {
        let path = self.join(coordinator::journal::DEFAULT_PATH);
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The coordinator's end-of-job report, `report.json` in this directory (give the
    /// coordinator `--report report.json`): assert on it rather than on log wording.
    pub fn report(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.join("report.json")).expect("report.json");
        serde_json::from_str(&text).expect("the report is JSON")
    }

    /// What a job of `app` over `inputs` (as given on the command line, relative to this
    /// directory) must output, from [`oracle`]: sorted lines.
    pub fn expected(&self, app_name: &str, inputs: &[String]) -> Vec<String> {
        let files: Vec<(String, PathBuf)> =
            inputs.iter().map(|i| (i.clone(), self.join(i))).collect();
        oracle(&app(app_name), &files)
    }

    /// [`Dir::expected`], and the app counters a job must report (the oracle's, as
    /// the report's JSON).
    pub fn expected_counted(
        &self,
        app_name: &str,
        inputs: &[String],
    ) -> (Vec<String>, serde_json::Value) {
        let files: Vec<(String, PathBuf)> =
            inputs.iter().map(|i| (i.clone(), self.join(i))).collect();
        let (lines, counters) = oracle_counted(&app(app_name), &files);
        let counters = serde_json::to_value(&counters).expect("counters as JSON");
        (lines, counters)
    }

    /// Runs mrsequential over `inputs` into `mr-correct` (not an mr-out-* name) and
    /// returns its lines, sorted.
    pub fn sequential(&self, app_name: &str, inputs: &[String]) -> Vec<String> {
        let mut c = self.command("mrsequential");
        c.args(["--output", "mr-correct"])
            .arg(app(app_name))
            .args(inputs);
        let (e, err) = self.run("mrsequential", c, Duration::from_secs(60));
        assert_eq!(e, Exit::Code(0), "mrsequential failed:\n{err}");
        let mut lines = lines_of(&self.join("mr-correct"));
        lines.sort();
        fs::remove_file(self.join("mr-correct")).expect("rm mr-correct");
        lines
    }

    /// Names of the files in the directory (not recursive), sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The `mr-out-*` files.
    pub fn out_files(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|n| n.starts_with("mr-out-"))
            .collect()
    }

    /// Temp files (`.mr-tmp-*`) left in the directory.
    pub fn temp_leftovers(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|n| n.starts_with(mr::atomic::TEMP_PREFIX))
            .collect()
    }

    /// The map tasks X whose output `mr-X.data` (one packed file a map) is present,
    /// in order.
    pub fn map_outputs(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .files()
            .iter()
            .filter_map(|n| n.strip_prefix("mr-")?.strip_suffix(".data")?.parse().ok())
            .collect();
        v.sort();
        v
    }

    /// Intermediate files of any form present: packed `mr-X.data` or one-partition
    /// `mr-X-Y`.
    pub fn any_intermediates(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|n| {
                n.strip_prefix("mr-")
                    .is_some_and(|r| r.as_bytes().first().is_some_and(u8::is_ascii_digit))
            })
            .collect()
    }

    /// Every line of every `mr-out-*`, sorted.
    pub fn output_lines(&self) -> Vec<String> {
        let mut all = Vec::new();
        for f in self.out_files() {
            all.extend(lines_of(&self.join(&f)));
        }
        all.sort();
        all
    }
}

/// The lines of a file (lossy UTF-8).
pub fn lines_of(p: &Path) -> Vec<String> {
    let bytes = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts two sorted line lists are equal, reporting the first difference rather than
/// printing both in full.
#[track_caller]
pub fn assert_same_lines(got: &[String], want: &[String]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "output differs from the reference: {} lines vs {} expected; first difference at line {}: got {:?}, expected {:?}",
        got.len(),
        want.len(),
        first,
        got.get(first),
        want.get(first)
    );
}

/// Asserts that `stderr` is exactly one non-empty line and that it contains every
/// string in `needles`; returns the line.
#[track_caller]
pub fn assert_one_line(stderr: &str, needles: &[&str]) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr, got:\n{stderr}"
    );
    for n in needles {
        assert!(lines[0].contains(n), "{:?} lacks {n:?}", lines[0]);
    }
    lines[0].to_string()
}

/// Asserts that worker `w` exited because the coordinator told it the job ended with
/// `end` (`"Succeeded"` or `"Failed"`), rather than because the coordinator vanished.
#[track_caller]
pub fn assert_told(w: &Proc, end: &str) {
    let err = w.stderr();
    assert!(
        err.contains(&format!("exit=Job({end})")),
        "{} was not told the job ended with {end}:\n{}",
        w.name(),
        tail(&err, 20)
    );
}

/// Releases every attempt a worker's `--hold-dir` holds by removing the directory.
/// It is renamed first: a held worker writes its `T.N.held` marker into the directory
/// whenever it reaches a held attempt, and a marker created while `remove_dir_all` ran
/// made the final rmdir fail (ENOTEMPTY). After the rename no lookup of the old name
/// finds the directory; only a create already past its lookup can still land in the
/// renamed one, so one more pass after ENOTEMPTY removes it.
#[track_caller]
pub fn release_holds(hold: &Path) {
    let mut gone = hold.as_os_str().to_owned();
    gone.push(".released");
    let gone = PathBuf::from(gone);
    std::fs::rename(hold, &gone).expect("rename the hold directory");
    for pass in 1.. {
        match std::fs::remove_dir_all(&gone) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && pass < 3 => {}
            Err(e) => panic!("remove the released hold directory {}: {e}", gone.display()),
        }
    }
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `GET path` from the status page at `addr` (the `HOST:PORT` given to `--http`): the
/// status line and the body; None while it does not answer.
pub fn http_get(addr: &str, path: &str) -> Option<(String, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let line = head.lines().next()?.to_string();
    Some((line, body.to_string()))
}

/// The status of a running job, as its coordinator's `/api/status` at `addr` (the
/// `HOST:PORT` given to `--http`) serves it (its first page of tasks); None while it
/// does not answer.
pub fn status(addr: &str) -> Option<serde_json::Value> {
    let (_, body) = http_get(addr, "/api/status")?;
    serde_json::from_str(&body).ok()
}

/// Polls the job's status at `addr` until `cond` holds of it (synchronising on the
/// coordinator's structured state rather than on log lines); returns that status.
/// Panics with `what` after `timeout`.
#[track_caller]
pub fn wait_for_status(
    addr: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = status(addr).filter(|s| cond(s)) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Task `id` (`"map-0"`) in a status, if it is on the status's page of tasks (the
/// first 100 unless asked otherwise).
pub fn task_status<'a>(status: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    status["tasks"].as_array()?.iter().find(|t| t["id"] == id)
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Writes `bytes` to a new TCP connection to `addr` and returns it (still open).
pub fn send_raw(addr: &str, bytes: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    // The coordinator may close the connection once it sees garbage: that is fine.
    let _ = s.write_all(bytes);
    s
}

/// Connects to `addr`, passes TLS and the token handshake for `channel` with `token`,
/// then sends `bytes`: junk that reaches the frame parser behind the handshake.
pub fn send_after_handshake(
    addr: &str,
    token: &mr::auth::Token,
    channel: mr::auth::Channel,
    bytes: &[u8],
) -> Box<dyn mr::secure::BlockingIo> {
    let mut s = secured(addr, token, channel);
    let _ = s.write_all(bytes);
    let _ = s.flush();
    s
}

/// A blocking connection to `addr` through TLS and the token handshake for `channel`.
pub fn secured(
    addr: &str,
    token: &mr::auth::Token,
    channel: mr::auth::Channel,
) -> Box<dyn mr::secure::BlockingIo> {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    mr::secure::Guard::tls(token.clone())
        .expect("TLS set-up")
        .client_blocking(s, channel)
        .expect("handshake")
}

/// Standard timeout for a whole small job.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The token of the TCP tests.
pub const TOKEN: &str = "network-test-token";

/// The sorted lines of `mr-out-0` … `mr-out-(r-1)` in `out`, checking that `out` holds
/// exactly those files.
pub fn sorted_outputs(out: &Path, r: u32) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(out)
        .expect("read out/")
        .map(|e| {
            e.expect("out/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..r).map(|y| format!("mr-out-{y}")).collect();
    want.sort();
    assert_eq!(names, want, "out/ must hold exactly the final outputs");
    let mut all: Vec<String> = names.iter().flat_map(|n| lines_of(&out.join(n))).collect();
    all.sort();
    all
}

/// Whether this process runs as root (the tmpfs and namespace tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Limits `cmd`'s open files to `n`, soft and hard (what `ulimit -n` does in a shell
/// that cannot raise it again).
pub fn limit_open_files(cmd: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt;
    let lim = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe and touches only this child's limits.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A small tmpfs mounted at a directory (as root), unmounted when dropped: a disk that
/// fills up.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"1m"`) at `path` (created if needed).
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("cannot run mount");
        assert!(st.success(), "mount tmpfs at {} failed", path.display());
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Fills it up, leaving `left` bytes or fewer free.
    pub fn fill(&self, left: u64) {
        let mut f = fs::File::create(self.path.join("filler")).expect("create filler");
        let chunk = vec![0u8; 4096];
        loop {
            // SAFETY: statvfs writes into the struct we pass.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            let c = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
            if (st.f_bavail as u64) * (st.f_frsize as u64) <= left {
                return;
            }
            if f.write_all(&chunk).and_then(|_| f.flush()).is_err() {
                return;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The tests' oracle, the 6.824 way, sharing nothing with the framework's map-side
/// buffers (mrsequential reuses them, so a bug there would show on both sides of a
/// comparison): load the app, map each input whole, collect every pair, sort by key,
/// group, reduce. Returns the output lines `key value`, sorted. `files` are (the name
/// map sees, the path to read).
pub fn oracle(app_path: &Path, files: &[(String, PathBuf)]) -> Vec<String> {
    oracle_counted(app_path, files).0
}

/// [`oracle`], and the app's counters (map's and reduce's: the oracle runs no combiner).
pub fn oracle_counted(
    app_path: &Path,
    files: &[(String, PathBuf)],
) -> (Vec<String>, mr::task::Counters) {
    let app = mr::plugin::App::load(app_path).expect("load the app");
    let mut counters = mr::task::Counters::default();
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, path) in files {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let contents = mr::split::decode_input(bytes);
        app.map(name, &contents, &mut counters, |k: &[u8], v: &[u8]| {
            pairs.push((k.to_vec(), v.to_vec()))
        })
        .expect("map");
    }
    // Stable: values keep the order they were emitted in.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let j = i + pairs[i..].iter().take_while(|p| p.0 == pairs[i].0).count();
        let values: Vec<&[u8]> = pairs[i..j].iter().map(|p| p.1.as_slice()).collect();
        out.clear();
        app.reduce(&pairs[i].0, &values, &mut counters, &mut out)
            .expect("reduce");
        lines.push(format!(
            "{} {}",
            String::from_utf8_lossy(&pairs[i].0),
            String::from_utf8_lossy(&out)
        ));
        i = j;
    }
    lines.sort();
    (lines, counters)
}
