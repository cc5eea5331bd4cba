//! The heartbeat thread: workers' heartbeat connections ([`Channel::Heartbeat`]) are
//! served on a thread and runtime of their own.
//!
//! Why: under load the main runtime has thousands of polls and reports ready at once and
//! serves them in turn, so a heartbeat queued among them waited a whole round (about
//! 300 ms at p99 with 2,000 busy workers, where a worker is declared lost after a few
//! seconds of silence). Here a heartbeat waits only for the job's lock, which every
//! call holds for microseconds. The connection is accepted and authenticated by the one
//! accept loop like any other, then handed over; its socket stays registered with the
//! main runtime's reactor, which wakes this thread's task.
//!
//! [`Channel::Heartbeat`]: mr::auth::Channel::Heartbeat

use crate::service::Service;
use mr::rpc::Io;
use std::sync::Mutex;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// A heartbeat connection on its way to the thread.
struct Conn {
    io: Box<dyn Io>,
    service: Service,
    /// Dropped when the connection is done (or the thread stops), which ends
    /// [`Beats::serve`]: the accept loop counts the connection open until then.
    _done: oneshot::Sender<()>,
}

/// The thread, and the way to hand it connections.
pub struct Beats {
    conns: Mutex<Option<mpsc::UnboundedSender<Conn>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Beats {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Beats> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Conn>();
        let thread = std::thread::Builder::new()
            .name("mr-heartbeats".into())
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(conn) = rx.recv().await {
                        tokio::spawn(async move {
                            let Conn { io, service, _done } = conn;
                            crate::serve_rpc(io, service).await;
                        });
                    }
                });
                // Dropping the runtime here closes the connections still open.
            })?;
        Ok(Beats {
            conns: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Serves one heartbeat connection on the thread; returns once it is closed.
    pub async fn serve(&self, io: Box<dyn Io>, service: Service) {
        let (done, closed) = oneshot::channel();
        let sent = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| {
                tx.send(Conn {
                    io,
                    service,
                    _done: done,
                })
                .is_ok()
            });
        if sent {
            // An error only means the sender was dropped: the connection is over.
            let _ = closed.await;
        }
    }

    /// Closes every heartbeat connection and ends the thread.
    pub fn stop(&self) {
        drop(self.conns.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // The thread only drops its tasks now: this wait is short.
            let _ = t.join();
        }
    }
}

impl Drop for Beats {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Shared;
    use crate::views::status::tests::sample_job;
    use mr::ids::{RequestId, WorkerId};
    use mr::rpc::{json_transport, CoordinatorClient, Directive};
    use std::time::Duration;

    #[test]
    fn heartbeats_are_answered_on_their_own_thread_until_it_stops() {
        let (job, _) = sample_job();
        let shared = Shared::new(job, Duration::from_millis(100));
        let beats = Beats::start().unwrap();
        let (server, client) = tokio::io::duplex(1 << 16);
        // This runtime only hands the connection over and makes the calls: nothing here
        // serves them, so the answers come from the heartbeat thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let served = beats.serve(Box::new(server), Service(shared.clone()));
            tokio::pin!(served);
            let client = CoordinatorClient::new(
                tarpc::client::Config::default(),
                json_transport(Box::new(client)),
            )
            .spawn();
            let beat = |n| {
                client.heartbeat(
                    tarpc::context::current(),
                    RequestId(n),
                    WorkerId::first_run(1),
                )
            };
            for n in 1..=3 {
                let reply = tokio::select! {
                    _ = &mut served => panic!("the connection closed early"),
                    r = beat(n) => r,
                };
                assert_eq!(reply.unwrap(), Directive::Continue);
            }
            // Stopping the thread closes its connections, and ends their serving.
            beats.stop();
            tokio::time::timeout(Duration::from_secs(5), &mut served)
                .await
                .expect("serve returns once the thread has stopped");
            assert!(beat(4).await.is_err(), "a stopped thread answered");
        });
    }
}
