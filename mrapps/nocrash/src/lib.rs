//! Test app: the crash app's map and reduce without crashes or stalls; its
//! mrsequential output is what the crash test compares against.

fn maybe_crash() {}

#[path = "../../common/crash_app.rs"]
mod app;
