//! Shared by the `mtiming` and `rtiming` test apps: how many workers are running this
//! phase right now? Each caller drops a file `mr-worker-PHASE-PID`, counts the files whose
//! PID is alive (kill(pid, 0)), waits a second so that overlaps are seen, and removes its file.

use std::time::Duration;

pub fn nparallel(phase: &str) -> usize {
    let pid = std::process::id();
    let mine = format!("mr-worker-{phase}-{pid}");
    if let Err(e) = std::fs::write(&mine, b"x") {
        panic!("cannot create {mine}: {e}");
    }
    let prefix = format!("mr-worker-{phase}-");
    let mut alive = 0;
    let entries = match std::fs::read_dir(".") {
        Ok(e) => e,
        Err(e) => panic!("cannot read the working directory: {e}"),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if let Ok(other) = rest.parse::<libc::pid_t>() {
            // SAFETY: kill with signal 0 only checks that the process exists.
            if unsafe { libc::kill(other, 0) } == 0 {
                alive += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    if let Err(e) = std::fs::remove_file(&mine) {
        panic!("cannot remove {mine}: {e}");
    }
    alive
}
