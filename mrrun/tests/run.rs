//! `mr run` end to end: the output equals mrsequential's, the report file is written, and
//! bad input fails at once with a one-line message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the `mr` binary under test, with the wc app and mrsequential built
/// beside it (by the same profile) if they are not there yet.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mr = PathBuf::from(env!("CARGO_BIN_EXE_mr"));
        let dir = mr.parent().expect("binary has a directory").to_path_buf();
        if !dir.join("libwc.so").exists() || !dir.join("mrsequential").exists() {
            let mut build = mr_tests::cargo();
            build.args(["build", "--quiet", "-p", "wc", "-p", "mrsequential"]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let st = build.status().expect("run cargo");
            assert!(st.success(), "building wc and mrsequential failed");
        }
        dir
    })
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn mr(cwd: &Path, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mr"))
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .args(args)
        .args(files)
        .output()
        .expect("run mr")
}

fn sorted_lines(files: &[PathBuf]) -> Vec<String> {
    let mut lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn output_equals_mrsequential_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wc = bin_dir().join("libwc.so");
    let out = mr(
        dir.path(),
        &[
            "run",
            "--app",
            wc.to_str().unwrap(),
            "--workers",
            "3",
            "--reduce",
            "5",
            "--split-size",
            "256KiB",
            "--output",
            "out",
            "--report",
            "report.json",
        ],
        &inputs(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "wrote 5 files: out/mr-out-0 … out/mr-out-4");
    assert!(stderr.contains("job succeeded in"), "summary: {stderr}");

    let seq = Command::new(bin_dir().join("mrsequential"))
        .current_dir(dir.path())
        .arg("--output")
        .arg("seq-out")
        .arg(&wc)
        .args(inputs())
        .status()
        .unwrap();
    assert!(seq.success());
    let ours: Vec<PathBuf> = (0..5)
        .map(|i| dir.path().join(format!("out/mr-out-{i}")))
        .collect();
    let want = sorted_lines(&[dir.path().join("seq-out")]);
    assert!(want.len() > 1000);
    assert_eq!(sorted_lines(&ours), want);

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["workers"], 3);
    assert!(
        report["map"]["tasks"].as_u64().unwrap() > inputs().len() as u64,
        "256KiB splits cut the larger books: {report}"
    );
    assert_eq!(report["reduce"]["tasks"], 5);
    assert_eq!(report["reduce"]["records_out"], want.len() as u64);
    let total: u64 = inputs()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(report["map"]["bytes_read"], total);
    // Nothing is left behind but the output and the report.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["out", "report.json", "seq-out"]);
}

#[test]
fn bad_app_and_bad_inputs_fail_at_once_with_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let out = mr(
        dir.path(),
        &["run", "--app", "no-such-app.so"],
        std::slice::from_ref(&missing),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mr: app library no-such-app.so not found"),
        "{err}"
    );

    let wc = bin_dir().join("libwc.so");
    let out = mr(
        dir.path(),
        &["run", "--app", wc.to_str().unwrap()],
        &[missing, dir.path().to_path_buf()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("no such file"), "{err}");
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn an_unusable_status_address_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let wc = bin_dir().join("libwc.so");
    let out = mr(
        dir.path(),
        &[
            "run",
            "--app",
            wc.to_str().unwrap(),
            "--http",
            "127.0.0.1:notaport",
            "--output",
            "out",
        ],
        &inputs()[..1],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot serve the status page on 127.0.0.1:notaport"),
        "{err}"
    );
    assert!(!dir.path().join("out/mr-out-0").exists());
}
