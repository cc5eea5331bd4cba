//! Map output kept on this worker's disk, for clusters without a shared filesystem: a
//! private directory, and the data server through which reducers elsewhere fetch it.
//!
//! The directory (`WORK_DIR/mr-shuffle-*`) holds a locked file for as long as its worker
//! lives. A lock dies with its process, so a worker starting in the same work directory
//! can tell the leftovers of a killed one (unlocked) from a live neighbour's (locked),
//! and removes them. A worker removes its own directory when it exits.

use mr::auth::Channel;
use mr::data::{self, DataReply, DataRequest, Refusal};
use mr::intermediate::FormatError;
use mr::rpc::{Io, Listener};
use mr::secure::{self, Accepted, Guard, Server};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tracing::{debug, info, warn};

/// Prefix of a worker's map output directory.
pub const DIR_PREFIX: &str = "mr-shuffle-";
const LOCK: &str = ".lock";

/// Connections the data server serves at once (reducers fetch one file per connection).
const MAX_CONNECTIONS: usize = 64;

/// This worker's map output directory; removed on drop.
#[derive(Debug)]
pub struct ShuffleDir {
    path: PathBuf,
    _lock: File,
}

impl ShuffleDir {
    /// Removes stale directories of dead workers from `work_dir`, then makes this
    /// worker's. Returns it and how many stale ones were removed.
    pub fn create(work_dir: &Path) -> io::Result<(ShuffleDir, usize)> {
        let stale = sweep_stale(work_dir)?;
        // Made under a temp name and renamed once locked, so that a sweep running at the
        // same time never sees it unlocked.
        let prefix = format!("{}shuffle-", mr::atomic::TEMP_PREFIX);
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(work_dir)?;
        let lock = File::create(tmp.path().join(LOCK))?;
        if !try_lock(&lock)? {
            return Err(io::Error::other("cannot lock a fresh directory"));
        }
        let random = tmp.path().file_name().unwrap_or_default().to_string_lossy();
        let random = random.strip_prefix(&prefix).unwrap_or(&random);
        let path = work_dir.join(format!("{DIR_PREFIX}{}-{random}", std::process::id()));
        std::fs::rename(tmp.keep(), &path)?;
        Ok((ShuffleDir { path, _lock: lock }, stale))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShuffleDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            warn!(dir = %self.path.display(), error = %e, "cannot remove map output");
        }
    }
}

/// Takes an exclusive lock on `file` without waiting; false if another holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a valid, open file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Removes every `mr-shuffle-*` directory in `work_dir` whose worker is gone.
fn sweep_stale(work_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(work_dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX)
            || !entry.file_type()?.is_dir()
        {
            continue;
        }
        let dir = entry.path();
        let dead = match File::open(dir.join(LOCK)) {
            Ok(f) => try_lock(&f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
        };
        if dead {
            info!(dir = %dir.display(), "removing map output of a worker that is gone");
            std::fs::remove_dir_all(&dir)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Serves the map output files in `dir` to reducers that prove the token, until the
/// returned server is dropped.
pub fn serve(listener: Listener, dir: PathBuf, guard: Guard) -> Server {
    serve_with_limit(listener, dir, guard, MAX_CONNECTIONS)
}

/// [`serve`], with at most `limit` transfers at once. A reducer over the limit is told
/// [`Refusal::Busy`] (it waits and asks again) rather than dropped, which it would take
/// for lost map output; telling it takes a handshake, so only `limit` more connections
/// at a time are told, and any beyond those are dropped.
pub fn serve_with_limit(listener: Listener, dir: PathBuf, guard: Guard, limit: usize) -> Server {
    secure::serve(listener, guard, limit, "data server", move |conn| {
        let dir = dir.clone();
        async move {
            let Accepted {
                mut io,
                channel,
                peer,
                over_limit,
            } = conn;
            if channel != Channel::Data {
                warn!(%peer, "data server: a control connection; this is a worker, not the coordinator");
                return;
            }
            if over_limit {
                debug!(%peer, "data server: at its limit; telling a reducer to wait");
                // Hear the request out, then answer it: closing before reading would
                // break the reducer's write, not tell it.
                if data::read_frame::<_, DataRequest>(&mut io).await.is_ok() {
                    let _ = data::write_frame(&mut io, &DataReply::Refused(Refusal::Busy)).await;
                }
                return;
            }
            if let Err(e) = answer(&mut io, &dir).await {
                debug!(%peer, error = %e, "data server: transfer failed");
            }
        }
    })
}

async fn answer(io: &mut Box<dyn Io>, dir: &Path) -> io::Result<()> {
    let req: DataRequest = data::read_frame(io).await?;
    let name = match req {
        DataRequest::MapOutput { name } if data::is_map_output_name(&name) => name,
        other => {
            let why = Refusal::NotServed(format!("{other:?}"));
            return data::write_frame(io, &DataReply::Refused(why)).await;
        }
    };
    // `mr-X-Y` itself, or its range of the packed `mr-X.data` (mr::packed).
    let path = dir.join(&name);
    let opened = tokio::task::spawn_blocking(move || {
        mr::packed::open(&path).and_then(|s| Ok(s.into_parts()?))
    })
    .await
    .map_err(io::Error::other)?;
    let (file, len) = match opened {
        Ok(f) => f,
        Err(e) => {
            let why = match e {
                FormatError::Io(e) if e.kind() == io::ErrorKind::NotFound => {
                    Refusal::NoSuchFile { name }
                }
                e => Refusal::Unreadable {
                    name,
                    error: e.to_string(),
                },
            };
            return data::write_frame(io, &DataReply::Refused(why)).await;
        }
    };
    debug!(file = %name, len, "serving map output");
    data::send_file(io, tokio::fs::File::from_std(file), len).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_workers_directory_is_swept_and_a_live_ones_is_kept() {
        let work = tempfile::tempdir().unwrap();
        let (live, stale) = ShuffleDir::create(work.path()).unwrap();
        assert_eq!(stale, 0);
        std::fs::write(live.path().join("mr-0-0"), b"x").unwrap();
        // A killed worker's directory: its lock file is there but nobody holds it.
        let dead = work.path().join(format!("{DIR_PREFIX}999-abc"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("mr-1-0"), b"x").unwrap();
        let (other, stale) = ShuffleDir::create(work.path()).unwrap();
        assert_eq!(stale, 1);
        assert!(!dead.exists());
        assert!(
            live.path().join("mr-0-0").exists(),
            "a live worker's output was removed"
        );
        let (p1, p2) = (live.path().to_path_buf(), other.path().to_path_buf());
        drop(live);
        drop(other);
        assert!(!p1.exists() && !p2.exists());
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    }

    async fn local() -> (Listener, String) {
        let l = Listener::bind(&mr::rpc::Addr::Tcp("127.0.0.1:0".into()))
            .await
            .unwrap();
        let a = l.local_addr().unwrap().to_string();
        (l, a)
    }

    fn tls(token: &str) -> Guard {
        Guard::tls(mr::auth::Token::new(token)).unwrap()
    }

    #[tokio::test]
    async fn a_partition_of_a_packed_map_output_is_served_as_its_own_file() {
        let work = tempfile::tempdir().unwrap();
        // Map 4's three partitions packed into one file, and each written alone.
        let partitions: Vec<Vec<_>> = (0..3)
            .map(|y| vec![(format!("key{y}").into_bytes(), b"1".to_vec())])
            .collect();
        mr::packed::write_file(&work.path().join(mr::task::packed_name(4)), &partitions).unwrap();
        let alone: Vec<Vec<u8>> = (0..3)
            .map(|y| {
                let one = work.path().join(format!("alone-{y}"));
                mr::intermediate::write_file(&one, [(format!("key{y}").as_bytes(), &b"1"[..])])
                    .unwrap();
                std::fs::read(one).unwrap()
            })
            .collect();
        let (listener, server) = local().await;
        let token = tls("t");
        let _task = serve(listener, work.path().to_path_buf(), token.clone());
        for (y, want) in alone.iter().enumerate() {
            let mut out = Vec::new();
            let name = mr::task::intermediate_name(4, y as u32);
            data::get(&server, &token, &DataRequest::MapOutput { name }, &mut out)
                .await
                .unwrap();
            assert_eq!(&out, want, "partition {y}");
        }
        // Past the last partition: unreadable (its map re-runs), never other bytes.
        let mut out = Vec::new();
        let name = mr::task::intermediate_name(4, 3);
        let e = data::get(&server, &token, &DataRequest::MapOutput { name }, &mut out)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                data::DataError::Refused {
                    reason: Refusal::Unreadable { .. },
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_data_server_serves_map_output_only_to_token_holders() {
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("mr-3-1"), b"the bytes").unwrap();
        std::fs::write(work.path().join("secret"), b"no").unwrap();
        let (listener, server) = local().await;
        let token = tls("t");
        let task = serve(listener, work.path().to_path_buf(), token.clone());
        let get = |name: &str, token: Guard| {
            let (server, name) = (server.clone(), name.to_string());
            async move {
                let mut out = Vec::new();
                data::get(&server, &token, &DataRequest::MapOutput { name }, &mut out)
                    .await
                    .map(|_| out)
            }
        };
        assert_eq!(get("mr-3-1", token.clone()).await.unwrap(), b"the bytes");
        let e = get("secret", token.clone()).await.unwrap_err();
        assert!(
            matches!(
                e,
                data::DataError::Refused {
                    reason: Refusal::NotServed(_),
                    ..
                }
            ),
            "{e}"
        );
        let e = get("mr-9-9", token.clone()).await.unwrap_err();
        assert!(
            matches!(
                e,
                data::DataError::Refused {
                    reason: Refusal::NoSuchFile { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = get("mr-3-1", tls("wrong")).await.unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        drop(task);
    }

    #[tokio::test]
    async fn a_busy_data_server_makes_the_reducer_wait_not_fail() {
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("mr-0-0"), b"bytes").unwrap();
        let (listener, server) = local().await;
        let token = tls("t");
        let task = serve_with_limit(listener, work.path().to_path_buf(), token.clone(), 1);
        // One reducer holds the only slot (connected, request not yet sent).
        let holder = data::open(&server, &token).await.unwrap();
        let (s2, t2) = (server.clone(), token.clone());
        let waiting = tokio::spawn(async move {
            let mut out = Vec::new();
            let req = DataRequest::MapOutput {
                name: "mr-0-0".into(),
            };
            data::get(&s2, &t2, &req, &mut out).await.map(|_| out)
        });
        // It is told "busy" and asks again until the slot is free.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if waiting.is_finished() {
            panic!("a busy server failed the reducer: {:?}", waiting.await);
        }
        drop(holder);
        assert_eq!(waiting.await.unwrap().unwrap(), b"bytes");
        drop(task);
    }
}
