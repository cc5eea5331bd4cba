//! Test fixture: a loadable shared library that exports one unrelated function and none
//! of the mr entry points, so the plugin host must refuse it as "not an mr app".

/// Unrelated to mr; only here so the library exports something.
#[no_mangle]
pub extern "C" fn testlib_noapp_answer() -> u32 {
    42
}
