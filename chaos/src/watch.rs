//! The atomicity watcher: a thread that polls the run directory every few milliseconds
//! and reads each `mr-out-*` as soon as it appears, and again whenever its inode, size
//! or mtime changes. Every distinct content seen is kept, so that the run can check that
//! each one equals the file's final content: a reader never saw a partial file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the directory is listed.
const POLL: Duration = Duration::from_millis(3);

/// What identifies one version of a file.
type Version = (u64, u64, i64, i64);

/// Contents seen per file name.
pub type Observed = BTreeMap<String, Vec<Vec<u8>>>;

/// The running watcher.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Observed>>,
}

impl Watcher {
    /// Starts watching `dir`.
    pub fn start(dir: &Path) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let dir = dir.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || watch(&dir, &flag));
        Watcher {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops after one last look, and returns every content seen.
    pub fn finish(mut self) -> Observed {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => Observed::new(),
        }
    }
}

impl Drop for Watcher {
    /// A run that fails early still stops its watcher.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(dir: &Path, stop: &AtomicBool) -> Observed {
    let mut seen: HashMap<String, Version> = HashMap::new();
    let mut observed = Observed::new();
    loop {
        // Read the flag before looking, so the last pass happens after the stop.
        let last = stop.load(Ordering::SeqCst);
        for (name, path) in outputs(dir) {
            // Open first and stat the open file, so the version matches what is read.
            let Ok(mut f) = File::open(&path) else {
                continue;
            };
            let Ok(m) = f.metadata() else { continue };
            let version = (m.ino(), m.len(), m.mtime(), m.mtime_nsec());
            if seen.get(&name) == Some(&version) {
                continue;
            }
            let mut content = Vec::with_capacity(m.len() as usize);
            if f.read_to_end(&mut content).is_err() {
                continue;
            }
            seen.insert(name.clone(), version);
            let contents = observed.entry(name).or_default();
            if !contents.contains(&content) {
                contents.push(content);
            }
        }
        if last {
            return observed;
        }
        std::thread::sleep(POLL);
    }
}

/// The `mr-out-*` files in `dir`, by name.
pub fn outputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("mr-out-").then(|| (name, e.path()))
        })
        .collect();
    out.sort();
    out
}
