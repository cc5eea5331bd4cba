//! Test app that fails on purpose, for the error-handling tests. `MR_FAULT` chooses:
//! `panic-map`, `panic-reduce`, `big-value` (a 50 MB value), `panic-record` (map panics
//! on a split that holds the word `poison`), or nothing (behaves as wc on
//! whitespace-separated words).

use mrapp::KeyValue;

fn fault() -> String {
    std::env::var("MR_FAULT").unwrap_or_default()
}

fn map(_filename: &str, contents: &str) -> Vec<KeyValue> {
    match fault().as_str() {
        "panic-map" => panic!("faulty app: map panics on purpose"),
        "big-value" => vec![KeyValue::new("big", "x".repeat(50 << 20))],
        "panic-record" if contents.split_whitespace().any(|w| w == "mr-poison-record") => {
            panic!("faulty app: map panics on the record 'mr-poison-record'")
        }
        _ => contents
            .split_whitespace()
            .map(|w| KeyValue::new(w, "1"))
            .collect(),
    }
}

fn reduce(_key: &str, values: &[&str]) -> String {
    match fault().as_str() {
        "panic-reduce" => panic!("faulty app: reduce panics on purpose"),
        "big-value" => values.iter().map(|v| v.len()).sum::<usize>().to_string(),
        _ => values.len().to_string(),
    }
}

mrapp::export_app!(map: map, reduce: reduce);
