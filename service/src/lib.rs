//! A small web service: `/hello`, a home page with a websocket echo at `/ws` whose messages
//! are stored in SQLite and listed at `/messages`, and `/healthz` and `/readyz` probes.

pub mod config;
pub mod connection;
pub mod db;
pub mod healthcheck;
pub mod json;
pub mod routes;
pub mod server;

pub use routes::{AppState, Phase, app};

/// Sets up `tracing` output on stderr with the `RUST_LOG`-style filter from the config.
pub fn init_logging(filter: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let targets: tracing_subscriber::filter::Targets = filter.parse().with_context(|| {
        format!(
            "RUST_LOG={filter:?} is not a log filter (for example `info` or `warn,service=debug`)"
        )
    })?;
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(output)
        .with(targets)
        .try_init()
        .context("logging was already set up")
}
