//! The shared core of `mr`, used by the coordinator, the worker and the tools.
//!
//! # Layout
//! - [`ids`]: newtypes for tasks, workers, attempts and requests.
//! - [`task`]: the task model on the wire: input splits, assignments, outcomes, and
//!   where a task's files live ([`task::Location`]).
//! - [`rpc`]: the coordinator's tarpc service, its messages, and the transport
//!   (Unix socket or TCP, with a frame size limit).
//! - [`auth`]: the token handshake every connection starts with.
//! - [`secure`]: TLS on TCP with the token handshake bound to it, and the one
//!   authenticated accept loop.
//! - [`data`]: the data plane: input splits, map output and reduce output streamed
//!   between machines that share no filesystem.
//! - [`partition`]: `ihash`, the 6.824 key-to-partition function.
//! - [`split`]: reading an input split on line boundaries.
//! - [`intermediate`]: the binary format of `mr-X-Y` files (checksummed), its reader,
//!   writer and the k-way merge of sorted runs.
//! - [`packed`]: one file per map holding every partition, with an index (TCP mode).
//! - [`sortbuf`]: the map-side buffer that sorts, combines and spills records.
//! - [`combinebuf`]: the map-side buffer for apps with a combiner (hash grouping).
//! - [`plugin`]: loading an app library and calling it through the C ABI.
//! - [`atomic`]: writing a file so that it appears whole or not at all.
//! - [`limits`]: raising the open-file limit at start.
//! - [`retry`]: the one retry policy (exponential backoff).
//! - `logging` (feature `subscriber`): the one `tracing` set-up of the binaries.
//! - [`units`]: parsing sizes and durations given on command lines.
#![warn(missing_docs)]

pub mod atomic;
pub mod auth;
pub mod combinebuf;
pub mod data;
pub mod ids;
pub mod intermediate;
pub mod limits;
#[cfg(feature = "subscriber")]
pub mod logging;
pub mod packed;
pub mod partition;
pub mod plugin;
pub mod retry;
pub mod rpc;
pub mod secure;
pub mod sortbuf;
pub mod split;
pub mod task;
pub mod units;
