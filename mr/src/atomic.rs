//! The one commit primitive: writing a file so that it appears whole or not at all. A
//! temp file in the destination's directory (same filesystem, so the rename is atomic),
//! renamed over the destination only once everything is written (and, when durable,
//! fsynced, then the directory fsynced so that the rename survives a crash). Temp names
//! start with [`TEMP_PREFIX`] so that leftovers of killed workers can be recognised and
//! swept.
//!
//! On Linux the temp file is an unnamed inode (`O_TMPFILE`) in that directory, linked
//! under its final name at commit: one directory entry made per file instead of a temp
//! name created, then removed by the rename, then the final one made. A map writes R
//! files, so in a directory of 100,000 intermediates those directory operations were
//! most of a small task's time (docs/performance.md). Such a file leaves nothing behind
//! if its writer dies. If the destination exists already (a re-run), the file is linked
//! under a temp name and renamed over it, as before. Filesystems without `O_TMPFILE`
//! get a named temp file.
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

/// Prefix of every temp file `mr` creates.
pub const TEMP_PREFIX: &str = ".mr-tmp-";

/// A file being written; invisible under its final name until [`AtomicFile::commit`].
/// Dropped without commit, the temp file is deleted.
pub struct AtomicFile {
    out: BufWriter<File>,
    tmp: Temp,
    dest: PathBuf,
}

/// Where the bytes are until the commit.
enum Temp {
    /// An `O_TMPFILE` inode: no name until linked (the file is `AtomicFile::out`'s).
    Unnamed,
    /// A named temp file (deleted on drop); `AtomicFile::out` writes a clone of it.
    Named(tempfile::TempPath),
}

impl AtomicFile {
    /// Starts writing what will become `dest`.
    pub fn create(dest: &Path) -> io::Result<Self> {
        Self::create_in(dest, true)
    }

    /// [`AtomicFile::create`], with an unnamed temp file if `unnamed` and possible.
    fn create_in(dest: &Path, unnamed: bool) -> io::Result<Self> {
        let dir = dir_of(dest);
        let (file, tmp) = match unnamed.then(|| open_unnamed(&dir)).flatten() {
            Some(file) => (file, Temp::Unnamed),
            None => {
                let named = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .tempfile_in(&dir)?;
                let (file, path) = named.into_parts();
                (file, Temp::Named(path))
            }
        };
        Ok(AtomicFile {
            out: BufWriter::with_capacity(1 << 20, file),
            tmp,
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
        Ok(tokio::fs::File::from_std(self.out.get_ref().try_clone()?))
    }

    /// Flushes, optionally fsyncs, and renames onto the destination (then, if durable,
    /// fsyncs the directory).
    pub fn commit(self, durable: bool) -> io::Result<()> {
        let dir = dir_of(&self.dest);
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
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        if durable {
            file.sync_all()?;
        }
        Ok(Prepared {
            file,
            tmp: self.tmp,
            dest: self.dest,
        })
    }
}

/// The directory `dest` will be in.
fn dir_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An unnamed file in `dir`, if the filesystem has `O_TMPFILE` and `/proc/self/fd` is
/// there to link it by (see [`link_unnamed`]).
#[cfg(target_os = "linux")]
fn open_unnamed(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_unnamed(_dir: &Path) -> Option<File> {
    None
}

/// Gives the unnamed `file` the name `dest`; `EEXIST` if that exists.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, dest: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(io::Error::other)?;
    let to = std::ffi::CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: both paths are NUL-terminated strings alive for the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _dest: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// A temp file written in full, waiting for its rename ([`AtomicFile::prepare`]).
pub struct Prepared {
    file: File,
    tmp: Temp,
    dest: PathBuf,
}

impl Prepared {
    /// The second half of a commit: the rename, one quick system call (so it can be
    /// made under a lock, after a last check). A durable caller then calls
    /// [`sync_dir`] on the destination's directory, outside the lock.
    pub fn rename(self) -> io::Result<()> {
        match self.tmp {
            Temp::Named(path) => path.persist(&self.dest).map_err(|e| e.error),
            Temp::Unnamed => match link_unnamed(&self.file, &self.dest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Replacing a file (a re-run's output): a link cannot, a rename can.
                    let dir = dir_of(&self.dest);
                    loop {
                        let name = dir.join(format!(
                            "{TEMP_PREFIX}{}-{}",
                            std::process::id(),
                            NEXT_TEMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        ));
                        match link_unnamed(&self.file, &name) {
                            Ok(()) => {
                                let renamed = std::fs::rename(&name, &self.dest);
                                if renamed.is_err() {
                                    let _ = std::fs::remove_file(&name);
                                }
                                return renamed;
                            }
                            // A leftover of a dead process with this pid: next name.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
                other => other,
            },
        }
    }
}

/// Numbers the temp names of [`Prepared::rename`]'s replacing path.
static NEXT_TEMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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

    /// Both kinds of temp file: unnamed (where the filesystem allows) and named.
    #[test]
    fn a_commit_replaces_an_existing_file_whole_and_leaves_no_temp_file() {
        for unnamed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("mr-1-2");
            for (round, body) in [&b"first"[..], b"second, longer"].iter().enumerate() {
                let mut f = AtomicFile::create_in(&dest, unnamed).unwrap();
                f.write_all(body).unwrap();
                assert_eq!(
                    std::fs::read_dir(dir.path()).unwrap().count(),
                    round + usize::from(!unnamed),
                    "before the commit: the old file, and a named temp file if any"
                );
                f.commit(round == 1).unwrap();
                assert_eq!(std::fs::read(&dest).unwrap(), *body);
                let names: Vec<_> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(names, ["mr-1-2"], "unnamed: {unnamed}");
            }
            let mut f = AtomicFile::create_in(&dest, unnamed).unwrap();
            f.write_all(b"dropped").unwrap();
            drop(f);
            assert_eq!(std::fs::read(&dest).unwrap(), b"second, longer");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_temp_file_is_unnamed_where_the_filesystem_allows() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::create(&dir.path().join("out")).unwrap();
        if open_unnamed(dir.path()).is_some() {
            assert!(matches!(f.tmp, Temp::Unnamed));
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
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
