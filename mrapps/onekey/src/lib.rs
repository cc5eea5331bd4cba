//! One hot key: map sends every line of the input to the key `lines` (no combiner), and
//! reduce reads the values as a stream, so that the key may hold more than fits in
//! memory (the paper's reason for an iterator, §2.1). The output is
//! `lines N values, B bytes`. It counts with app counters too: `lines` and `bytes` in
//! map, `values` in reduce, `empty lines` when there are some, so that the tests can
//! check each count is exact when attempts run twice.

use mrapp::{count, export_app, Emitter, Values};

fn map(_filename: &str, contents: &str, out: &mut Emitter) {
    let (mut lines, mut bytes) = (0, 0);
    for line in contents.lines() {
        if line.is_empty() {
            count("empty lines", 1);
        }
        lines += 1;
        bytes += line.len() as u64;
        out.emit("lines", line);
    }
    count("lines", lines);
    count("bytes", bytes);
}

/// Counts the values and their bytes, one value in memory at a time.
fn reduce(_key: &str, values: &mut Values) -> String {
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(v) = values.next() {
        n += 1;
        bytes += v.len() as u64;
    }
    count("values", n);
    format!("{n} values, {bytes} bytes")
}

export_app!(map: map, reduce: reduce);
