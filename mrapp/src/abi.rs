//! The C ABI between an app library and the `mr` host: the only things that cross it
//! are the `#[repr(C)]` types and `extern "C"` function pointers below.
//!
//! Exported symbols (all `extern "C"`):
//! - `mr_abi_version() -> u32`: must return [`MR_ABI_VERSION`].
//! - `mr_map(filename, contents, emit, counters, err) -> i32`: hands the pairs it emits
//!   to `emit`, any number per call ([`MrEmit`]; the SDK passes one: buffering them
//!   measured slower than the call it saves).
//! - `mr_reduce(key, values, out, counters, err) -> i32`: reads the key's values from
//!   [`MrValues`], batch after batch (so that one key's values need not fit in memory),
//!   and calls `out` with the result, in one piece or several (the host appends them).
//! - `mr_combine(...)` (optional): same signature as `mr_reduce`.
//! - `mr_raw_output() -> u32` (optional): non-zero if reduce's result is written to the
//!   output as is (the app writes whole lines, newlines included), rather than as
//!   `key result` lines.
//!
//! Every call may add to named counters through [`MrCounters`]; the host keeps only the
//! counts of attempts whose output is committed, so a re-run or a backup attempt never
//! counts twice.
//!
//! Every function returns [`MR_OK`] or [`MR_FAILED`]; on failure it has called `err` with
//! a UTF-8 message (a caught panic). All byte slices passed to the app are valid UTF-8
//! (the host guarantees it: input is decoded lossily, and keys and values come back
//! exactly as an app emitted them, checksummed on disk) and live only for the duration
//! of the call (a batch of values: until the next `next` call); the app copies what it
//! keeps.
//!
//! Version history: 1 had one emit call per pair, all of a key's values in one array
//! and no counters. A version-1 app is refused with a message to rebuild it.

use std::ffi::c_void;

/// The ABI version described by this module. Bump it on any change to the symbols or types.
pub const MR_ABI_VERSION: u32 = 2;

/// Name of the version symbol, NUL-terminated for `dlsym`.
pub const SYM_ABI_VERSION: &[u8] = b"mr_abi_version\0";
/// Name of the map symbol.
pub const SYM_MAP: &[u8] = b"mr_map\0";
/// Name of the reduce symbol.
pub const SYM_REDUCE: &[u8] = b"mr_reduce\0";
/// Name of the optional combiner symbol.
pub const SYM_COMBINE: &[u8] = b"mr_combine\0";
/// Name of the optional raw-output symbol.
pub const SYM_RAW_OUTPUT: &[u8] = b"mr_raw_output\0";

/// Returned by an entry point that completed.
pub const MR_OK: i32 = 0;
/// Returned by an entry point that failed (the message went to its `err` sink).
pub const MR_FAILED: i32 = 1;

/// A borrowed byte slice.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MrBytes {
    /// Start of the bytes (may dangle when `len` is 0). Bytes the host passes to an app
    /// never have a null pointer (they always come from a Rust slice); an app may pass
    /// null with `len` 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl MrBytes {
    /// Borrows `s` for the duration of a call.
    pub fn from_slice(s: &[u8]) -> Self {
        MrBytes {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

/// One key/value pair.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MrPair {
    /// The key.
    pub key: MrBytes,
    /// The value.
    pub value: MrBytes,
}

/// Receives map's pairs, any number per call (a batch lets an app that has many pairs at
/// hand pass them with one indirect call).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MrEmit {
    /// Host state, passed back unchanged.
    pub ctx: *mut c_void,
    /// Called with `n` pairs at `pairs`; they are valid only during the call.
    pub call: unsafe extern "C" fn(ctx: *mut c_void, pairs: *const MrPair, n: usize),
}

/// The values of one key, in batches. The first batch comes with the call; when `more`
/// is non-zero, `next` replaces the batch with the following one until it returns 0.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MrValues {
    /// Host state, passed back unchanged.
    pub ctx: *mut c_void,
    /// The first batch: `n_first` values at `first`.
    pub first: *const MrBytes,
    /// How many values `first` holds.
    pub n_first: usize,
    /// Non-zero when more values follow the first batch.
    pub more: u32,
    /// Writes the next batch's start and length to `values` and `n` and returns
    /// non-zero, or returns 0 when no value is left. Each call ends the life of the
    /// batch before it.
    pub next:
        unsafe extern "C" fn(ctx: *mut c_void, values: *mut *const MrBytes, n: *mut usize) -> u32,
}

/// Adds to the app's named counters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MrCounters {
    /// Host state, passed back unchanged.
    pub ctx: *mut c_void,
    /// Adds `delta` to the counter called `name` (UTF-8).
    pub add: unsafe extern "C" fn(ctx: *mut c_void, name: MrBytes, delta: u64),
}

/// Receives one byte string (a reduce result or an error message).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MrSink {
    /// Host state, passed back unchanged.
    pub ctx: *mut c_void,
    /// Called with the bytes; valid only during the call.
    pub call: unsafe extern "C" fn(ctx: *mut c_void, bytes: MrBytes),
}

/// Signature of `mr_abi_version`.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// Signature of `mr_raw_output`.
pub type RawOutputFn = unsafe extern "C" fn() -> u32;
/// Signature of `mr_map`.
pub type MapFnPtr = unsafe extern "C" fn(
    filename: MrBytes,
    contents: MrBytes,
    emit: MrEmit,
    counters: MrCounters,
    err: MrSink,
) -> i32;
/// Signature of `mr_reduce` and `mr_combine`.
pub type ReduceFnPtr = unsafe extern "C" fn(
    key: MrBytes,
    values: MrValues,
    out: MrSink,
    counters: MrCounters,
    err: MrSink,
) -> i32;
