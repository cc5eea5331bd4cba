//! Test app for reduce parallelism: ten keys, and each reduce reports how many reduce
//! workers ran at once; test-mr.sh expects to see two.

use mrapp::KeyValue;

#[path = "../../common/nparallel.rs"]
mod nparallel;

fn map(_filename: &str, _contents: &str) -> Vec<KeyValue> {
    ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        .into_iter()
        .map(|k| KeyValue::new(k, "1"))
        .collect()
}

fn reduce(_key: &str, _values: &[&str]) -> String {
    nparallel::nparallel("reduce").to_string()
}

mrapp::export_app!(map: map, reduce: reduce);
