//! How every connection is secured, and the one accept loop every server runs.
//!
//! On TCP: TLS 1.3 (rustls), and inside it the token handshake of [`crate::auth`], bound
//! to the TLS session. On a Unix socket (one machine): the token handshake alone.
//!
//! Why this design (docs/security.md has the long form): the token stays the only secret
//! a user manages, with no certificate authority to run. Each process makes an ephemeral
//! self-signed certificate at start, and a client accepts whatever certificate the server
//! shows. What authenticates the two ends is the token proof, and each proof covers
//! keying material exported from the TLS session (RFC 8446 §7.5), which both ends of one
//! session share and nobody else can compute. A man in the middle that terminates TLS on
//! both sides holds two sessions with two different exports, so neither side's proof
//! passes on the other: both ends refuse it. A passive eavesdropper sees only ciphertext.
//!
//! `--insecure-plaintext` turns TLS off on TCP (for a trusted network, or to compare);
//! the token handshake still runs. A server tells a peer that speaks the other way (TLS
//! to a plaintext port or the reverse) by its first byte, and says so in one line.

use crate::auth::{self, AuthError, Channel, Token, HANDSHAKE_TIMEOUT};
use crate::rpc::{Io, Listener, Stream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, warn};

/// The exporter label of the token binding (RFC 8446 §7.5: a label of our own).
const BINDING_LABEL: &[u8] = b"EXPORTER-mr-token-binding";
/// Bytes of exported keying material the proofs cover.
const BINDING_LEN: usize = 32;
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The server name a client asks for: certificates are not checked against names (the
/// token proof authenticates), but TLS wants one.
const SERVER_NAME: &str = "mr";

/// How this process secures its connections: the job's token, and, for TCP, its TLS
/// configuration (none when run with `--insecure-plaintext`). Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    token: Token,
    tls: Option<Arc<Tls>>,
}

struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.token)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Why a connection could not be secured. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A TLS port was spoken to in plaintext.
    #[error("the peer does not speak TLS (was it started with --insecure-plaintext? start both sides the same way)")]
    NotTls,
    /// A plaintext port was spoken to in TLS.
    #[error("the peer speaks TLS but this side runs with --insecure-plaintext; start both sides the same way")]
    UnexpectedTls,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The peer closed the connection during a plaintext handshake (a TLS server closes
    /// a plaintext client so).
    #[error("the peer closed the connection during the handshake (if it requires TLS, do not run this side with --insecure-plaintext)")]
    ClosedInPlaintext,
    /// The token exchange failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The peer did not finish in time.
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    TimedOut,
}

impl HandshakeError {
    /// Whether the token (or a man in the middle) is at fault: retrying will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            HandshakeError::Auth(AuthError::Refused | AuthError::BadServer | AuthError::BadClient)
        )
    }

    /// Whether the peer merely hung up (not worth a warning on a server).
    pub fn is_hang_up(&self) -> bool {
        matches!(self, HandshakeError::Auth(AuthError::Io(_)))
    }

    /// As an I/O error, for callers that return `io::Result` (kind `PermissionDenied`
    /// when the token is at fault).
    pub fn into_io(self) -> io::Error {
        match self {
            HandshakeError::Auth(e) => e.into_io(),
            HandshakeError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, self),
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// A blocking byte stream (tools and tests).
pub trait BlockingIo: Read + Write + Send {}
impl<T: Read + Write + Send> BlockingIo for T {}

impl Guard {
    /// TLS on TCP, with a fresh self-signed certificate, and `token` on every connection.
    pub fn tls(token: Token) -> io::Result<Guard> {
        // AES-128-GCM first (TLS 1.3's mandatory suite): with AES-NI it costs about
        // two thirds of AES-256-GCM per byte, and the data plane moves every input byte.
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = [
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ]
        .to_vec();
        let provider = Arc::new(provider);
        let tls_err = |e: rustls::Error| io::Error::other(format!("TLS set-up: {e}"));
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .map_err(|e| io::Error::other(format!("cannot make a TLS certificate: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .map_err(tls_err)?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let client = Arc::new(client);
        Ok(Guard {
            token,
            tls: Some(Arc::new(Tls {
                acceptor: TlsAcceptor::from(Arc::new(server)),
                connector: TlsConnector::from(client.clone()),
                client,
            })),
        })
    }

    /// No TLS anywhere: TCP traffic is readable and alterable by anyone on the path.
    /// For a trusted network, Unix-socket jobs, and comparisons; the token is still
    /// proven on every connection.
    pub fn insecure_plaintext(token: Token) -> Guard {
        Guard { token, tls: None }
    }

    /// The guard a process should use: TLS when it speaks TCP, unless the user asked for
    /// plaintext. TCP without TLS and without a token lets anyone in, so that needs the
    /// explicit `--insecure-plaintext` as well.
    pub fn for_process(token: Token, tcp: bool, insecure_plaintext: bool) -> io::Result<Guard> {
        check_token(&token, tcp, insecure_plaintext)?;
        if tcp && !insecure_plaintext {
            return Guard::tls(token);
        }
        Ok(Guard::insecure_plaintext(token))
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Whether TCP connections are encrypted.
    pub fn encrypts(&self) -> bool {
        self.tls.is_some()
    }

    /// Secures a connection this side opened, for `channel`.
    pub async fn client(
        &self,
        stream: Stream,
        channel: Channel,
    ) -> Result<Box<dyn Io>, HandshakeError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.client_inner(stream, channel))
            .await
            .map_err(|_| HandshakeError::TimedOut)?
    }

    async fn client_inner(
        &self,
        stream: Stream,
        channel: Channel,
    ) -> Result<Box<dyn Io>, HandshakeError> {
        match (stream, &self.tls) {
            (Stream::Unix(mut s), _) => {
                auth::client(&mut s, &self.token, channel, &[]).await?;
                Ok(Box::new(s))
            }
            (Stream::Tcp(mut s), None) => {
                match auth::client(&mut s, &self.token, channel, &[]).await {
                    Err(AuthError::Io(e))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        Err(HandshakeError::ClosedInPlaintext)
                    }
                    r => r.map(|()| Box::new(s) as Box<dyn Io>).map_err(Into::into),
                }
            }
            (Stream::Tcp(s), Some(tls)) => {
                let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
                let mut s = tls
                    .connector
                    .connect(name, s)
                    .await
                    .map_err(HandshakeError::Tls)?;
                let binding = export(s.get_ref().1)?;
                auth::client(&mut s, &self.token, channel, &binding).await?;
                Ok(Box::new(s))
            }
        }
    }

    /// Secures a connection this side accepted: the channel the client asked for, once
    /// it has proven the token. Bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn server(&self, stream: Stream) -> Result<(Box<dyn Io>, Channel), HandshakeError> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.server_inner(stream))
            .await
            .map_err(|_| HandshakeError::TimedOut)?
    }

    async fn server_inner(&self, stream: Stream) -> Result<(Box<dyn Io>, Channel), HandshakeError> {
        match stream {
            Stream::Unix(mut s) => {
                let channel = auth::server(&mut s, &self.token, &[]).await?;
                Ok((Box::new(s), channel))
            }
            Stream::Tcp(mut s) => {
                let mut first = [0u8; 1];
                let n = s.peek(&mut first).await.map_err(AuthError::Io)?;
                if n == 0 {
                    return Err(AuthError::Io(io::ErrorKind::UnexpectedEof.into()).into());
                }
                let speaks_tls = first[0] == TLS_HANDSHAKE_RECORD;
                match &self.tls {
                    None if speaks_tls => Err(HandshakeError::UnexpectedTls),
                    None => {
                        let channel = auth::server(&mut s, &self.token, &[]).await?;
                        Ok((Box::new(s), channel))
                    }
                    Some(_) if !speaks_tls => Err(HandshakeError::NotTls),
                    Some(tls) => {
                        let mut s = tls.acceptor.accept(s).await.map_err(HandshakeError::Tls)?;
                        let binding = export(s.get_ref().1)?;
                        let channel = auth::server(&mut s, &self.token, &binding).await?;
                        Ok((Box::new(s), channel))
                    }
                }
            }
        }
    }

    /// [`Guard::client`] on a blocking TCP stream (tools and tests). Set a read timeout
    /// on `tcp` to bound it.
    pub fn client_blocking(
        &self,
        mut tcp: std::net::TcpStream,
        channel: Channel,
    ) -> Result<Box<dyn BlockingIo>, HandshakeError> {
        let Some(tls) = &self.tls else {
            auth::client_blocking(&mut tcp, &self.token, channel, &[])?;
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
        let conn = rustls::ClientConnection::new(tls.client.clone(), name)
            .map_err(|e| HandshakeError::Tls(io::Error::other(e)))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(HandshakeError::Tls)?;
        }
        let binding = export(&s.conn)?;
        auth::client_blocking(&mut s, &self.token, channel, &binding)?;
        Ok(Box::new(s))
    }
}

/// Refuses TCP without a token unless the user asked for plaintext: TLS without a token
/// would encrypt, but let anyone join. The binaries check this before doing anything.
pub fn check_token(token: &Token, tcp: bool, insecure_plaintext: bool) -> io::Result<()> {
    if tcp && !insecure_plaintext && !token.is_set() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "TCP needs the job's token: pass --token-file FILE or set MR_TOKEN (the same for every process), or --insecure-plaintext on a network you trust",
        ));
    }
    Ok(())
}

/// The token binding of a TLS session: keying material only its two ends can compute.
fn export<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; BINDING_LEN], HandshakeError> {
    conn.export_keying_material([0u8; BINDING_LEN], BINDING_LABEL, None)
        .map_err(|e| HandshakeError::Tls(io::Error::other(e)))
}

/// Accepts any server certificate, but still checks that the server holds its key (the
/// handshake signature). Authentication is the token proof bound to the session; see the
/// module comment for why a certificate check would add nothing but a CA to run.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection that has passed the handshake, handed to a server's handler.
pub struct Accepted {
    /// The secured stream.
    pub io: Box<dyn Io>,
    /// What the client asked for.
    pub channel: Channel,
    /// Who (`IP:PORT`, or `unix`).
    pub peer: String,
    /// The server was at its connection limit when this one came: answer it cheaply
    /// (e.g. "busy") and hang up.
    pub over_limit: bool,
}

/// A running accept loop ([`serve`]); stops when dropped.
pub struct Server {
    slots: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    limit: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Connections open now (in the handshake or being served).
    pub fn open_connections(&self) -> usize {
        2 * self.limit - self.slots.available_permits() - self.overflow.available_permits()
    }

    /// Stops accepting and waits until the listener is closed (a Unix socket's file is
    /// removed then). Connections being served go on until they end.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one authenticated accept loop: accepts on `listener`, secures each connection
/// with `guard` (refusals logged as `server` with the peer's address), and hands it to
/// `handle`. Resources stay bounded whatever clients do: `limit` connections are served;
/// `limit` more are secured and handed over marked [`Accepted::over_limit`] (so that a
/// client can be told to wait rather than be dropped); any beyond are dropped unread.
/// Each connection has [`HANDSHAKE_TIMEOUT`] to prove the token.
pub fn serve<H, F>(
    listener: Listener,
    guard: Guard,
    limit: usize,
    server: &'static str,
    handle: H,
) -> Server
where
    H: Fn(Accepted) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limit));
    let overflow = Arc::new(Semaphore::new(limit));
    let (s, o) = (slots.clone(), overflow.clone());
    let handle = Arc::new(handle);
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    warn!(server, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (permit, over_limit): (OwnedSemaphorePermit, bool) =
                match s.clone().try_acquire_owned() {
                    Ok(p) => (p, false),
                    Err(_) => match o.clone().try_acquire_owned() {
                        Ok(p) => (p, true),
                        Err(_) => {
                            warn!(server, %peer, "far over the connection limit; dropping one");
                            continue;
                        }
                    },
                };
            let (guard, handle) = (guard.clone(), handle.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match guard.server(stream).await {
                    Ok((io, channel)) => {
                        debug!(server, %peer, ?channel, over_limit, "connection");
                        handle(Accepted {
                            io,
                            channel,
                            peer,
                            over_limit,
                        })
                        .await
                    }
                    Err(e) if e.is_hang_up() => {
                        debug!(server, %peer, error = %e, "connection closed during the handshake")
                    }
                    Err(e) => warn!(server, %peer, error = %e, "connection refused"),
                }
            });
        }
    });
    Server {
        slots,
        overflow,
        limit,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{dial, Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn tcp_listener() -> (Listener, Addr) {
        let l = Listener::bind(&Addr::Tcp("127.0.0.1:0".into()))
            .await
            .unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    /// An echo server under `guard`, reporting each connection's handshake result.
    async fn echo(guard: Guard) -> (Addr, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (l, addr) = tcp_listener().await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = l.accept().await.unwrap();
                let (guard, tx) = (guard.clone(), tx.clone());
                tokio::spawn(async move {
                    match guard.server(stream).await {
                        Ok((mut io, _)) => {
                            let _ = tx.send("ok".into());
                            let mut buf = [0u8; 5];
                            if io.read_exact(&mut buf).await.is_ok() {
                                let _ = io.write_all(&buf).await;
                                let _ = io.flush().await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(e.to_string());
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn talk(guard: &Guard, addr: &Addr) -> Result<Vec<u8>, HandshakeError> {
        let mut io = guard
            .client(dial(addr).await.unwrap(), Channel::Data)
            .await?;
        io.write_all(b"hello").await.unwrap();
        io.flush().await.unwrap();
        let mut buf = vec![0u8; 5];
        io.read_exact(&mut buf).await.unwrap();
        Ok(buf)
    }

    fn tls(t: &str) -> Guard {
        Guard::tls(Token::new(t)).unwrap()
    }

    #[tokio::test]
    async fn tls_with_the_same_token_carries_bytes_both_ways() {
        let (addr, mut seen) = echo(tls("k")).await;
        assert_eq!(talk(&tls("k"), &addr).await.unwrap(), b"hello");
        assert_eq!(seen.recv().await.unwrap(), "ok");
        // And the blocking client (tools, tests) speaks the same protocol.
        let Addr::Tcp(a) = addr else { unreachable!() };
        let blocking = tokio::task::spawn_blocking(move || {
            let mut io = tls("k")
                .client_blocking(std::net::TcpStream::connect(a).unwrap(), Channel::Data)
                .unwrap();
            io.write_all(b"block").unwrap();
            io.flush().unwrap();
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(&blocking.await.unwrap(), b"block");
    }

    #[tokio::test]
    async fn a_wrong_token_over_tls_is_refused_on_both_sides() {
        let (addr, mut seen) = echo(tls("k")).await;
        let e = talk(&tls("other"), &addr).await.unwrap_err();
        assert!(e.is_refusal(), "{e}");
        assert!(
            seen.recv().await.unwrap().contains("authentication failed"),
            "server side"
        );
    }

    #[tokio::test]
    async fn plaintext_and_tls_peers_are_told_apart_in_one_line() {
        let (addr, mut seen) = echo(tls("k")).await;
        let e = talk(&Guard::insecure_plaintext(Token::new("k")), &addr)
            .await
            .unwrap_err();
        assert!(matches!(e, HandshakeError::ClosedInPlaintext), "{e}");
        assert!(seen.recv().await.unwrap().contains("does not speak TLS"));

        let (addr, mut seen) = echo(Guard::insecure_plaintext(Token::new("k"))).await;
        let e = talk(&tls("k"), &addr).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Tls(_)), "{e}");
        assert!(seen
            .recv()
            .await
            .unwrap()
            .contains("runs with --insecure-plaintext"));
    }

    /// A man in the middle with its own certificate terminates TLS on both sides and
    /// relays every byte of the token exchange between them: both ends refuse.
    #[tokio::test]
    async fn a_man_in_the_middle_with_its_own_certificates_is_refused() {
        let (server_addr, mut seen) = echo(tls("k")).await;
        // The proxy's own TLS identity, for both of its sessions; it knows no token.
        let mitm = tls("not the token");
        let mitm_tls = mitm.tls.clone().unwrap();
        let (l, proxy_addr) = tcp_listener().await;
        let relay = tokio::spawn(async move {
            let (Stream::Tcp(client_side), _) = l.accept().await.unwrap() else {
                unreachable!()
            };
            let client_side = mitm_tls.acceptor.accept(client_side).await.unwrap();
            let Stream::Tcp(up) = dial(&server_addr).await.unwrap() else {
                unreachable!()
            };
            let name = ServerName::try_from(SERVER_NAME).unwrap();
            let server_side = mitm_tls.connector.connect(name, up).await.unwrap();
            let (mut cr, mut cw) = tokio::io::split(client_side);
            let (mut sr, mut sw) = tokio::io::split(server_side);
            // Relay in plaintext, the proxy reading everything.
            let up = async {
                let mut b = [0u8; 4096];
                while let Ok(n @ 1..) = cr.read(&mut b).await {
                    if sw.write_all(&b[..n]).await.is_err() || sw.flush().await.is_err() {
                        break;
                    }
                }
            };
            let down = async {
                let mut b = [0u8; 4096];
                while let Ok(n @ 1..) = sr.read(&mut b).await {
                    if cw.write_all(&b[..n]).await.is_err() || cw.flush().await.is_err() {
                        break;
                    }
                }
            };
            tokio::join!(up, down);
        });
        let e = talk(&tls("k"), &proxy_addr).await.unwrap_err();
        assert!(e.is_refusal(), "client: {e}");
        assert!(
            seen.recv().await.unwrap().contains("authentication failed"),
            "the server refuses the relayed proof"
        );
        relay.abort();
    }

    #[tokio::test]
    async fn tcp_without_a_token_needs_the_insecure_flag() {
        let e = Guard::for_process(Token::none(), true, false).unwrap_err();
        assert!(e.to_string().contains("--insecure-plaintext"), "{e}");
        assert!(!Guard::for_process(Token::none(), true, true)
            .unwrap()
            .encrypts());
        assert!(Guard::for_process(Token::new("t"), true, false)
            .unwrap()
            .encrypts());
        // Unix sockets never use TLS and need no token.
        assert!(!Guard::for_process(Token::none(), false, false)
            .unwrap()
            .encrypts());
    }

    #[tokio::test]
    async fn the_accept_loop_serves_marks_overflow_and_counts_open_connections() {
        let (l, addr) = tcp_listener().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hold = Arc::new(tokio::sync::Notify::new());
        let h = hold.clone();
        let server = serve(l, tls("k"), 1, "test", move |a: Accepted| {
            let (tx, h) = (tx.clone(), h.clone());
            async move {
                let _ = tx.send(a.over_limit);
                h.notified().await;
            }
        });
        let g = tls("k");
        let first = g.client(dial(&addr).await.unwrap(), Channel::Data).await;
        assert!(!rx.recv().await.unwrap());
        let second = g.client(dial(&addr).await.unwrap(), Channel::Data).await;
        assert!(rx.recv().await.unwrap(), "over the limit of 1");
        assert_eq!(server.open_connections(), 2);
        assert!(first.is_ok() && second.is_ok());
        hold.notify_waiters();
    }
}
