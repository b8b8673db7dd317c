//! What the server does between SIGTERM and its exit, on a real socket.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, expect_close, start, wait_until, websocket};
use futures_util::{SinkExt, StreamExt};
use service::config::Limits;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A drain window far longer than any test: only its early end can let one pass quickly.
const LONG: Duration = Duration::from_secs(600);

fn draining_for(drain: Duration) -> Limits {
    Limits {
        drain,
        shutdown_timeout: drain.max(LONG),
        ..Limits::default()
    }
}

async fn readyz(addr: std::net::SocketAddr) -> u16 {
    Client::connect(addr).await.get("/readyz").await.status
}

#[tokio::test]
async fn an_idle_server_ends_the_drain_window_at_once() {
    let mut running = start(draining_for(LONG)).await;
    assert_eq!(readyz(running.addr).await, 200);
    let started = Instant::now();
    running.stop();
    running.stopped(PATIENCE).await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn draining_answers_with_readyz_503_and_connection_close_then_ends_when_all_left() {
    let mut running = start(draining_for(LONG)).await;
    let mut keep_alive = Client::connect(running.addr).await;
    let before = keep_alive.get("/hello").await;
    assert_eq!((before.status, before.header("connection")), (200, None));

    running.stop();
    let addr = running.addr;
    wait_until("/readyz answers 503", || async move {
        readyz(addr).await == 503
    })
    .await;

    // The idle keep-alive connection was not cut: its next request is answered, once.
    let during = keep_alive.get("/hello").await;
    assert_eq!(during.status, 200);
    assert_eq!(during.body, "hello");
    assert_eq!(during.header("connection"), Some("close"));
    assert!(keep_alive.closed().await);

    // New connections are still answered during the window, and told to close too.
    let mut late = Client::connect(running.addr).await;
    let answer = late.get("/hello").await;
    assert_eq!(
        (answer.status, answer.header("connection")),
        (200, Some("close"))
    );
    assert!(late.closed().await);

    // No connection is left: the 10-minute window ends now.
    running.stopped(PATIENCE).await;
}

#[tokio::test]
async fn websockets_keep_echoing_while_draining_and_get_1001_when_the_window_ends() {
    let mut running = start(draining_for(Duration::from_millis(300))).await;
    let mut ws = websocket(&running).await;
    running.stop();
    let addr = running.addr;
    wait_until("/readyz answers 503", || async move {
        readyz(addr).await == 503
    })
    .await;
    ws.send(Message::text("while draining")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("while draining"));

    expect_close(&mut ws, CloseCode::Away).await;
    drop(ws);
    running.stopped(PATIENCE).await;
}

#[tokio::test]
async fn the_hard_deadline_ends_a_request_that_never_finishes() {
    let deadline = Duration::from_millis(300);
    let mut running = start(Limits {
        drain: Duration::ZERO,
        shutdown_timeout: deadline,
        request_timeout: LONG,
        header_timeout: LONG,
        ..Limits::default()
    })
    .await;
    let mut client = Client::connect(running.addr).await;
    assert_eq!(client.get("/hello").await.status, 200);
    // A body that never comes whole: the handler waits for it (the 100 Continue says it
    // asked for it), so the request stays in flight.
    client
        .write(b"POST /messages HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(client.read_head().await.0, 100);
    client.write(b"half").await.unwrap();
    let started = Instant::now();
    running.stop();
    running.stopped(PATIENCE).await;
    let took = started.elapsed();
    assert!(
        took >= deadline,
        "returned after {took:?}, before the deadline"
    );
}
