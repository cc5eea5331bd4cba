//! `mr run` end to end: the output equals the oracle's and mrsequential's, the report
//! file is written, nothing else is left behind, and bad input fails at once with a
//! one-line message.

use mr_tests::*;

/// `mr run` over `inputs` with `args`, to completion: its exit, stdout and stderr.
fn mr(dir: &Dir, args: &[&str], inputs: &[String]) -> (Exit, String, String) {
    let mut c = dir.command("mr");
    c.env("RUST_LOG", "warn").arg("run").args(args).args(inputs);
    let mut p = dir.spawn("mr", c);
    let e = p.wait(JOB_TIMEOUT);
    (e, p.stdout(), p.stderr())
}

fn wc() -> String {
    app("wc").to_string_lossy().into_owned()
}

#[test]
fn output_equals_the_oracle_and_mrsequential_and_the_report_is_written() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let want = dir.expected("wc", &inputs);
    assert_eq!(dir.sequential("wc", &inputs), want);
    let wc = wc();
    let args = [
        "--app",
        &wc,
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
    ];
    let (e, stdout, stderr) = mr(&dir, &args, &inputs);
    assert_eq!(e, Exit::Code(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "wrote 5 files: out/mr-out-0 … out/mr-out-4");
    assert!(want.len() > 1000);
    assert_same_lines(&sorted_outputs(&dir.join("out"), 5), &want);

    let report = dir.report();
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["workers"], 3);
    assert!(
        report["map"]["tasks"].as_u64().unwrap() > inputs.len() as u64,
        "256KiB splits cut the larger books: {report}"
    );
    assert_eq!(report["reduce"]["tasks"], 5);
    assert_eq!(report["reduce"]["records_out"], want.len() as u64);
    let total: u64 = books()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(report["map"]["bytes_read"], total);
    // Reduces read every map's partitions once each: what the maps wrote.
    assert_eq!(
        report["reduce"]["bytes_read"],
        report["map"]["bytes_written"]
    );
    assert!(report["reduce"]["bytes_read"].as_u64().unwrap() > 0);
    // Nothing is left behind but the inputs, the logs, the output and the report.
    assert_eq!(dir.files(), ["in", "logs", "out", "report.json"]);
}

#[test]
fn bad_app_and_bad_inputs_fail_at_once_with_one_line_each() {
    let dir = Dir::new();
    let missing = "nope.txt".to_string();
    let (e, _, err) = mr(
        &dir,
        &["--app", "no-such-app.so"],
        std::slice::from_ref(&missing),
    );
    assert_eq!(e, Exit::Code(2));
    assert_one_line(&err, &["mr: app library no-such-app.so not found"]);

    let wc = wc();
    std::fs::create_dir(dir.join("a-dir")).unwrap();
    let (e, _, err) = mr(&dir, &["--app", &wc], &[missing, "a-dir".into()]);
    assert_eq!(e, Exit::Code(2));
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("no such file"), "{err}");
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn an_unusable_status_address_fails_before_any_work() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let wc = wc();
    let args = [
        "--app",
        &wc,
        "--http",
        "127.0.0.1:notaport",
        "--output",
        "out",
    ];
    let (e, _, err) = mr(&dir, &args, &inputs[..1]);
    assert_eq!(e, Exit::Code(1));
    assert!(
        err.contains("cannot serve the status page on 127.0.0.1:notaport"),
        "{err}"
    );
    assert!(!dir.join("out/mr-out-0").exists());
}

#[test]
fn the_html_history_is_written_at_the_end_and_mr_report_renders_the_same_page() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let wc = wc();
    let args = [
        "--app",
        &wc,
        "--workers",
        "2",
        "--reduce",
        "3",
        "--output",
        "out",
        "--report",
        "report.json",
        "--report-html",
        "report.html",
    ];
    let (e, stdout, stderr) = mr(&dir, &args, &inputs);
    assert_eq!(e, Exit::Code(0), "{stdout}\n{stderr}");
    // The report's timeline: every attempt, on the two workers, each done.
    let report = dir.report();
    let attempts = report["timeline"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), inputs.len() + 3);
    assert!(attempts.iter().all(|a| a["outcome"] == "done"
        && a["end"].as_f64() >= a["start"].as_f64()
        && a["end"].as_f64() <= report["elapsed_secs"].as_f64()));
    let workers: std::collections::BTreeSet<&str> = attempts
        .iter()
        .filter_map(|a| a["worker"].as_str())
        .collect();
    assert!(
        workers.iter().all(|w| ["w1", "w2"].contains(w)),
        "{workers:?}"
    );
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("<span id=\"state\" class=\"badge succeeded\">succeeded</span>"));

    // `mr report` renders the JSON into the very same page: one renderer.
    let mut c = dir.command("mr");
    c.args(["report", "report.json", "-o", "again.html"]);
    let mut p = dir.spawn("mr-report", c);
    assert_eq!(p.wait(JOB_TIMEOUT), Exit::Code(0), "{}", p.stderr());
    assert_eq!(p.stdout().trim(), "wrote again.html");
    assert_eq!(
        std::fs::read_to_string(dir.join("again.html")).unwrap(),
        page
    );
    // By default, beside the report.
    let mut c = dir.command("mr");
    c.args(["report", "report.json"]);
    let (e, _) = dir.run("mr-report", c, JOB_TIMEOUT);
    assert_eq!(e, Exit::Code(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("report.html")).unwrap(),
        page
    );

    // What is not a report fails with one line.
    for (file, says) in [
        ("missing.json", "cannot read report missing.json"),
        ("in", "cannot read report in"),
    ] {
        let mut c = dir.command("mr");
        c.args(["report", file]);
        let (e, err) = dir.run("mr-report", c, JOB_TIMEOUT);
        assert_eq!(e, Exit::Code(2));
        assert_one_line(&err, &[says]);
    }
    dir.write("list.json", "[1, 2, 3]");
    let mut c = dir.command("mr");
    c.args(["report", "list.json"]);
    let (e, err) = dir.run("mr-report", c, JOB_TIMEOUT);
    assert_eq!(e, Exit::Code(2));
    assert_one_line(&err, &["list.json is not an mr report"]);
    assert!(!dir.join("list.html").exists());
}

/// One key with every line of the books (more values than one batch the framework
/// hands reduce, 65,536): reduce reads them as a stream, and the app's counters, summed
/// over splits, equal the oracle's exactly.
#[test]
fn a_hot_key_streams_through_reduce_and_the_apps_counters_are_exact() {
    let dir = Dir::new();
    let inputs = dir.copy_books();
    let (want, counters) = dir.expected_counted("onekey", &inputs);
    let onekey = app("onekey").to_string_lossy().into_owned();
    let args = [
        "--app",
        &onekey,
        "--workers",
        "2",
        "--reduce",
        "3",
        "--split-size",
        "256KiB",
        "--output",
        "out",
        "--report",
        "report.json",
    ];
    let (e, stdout, stderr) = mr(&dir, &args, &inputs);
    assert_eq!(e, Exit::Code(0), "{stdout}\n{stderr}");
    assert_same_lines(&sorted_outputs(&dir.join("out"), 3), &want);
    let r = dir.report();
    let lines = counters["lines"].as_u64().unwrap();
    assert!(
        lines > 1 << 16,
        "the key must need more than one batch: {lines}"
    );
    assert_eq!(r["counters"]["app"], counters, "{r:#}");
    let fw = &r["counters"]["framework"];
    assert_eq!(fw["map output records"], lines, "{r:#}");
    assert_eq!(fw["reduce input records"], lines, "{r:#}");
    assert_eq!(fw["reduce output records"], 1, "{r:#}");
    assert_eq!(fw["map spills"], 0, "{r:#}");
    assert!(
        stderr.contains("counter \"lines\""),
        "the summary shows the counters:\n{stderr}"
    );
}
