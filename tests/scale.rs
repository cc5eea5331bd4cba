//! A real job of 20,000 map tasks (a 20,000-byte input in one-byte splits) and its
//! status page: every `/api/status` answer is one page of the task list, small (under
//! 64 KiB however many tasks) and quick, whatever page or filter is asked for; the
//! timeline comes in bounded batches that add up to every attempt; the report and the
//! HTML history hold every attempt at the end.

use mr_tests::*;
use std::time::{Duration, Instant};

const MAPS: u64 = 20_000;

/// The bound on one status answer, whatever M is.
const MAX_STATUS_BYTES: usize = 64 << 10;

/// A generous bound on one answer's time (connect, request, JSON), for a noisy CI
/// machine; on an idle one they take a few milliseconds.
const MAX_STATUS_TIME: Duration = Duration::from_millis(500);

/// `GET path`, timed; panics unless it is answered with 200 and JSON.
fn get_json(http: &str, path: &str) -> (serde_json::Value, usize, Duration) {
    let start = Instant::now();
    let (line, body) = http_get(http, path).unwrap_or_else(|| panic!("no answer to {path}"));
    let took = start.elapsed();
    assert_eq!(line, "HTTP/1.1 200 OK", "{path}: {body}");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (v, body.len(), took)
}

fn ids(status: &serde_json::Value) -> Vec<String> {
    status["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn the_status_page_of_a_job_of_20000_tasks_stays_small_and_fast() {
    let dir = Dir::new();
    let input = dir.write("in.txt", "a\n".repeat(MAPS as usize / 2));
    let http = format!("127.0.0.1:{}", free_port());
    // The last map's first attempt waits while this file exists: the job holds still
    // with 19,999 maps done, one running and the reduce waiting, to be looked at.
    let hold = dir.join("hold");
    std::fs::create_dir(&hold).unwrap();
    std::fs::write(hold.join("map-19999.1"), b"").unwrap();
    let hold_arg = hold.to_string_lossy().into_owned();
    let mut c = dir.coordinator(&[
        "--no-journal",
        "--no-speculation",
        "--reduce",
        "1",
        "--split-size",
        "1",
        "--http",
        &http,
        "--report",
        "report.json",
        "--report-html",
        "report.html",
        &input,
    ]);
    let mut workers: Vec<Proc> = (0..2)
        .map(|_| {
            dir.spawn(
                "worker",
                dir.worker_command("wc", &["--hold-dir", &hold_arg]),
            )
        })
        .collect();
    let started = Instant::now();
    wait_for_status(&http, Duration::from_secs(120), "19,999 maps done", |s| {
        s["counts"]["maps_done"] == MAPS - 1
    });
    let map_phase = started.elapsed();

    // Pages of every kind, filtered every way, three times over.
    let queries = [
        ("", 100),
        ("?page=150", 100),
        ("?page=200", 1),
        ("?kind=map&page=199", 100),
        ("?state=done&page=150", 100),
        ("?state=done&kind=map&page=199", 99),
        ("?state=idle", 1),
        ("?state=running", 1),
        ("?state=failed", 0),
        ("?kind=reduce", 1),
        ("?worker=w1&page=5", 100),
        ("?worker=w2&state=done&page=3", 100),
        ("?per_page=200&page=7", 200),
        ("?per_page=100000", 200),
        ("?page=4000000000", 0),
    ];
    let mut sizes = Vec::new();
    let mut times = Vec::new();
    for _ in 0..3 {
        for (q, rows) in queries {
            let (s, size, took) = get_json(&http, &format!("/api/status{q}"));
            assert_eq!(ids(&s).len(), rows, "{q}: {:?}", s["page"]);
            assert_eq!(s["page"]["total"], MAPS + 1, "{q}");
            sizes.push(size);
            times.push(took);
        }
    }
    let biggest = sizes.iter().copied().max().unwrap_or(0);
    times.sort();
    let slowest = times.last().copied().unwrap_or_default();
    eprintln!(
        "{} status answers at {} tasks: at most {biggest} bytes; median {:?}, slowest {slowest:?} (map phase {map_phase:?})",
        sizes.len(),
        MAPS + 1,
        times[times.len() / 2],
    );
    assert!(biggest < MAX_STATUS_BYTES, "{biggest} bytes");
    assert!(slowest < MAX_STATUS_TIME, "{slowest:?}");

    // The pages are the right ones.
    let (s, _, _) = get_json(&http, "/api/status?state=done&page=150");
    assert_eq!(s["page"]["matched"], MAPS - 1);
    assert_eq!(s["page"]["pages"], 200);
    assert_eq!(ids(&s).first().map(String::as_str), Some("map-15000"));
    assert!(s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "done"));
    let states = &s["task_states"];
    assert_eq!(
        (
            states["idle"].as_u64(),
            states["running"].as_u64(),
            states["done"].as_u64()
        ),
        (Some(1), Some(1), Some(MAPS - 1))
    );
    let (s, _, _) = get_json(&http, "/api/status?state=running");
    assert_eq!(ids(&s), ["map-19999"]);
    let (s, _, _) = get_json(&http, "/api/status?page=200");
    assert_eq!(ids(&s), ["reduce-0"]);
    let (line, _) = http_get(&http, "/api/status?state=sideways").unwrap();
    assert_eq!(line, "HTTP/1.1 400 Bad Request");
    let per_worker: Vec<u64> = ["w1", "w2"]
        .iter()
        .map(|w| {
            get_json(&http, &format!("/api/status?worker={w}")).0["page"]["matched"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        per_worker.iter().sum::<u64>(),
        MAPS,
        "every map on one worker or the other"
    );

    // The timeline in bounded batches, from the start: every attempt, each once.
    let mut seq = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut batches = 0;
    loop {
        let (t, size, _) = get_json(&http, &format!("/api/timeline?since={seq}"));
        let attempts = t["attempts"].as_array().unwrap();
        assert!(
            attempts.len() <= 5000 && size < 1 << 20,
            "a batch of {} in {size} bytes",
            attempts.len()
        );
        for a in attempts {
            seen.insert(a["id"].as_u64().unwrap());
        }
        seq = t["seq"].as_u64().unwrap();
        batches += 1;
        if t["more"] != true {
            break;
        }
    }
    assert_eq!(seen.len() as u64, MAPS, "one attempt per map so far");
    assert!(batches > 1, "more than one batch");
    let (t, _, _) = get_json(&http, &format!("/api/timeline?since={seq}"));
    assert_eq!(t["attempts"].as_array().unwrap().len(), 0, "nothing new");

    // Let it finish: the report and the history hold every attempt.
    std::fs::remove_file(hold.join("map-19999.1")).unwrap();
    c.assert_exit(Duration::from_secs(120), Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(10), Exit::Code(0));
    }
    let r = dir.report();
    let attempts = r["timeline"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len() as u64, MAPS + 1);
    assert!(
        attempts.iter().all(|a| a["outcome"] == "done"),
        "no retries in this job"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<script type=\"application/json\" id=\"report-json\">"));
    assert!(html.contains("\"task\": \"map-19999\""));
    eprintln!(
        "report.json {} bytes, report.html {} bytes",
        std::fs::metadata(dir.join("report.json")).unwrap().len(),
        html.len()
    );
}
