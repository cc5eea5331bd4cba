//! Bad user input: each mistake must give one clear line on stderr that names the
//! culprit, a non-zero exit status, and no output file.

use mr_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const QUICK: Duration = Duration::from_secs(20);

/// Runs `cmd` in `dir`, asserts exit status `code`, exactly one stderr line containing
/// every needle, and no mr-out-* file; returns the line.
#[track_caller]
fn fails(dir: &Dir, name: &str, cmd: Command, code: i32, needles: &[&str]) -> String {
    let (exit, err) = dir.run(name, cmd, QUICK);
    assert_eq!(exit, Exit::Code(code), "{name}: stderr:\n{err}");
    let line = assert_one_line(&err, needles);
    assert_eq!(dir.out_files(), Vec::<String>::new(), "{name} wrote output");
    line
}

/// Like [`fails`] for a command-line (clap) error: clap adds usage lines, so only the
/// `error:` line is checked.
#[track_caller]
fn usage_error(dir: &Dir, name: &str, cmd: Command, needles: &[&str]) {
    let (exit, err) = dir.run(name, cmd, QUICK);
    assert_eq!(exit, Exit::Code(2), "{name}: stderr:\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{name}: stderr:\n{err}");
    // The error itself: its line plus clap's indented continuation lines, if any.
    let block: String = err
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    for n in needles {
        assert!(block.contains(n), "{block:?} lacks {n:?}");
    }
    assert_eq!(dir.out_files(), Vec::<String>::new(), "{name} wrote output");
}

fn coordinator(dir: &Dir, args: &[&str]) -> Command {
    let mut c = dir.command("coordinator");
    c.arg("--addr").arg(dir.addr()).args(args);
    c
}

#[test]
fn coordinator_with_a_missing_input() {
    let dir = Dir::new();
    dir.write("good.txt", "hello\n");
    fails(
        &dir,
        "coordinator",
        coordinator(&dir, &["good.txt", "nope.txt"]),
        2,
        &["coordinator:", "input nope.txt", "no such file"],
    );
    assert!(!dir.join("c.sock").exists(), "listened despite bad input");
}

#[test]
fn coordinator_reports_every_bad_input_one_line_each() {
    let dir = Dir::new();
    std::fs::create_dir(dir.join("adir")).unwrap();
    let (exit, err) = dir.run(
        "coordinator",
        coordinator(&dir, &["nope.txt", "adir"]),
        QUICK,
    );
    assert_eq!(exit, Exit::Code(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("input nope.txt: no such file"), "{err}");
    assert!(lines[1].contains("input adir: is a directory"), "{err}");
}

#[test]
fn coordinator_with_a_directory_as_input() {
    let dir = Dir::new();
    std::fs::create_dir(dir.join("adir")).unwrap();
    fails(
        &dir,
        "coordinator",
        coordinator(&dir, &["adir"]),
        2,
        &["coordinator:", "input adir", "is a directory"],
    );
}

/// A command running `program` as user `nobody` (via setpriv or runuser), if possible.
fn as_nobody(program: &Path) -> Option<Command> {
    let wrap = |program: &Path| {
        if which("setpriv") {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(program);
            Some(c)
        } else if which("runuser") {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(program);
            Some(c)
        } else {
            None
        }
    };
    // Check that it works at all (and that nobody may run the binary).
    let ok = wrap(program)?
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        wrap(program)
    } else {
        None
    }
}

fn which(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(prog).is_file()))
}

/// Root reads anything, so as root the coordinator runs as `nobody` for the permission
/// check to be real.
#[test]
fn coordinator_with_an_unreadable_input() {
    let dir = Dir::new();
    dir.write("secret.txt", "hello\n");
    std::fs::set_permissions(
        dir.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // SAFETY: trivial syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let Some(mut c) = as_nobody(&bins().join("coordinator")) else {
            eprintln!(
                "SKIPPED: running as root and cannot run the coordinator as nobody \
                 (no working setpriv or runuser); root can read a mode-000 file"
            );
            return;
        };
        dir.open_to_all();
        c.current_dir(dir.path()).env_remove("RUST_LOG");
        c
    } else {
        dir.command("coordinator")
    };
    cmd.arg("--addr").arg(dir.addr()).arg("secret.txt");
    fails(
        &dir,
        "coordinator",
        cmd,
        2,
        &[
            "coordinator:",
            "input secret.txt",
            "cannot be read",
            "Permission denied",
        ],
    );
}

#[test]
fn coordinator_with_zero_reduces() {
    let dir = Dir::new();
    dir.write("good.txt", "hello\n");
    usage_error(
        &dir,
        "coordinator",
        coordinator(&dir, &["--reduce", "0", "good.txt"]),
        &["--reduce", "'0'"],
    );
}

#[test]
fn coordinator_with_an_unknown_flag() {
    let dir = Dir::new();
    dir.write("good.txt", "hello\n");
    usage_error(
        &dir,
        "coordinator",
        coordinator(&dir, &["--frobnicate", "good.txt"]),
        &["--frobnicate"],
    );
}

#[test]
fn coordinator_with_no_input() {
    let dir = Dir::new();
    usage_error(
        &dir,
        "coordinator",
        coordinator(&dir, &[]),
        &["required", "<FILES>"],
    );
}

fn worker(dir: &Dir, app_path: &Path) -> Command {
    let mut c = dir.command("worker");
    c.arg("--coordinator").arg(dir.addr()).arg(app_path);
    c
}

#[test]
fn worker_with_a_missing_plugin() {
    let dir = Dir::new();
    fails(
        &dir,
        "worker",
        worker(&dir, Path::new("libnothere.so")),
        2,
        &["worker:", "libnothere.so", "not found"],
    );
}

#[test]
fn worker_with_a_text_file_as_plugin() {
    let dir = Dir::new();
    dir.write("x.so", "this is not ELF\n");
    fails(
        &dir,
        "worker",
        worker(&dir, Path::new("x.so")),
        2,
        &["worker:", "x.so", "is not a loadable shared library"],
    );
}

#[test]
fn worker_with_a_library_that_is_not_an_app() {
    let dir = Dir::new();
    let lib = app("testlib_noapp");
    let line = fails(
        &dir,
        "worker",
        worker(&dir, &lib),
        2,
        &[
            "worker:",
            "libtestlib_noapp.so",
            "is not an mr app",
            "mr_abi_version",
        ],
    );
    assert!(line.contains(&lib.display().to_string()), "{line}");
}

#[test]
fn worker_with_a_system_library() {
    let dir = Dir::new();
    let Some(libm) = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.is_file()) else {
        eprintln!("SKIPPED: no libm.so.6 found");
        return;
    };
    fails(
        &dir,
        "worker",
        worker(&dir, libm),
        2,
        &["worker:", "libm.so.6", "is not an mr app"],
    );
}

#[test]
fn worker_with_an_app_of_another_abi_version() {
    let dir = Dir::new();
    fails(
        &dir,
        "worker",
        worker(&dir, &app("testlib_badabi")),
        2,
        &[
            "worker:",
            "libtestlib_badabi.so",
            "ABI version 1,",
            "version 2",
            "rebuild the app",
        ],
    );
}

#[test]
fn worker_with_no_coordinator_gives_up_quickly() {
    let dir = Dir::new();
    let mut c = dir.command("worker");
    c.args([
        "--coordinator",
        "unix:/nonexistent.sock",
        "--connect-timeout",
        "0.5",
    ])
    .arg(app("wc"));
    let start = Instant::now();
    fails(
        &dir,
        "worker",
        c,
        1,
        &[
            "worker:",
            "cannot reach the coordinator",
            "/nonexistent.sock",
        ],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn worker_with_a_bad_address() {
    let dir = Dir::new();
    let mut c = dir.command("worker");
    c.args(["--coordinator", "nowhere"]).arg(app("wc"));
    usage_error(&dir, "worker", c, &["--coordinator", "nowhere"]);
}

#[test]
fn mrsequential_with_a_missing_input() {
    let dir = Dir::new();
    dir.write("good.txt", "hello\n");
    let mut c = dir.command("mrsequential");
    c.arg(app("wc")).args(["good.txt", "nope.txt"]);
    fails(&dir, "mrsequential", c, 1, &["mrsequential:", "nope.txt"]);
    assert!(!dir.join("mr-out-0").exists());
}

#[test]
fn mrsequential_with_a_bad_plugin() {
    let dir = Dir::new();
    dir.write("good.txt", "hello\n");
    let mut c = dir.command("mrsequential");
    c.arg(app("testlib_badabi")).arg("good.txt");
    fails(
        &dir,
        "mrsequential",
        c,
        1,
        &["mrsequential:", "ABI version 1,"],
    );
}

#[test]
fn worker_with_the_wrong_token_is_refused_at_once() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let mut c = coordinator(&dir, &["--no-journal"]);
    c.env("MR_TOKEN", "the-right-token").args(&inputs);
    let mut coord = dir.spawn("coordinator", c);
    wait_until(Duration::from_secs(10), "the coordinator to listen", || {
        dir.path().join("c.sock").exists()
    });
    let mut w = dir.worker_command("wc", &["--connect-timeout", "10"]);
    w.env("MR_TOKEN", "a-wrong-token");
    let start = Instant::now();
    fails(
        &dir,
        "worker",
        w,
        1,
        &["worker:", "refused", "token", "--token-file"],
    );
    // Refused at once: not retried until the connect timeout.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    coord.kill();
    let err = coord.stderr();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        !err.contains("right-token") && !err.contains("wrong-token"),
        "{err}"
    );
}

#[test]
fn coordinator_with_a_missing_or_empty_token_file() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let mut c = coordinator(&dir, &["--token-file", "missing.token"]);
    c.args(&inputs);
    fails(
        &dir,
        "coordinator",
        c,
        2,
        &[
            "coordinator:",
            "cannot read the token file",
            "missing.token",
        ],
    );
    std::fs::write(dir.path().join("empty.token"), "\n").unwrap();
    let mut w = dir.worker_command("wc", &["--token-file", "empty.token"]);
    w.current_dir(dir.path());
    fails(
        &dir,
        "worker",
        w,
        2,
        &["worker:", "empty.token", "is empty"],
    );
}
