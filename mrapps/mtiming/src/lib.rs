//! Test app for map parallelism: each map records its start time and how many map
//! workers ran at once; test-mr.sh expects two workers and overlap.

use mrapp::KeyValue;
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "../../common/nparallel.rs"]
mod nparallel;

fn map(_filename: &str, _contents: &str) -> Vec<KeyValue> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let pid = std::process::id();
    let n = nparallel::nparallel("map");
    vec![
        KeyValue::new(format!("times-{pid}"), format!("{ts:.1}")),
        KeyValue::new(format!("parallel-{pid}"), n.to_string()),
    ]
}

fn reduce(_key: &str, values: &[&str]) -> String {
    let mut vv: Vec<&str> = values.to_vec();
    vv.sort_unstable();
    vv.join(" ")
}

mrapp::export_app!(map: map, reduce: reduce);
