//! Sort: orders 100-byte Sort Benchmark records (`gensort -a`: a 10-byte printable key,
//! then 88 bytes of payload, then `\r\n`) by their key. Map keys each line by its first 10
//! bytes; reduce writes every record of a key back exactly as it came (raw output, so no
//! `key value` reformatting). With `--partition range`, `mr-out-0`, `mr-out-1`, … in order
//! are one sorted file that `tools/valsort` checks.
//!
//! A line shorter than a key is not a record: the map fails with the file and the line,
//! rather than sort something that is not what the user meant to sort.

use mrapp::{export_app, Emitter, Output};

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

/// Every record of `key`, as it came in (values arrive in map order), written straight
/// to the output: a sort calls reduce once per record, so no `String` is built.
fn reduce(key: &str, values: &[&str], out: &mut Output) {
    for v in values {
        out.write(key);
        out.write(v);
        out.write("\n");
    }
}

export_app!(map: map, reduce: reduce, raw_output);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_gives_back_each_record_byte_for_byte() {
        // Through the C ABI, as the host calls it.
        let app = mr_reduce_via_abi("AsfAGHM5om", &["  0000\r", "  0001\r"]);
        assert_eq!(app, "AsfAGHM5om  0000\r\nAsfAGHM5om  0001\r\n");
    }

    fn mr_reduce_via_abi(key: &str, values: &[&str]) -> String {
        use mrapp::abi::{MrBytes, MrCounters, MrSink, MrValues, MR_OK};
        use std::ffi::c_void;
        unsafe extern "C" fn append(ctx: *mut c_void, b: MrBytes) {
            let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
            out.extend_from_slice(unsafe { b.as_slice() });
        }
        unsafe extern "C" fn no_more(_: *mut c_void, _: *mut *const MrBytes, _: *mut usize) -> u32 {
            0
        }
        unsafe extern "C" fn add(_: *mut c_void, _: MrBytes, _: u64) {}
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let raw: Vec<MrBytes> = values
            .iter()
            .map(|v| MrBytes::from_slice(v.as_bytes()))
            .collect();
        let sink = |v: &mut Vec<u8>| MrSink {
            ctx: v as *mut Vec<u8> as *mut c_void,
            call: append,
        };
        let values = MrValues {
            ctx: std::ptr::null_mut(),
            first: raw.as_ptr(),
            n_first: raw.len(),
            more: 0,
            next: no_more,
        };
        let counters = MrCounters {
            ctx: std::ptr::null_mut(),
            add,
        };
        let rc = unsafe {
            mr_reduce(
                MrBytes::from_slice(key.as_bytes()),
                values,
                sink(&mut out),
                counters,
                sink(&mut err),
            )
        };
        assert_eq!(rc, MR_OK, "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    }
}
