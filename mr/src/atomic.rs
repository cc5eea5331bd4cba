//! Writing a file so that it appears whole or not at all: a temp file in the destination's
//! directory (same filesystem, so the rename is atomic), renamed over the destination
//! only once everything is written. Temp names start with [`TEMP_PREFIX`] so that
//! leftovers of killed workers can be recognised and swept.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Prefix of every temp file `mr` creates.
pub const TEMP_PREFIX: &str = ".mr-tmp-";

/// A file being written; invisible under its final name until [`AtomicFile::commit`].
/// Dropped without commit, the temp file is deleted.
pub struct AtomicFile {
    out: BufWriter<NamedTempFile>,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing what will become `dest`.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        Ok(AtomicFile {
            out: BufWriter::with_capacity(1 << 20, tmp),
            dest: dest.to_path_buf(),
        })
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, optionally fsyncs, and renames onto the destination.
    pub fn commit(self, durable: bool) -> io::Result<()> {
        let tmp = self.out.into_inner().map_err(|e| e.into_error())?;
        if durable {
            tmp.as_file().sync_all()?;
        }
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        if durable {
            if let Some(dir) = self.dest.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                // Make the rename itself durable; not every filesystem allows it.
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Removes `mr` temp files left in `dir` by processes that died mid-write.
/// Returns how many were removed.
pub fn sweep_temp_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_before_commit_and_all_after() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!dest.exists());
        f.commit(true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropping_without_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn sweep_removes_only_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".mr-tmp-abc"), b"x").unwrap();
        std::fs::write(dir.path().join("mr-out-0"), b"x").unwrap();
        assert_eq!(sweep_temp_files(dir.path()).unwrap(), 1);
        assert!(dir.path().join("mr-out-0").exists());
    }
}
