//! Runs the built `valsort` binary on gensort data in a tempdir: sorted splits pass, and
//! each kind of damage (order within and across files, lost, duplicated or changed
//! records, short records, missing files) is reported with the right exit code.

use gensort::{Generator, Options, KEY_LEN, RECORD_LEN};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn valsort(inputs: &[&Path], outputs: &[&Path]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_valsort"));
    for i in inputs {
        cmd.arg("--input").arg(i);
    }
    cmd.args(outputs);
    let out = cmd.output().expect("run valsort");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn records(options: Options, n: u64) -> Vec<[u8; RECORD_LEN]> {
    let g = Generator::new(options);
    (0..n).map(|i| g.record(i)).collect()
}

fn sorted(mut recs: Vec<[u8; RECORD_LEN]>) -> Vec<[u8; RECORD_LEN]> {
    recs.sort_by(|a, b| a[..KEY_LEN].cmp(&b[..KEY_LEN]));
    recs
}

fn write(dir: &Path, name: &str, recs: &[[u8; RECORD_LEN]]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, recs.concat()).unwrap();
    path
}

/// The input, and its sorted records split into files of the given sizes (which must add
/// up to the input's size).
fn input_and_split(dir: &Path, n: u64, sizes: &[usize]) -> (PathBuf, Vec<PathBuf>) {
    let recs = records(Options::default(), n);
    let input = write(dir, "input", &recs);
    let sorted = sorted(recs);
    assert_eq!(sizes.iter().sum::<usize>(), sorted.len());
    let mut start = 0;
    let outputs = sizes
        .iter()
        .enumerate()
        .map(|(k, &len)| {
            start += len;
            write(dir, &format!("mr-out-{k}"), &sorted[start - len..start])
        })
        .collect();
    (input, outputs)
}

fn refs(paths: &[PathBuf]) -> Vec<&Path> {
    paths.iter().map(PathBuf::as_path).collect()
}

fn assert_violation(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code,
        Some(1),
        "stdout {} stderr {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("valsort: "), "{}", run.stderr);
    for n in needles {
        assert!(run.stderr.contains(n), "{:?} not in {}", n, run.stderr);
    }
}

#[test]
fn sorted_split_across_files_passes() {
    let dir = tempfile::tempdir().unwrap();
    // Includes empty files at the start, middle and end, and one larger than valsort's
    // read buffer so a file spans several reads.
    let (input, outputs) = input_and_split(dir.path(), 30_000, &[0, 1, 12_000, 0, 16_999, 1000, 0]);
    let run = valsort(&[&input], &refs(&outputs));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Records: 30000\n"), "{}", run.stdout);
    assert!(run.stdout.contains("Duplicate keys: 0\n"), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("SUCCESS - all records are in order, and match the input\n"));

    // The input split over several --input files, in any order, gives the same checksum.
    let recs = records(Options::default(), 30_000);
    let a = write(dir.path(), "in-a", &recs[..100]);
    let b = write(dir.path(), "in-b", &recs[100..]);
    let run2 = valsort(&[&b, &a], &refs(&outputs));
    assert_eq!(run2.code, Some(0), "{}", run2.stderr);
    assert_eq!(run.stdout, run2.stdout);

    // Without --input only the order is checked.
    let run = valsort(&[], &refs(&outputs));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.ends_with("SUCCESS - all records are in order\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn duplicate_keys_are_counted_and_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        seed: 3,
        skew: true,
        distinct: NonZeroU64::new(5),
    };
    let recs = records(options, 2000);
    let input = write(dir.path(), "input", &recs);
    let sorted = sorted(recs);
    // Split inside a run of equal keys: the duplicate across the boundary counts too.
    let out0 = write(dir.path(), "out0", &sorted[..1001]);
    let out1 = write(dir.path(), "out1", &sorted[1001..]);
    let run = valsort(&[&input], &[&out0, &out1]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("Duplicate keys: 1995\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn out_of_order_within_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs = sorted(records(Options::default(), 500));
    recs.swap(200, 201);
    let out = write(dir.path(), "mr-out-0", &recs);
    let key = |i: usize| String::from_utf8(recs[i][..KEY_LEN].to_vec()).unwrap();
    let run = valsort(&[], &[&out]);
    assert_violation(&run, &["mr-out-0", "record 201", &key(201), &key(200)]);
}

#[test]
fn out_of_order_across_a_file_boundary_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (input, outputs) = input_and_split(dir.path(), 300, &[100, 200]);
    let empty = write(dir.path(), "empty", &[]);
    // Each file is sorted, but the second's first key is below the first's last.
    let run = valsort(&[&input], &[&outputs[1], &empty, &outputs[0]]);
    assert_violation(
        &run,
        &["mr-out-0: record 0 is out of order", "mr-out-1 record 199"],
    );
}

#[test]
fn dropped_record_fails_against_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, outputs) = input_and_split(dir.path(), 300, &[150, 150]);
    let recs = sorted(records(Options::default(), 300));
    let short = write(
        dir.path(),
        "mr-out-1",
        &[&recs[150..220], &recs[221..]].concat(),
    );
    let run = valsort(&[&input], &[&outputs[0], &short]);
    assert_violation(
        &run,
        &["299 records in the output, 300 in the input: records were lost"],
    );
}

#[test]
fn duplicated_record_fails_against_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_and_split(dir.path(), 300, &[300]);
    let mut recs = sorted(records(Options::default(), 300));
    recs.insert(10, recs[10]);
    let out = write(dir.path(), "mr-out-0", &recs);
    // Still in order; only the count gives it away.
    assert_eq!(valsort(&[], &[&out]).code, Some(0));
    let run = valsort(&[&input], &[&out]);
    assert_violation(
        &run,
        &["301 records in the output, 300 in the input: records were duplicated"],
    );
}

#[test]
fn changed_byte_fails_against_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_and_split(dir.path(), 300, &[300]);
    let mut recs = sorted(records(Options::default(), 300));
    // In the filler, so the order stays valid and the count stays equal.
    recs[123][70] ^= 0x01;
    let out = write(dir.path(), "mr-out-0", &recs);
    assert_eq!(valsort(&[], &[&out]).code, Some(0));
    let run = valsort(&[&input], &[&out]);
    assert_violation(
        &run,
        &[
            "checksums differ",
            "records were lost, duplicated or changed",
        ],
    );
}

#[test]
fn replaced_record_with_same_count_fails_against_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = input_and_split(dir.path(), 300, &[300]);
    // One record lost and another duplicated: the count alone would not notice.
    let mut recs = sorted(records(Options::default(), 300));
    recs[51] = recs[50];
    let out = write(dir.path(), "mr-out-0", &recs);
    let run = valsort(&[&input], &[&out]);
    assert_violation(&run, &["checksums differ"]);
}

#[test]
fn short_record_fails() {
    let dir = tempfile::tempdir().unwrap();
    let recs = sorted(records(Options::default(), 300));
    let first = write(dir.path(), "mr-out-0", &recs[..100]);
    let path = dir.path().join("mr-out-1");
    let mut bytes = recs[100..].concat();
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let run = valsort(&[], &[&first, &path]);
    assert_violation(&run, &["mr-out-1: record 199 is short (99 of 100 bytes)"]);

    // A byte missing in the middle misaligns the rest: reported at the first bad record.
    let mut bytes = recs[..10].concat();
    bytes.remove(450);
    std::fs::write(&path, &bytes).unwrap();
    let run = valsort(&[], &[&path]);
    assert_violation(&run, &["mr-out-1: record 4 does not end in \\r\\n"]);
}

#[test]
fn empty_outputs_of_empty_input_pass() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "input", &[]);
    let a = write(dir.path(), "mr-out-0", &[]);
    let b = write(dir.path(), "mr-out-1", &[]);
    let run = valsort(&[&input], &[&a, &b]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Records: 0\nChecksum: 0\nDuplicate keys: 0\nSUCCESS - all records are in order, and match the input\n"
    );
    // But empty outputs of a non-empty input lost everything.
    let input = write(dir.path(), "input3", &records(Options::default(), 3));
    assert_violation(&valsort(&[&input], &[&a, &b]), &["records were lost"]);
}

#[test]
fn unusable_files_and_usage_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "mr-out-0", &records(Options::default(), 1));
    let missing = dir.path().join("mr-out-9");
    for run in [valsort(&[], &[&ok, &missing]), valsort(&[&missing], &[&ok])] {
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("cannot open") && run.stderr.contains("mr-out-9"));
    }
    // An input that is not whole records cannot be compared with.
    let bad_input = dir.path().join("bad-input");
    std::fs::write(&bad_input, [b'x'; 150]).unwrap();
    let run = valsort(&[&bad_input], &[&ok]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("bad-input"), "{}", run.stderr);
    // No outputs at all is a usage error.
    assert_eq!(valsort(&[], &[]).code, Some(2));
}
