//! Test app for the early exit test: some reduce calls take 3 s, so a worker or
//! coordinator that exits before all output is final is caught.

use mrapp::KeyValue;
use std::time::Duration;

fn map(filename: &str, _contents: &str) -> Vec<KeyValue> {
    vec![KeyValue::new(filename, "1")]
}

fn reduce(key: &str, values: &[&str]) -> String {
    if key.contains("sherlock") || key.contains("tom") {
        std::thread::sleep(Duration::from_secs(3));
    }
    values.len().to_string()
}

mrapp::export_app!(map: map, reduce: reduce);
