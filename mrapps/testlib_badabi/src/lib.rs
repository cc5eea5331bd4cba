//! Test fixture: an app of ABI version 1, the one before batched emits, streamed values
//! and counters: it exports version 1's entry points by hand (without `export_app!`), so
//! the plugin host must refuse it, with the message to rebuild, before calling map or
//! reduce.

use mrapp::abi::{MrBytes, MrEmit, MrSink, MR_FAILED};

/// The ABI version this library was built for: not the one the host speaks.
#[no_mangle]
pub extern "C" fn mr_abi_version() -> u32 {
    1
}

/// Never called by a correct host; fails if it is.
///
/// # Safety
/// Follows `mrapp::abi` (it touches none of its arguments).
#[no_mangle]
pub unsafe extern "C" fn mr_map(
    _filename: MrBytes,
    _contents: MrBytes,
    _emit: MrEmit,
    _err: MrSink,
) -> i32 {
    MR_FAILED
}

/// Never called by a correct host; fails if it is.
///
/// # Safety
/// Follows `mrapp::abi` (it touches none of its arguments).
#[no_mangle]
pub unsafe extern "C" fn mr_reduce(
    _key: MrBytes,
    _values: *const MrBytes,
    _n_values: usize,
    _out: MrSink,
    _err: MrSink,
) -> i32 {
    MR_FAILED
}
