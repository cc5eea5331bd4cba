//! Test app for the job count test: every map invocation leaves a marker file and
//! reduce counts them, so the output shows whether any map task ran twice.

use mrapp::KeyValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static COUNT: AtomicU64 = AtomicU64::new(0);

fn map(_filename: &str, _contents: &str) -> Vec<KeyValue> {
    let n = COUNT.fetch_add(1, Ordering::SeqCst);
    let marker = format!("mr-worker-jobcount-{}-{n}", std::process::id());
    if let Err(e) = std::fs::write(&marker, b"x") {
        panic!("cannot create {marker}: {e}");
    }
    // 2 to 5 seconds, as in 6.824, so that slow tasks tempt a coordinator to re-issue them.
    let jitter = (std::process::id() as u64 * 7919 + n * 104_729) % 3000;
    std::thread::sleep(Duration::from_millis(2000 + jitter));
    vec![KeyValue::new("a", "x")]
}

fn reduce(_key: &str, _values: &[&str]) -> String {
    let entries = match std::fs::read_dir(".") {
        Ok(e) => e,
        Err(e) => panic!("cannot read the working directory: {e}"),
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("mr-worker-jobcount")
        })
        .count()
        .to_string()
}

mrapp::export_app!(map: map, reduce: reduce);
