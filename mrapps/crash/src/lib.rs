//! Test app for the crash test: in about a third of map and reduce calls the process
//! exits at once, in another third it stalls for up to 10 s. Output as `nocrash`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random number below `n`, from the standard library's per-process random keys.
fn random_below(n: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() % n
}

fn maybe_crash() {
    let r = random_below(1000);
    if r < 330 {
        std::process::exit(1);
    } else if r < 660 {
        std::thread::sleep(Duration::from_millis(random_below(10_000)));
    }
}

#[path = "../../common/crash_app.rs"]
mod app;
