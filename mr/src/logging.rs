//! Log set-up for the binaries, in one place: `tracing` to stderr (or a writer of the
//! caller's), filtered by `RUST_LOG` or else a default, colours only on a terminal.
//! Behind the `subscriber` feature, so that the library itself never installs one.

use std::io::IsTerminal;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter: `info`, with tarpc's own per-call spans kept quiet.
pub const DEFAULT_FILTER: &str = "info,tarpc=warn";

/// Installs the subscriber, writing to stderr. Call once, from `main`.
pub fn init() {
    init_with(DEFAULT_FILTER, std::io::stderr);
}

/// Installs the subscriber with `default_filter` (when `RUST_LOG` is unset) and
/// `writer` (e.g. one that prints above progress bars).
pub fn init_with<W>(default_filter: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
