//! Shared body of the `crash` and `nocrash` test apps (included with #[path], since two
//! cdylibs cannot link each other without clashing exported symbols). `maybe_crash` is
//! supplied by the including crate.

use mrapp::KeyValue;

fn map(filename: &str, contents: &str) -> Vec<KeyValue> {
    super::maybe_crash();
    vec![
        KeyValue::new("a", filename),
        KeyValue::new("b", filename.len().to_string()),
        KeyValue::new("c", contents.len().to_string()),
        KeyValue::new("d", "xyzzy"),
    ]
}

fn reduce(_key: &str, values: &[&str]) -> String {
    super::maybe_crash();
    // Sort the values so the output is deterministic whatever the order of map tasks.
    let mut vv: Vec<&str> = values.to_vec();
    vv.sort_unstable();
    vv.join(" ")
}

mrapp::export_app!(map: map, reduce: reduce);
