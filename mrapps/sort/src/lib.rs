//! Sort: orders 100-byte Sort Benchmark records (`gensort -a`: a 10-byte printable key,
//! then 88 bytes of payload, then `\r\n`) by their key. Map keys each line by its first 10
//! bytes; reduce writes every record of a key back exactly as it came (raw output, so no
//! `key value` reformatting). With `--partition range`, `mr-out-0`, `mr-out-1`, … in order
//! are one sorted file that `tools/valsort` checks.
//!
//! A line shorter than a key is not a record: the map fails with the file and the line,
//! rather than sort something that is not what the user meant to sort.

use mrapp::{export_app, Emitter};

/// Bytes of a record's key.
pub const KEY_LEN: usize = 10;

fn map(filename: &str, contents: &str, out: &mut Emitter) {
    // Each line is a record less its final '\n' (its '\r' stays in the value, so that
    // reduce writes the record back byte for byte). The text after the last '\n' is a
    // record only if it is not empty (a file cut mid-record is still sorted).
    let mut lines = contents.split('\n');
    let last = if contents.ends_with('\n') {
        lines.next_back();
        None
    } else {
        lines.next_back()
    };
    for line in lines.chain(last.filter(|l| !l.is_empty())) {
        match (line.get(..KEY_LEN), line.get(KEY_LEN..)) {
            (Some(key), Some(rest)) => out.emit(key, rest),
            _ => panic!(
                "{filename}: a line of {} bytes is not a record with a {KEY_LEN}-byte ASCII key \
                 (sort takes gensort -a records, 100 bytes each): {:?}",
                line.len(),
                line.chars().take(40).collect::<String>()
            ),
        }
    }
}

/// Every record of `key`, as it came in (values arrive in map order).
fn reduce(key: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(values.iter().map(|v| KEY_LEN + v.len() + 1).sum());
    for v in values {
        out.push_str(key);
        out.push_str(v);
        out.push('\n');
    }
    out
}

export_app!(map: map, reduce: reduce, raw_output);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_gives_back_each_record_byte_for_byte() {
        assert_eq!(
            reduce("AsfAGHM5om", &["  0000\r", "  0001\r"]),
            "AsfAGHM5om  0000\r\nAsfAGHM5om  0001\r\n"
        );
    }
}
