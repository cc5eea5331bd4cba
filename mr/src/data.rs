//! The data plane: bulk bytes between processes that share no filesystem. Input splits
//! come from the coordinator, map output from the worker that wrote it, and reduce output
//! goes back to the coordinator. Raw bytes, never JSON arrays, and never one giant
//! message: a file is streamed in chunks, with a deadline on each chunk.
//!
//! One request per connection, secured by [`crate::secure`] (TLS on TCP, the token
//! handshake always) on
//! [`Channel::Data`](crate::auth::Channel):
//!
//! ```text
//! get:  client → request            server → Ok { len } and `len` bytes, or Refused
//! put:  client → request            server → Ok { len: 0 }, or Refused
//!       client → `len` bytes        server → Stored { path }, or Refused
//! ```
//! where request and reply are frames: a big-endian `u32` length, then JSON.
//!
//! Every failure is typed, on the wire too: the server's reason is a [`Refusal`], a
//! network failure a [`NetFault`], and this side's own disk a [`LocalFault`]. A server at
//! its connection limit answers [`Refusal::Busy`] rather than dropping the connection,
//! and [`get`] waits and retries (with [`crate::retry::Backoff`]), so that load is never
//! taken for lost data.

use crate::auth::Channel;
use crate::ids::{Attempt, TaskId, WorkerId};
use crate::retry::Backoff;
use crate::rpc::{dial, Addr, Io};
use crate::secure::Guard;
use crate::task::{LocalFault, Split};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Largest request or reply frame (they carry names, not data).
pub const MAX_FRAME: u32 = 64 << 10;

/// How long a connection to a data server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a transfer may make no progress before it is abandoned: a frozen or vanished
/// peer must turn into an error (and, for map output, a re-run), not a hang.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`get`] keeps retrying a busy server before it gives up (as a failure of
/// this side's link, never as lost data).
pub const BUSY_PATIENCE: Duration = Duration::from_secs(60);

/// What a client asks of a data server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataRequest {
    /// The lines a split owns, as [`crate::split::read_split`] reads them (coordinator).
    Split(Split),
    /// A map output file `mr-X-Y` by name (the worker that wrote it).
    MapOutput {
        /// The file's name.
        name: String,
    },
    /// A reduce task's final output, for the coordinator to store (the bytes follow).
    PutOutput {
        /// Who ran the task.
        worker: WorkerId,
        /// The reduce task.
        task: TaskId,
        /// The attempt that produced the bytes; only the current one is stored.
        attempt: Attempt,
        /// How many bytes follow.
        len: u64,
    },
}

/// A data server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataReply {
    /// Granted; for a get, `len` bytes follow.
    Ok {
        /// Bytes that follow.
        len: u64,
    },
    /// A put was stored at this path (on the server's machine).
    Stored {
        /// Where.
        path: PathBuf,
    },
    /// Not granted, and why.
    Refused(Refusal),
}

/// Why a data server said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// It is at its connection limit: try again shortly.
    #[error("busy (at its connection limit)")]
    Busy,
    /// It has no such file.
    #[error("no file {name}")]
    NoSuchFile {
        /// The name asked for.
        name: String,
    },
    /// The file is there but cannot be read.
    #[error("cannot read {name}: {error}")]
    Unreadable {
        /// The file.
        name: String,
        /// The OS error.
        error: String,
    },
    /// The split asked for is not one of the job's inputs.
    #[error("{0} is not an input split of this job")]
    NotAnInput(String),
    /// This server does not serve that kind of request.
    #[error("this server does not serve {0}")]
    NotServed(String),
    /// Reduce output of an attempt that is not the task's current one (or of a task
    /// with no final output).
    #[error("output of {task} attempt {attempt}: {why}")]
    NotCurrent {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: Attempt,
        /// Why.
        why: crate::task::Refusal,
    },
}

/// How the network failed a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetFault {
    /// No connection (refused, unreachable, or not within [`CONNECT_TIMEOUT`]).
    Connect,
    /// TLS or the token handshake failed.
    Handshake,
    /// The peer made no progress for [`IDLE_TIMEOUT`].
    Timeout,
    /// The connection broke off, or the peer spoke out of turn.
    Broken,
}

impl NetFault {
    fn of(e: &io::Error) -> NetFault {
        if e.kind() == io::ErrorKind::TimedOut {
            NetFault::Timeout
        } else {
            NetFault::Broken
        }
    }
}

/// A transfer that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The server said no (missing file, stale attempt, not a job input, busy).
    #[error("{server} refused: {reason}")]
    Refused {
        /// The data server.
        server: String,
        /// Its reason.
        reason: Refusal,
    },
    /// The server could not be reached, or the transfer broke off.
    #[error("{server}: {error}")]
    Failed {
        /// The data server.
        server: String,
        /// How.
        fault: NetFault,
        /// What went wrong.
        error: String,
    },
    /// This side's own file could not be written (a get) or read (a put): the peer is
    /// not at fault.
    #[error("{error}")]
    Local {
        /// The kind of fault.
        fault: LocalFault,
        /// The OS error.
        error: String,
    },
}

/// Which side of a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source (for a get: the network).
    #[error("{0}")]
    Read(io::Error),
    /// Writing the sink (for a get: the local file).
    #[error("{0}")]
    Write(io::Error),
}

impl From<CopyError> for io::Error {
    fn from(e: CopyError) -> io::Error {
        match e {
            CopyError::Read(e) | CopyError::Write(e) => e,
        }
    }
}

impl DataError {
    fn failed(server: &str, fault: NetFault, error: impl std::fmt::Display) -> Self {
        DataError::Failed {
            server: server.to_string(),
            fault,
            error: error.to_string(),
        }
    }

    fn broken(server: &str, e: io::Error) -> Self {
        DataError::failed(server, NetFault::of(&e), e)
    }

    fn local(e: &io::Error) -> Self {
        DataError::Local {
            fault: LocalFault::of(e),
            error: e.to_string(),
        }
    }

    fn refused(server: &str, reason: Refusal) -> Self {
        DataError::Refused {
            server: server.to_string(),
            reason,
        }
    }
}

/// Writes one frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
    T: Serialize,
{
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Reads one frame, within [`IDLE_TIMEOUT`].
pub async fn read_frame<R, T>(r: &mut R) -> io::Result<T>
where
    R: AsyncRead + Unpin + ?Sized,
    T: for<'de> Deserialize<'de>,
{
    let read = async {
        let len = r.read_u32().await?;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes is over the limit"),
            ));
        }
        let mut body = vec![0u8; len as usize];
        r.read_exact(&mut body).await?;
        serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    timeout(IDLE_TIMEOUT, read).await.map_err(|_| stalled())?
}

fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no progress for {IDLE_TIMEOUT:?}"),
    )
}

/// Copies exactly `len` bytes from `r` to `w`, giving up when a chunk takes longer than
/// [`IDLE_TIMEOUT`]. The error says which side failed, so that a full local disk is
/// never taken for a broken peer.
pub async fn copy_exact<R, W>(r: &mut R, w: &mut W, len: u64) -> Result<(), CopyError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; (256 << 10).min(len.max(1) as usize)];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = timeout(IDLE_TIMEOUT, r.read(&mut buf[..want]))
            .await
            .map_err(|_| CopyError::Read(stalled()))?
            .map_err(CopyError::Read)?;
        if n == 0 {
            return Err(CopyError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("cut off after {} of {len} bytes", len - left),
            )));
        }
        timeout(IDLE_TIMEOUT, w.write_all(&buf[..n]))
            .await
            .map_err(|_| CopyError::Write(stalled()))?
            .map_err(CopyError::Write)?;
        left -= n as u64;
    }
    timeout(IDLE_TIMEOUT, w.flush())
        .await
        .map_err(|_| CopyError::Write(stalled()))?
        .map_err(CopyError::Write)
}

/// Opens a secured data connection to `server` (`HOST:PORT` or `unix:PATH`).
pub async fn open(server: &str, guard: &Guard) -> Result<Box<dyn Io>, DataError> {
    let failed = |fault, error: String| DataError::failed(server, fault, error);
    let addr: Addr = server
        .parse()
        .map_err(|e: String| failed(NetFault::Connect, e))?;
    let io = timeout(CONNECT_TIMEOUT, dial(&addr))
        .await
        .map_err(|_| {
            failed(
                NetFault::Connect,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| failed(NetFault::Connect, format!("cannot connect: {e}")))?;
    guard
        .client(io, Channel::Data)
        .await
        .map_err(|e| failed(NetFault::Handshake, e.to_string()))
}

/// Asks `server` for `req` and streams the bytes into `out`; returns how many. A busy
/// server is asked again, with backoff, for up to [`BUSY_PATIENCE`].
pub async fn get<W>(
    server: &str,
    guard: &Guard,
    req: &DataRequest,
    out: &mut W,
) -> Result<u64, DataError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    get_counting(server, guard, req, out, &mut 0).await
}

/// [`get`], adding the number of times it asked again to `retries` (a framework
/// counter: a job whose fetches retry a lot has a data server that cannot keep up).
pub async fn get_counting<W>(
    server: &str,
    guard: &Guard,
    req: &DataRequest,
    out: &mut W,
    retries: &mut u64,
) -> Result<u64, DataError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let deadline = tokio::time::Instant::now() + BUSY_PATIENCE;
    let mut backoff = Backoff::connect();
    loop {
        match get_once(server, guard, req, out).await {
            Err(DataError::Refused {
                reason: Refusal::Busy,
                ..
            }) if tokio::time::Instant::now() < deadline => {
                *retries += 1;
                tokio::time::sleep(backoff.pause()).await;
            }
            other => return other,
        }
    }
}

async fn get_once<W>(
    server: &str,
    guard: &Guard,
    req: &DataRequest,
    out: &mut W,
) -> Result<u64, DataError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let failed = |e: io::Error| DataError::broken(server, e);
    let mut io = open(server, guard).await?;
    write_frame(&mut io, req).await.map_err(failed)?;
    match read_frame(&mut io).await.map_err(failed)? {
        DataReply::Ok { len } => match copy_exact(&mut io, out, len).await {
            Ok(()) => Ok(len),
            Err(CopyError::Read(e)) => Err(failed(e)),
            Err(CopyError::Write(e)) => Err(DataError::local(&e)),
        },
        DataReply::Refused(reason) => Err(DataError::refused(server, reason)),
        other => Err(failed(unexpected(&other))),
    }
}

/// Sends `len` bytes from `input` to `server` with the request `req` (a
/// [`DataRequest::PutOutput`]); returns where the server stored them.
pub async fn put<R>(
    server: &str,
    guard: &Guard,
    req: &DataRequest,
    input: &mut R,
    len: u64,
) -> Result<PathBuf, DataError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let failed = |e: io::Error| DataError::broken(server, e);
    let refused = |reason| DataError::refused(server, reason);
    let mut io = open(server, guard).await?;
    write_frame(&mut io, req).await.map_err(failed)?;
    match read_frame(&mut io).await.map_err(failed)? {
        DataReply::Ok { .. } => {}
        DataReply::Refused(reason) => return Err(refused(reason)),
        other => return Err(failed(unexpected(&other))),
    }
    match copy_exact(input, &mut io, len).await {
        Ok(()) => {}
        Err(CopyError::Read(e)) => return Err(DataError::local(&e)),
        Err(CopyError::Write(e)) => return Err(failed(e)),
    }
    match read_frame(&mut io).await.map_err(failed)? {
        DataReply::Stored { path } => Ok(path),
        DataReply::Refused(reason) => Err(refused(reason)),
        other => Err(failed(unexpected(&other))),
    }
}

fn unexpected(reply: &DataReply) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply {reply:?}"),
    )
}

/// Answers a get with the `len` bytes of `file` from its current position.
pub async fn send_file<W>(w: &mut W, file: tokio::fs::File, len: u64) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    write_frame(w, &DataReply::Ok { len }).await?;
    // Read no further than `len`: the bytes may be one partition's range of a packed
    // map output (mr::packed), and a buffer filled past it would read the rest of the
    // file for every partition served.
    let cap = len.clamp(4 << 10, 1 << 20) as usize;
    let mut file = tokio::io::BufReader::with_capacity(cap, file.take(len));
    Ok(copy_exact(&mut file, w, len).await?)
}

/// Whether `name` is a map output file name, `mr-X-Y`: the only names a worker's data
/// server hands out (no paths, so nothing outside its directory).
pub fn is_map_output_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("mr-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    matches!(rest.split_once('-'), Some((x, y)) if digits(x) && digits(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_map_output_names_are_served() {
        for good in ["mr-0-0", "mr-12-9", "mr-4294967295-3"] {
            assert!(is_map_output_name(good), "{good}");
        }
        for bad in [
            "mr-out-0",
            "mr-1-",
            "mr--1",
            "mr-1-2-3",
            "../mr-1-2",
            "mr-1-2/..",
            "/etc/passwd",
            "mr-coordinator.journal",
            "",
        ] {
            assert!(!is_map_output_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let req = DataRequest::MapOutput {
            name: "mr-1-2".into(),
        };
        write_frame(&mut a, &req).await.unwrap();
        assert_eq!(read_frame::<_, DataRequest>(&mut b).await.unwrap(), req);
        a.write_all(&(MAX_FRAME + 1).to_be_bytes()).await.unwrap();
        let e = read_frame::<_, DataRequest>(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_short_stream_is_an_error_not_a_short_file() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"12345").await.unwrap();
        drop(a);
        let mut out = Vec::new();
        let e = io::Error::from(copy_exact(&mut b, &mut out, 10).await.unwrap_err());
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("5 of 10"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_peer_times_out() {
        let (_a, mut b) = tokio::io::duplex(1024);
        let mut out = Vec::new();
        let e = io::Error::from(copy_exact(&mut b, &mut out, 10).await.unwrap_err());
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
