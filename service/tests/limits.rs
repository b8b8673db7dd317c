//! The limits on a real socket: what a client over them receives, and that one just under
//! them is served.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, expect_close, start, websocket};
use futures_util::{SinkExt, StreamExt};
use service::config::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, Limits};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

async fn latest(addr: std::net::SocketAddr) -> serde_json::Value {
    let answer = Client::connect(addr).await.get("/messages?limit=1").await;
    assert_eq!(answer.status, 200);
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_is_closed_with_1009() {
    let running = start(Limits {
        max_message_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let mut ws = websocket(&running).await;
    ws.send(Message::text("x".repeat(1024))).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().len(), 1024);
    ws.send(Message::text("x".repeat(1025))).await.unwrap();
    let reason = expect_close(&mut ws, CloseCode::Size).await;
    assert_eq!(reason, "message too big: the limit is 1024 bytes");
}

#[tokio::test]
async fn a_20_mib_frame_still_gets_its_1009_close_frame() {
    let running = start(Limits::default()).await;
    let mut ws = websocket(&running).await;
    // The server refuses it after the frame header; the client is still writing then, and
    // must still be able to finish and read the close frame.
    ws.send(Message::text("x".repeat(20 << 20))).await.unwrap();
    expect_close(&mut ws, CloseCode::Size).await;
}

#[tokio::test]
async fn a_websocket_message_of_the_default_limit_is_stored_and_listed() {
    let running = start(Limits::default()).await;
    let mut ws = websocket(&running).await;
    let text = "y".repeat(DEFAULT_MAX_MESSAGE_BYTES);
    ws.send(Message::text(text.clone())).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap().len(), text.len());
    assert_eq!(latest(running.addr).await[0]["body"], text);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_even_while_the_client_is_still_sending() {
    let running = start(Limits::default()).await;
    let mut client = Client::connect(running.addr).await;
    let size = 20 << 20;
    let head = format!("POST /messages HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n");
    client.write(head.as_bytes()).await.unwrap();
    client.write(&vec![b'z'; size]).await.unwrap();
    let answer = client.read().await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.body,
        format!("the request body is over the limit of {DEFAULT_MAX_BODY_BYTES} bytes")
    );

    let body = "w".repeat(DEFAULT_MAX_BODY_BYTES);
    let head = format!(
        "POST /messages HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut client = Client::connect(running.addr).await;
    client.write(head.as_bytes()).await.unwrap();
    client.write(body.as_bytes()).await.unwrap();
    let answer = client.read().await;
    assert_eq!(answer.status, 201);
    let stored: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(stored["body"], body);
    assert_eq!(latest(running.addr).await[0], stored);
}

#[tokio::test]
async fn websockets_over_the_limit_are_refused_with_503() {
    let running = start(Limits {
        max_websockets: 1,
        ..Limits::default()
    })
    .await;
    let first = websocket(&running).await;
    match tokio_tungstenite::connect_async(running.ws_url()).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_gets_408() {
    let running = start(Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut client = Client::connect(running.addr).await;
    client
        .write(b"POST /messages HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhalf")
        .await
        .unwrap();
    let answer = tokio::time::timeout(PATIENCE, client.read()).await.unwrap();
    assert_eq!(answer.status, 408);
    assert_eq!(answer.header("connection"), Some("close"));
}

#[tokio::test]
async fn headers_slower_than_the_header_timeout_lose_the_connection() {
    let running = start(Limits {
        header_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut client = Client::connect(running.addr).await;
    client.write(b"GET /hello HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::timeout(PATIENCE, client.closed())
        .await
        .expect("the server closes the connection");
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let running = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let mut first = Client::connect(running.addr).await;
    assert_eq!(first.get("/hello").await.status, 200);
    let mut second = Client::connect(running.addr).await;
    second
        .write(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(200), second.read()).await;
    assert!(waited.is_err(), "answered over the connection limit");
    drop(first);
    let answer = tokio::time::timeout(PATIENCE, second.read()).await.unwrap();
    assert_eq!(answer.status, 200);
}
