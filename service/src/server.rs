//! Running the service: database check, bind, serve until SIGTERM or SIGINT, then drain.
//! The accept loop is our own (over hyper) so that it can count connections, choose which
//! connection makes room for a new one (see `connection::Admission`), mark answers
//! `Connection: close` while draining, and choose which connections to close when.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::{Config, HEALTH_RESERVE, Limits};
use crate::connection::{Admission, Answered, Connection, Tracker};
use crate::db::{self, Db};
use crate::routes::{AppState, Phase, app, stopping};

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
    // A reader per core: as many as tokio has worker threads, each reading on its own.
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get());
    Db::with_readers(conn, &config.database, readers)
}

/// The whole service process after configuration and logging are set up.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("cannot install SIGTERM and SIGINT handlers")?;
    let db = prepare_database(&config)?;
    let addr = config.listen_address();
    let listener = bind(addr)
        .with_context(|| format!("cannot listen on {addr} (set PORT or BIND_ADDRESS)"))?;
    tracing::info!(
        "listening on {}, database {}",
        listener.local_addr()?,
        config.database.display()
    );
    serve(listener, db, config.limits, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// The kernel's queue of connections not yet accepted: up to `net.core.somaxconn` (4096 on
/// Linux since 5.4). The default of 128 overflows when a few hundred clients over
/// `MAX_CONNECTIONS` reconnect at once, and every connection dropped there (a health check's
/// included) is retried by its client only a second later.
pub const BACKLOG: u32 = 4096;

/// Listens on `addr` with a queue of `BACKLOG`.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves until `shutdown` resolves, then stops without cutting anyone off:
///
/// 1. Draining, for `limits.drain` or until no connection is open: `/readyz` answers 503 so
///    load balancers move clients away, and every answer says `Connection: close`, so each
///    client leaves after its next answer. Closing idle keep-alive connections instead would
///    reset the requests clients are sending on them. New connections are still answered.
/// 2. Stopping: the listener closes; requests in flight finish; answered connections that sit
///    idle close; a connection still waiting for its first request gets it answered (it may
///    be on its way); websockets get a 1001 close.
/// 3. Returns once no connection is open, or `limits.shutdown_timeout` after `shutdown`.
pub async fn serve(
    listener: TcpListener,
    db: Db,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (phase_tx, phase) = watch::channel(Phase::Serving);
    let (open_tx, mut open) = watch::channel(0);
    let mut http = http1::Builder::new();
    // Also the idle keep-alive timeout: hyper starts it whenever it waits for a request.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Over it, hyper answers 431 and closes the connection.
        .max_buf_size(limits.max_header_bytes);
    let server = Server {
        router: app(AppState::new(db, limits, phase.clone())),
        http,
        phase,
        request_timeout: limits.request_timeout,
        admission: Admission::new(limits.max_connections, HEALTH_RESERVE),
        open: open_tx,
    };

    server.accept_until(&listener, shutdown).await;
    let deadline = Instant::now() + limits.shutdown_timeout;
    phase_tx.send_replace(Phase::Draining);
    tracing::info!(
        "shutting down: draining {} open connection(s) for up to {:?}",
        *open.borrow(),
        limits.drain
    );
    let window = Instant::now() + limits.drain;
    loop {
        let mut idle = open.clone();
        let until = async {
            tokio::select! {
                () = tokio::time::sleep_until(window) => {}
                () = none_open(&mut idle) => {}
            }
        };
        server.accept_until(&listener, until).await;
        // No connection is open: the window ends early, unless a client has just connected
        // (it waits in the kernel's queue, where tokio may not have looked yet).
        match server.accept_queued(&listener) {
            Some(connection) if Instant::now() < window => server.spawn(connection),
            Some(connection) => {
                server.spawn(connection);
                break;
            }
            None => break,
        }
    }
    // Closing the listener resets the connections in its queue, whose clients may already
    // have sent a request: take them first. Only those that connect in the next
    // microseconds are refused.
    while let Some(connection) = server.accept_queued(&listener) {
        server.spawn(connection);
    }
    drop(listener);

    phase_tx.send_replace(Phase::Stopping);
    tracing::info!(
        "stopped accepting: finishing {} open connection(s)",
        *open.borrow()
    );
    if tokio::time::timeout_at(deadline, none_open(&mut open))
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown deadline reached: leaving {} connection(s) open",
            *open.borrow()
        );
    }
}

/// After a failed `accept` (out of file descriptors, say), wait this long before the next:
/// retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct Server {
    router: Router,
    http: http1::Builder,
    phase: watch::Receiver<Phase>,
    request_timeout: Duration,
    /// `MAX_CONNECTIONS` places, and the health checks' reserve.
    admission: Arc<Admission>,
    /// How many connections are open, lingering ones and websockets included.
    open: watch::Sender<usize>,
}

impl Server {
    async fn accept_until(&self, listener: &TcpListener, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                accepted = self.accept(listener) => {
                    if let Some(connection) = accepted {
                        self.spawn(connection);
                    }
                }
            }
        }
    }

    /// Waits for a connection, then for a place for it: when every connection is busy and
    /// the reserve is taken, the next ones wait in the kernel's backlog.
    async fn accept(&self, listener: &TcpListener) -> Option<Connection> {
        match listener.accept().await {
            Ok((stream, _)) => Some(Connection::new(
                stream,
                self.admission.admit(&self.open).await,
            )),
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                None
            }
        }
    }

    /// Takes a connection already in the kernel's queue, without waiting for one.
    fn accept_queued(&self, listener: &TcpListener) -> Option<Connection> {
        let slot = self.admission.try_admit(&self.open)?;
        let (socket, _) = SockRef::from(listener).accept().ok()?;
        let stream = std::net::TcpStream::from(socket);
        stream.set_nonblocking(true).ok()?;
        let stream = TcpStream::from_std(stream).ok()?;
        Some(Connection::new(stream, slot))
    }

    fn spawn(&self, connection: Connection) {
        let Some(tracker) = connection.tracker().cloned() else {
            return;
        };
        let answered = Arc::new(AtomicBool::new(false));
        let service = {
            let (router, phase, answered, tracker) = (
                self.router.clone(),
                self.phase.clone(),
                answered.clone(),
                tracker.clone(),
            );
            let timeout = self.request_timeout;
            service_fn(move |request| {
                answer(
                    router.clone(),
                    request,
                    phase.clone(),
                    answered.clone(),
                    tracker.clone(),
                    timeout,
                )
            })
        };
        let conn = self
            .http
            .serve_connection(TokioIo::new(connection), service)
            .with_upgrades();
        let mut phase = self.phase.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                // Its place went to a new connection: it closes without lingering.
                () = tracker.shed() => return,
                () = stopping(&mut phase) => {
                    // Closing a connection before its first request could reset one on its
                    // way; it gets `Connection: close` with its answer instead.
                    if answered.load(Ordering::Relaxed) {
                        conn.as_mut().graceful_shutdown();
                    }
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

async fn none_open(open: &mut watch::Receiver<usize>) {
    let _ = open.wait_for(|n| *n == 0).await;
}

/// Runs one request through the router, within the request timeout; while the server
/// drains, or on a reserved place, the answer tells the client to close the connection.
async fn answer(
    router: Router,
    request: Request<Incoming>,
    phase: watch::Receiver<Phase>,
    answered: Arc<AtomicBool>,
    tracker: Arc<Tracker>,
    timeout: Duration,
) -> Result<Response<Answered>, Infallible> {
    tracker.request_started();
    let response = if tracker.is_reserve() && !is_health_check(request.uri().path()) {
        let msg = "the server is at its connection limit, try again later";
        Ok(Ok((StatusCode::SERVICE_UNAVAILABLE, msg).into_response()))
    } else {
        tokio::time::timeout(timeout, router.oneshot(request)).await
    };
    let response = mark_close(response, &phase, tracker.is_reserve());
    answered.store(true, Ordering::Relaxed);
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        tracker.upgraded();
    }
    // The connection counts as idle once the body is written, when hyper drops it.
    Ok(response.map(|body| Answered::new(body, tracker)))
}

fn is_health_check(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

fn mark_close(
    answer: Result<Result<Response, Infallible>, tokio::time::error::Elapsed>,
    phase: &watch::Receiver<Phase>,
    reserve: bool,
) -> Response {
    let draining = *phase.borrow() != Phase::Serving;
    let (mut response, close) = match answer {
        Ok(Ok(response)) => (response, draining || reserve),
        Ok(Err(infallible)) => match infallible {},
        // The request's body may be half read: the connection cannot carry another one.
        Err(_) => (
            (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
            true,
        ),
    };
    // A websocket's upgrade answer keeps its own `Connection: upgrade`.
    if close && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
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
