//! Test fixture: word count (a word is a maximal run of alphabetic characters) that can
//! be slowed down, for the tests that need a window in which to act on a running job:
//!
//! - `MR_SLOW_MAP_MS=N`: every map call sleeps N ms first.
//! - `MR_SLOW_FIRST_REDUCE_MS=N`: the first reduce call of the process sleeps N ms.
//!
//! Without them it is a plain word count (mrsequential's reference output). It counts
//! `words` and `map calls` in map and `keys` in reduce with app counters, so that the
//! fault tests can check no re-run, revoked or late attempt counts twice.

use mrapp::{count, export_app, Emitter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static REDUCED: AtomicBool = AtomicBool::new(false);

fn sleep_ms(var: &str) {
    let ms = std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn map(_filename: &str, contents: &str, out: &mut Emitter) {
    sleep_ms("MR_SLOW_MAP_MS");
    let mut words = 0;
    for w in contents.split(|c: char| !c.is_alphabetic()) {
        if !w.is_empty() {
            out.emit(w, "1");
            words += 1;
        }
    }
    count("words", words);
    count("map calls", 1);
}

fn reduce(_key: &str, values: &[&str]) -> String {
    if !REDUCED.swap(true, Ordering::SeqCst) {
        sleep_ms("MR_SLOW_FIRST_REDUCE_MS");
    }
    count("keys", 1);
    values.len().to_string()
}

export_app!(map: map, reduce: reduce);
