//! Runs the built `gensort` binary: -b offsets across many files reproduce one file byte
//! for byte, and a file that cannot be created is one clear error.

use std::path::Path;
use std::process::Command;

fn gensort(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gensort"))
        .args(args)
        .output()
        .expect("run gensort")
}

fn run_ok(args: &[&str]) {
    let out = gensort(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[test]
fn offsets_across_32_files_equal_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let n = 32 * 125 + 7;
    for extra in [
        &[][..],
        &["--skew"][..],
        &["--skew", "--distinct", "40"][..],
    ] {
        let whole = path(dir.path(), "whole");
        let mut args = vec!["-a", "--seed", "77"];
        args.extend_from_slice(extra);
        let n_s = n.to_string();
        let mut one = args.clone();
        one.extend([n_s.as_str(), whole.as_str()]);
        run_ok(&one);

        let mut joined = Vec::new();
        let per = n / 32 + 1;
        for part in 0..32 {
            let start = part * per;
            let count = per.min(n - start);
            let file = path(dir.path(), &format!("part{part}"));
            let (start_s, count_s) = (start.to_string(), count.to_string());
            let mut a = args.clone();
            a.extend(["-b", start_s.as_str(), count_s.as_str(), file.as_str()]);
            run_ok(&a);
            joined.extend(std::fs::read(&file).unwrap());
        }
        let whole = std::fs::read(&whole).unwrap();
        assert_eq!(whole.len(), n * gensort::RECORD_LEN);
        assert!(whole == joined, "{extra:?}");
    }
}

#[test]
fn without_a_is_also_ascii_and_zero_records_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, empty) = (
        path(dir.path(), "a"),
        path(dir.path(), "b"),
        path(dir.path(), "e"),
    );
    run_ok(&["-a", "10", &a]);
    run_ok(&["10", &b]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    run_ok(&["0", &empty]);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn errors_are_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = path(dir.path(), "no/such/dir/out.dat");
    let out = gensort(&["5", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("gensort: cannot create ") && err.contains(&bad),
        "{err}"
    );

    let out = gensort(&["--distinct", "0", "5", &path(dir.path(), "x")]);
    assert_eq!(out.status.code(), Some(2));
    let out = gensort(&["-b", "18446744073709551615", "2", &path(dir.path(), "x")]);
    assert_eq!(out.status.code(), Some(1));
}
