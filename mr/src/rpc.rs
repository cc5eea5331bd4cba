//! The coordinator's RPC service (tarpc), its messages, and the transport: JSON frames
//! with a length prefix and a size limit, over a Unix socket or TCP (secured by
//! [`crate::secure`]).
//!
//! Every call carries a [`RequestId`] so that a worker's and the coordinator's log lines
//! about one call can be matched.

use crate::auth::Channel;
use crate::ids::{Attempt, RequestId, TaskId, WorkerId};
use crate::secure::{Guard, HandshakeError};
use crate::task::{Assignment, TaskOutcome};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use tarpc::serde_transport::Transport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame either side accepts. The largest messages are a reduce assignment's
/// map inputs (runs of maps per place: a few numbers per map at worst, one run for a
/// shared directory) and a range job's split points; 16 MiB is ample for both.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// The default coordinator address: a Unix socket in the working directory, so that
/// test-mr.sh can run coordinator and workers in one directory with no flags.
pub const DEFAULT_ADDR: &str = "unix:mr-coordinator.sock";

/// How long a `get_task` long poll waits for work before answering [`TaskReply::Wait`];
/// well within tarpc's default 10 s deadline.
pub const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Who a worker is, given at registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The worker's data server (`HOST:PORT`) when it keeps map output on its own disk
    /// for reducers elsewhere to fetch; `None` when it shares the coordinator's
    /// filesystem.
    #[serde(default)]
    pub data_addr: Option<String>,
}

/// The coordinator's answer to `register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The id to use in every later call.
    pub worker: WorkerId,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// How the job ended, told to workers so they can exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobEnd {
    /// All output is final.
    Succeeded,
    /// A task failed too often; the job was abandoned.
    Failed,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Directive {
    /// Keep going.
    Continue,
    /// Keep going, but stop running `attempt` of `task` if it still does: another
    /// attempt finished first, or it was taken back. (Its report would be refused.)
    Abandon {
        /// The task.
        task: TaskId,
        /// The attempt to stop.
        attempt: Attempt,
    },
    /// The coordinator does not know this worker (it restarted): register again.
    Reregister,
    /// The job is over: exit.
    Exit(JobEnd),
}

/// The answer to `get_task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskReply {
    /// Do this.
    Task(Assignment),
    /// Nothing to do right now; ask again.
    Wait,
    /// Register again first.
    Reregister,
    /// The job is over: exit.
    Exit(JobEnd),
}

/// The answer to `report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportReply {
    /// Recorded.
    Accepted,
    /// Not recorded: the attempt is not the task's current one (it was revoked, or
    /// already completed), and why.
    Refused(crate::task::Refusal),
}

/// The answer to `report`: the outcome's, and the worker's next task, so that a busy
/// worker makes one call per task rather than a report and then a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// Whether the outcome was recorded.
    pub reply: ReportReply,
    /// What to do next, as a poll made right after the report would answer, except
    /// that it does not wait: [`TaskReply::Wait`] means "poll for the next task".
    pub next: TaskReply,
}

/// The coordinator's service.
#[tarpc::service]
pub trait Coordinator {
    /// Joins the job.
    async fn register(req: RequestId, info: WorkerInfo) -> Registration;
    /// Proves the worker alive.
    async fn heartbeat(req: RequestId, worker: WorkerId) -> Directive;
    /// Asks for a task; waits up to [`LONG_POLL`] for one.
    async fn get_task(req: RequestId, worker: WorkerId) -> TaskReply;
    /// Reports the outcome of one attempt, and asks for the next task without waiting.
    async fn report(
        req: RequestId,
        worker: WorkerId,
        task: TaskId,
        attempt: Attempt,
        outcome: TaskOutcome,
    ) -> Reported;
}

/// Where the coordinator listens: `unix:PATH` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP address, `host:port`.
    Tcp(String),
}

impl FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path, e.g. unix:/tmp/mr.sock".into());
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Addr::Tcp(s.to_string()))
            }
            _ => Err(format!(
                "`{s}` is not an address: use HOST:PORT (e.g. 127.0.0.1:7777) or unix:PATH"
            )),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// A byte stream of either kind.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A framed JSON transport over any byte stream.
pub type JsonTransport<In, Out> = Transport<Box<dyn Io>, In, Out, FrameJson<In, Out>>;

/// JSON for one frame at a time, the same bytes as tokio-serde's `Json`. That one
/// parses through `serde_json::from_reader`, which pulls the frame a byte at a time
/// through `Buf::copy_to_slice` and a `memmove` call per byte: a quarter of the
/// coordinator's CPU under the load generator. A whole frame is in memory already, so
/// this parses it as one slice.
pub struct FrameJson<In, Out>(std::marker::PhantomData<fn() -> (In, Out)>);

impl<In, Out> Default for FrameJson<In, Out> {
    fn default() -> Self {
        FrameJson(std::marker::PhantomData)
    }
}

impl<In: for<'de> Deserialize<'de>, Out> tarpc::tokio_serde::Deserializer<In>
    for FrameJson<In, Out>
{
    type Error = serde_json::Error;

    fn deserialize(
        self: std::pin::Pin<&mut Self>,
        src: &tokio_util::bytes::BytesMut,
    ) -> Result<In, serde_json::Error> {
        serde_json::from_slice(src)
    }
}

impl<In, Out: Serialize> tarpc::tokio_serde::Serializer<Out> for FrameJson<In, Out> {
    type Error = serde_json::Error;

    fn serialize(
        self: std::pin::Pin<&mut Self>,
        item: &Out,
    ) -> Result<tokio_util::bytes::Bytes, serde_json::Error> {
        serde_json::to_vec(item).map(Into::into)
    }
}

/// Wraps a byte stream in length-delimited JSON frames of at most [`MAX_FRAME_LEN`].
pub fn json_transport<In, Out>(io: Box<dyn Io>) -> JsonTransport<In, Out>
where
    In: for<'de> Deserialize<'de>,
    Out: Serialize,
{
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec();
    tarpc::serde_transport::new(Framed::new(io, codec), FrameJson::default())
}

/// A connected byte stream before [`Guard`] has secured it: which kind decides whether
/// it gets TLS.
pub enum Stream {
    /// A Unix socket: never leaves the machine, so the token handshake alone.
    Unix(UnixStream),
    /// TCP: TLS, unless the process runs with `--insecure-plaintext`.
    Tcp(TcpStream),
}

/// Opens a byte stream to `addr`.
pub async fn dial(addr: &Addr) -> io::Result<Stream> {
    Ok(match addr {
        Addr::Unix(p) => Stream::Unix(UnixStream::connect(p).await?),
        Addr::Tcp(a) => {
            let s = TcpStream::connect(a.as_str()).await?;
            s.set_nodelay(true)?;
            Stream::Tcp(s)
        }
    })
}

/// Connects a coordinator client to `addr` for `channel` ([`Channel::Control`], or
/// [`Channel::Heartbeat`] for a worker's heartbeats), secured by `guard` (see
/// [`crate::secure`]). A refused token is an error of kind `PermissionDenied`.
pub async fn connect(
    addr: &Addr,
    guard: &Guard,
    channel: Channel,
) -> io::Result<CoordinatorClient> {
    let io = guard
        .client(dial(addr).await?, channel)
        .await
        .map_err(HandshakeError::into_io)?;
    Ok(CoordinatorClient::new(tarpc::client::Config::default(), json_transport(io)).spawn())
}

/// A bound listening socket of either kind.
pub enum Listener {
    /// Listening on a Unix socket (removed again on drop).
    Unix(UnixListener, PathBuf),
    /// Listening on TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `addr`. A Unix socket file left by a dead coordinator is replaced; one with
    /// a live coordinator behind it is an error.
    pub async fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Unix(p) => {
                if p.exists() {
                    if UnixStream::connect(p).await.is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!(
                                "another coordinator is already listening on {}",
                                p.display()
                            ),
                        ));
                    }
                    std::fs::remove_file(p)?;
                }
                Ok(Listener::Unix(UnixListener::bind(p)?, p.clone()))
            }
            Addr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a.as_str()).await?)),
        }
    }

    /// The address clients should dial (with the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Unix(_, p) => Ok(Addr::Unix(p.clone())),
            Listener::Tcp(l) => Ok(Addr::Tcp(l.local_addr()?.to_string())),
        }
    }

    /// Accepts one connection, with a printable peer name.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), "unix".to_string()))
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer.to_string()))
            }
        }
    }

    /// Whether connections arrive over TCP (and so need TLS).
    pub fn is_tcp(&self) -> bool {
        matches!(self, Listener::Tcp(_))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            "127.0.0.1:7777".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:7777".into())
        );
        assert_eq!(
            DEFAULT_ADDR.parse::<Addr>().unwrap().to_string(),
            DEFAULT_ADDR
        );
        for bad in ["", "unix:", "nohost", ":80", "host:notaport", "host:70000"] {
            assert!(bad.parse::<Addr>().is_err(), "{bad} parsed");
        }
    }
}
