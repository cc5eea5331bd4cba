//! The worker's connections to the coordinator: one for registration, polls and
//! reports, and one of its own for heartbeats (which the coordinator serves on its own
//! thread, so that they never queue behind other workers' calls). Each connects lazily
//! and reconnects after a failed call; every request is numbered so both sides can log
//! the same id.

use mr::auth::Channel;
use mr::ids::RequestId;
use mr::rpc::{connect, Addr, CoordinatorClient};
use mr::secure::Guard;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tarpc::client::RpcError;
use tarpc::context;

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Could not connect.
    #[error("cannot connect to the coordinator at {addr}: {source}")]
    Connect {
        /// Where.
        addr: Addr,
        /// Why.
        source: std::io::Error,
    },
    /// Connected, but the call failed (connection lost, deadline).
    #[error("call to the coordinator failed: {0}")]
    Rpc(#[from] RpcError),
}

impl LinkError {
    /// The coordinator refused our token: retrying will not help.
    pub fn is_refused(&self) -> bool {
        matches!(self, LinkError::Connect { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

/// A reconnecting client.
pub struct Link {
    addr: Addr,
    guard: Guard,
    client: Mutex<Option<CoordinatorClient>>,
    beats: Mutex<Option<CoordinatorClient>>,
    next: AtomicU64,
    base: u64,
}

impl Link {
    /// A link to `addr`; nothing is dialled until the first call.
    pub fn new(addr: Addr, guard: Guard) -> Self {
        Link {
            addr,
            guard,
            client: Mutex::new(None),
            beats: Mutex::new(None),
            next: AtomicU64::new(1),
            base: u64::from(std::process::id()) << 32,
        }
    }

    /// The coordinator's address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// A fresh request id.
    pub fn request_id(&self) -> RequestId {
        RequestId(self.base | (self.next.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff))
    }

    fn slot(&self, channel: Channel) -> &Mutex<Option<CoordinatorClient>> {
        match channel {
            Channel::Heartbeat => &self.beats,
            _ => &self.client,
        }
    }

    async fn client(&self, channel: Channel) -> Result<CoordinatorClient, LinkError> {
        let slot = self.slot(channel);
        if let Some(c) = slot.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let c = connect(&self.addr, &self.guard, channel)
            .await
            .map_err(|source| LinkError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Connects (and proves the token) now, retrying with backoff for up to `limit`;
    /// a refused token is not retried.
    pub async fn connect(&self, limit: std::time::Duration) -> Result<(), LinkError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut backoff = mr::retry::Backoff::connect();
        loop {
            match self.client(Channel::Control).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_refused() || tokio::time::Instant::now() >= deadline => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "coordinator not reachable yet; retrying");
                    tokio::time::sleep(backoff.pause()).await;
                }
            }
        }
    }

    /// Makes one call on the control connection; on failure the connection is dropped
    /// so the next call redials.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(CoordinatorClient, context::Context) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        self.call_on(Channel::Control, f).await
    }

    /// Makes one call on the heartbeat connection, the same way.
    pub async fn beat<T, F, Fut>(&self, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(CoordinatorClient, context::Context) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        self.call_on(Channel::Heartbeat, f).await
    }

    async fn call_on<T, F, Fut>(&self, channel: Channel, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(CoordinatorClient, context::Context) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let client = self.client(channel).await?;
        match f(client, context::current()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.slot(channel).lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(LinkError::Rpc(e))
            }
        }
    }
}
