//! The one commit primitive: writing a file so that it appears whole or not at all. A
//! temp file in the destination's directory (same filesystem, so the rename is atomic),
//! renamed over the destination only once everything is written (and, when durable,
//! fsynced, then the directory fsynced so that the rename survives a crash). Temp names
//! start with [`TEMP_PREFIX`] so that leftovers of killed workers can be recognised and
//! swept.
//!
//! Every final file goes through [`AtomicFile`]: intermediate `mr-X-Y` files, the reduce
//! output a worker writes into a shared directory, the reduce output the coordinator
//! stores for a remote worker, and mrsequential's output. Why both ways of committing
//! `mr-out-Y` are safe although only one checks the attempt:
//!
//! - **Shared directory** (Unix socket): the worker commits with [`AtomicFile::commit`]
//!   and no attempt check, so a revoked attempt that is still running may rename over a
//!   file another attempt committed. Harmless: apps are deterministic, so every attempt
//!   writes the same bytes, and each rename replaces one whole file with another; no
//!   reader ever sees a partial file, and the coordinator counts only the current
//!   attempt's report.
//! - **Over the network**: the coordinator writes the uploaded bytes with
//!   [`AtomicFile::prepare`] (outside its lock: it may be slow), then checks that the
//!   attempt is still current and [`Prepared::rename`]s under its lock (one quick system
//!   call), so a revoked attempt's upload never lands. The same determinism would make a
//!   late copy harmless too; refusing it keeps the rule simple: only the current attempt
//!   writes.

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

    /// A second handle on the temp file for async writers (e.g. a network copy). Write
    /// through one handle only, and flush it before [`AtomicFile::prepare`].
    pub fn tokio_file(&self) -> io::Result<tokio::fs::File> {
        Ok(tokio::fs::File::from_std(
            self.out.get_ref().as_file().try_clone()?,
        ))
    }

    /// Flushes, optionally fsyncs, and renames onto the destination (then, if durable,
    /// fsyncs the directory).
    pub fn commit(self, durable: bool) -> io::Result<()> {
        let dir = self.dir();
        self.prepare(durable)?.rename()?;
        if durable {
            sync_dir(&dir);
        }
        Ok(())
    }

    /// The first half of a commit: everything but the rename (flush, and fsync if
    /// `durable`). Nothing is visible under the final name yet; dropping the result
    /// deletes the temp file.
    pub fn prepare(self, durable: bool) -> io::Result<Prepared> {
        let tmp = self.out.into_inner().map_err(|e| e.into_error())?;
        if durable {
            tmp.as_file().sync_all()?;
        }
        Ok(Prepared {
            tmp,
            dest: self.dest,
        })
    }

    fn dir(&self) -> PathBuf {
        match self.dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// A temp file written in full, waiting for its rename ([`AtomicFile::prepare`]).
pub struct Prepared {
    tmp: NamedTempFile,
    dest: PathBuf,
}

impl Prepared {
    /// The second half of a commit: the rename, one quick system call (so it can be
    /// made under a lock, after a last check). A durable caller then calls
    /// [`sync_dir`] on the destination's directory, outside the lock.
    pub fn rename(self) -> io::Result<()> {
        self.tmp.persist(&self.dest).map(drop).map_err(|e| e.error)
    }
}

/// Makes renames in `dir` durable; best effort, as not every filesystem allows it.
pub fn sync_dir(dir: &Path) {
    let _ = File::open(dir).and_then(|d| d.sync_all());
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
