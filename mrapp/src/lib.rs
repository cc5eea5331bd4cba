//! The app SDK for `mr`.
//!
//! An app is a `cdylib` crate with a map and a reduce function (and optionally a
//! combiner). [`export_app!`] wraps them in the C ABI that the `mr` plugin host loads:
//!
//! ```ignore
//! use mrapp::{export_app, KeyValue};
//!
//! fn map(_filename: &str, contents: &str) -> Vec<KeyValue> {
//!     contents.split_whitespace().map(|w| KeyValue::new(w, "1")).collect()
//! }
//!
//! fn reduce(_key: &str, values: &[&str]) -> String {
//!     values.len().to_string()
//! }
//!
//! export_app!(map: map, reduce: reduce);
//! ```
//!
//! `map` may instead take an [`Emitter`] (`fn(&str, &str, &mut Emitter)`) to hand each
//! pair straight to the framework without building a `Vec`; the macro accepts both forms.
//! `reduce` may read its values as a stream ([`Values`]: `fn(&str, &mut Values) ->
//! String` or `fn(&str, &mut Values, &mut Output)`), so that one key may have more
//! values than fit in memory. Any of them may add to named counters with [`count`]:
//!
//! ```ignore
//! fn reduce(_key: &str, values: &mut mrapp::Values) -> String {
//!     let mut n = 0u64;
//!     while let Some(v) = values.next() {
//!         if v.is_empty() {
//!             mrapp::count("empty values", 1);
//!         }
//!         n += 1;
//!     }
//!     n.to_string()
//! }
//! ```
//!
//! # Layout
//! - [`abi`]: the C ABI itself (symbol names, `#[repr(C)]` types, the version number).
//!   This is the whole contract between an app and the host; nothing else crosses it.
//! - [`export`](mod@export): the adapters the macro expands to: UTF-8 checks, panic
//!   catching, conversion between Rust values and ABI slices.
#![warn(missing_docs)]

pub mod abi;
#[doc(hidden)]
pub mod export;

pub use export::{Emitter, MapFn, Output, ReduceFn, Values};

/// Adds `delta` to the app counter `name`, from inside map, reduce or combine.
///
/// Counters appear in the job's summary, report and status page. Only the attempt whose
/// output is kept counts (a re-run or a backup attempt never counts twice), so a counter
/// is exact: "malformed lines", "documents", whatever the app wants to know. Outside a
/// call from the framework (in a unit test, say) it does nothing.
pub fn count(name: &str, delta: u64) {
    export::count(name, delta)
}

/// One intermediate key/value pair produced by `map`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyValue {
    /// The key that decides the reduce partition.
    pub key: String,
    /// The value handed to reduce with all others of the same key.
    pub value: String,
}

impl KeyValue {
    /// A pair from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Exports an app's functions under the C ABI of [`abi`].
///
/// `map` is `fn(&str, &str) -> Vec<KeyValue>` or `fn(&str, &str, &mut Emitter)`;
/// `reduce` and the optional `combine` are `fn(&str, &[&str]) -> String`,
/// `fn(&str, &[&str], &mut Output)` (the result written in pieces, no `String` built),
/// or the streaming forms `fn(&str, &mut Values) -> String` and
/// `fn(&str, &mut Values, &mut Output)`.
/// A combiner runs on each map task's output per key before it is written, so it must
/// produce a value that `reduce` accepts as one of its inputs (e.g. a partial count).
///
/// `raw_output` (`export_app!(map: m, reduce: r, raw_output)`) writes each reduce result
/// to the output file as it is, instead of as a `key result` line: the app returns whole
/// lines, newlines included (the sort app returns its records exactly as they came in).
#[macro_export]
macro_rules! export_app {
    (map: $map:path, reduce: $reduce:path $(,)?) => {
        $crate::export_app!(@common $map, $reduce);
    };
    (map: $map:path, reduce: $reduce:path, raw_output $(,)?) => {
        $crate::export_app!(@common $map, $reduce);

        /// C ABI entry point: reduce results are written as they are.
        #[no_mangle]
        pub extern "C" fn mr_raw_output() -> u32 {
            1
        }
    };
    (map: $map:path, reduce: $reduce:path, combine: $combine:path $(,)?) => {
        $crate::export_app!(@common $map, $reduce);

        /// C ABI entry point: the combiner (same calling convention as reduce).
        ///
        /// # Safety
        /// Called only by the mr host with arguments that follow `mrapp::abi`.
        #[no_mangle]
        pub unsafe extern "C" fn mr_combine(
            key: $crate::abi::MrBytes,
            values: $crate::abi::MrValues,
            out: $crate::abi::MrSink,
            counters: $crate::abi::MrCounters,
            err: $crate::abi::MrSink,
        ) -> i32 {
            $crate::export::reduce_entry(&$combine, key, values, out, counters, err)
        }
    };
    (@common $map:path, $reduce:path) => {
        /// C ABI entry point: the ABI version this app was built against.
        #[no_mangle]
        pub extern "C" fn mr_abi_version() -> u32 {
            $crate::abi::MR_ABI_VERSION
        }

        /// C ABI entry point: map one input split.
        ///
        /// # Safety
        /// Called only by the mr host with arguments that follow `mrapp::abi`.
        #[no_mangle]
        pub unsafe extern "C" fn mr_map(
            filename: $crate::abi::MrBytes,
            contents: $crate::abi::MrBytes,
            emit: $crate::abi::MrEmit,
            counters: $crate::abi::MrCounters,
            err: $crate::abi::MrSink,
        ) -> i32 {
            $crate::export::map_entry(&$map, filename, contents, emit, counters, err)
        }

        /// C ABI entry point: reduce one key group.
        ///
        /// # Safety
        /// Called only by the mr host with arguments that follow `mrapp::abi`.
        #[no_mangle]
        pub unsafe extern "C" fn mr_reduce(
            key: $crate::abi::MrBytes,
            values: $crate::abi::MrValues,
            out: $crate::abi::MrSink,
            counters: $crate::abi::MrCounters,
            err: $crate::abi::MrSink,
        ) -> i32 {
            $crate::export::reduce_entry(&$reduce, key, values, out, counters, err)
        }
    };
}
