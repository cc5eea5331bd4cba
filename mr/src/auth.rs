//! Authentication of every connection, control plane and data plane alike: both ends
//! prove they hold the job's shared token before anything is served.
//!
//! The exchange is a challenge-response with HMAC-SHA256 over fresh nonces from both
//! sides, so the token never crosses the wire and a recorded exchange cannot be replayed:
//!
//! ```text
//! client → server   "MRA1" | channel (1 byte) | client nonce (32)
//! server → client   server nonce (32) | HMAC(token, "server" | channel | cnonce | snonce | binding)
//! client → server   HMAC(token, "client" | channel | cnonce | snonce | binding)
//! server → client   0 (accepted) or 1 (refused)
//! ```
//!
//! The client then checks the server's proof too, so a server without the token cannot
//! pose as the coordinator or as a worker serving map output. `binding` is what ties the
//! proofs to one connection: over TLS, keying material exported from the TLS session
//! (see [`crate::secure`]), which a man in the middle cannot make equal on its two
//! sessions; on a Unix socket, empty.
//!
//! A job without a token uses the empty key on both sides, so one code path serves both,
//! and a mismatch (one side with a token, the other without) fails like a wrong token.
//! Proofs are compared in constant time (`hmac`'s `verify_slice`). Encryption
//! is TLS's job, in [`crate::secure`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The environment variable that may hold the token.
pub const TOKEN_ENV: &str = "MR_TOKEN";

/// How long a server waits for a client to finish the exchange; a client that connects
/// and never speaks is dropped after this.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const MAGIC: &[u8; 4] = b"MRA1";
const NONCE: usize = 32;
const PROOF: usize = 32;
const HELLO: usize = MAGIC.len() + 1 + NONCE;

/// The job's shared secret (possibly none). Its `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Token(Option<Arc<[u8]>>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() {
            "Token(set)"
        } else {
            "Token(none)"
        })
    }
}

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the token file {path}: {error}; check the path and its permissions")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        error: io::Error,
    },
    /// The token file holds nothing.
    #[error("the token file {0} is empty; put a secret in it (e.g. `openssl rand -hex 32 > {0}`)")]
    Empty(String),
}

impl Token {
    /// No token: connections are accepted from anyone who can reach the socket.
    pub fn none() -> Self {
        Token(None)
    }

    /// A token from its bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Token(Some(Arc::from(secret.as_ref())))
    }

    /// Whether a token is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The token from `file` if given (surrounding white space, such as the final newline,
    /// is not part of it), else from `$MR_TOKEN` if set and not empty, else none.
    pub fn resolve(file: Option<&Path>) -> Result<Token, TokenError> {
        if let Some(path) = file {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|error| TokenError::Unreadable {
                path: shown.clone(),
                error,
            })?;
            let secret = bytes.trim_ascii();
            if secret.is_empty() {
                return Err(TokenError::Empty(shown));
            }
            return Ok(Token::new(secret));
        }
        match std::env::var_os(TOKEN_ENV) {
            Some(v) if !v.is_empty() => Ok(Token::new(v.as_encoded_bytes().trim_ascii())),
            _ => Ok(Token::none()),
        }
    }

    fn mac(&self, role: &[u8], channel: Channel, nonces: Nonces) -> Hmac<Sha256> {
        let key: &[u8] = self.0.as_deref().unwrap_or(&[]);
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(role);
        mac.update(&[channel as u8]);
        mac.update(nonces.client);
        mac.update(nonces.server);
        // Length first, so that no two (nonces, binding) inputs run together alike.
        mac.update(&(nonces.binding.len() as u32).to_be_bytes());
        mac.update(nonces.binding);
        mac
    }

    fn prove(&self, role: &[u8], channel: Channel, nonces: Nonces) -> [u8; PROOF] {
        self.mac(role, channel, nonces)
            .finalize()
            .into_bytes()
            .into()
    }

    fn check(&self, proof: &[u8], role: &[u8], channel: Channel, nonces: Nonces) -> bool {
        self.mac(role, channel, nonces).verify_slice(proof).is_ok()
    }
}

/// What one exchange's proofs cover besides the token, role and channel.
#[derive(Clone, Copy)]
struct Nonces<'a> {
    client: &'a [u8],
    server: &'a [u8],
    binding: &'a [u8],
}

/// What a connection is for, declared by the client in its hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Channel {
    /// The coordinator's RPC service.
    Control = 1,
    /// Bulk data: input splits, intermediate files, reduce output.
    Data = 2,
    /// The coordinator's RPC service, for a worker's heartbeats only: a connection of its
    /// own, which the coordinator serves on a thread of its own, so that a heartbeat never
    /// waits behind the polls and reports of thousands of other workers.
    Heartbeat = 3,
}

impl Channel {
    fn from_byte(b: u8) -> Option<Channel> {
        match b {
            1 => Some(Channel::Control),
            2 => Some(Channel::Data),
            3 => Some(Channel::Heartbeat),
            _ => None,
        }
    }
}

/// Why an exchange failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The connection failed mid-exchange.
    #[error("connection lost during the handshake: {0}")]
    Io(#[from] io::Error),
    /// The peer does not speak this protocol.
    #[error("not an mr client (bad handshake)")]
    NotMr,
    /// The client's proof was wrong: it does not hold our token.
    #[error("authentication failed: the client does not hold this job's token (or a man in the middle relays it)")]
    BadClient,
    /// The server refused our proof.
    #[error("the token does not match, or a man in the middle is on the path (give both sides the same --token-file or MR_TOKEN)")]
    Refused,
    /// The server could not prove it holds our token.
    #[error("the server does not hold this job's token, or a man in the middle is on the path (give both sides the same --token-file or MR_TOKEN)")]
    BadServer,
}

impl AuthError {
    /// As an I/O error, for callers that return `io::Result` (kind `PermissionDenied`
    /// when the token is at fault).
    pub fn into_io(self) -> io::Error {
        match self {
            AuthError::Io(e) => e,
            e @ AuthError::NotMr => io::Error::new(io::ErrorKind::InvalidData, e),
            e => io::Error::new(io::ErrorKind::PermissionDenied, e),
        }
    }
}

/// A fresh random secret of 32 bytes, in hex: for one-time codes and session ids.
pub fn random_hex() -> String {
    nonce().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    getrandom::fill(&mut n).expect("the OS random number generator failed");
    n
}

fn hello(channel: Channel, cnonce: &[u8; NONCE]) -> [u8; HELLO] {
    let mut h = [0u8; HELLO];
    h[..4].copy_from_slice(MAGIC);
    h[4] = channel as u8;
    h[5..].copy_from_slice(cnonce);
    h
}

/// Client side of the exchange, on an async stream, bound to `binding`.
pub async fn client<S>(
    s: &mut S,
    token: &Token,
    channel: Channel,
    binding: &[u8],
) -> Result<(), AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let cnonce = nonce();
    s.write_all(&hello(channel, &cnonce)).await?;
    let mut reply = [0u8; NONCE + PROOF];
    s.read_exact(&mut reply).await?;
    let (snonce, proof) = reply.split_at(NONCE);
    let nonces = Nonces {
        client: &cnonce,
        server: snonce,
        binding,
    };
    s.write_all(&token.prove(b"client", channel, nonces))
        .await?;
    s.flush().await?;
    let mut verdict = [0u8; 1];
    s.read_exact(&mut verdict).await?;
    judge(token, verdict[0], proof, channel, nonces)
}

/// The client's conclusion. It proves itself before checking the server, so that a
/// client with the wrong token is always seen, and logged, by the server as such.
fn judge(
    token: &Token,
    verdict: u8,
    proof: &[u8],
    channel: Channel,
    nonces: Nonces,
) -> Result<(), AuthError> {
    if verdict != 0 {
        Err(AuthError::Refused)
    } else if !token.check(proof, b"server", channel, nonces) {
        Err(AuthError::BadServer)
    } else {
        Ok(())
    }
}

/// Server side of the exchange, on an async stream, bound to `binding`: the channel the
/// client asked for, once it has proven it holds the token. Bound it with
/// [`HANDSHAKE_TIMEOUT`].
pub async fn server<S>(s: &mut S, token: &Token, binding: &[u8]) -> Result<Channel, AuthError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut h = [0u8; HELLO];
    s.read_exact(&mut h).await?;
    let channel = match (&h[..4] == MAGIC, Channel::from_byte(h[4])) {
        (true, Some(c)) => c,
        _ => return Err(AuthError::NotMr),
    };
    let snonce = nonce();
    let nonces = Nonces {
        client: &h[5..],
        server: &snonce,
        binding,
    };
    let mut reply = [0u8; NONCE + PROOF];
    reply[..NONCE].copy_from_slice(&snonce);
    reply[NONCE..].copy_from_slice(&token.prove(b"server", channel, nonces));
    s.write_all(&reply).await?;
    s.flush().await?;
    let mut proof = [0u8; PROOF];
    s.read_exact(&mut proof).await?;
    if token.check(&proof, b"client", channel, nonces) {
        s.write_all(&[0]).await?;
        s.flush().await?;
        Ok(channel)
    } else {
        // Best effort: tell the client why before hanging up.
        let _ = s.write_all(&[1]).await;
        let _ = s.flush().await;
        Err(AuthError::BadClient)
    }
}

/// Client side of the exchange on a blocking stream (for tools and tests).
pub fn client_blocking<S: Read + Write + ?Sized>(
    s: &mut S,
    token: &Token,
    channel: Channel,
    binding: &[u8],
) -> Result<(), AuthError> {
    let cnonce = nonce();
    s.write_all(&hello(channel, &cnonce))?;
    s.flush()?;
    let mut reply = [0u8; NONCE + PROOF];
    s.read_exact(&mut reply)?;
    let (snonce, proof) = reply.split_at(NONCE);
    let nonces = Nonces {
        client: &cnonce,
        server: snonce,
        binding,
    };
    s.write_all(&token.prove(b"client", channel, nonces))?;
    s.flush()?;
    let mut verdict = [0u8; 1];
    s.read_exact(&mut verdict)?;
    judge(token, verdict[0], proof, channel, nonces)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exchange(
        client_token: Token,
        server_token: Token,
    ) -> (Result<(), AuthError>, Result<Channel, AuthError>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let c =
            tokio::spawn(async move { client(&mut a, &client_token, Channel::Data, b"").await });
        let s = server(&mut b, &server_token, b"").await;
        drop(b);
        (c.await.unwrap(), s)
    }

    #[tokio::test]
    async fn same_token_or_none_is_accepted() {
        let (c, s) = exchange(Token::new("s3cret"), Token::new("s3cret")).await;
        assert!(c.is_ok(), "{c:?}");
        assert_eq!(s.unwrap(), Channel::Data);
        let (c, s) = exchange(Token::none(), Token::none()).await;
        assert!(c.is_ok() && s.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_or_missing_token_is_refused_on_both_sides() {
        for (mine, theirs) in [
            (Token::new("mine"), Token::new("theirs")),
            (Token::none(), Token::new("theirs")),
            (Token::new("mine"), Token::none()),
        ] {
            let (c, s) = exchange(mine, theirs).await;
            assert!(matches!(c, Err(AuthError::Refused)), "{c:?}");
            assert!(matches!(s, Err(AuthError::BadClient)), "{s:?}");
        }
    }

    #[tokio::test]
    async fn a_server_that_accepts_anyone_is_caught_by_the_client() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let fake = tokio::spawn(async move {
            let mut h = [0u8; HELLO];
            b.read_exact(&mut h).await?;
            b.write_all(&[9u8; NONCE + PROOF]).await?;
            let mut proof = [0u8; PROOF];
            b.read_exact(&mut proof).await?;
            b.write_all(&[0]).await
        });
        let c = client(&mut a, &Token::new("mine"), Channel::Data, b"").await;
        assert!(matches!(c, Err(AuthError::BadServer)), "{c:?}");
        fake.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_without_the_token_is_refused_by_the_server() {
        // A client that skips checking the server (a hostile one) still fails its proof.
        let (mut a, mut b) = tokio::io::duplex(1024);
        let rogue = tokio::spawn(async move {
            a.write_all(&hello(Channel::Control, &[7; NONCE])).await?;
            let mut reply = [0u8; NONCE + PROOF];
            a.read_exact(&mut reply).await?;
            a.write_all(&[0u8; PROOF]).await?;
            let mut verdict = [0u8; 1];
            a.read_exact(&mut verdict).await?;
            Ok::<_, io::Error>(verdict[0])
        });
        let s = server(&mut b, &Token::new("theirs"), b"").await;
        assert!(matches!(s, Err(AuthError::BadClient)), "{s:?}");
        assert_eq!(rogue.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn garbage_is_not_mr() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0xAB; HELLO]).await.unwrap();
        assert!(matches!(
            server(&mut b, &Token::none(), b"").await,
            Err(AuthError::NotMr)
        ));
    }

    #[test]
    fn proofs_depend_on_token_role_channel_nonces_and_binding() {
        let n = |c: u8, s: u8, binding: &'static [u8]| Nonces {
            client: if c == 1 { &[1; 32] } else { &[3; 32] },
            server: if s == 2 { &[2; 32] } else { &[4; 32] },
            binding,
        };
        let t = Token::new("k");
        let p = t.prove(b"client", Channel::Data, n(1, 2, b"tls"));
        assert!(t.check(&p, b"client", Channel::Data, n(1, 2, b"tls")));
        assert!(!t.check(&p, b"server", Channel::Data, n(1, 2, b"tls")));
        assert!(!t.check(&p, b"client", Channel::Control, n(1, 2, b"tls")));
        assert!(!t.check(&p, b"client", Channel::Data, n(3, 2, b"tls")));
        assert!(!t.check(&p, b"client", Channel::Data, n(1, 4, b"tls")));
        assert!(!t.check(&p, b"client", Channel::Data, n(1, 2, b"other session")));
        assert!(!t.check(&p, b"client", Channel::Data, n(1, 2, b"")));
        assert!(!Token::new("j").check(&p, b"client", Channel::Data, n(1, 2, b"tls")));
    }

    #[test]
    fn token_from_file_is_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "  hunter2\n").unwrap();
        let t = Token::resolve(Some(&f)).unwrap();
        assert_eq!(t.0.as_deref(), Some(&b"hunter2"[..]));
        assert!(!format!("{t:?}").contains("hunter2"));
        std::fs::write(&f, "\n").unwrap();
        let e = Token::resolve(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = Token::resolve(Some(&dir.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the token file"), "{e}");
    }
}
