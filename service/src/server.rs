//! Running the service: database check, bind, serve until SIGTERM or SIGINT.

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::{self, Db};
use crate::routes::{AppState, app};

/// Opens the database and checks (or, with `MIGRATE_ON_START`, applies) its migrations.
pub fn prepare_database(config: &Config) -> anyhow::Result<Db> {
    let mut conn = db::open(&config.database)?;
    if config.migrate_on_start {
        let before = db::status(&conn)?;
        db::migrations()
            .to_latest(&mut conn)
            .context("applying migrations on start failed")?;
        if before.pending() > 0 {
            tracing::info!(applied = before.pending(), "migrated the database on start");
        }
    }
    db::ensure_current(&conn, &config.database)?;
    Ok(Db::new(conn))
}

/// The whole service process after configuration and logging are set up.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("cannot install SIGTERM and SIGINT handlers")?;
    let db = prepare_database(&config)?;
    let addr = config.listen_address();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set PORT or BIND_ADDRESS)"))?;
    tracing::info!(
        "listening on {}, database {}",
        listener.local_addr()?,
        config.database.display()
    );
    serve(listener, db, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish and tells open
/// websockets the server is going away.
pub async fn serve(
    listener: TcpListener,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping_tx, stopping) = watch::channel(false);
    let state = AppState {
        db,
        shutdown: stopping,
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        })
        .await
}

/// SIGTERM (what `docker stop` sends) or SIGINT (Ctrl-C). As PID 1 in a scratch image
/// nothing else will forward them, and the kernel ignores signals PID 1 does not handle.
/// The handlers are installed when this is called, before the server starts listening, so
/// a signal that arrives early is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    })
}
