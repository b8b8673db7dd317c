//! The limits on a real socket: what a client over them receives, and that one just under
//! them is served.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, expect_close, start, websocket};
use futures_util::{SinkExt, StreamExt};
use service::config::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_MESSAGE_BYTES, HEALTH_RESERVE,
    Limits,
};
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
async fn an_idle_keep_alive_connection_makes_room_for_a_new_client() {
    let running = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let mut first = Client::connect(running.addr).await;
    assert_eq!(first.get("/hello").await.status, 200);
    let mut second = Client::connect(running.addr).await;
    let answer = tokio::time::timeout(PATIENCE, second.get("/hello")).await;
    assert_eq!(answer.unwrap().status, 200);
    assert!(
        tokio::time::timeout(PATIENCE, first.closed())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn connections_still_waiting_for_headers_make_room_oldest_first() {
    let running = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut oldest = Client::connect(running.addr).await;
    oldest.write(b"GET /hello HTTP/1.1\r\nHo").await.unwrap();
    let mut younger = Client::connect(running.addr).await;
    younger.write(b"GET /hello HTTP/1.1\r\nHo").await.unwrap();
    // The kernel's queue is first in, first out: the server takes them in this order.
    let mut client = Client::connect(running.addr).await;
    let answer = tokio::time::timeout(PATIENCE, client.get("/hello")).await;
    assert_eq!(answer.unwrap().status, 200);
    assert!(
        tokio::time::timeout(PATIENCE, oldest.closed())
            .await
            .unwrap()
    );
    younger.write(b"st: test\r\n\r\n").await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, younger.read())
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn busy_connections_keep_their_place_and_health_checks_get_the_reserve() {
    let running = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let ws = websocket(&running).await;
    // Every place is busy: other paths get 503, health checks are answered, and each
    // connection on the reserve is closed after its answer.
    let mut client = Client::connect(running.addr).await;
    let answer = client.get("/hello").await;
    assert_eq!(
        (answer.status, answer.header("connection")),
        (503, Some("close"))
    );
    drop(client);
    for path in ["/healthz", "/readyz"] {
        let mut client = Client::connect(running.addr).await;
        let answer = tokio::time::timeout(PATIENCE, client.get(path))
            .await
            .unwrap();
        assert_eq!(
            (answer.status, answer.header("connection")),
            (200, Some("close"))
        );
    }
    // With the reserve taken too, a new connection waits for a place.
    let mut held = Vec::new();
    for _ in 0..HEALTH_RESERVE {
        held.push(Client::connect(running.addr).await);
    }
    let mut last = Client::connect(running.addr).await;
    last.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(200), last.read()).await;
    assert!(waited.is_err(), "answered over the connection limit");
    drop(held.pop());
    let answer = tokio::time::timeout(PATIENCE, last.read()).await.unwrap();
    assert_eq!(answer.status, 200);
    drop(ws);
}

#[tokio::test]
async fn headers_over_the_limit_get_431() {
    let running = start(Limits::default()).await;
    let request = |size: usize| {
        format!(
            "GET /hello HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
            "p".repeat(size)
        )
    };
    let mut client = Client::connect(running.addr).await;
    client.write(request(100_000).as_bytes()).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, client.read()).await.unwrap();
    assert_eq!(answer.status, 431);
    let mut client = Client::connect(running.addr).await;
    let under = DEFAULT_MAX_HEADER_BYTES - 100;
    client.write(request(under).as_bytes()).await.unwrap();
    assert_eq!(client.read().await.status, 200);
}

/// Limits as the binary reads them from its environment.
fn from_env(vars: &[(&str, &str)]) -> Limits {
    service::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
    .limits
}

/// The next frame that is not a ping, within `PATIENCE`.
async fn next_message(ws: &mut common::Socket) -> Message {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_idle_websocket_is_closed_with_1001_after_the_idle_timeout() {
    let running = start(from_env(&[
        ("WS_IDLE_TIMEOUT_SECONDS", "0.5"),
        ("WS_PING_SECONDS", "0.1"),
    ]))
    .await;
    let started = tokio::time::Instant::now();
    let mut idle = websocket(&running).await;
    let mut chatty = websocket(&running).await;
    let closed = async {
        // Reading answers the server's pings: only messages count as activity.
        let frame = next_message(&mut idle).await;
        let after = started.elapsed();
        match frame {
            Message::Close(Some(close)) if close.code == CloseCode::Away => {
                (close.reason.to_string(), after)
            }
            other => panic!("expected a 1001 close, got {other:?}"),
        }
    };
    let talk = async {
        for i in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            chatty.send(Message::text(format!("m{i}"))).await.unwrap();
            assert_eq!(
                next_message(&mut chatty).await,
                Message::text(format!("m{i}"))
            );
        }
    };
    let ((reason, after), ()) = tokio::join!(closed, talk);
    assert_eq!(reason, "idle: no message for 0.5 s");
    assert!(
        after >= Duration::from_millis(500),
        "closed after {after:?}"
    );
    // The one that talked outlived the timeout twice over.
    chatty.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_message(&mut chatty).await, Message::text("still here"));
}

#[tokio::test]
async fn a_websocket_that_does_not_answer_pings_is_closed_with_1008() {
    let running = start(from_env(&[
        ("WS_PING_SECONDS", "0.1"),
        ("WS_PONG_TIMEOUT_SECONDS", "0.2"),
    ]))
    .await;
    // A client that upgrades and then only reads, answering no ping.
    let mut client = Client::connect(running.addr).await;
    client
        .write(
            b"GET /ws HTTP/1.1\r\nHost: test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(client.read_head().await.0, 101);
    let frames = tokio::time::timeout(PATIENCE, client.read_to_end())
        .await
        .expect("the server closes the websocket");
    // Unmasked server frames, each under 126 bytes: opcode, length, payload.
    let mut opcodes = Vec::new();
    let mut rest = &frames[..];
    let mut last = &[][..];
    while let [head, len, tail @ ..] = rest {
        let len = usize::from(len & 0x7f);
        opcodes.push(head & 0x0f);
        (last, rest) = tail.split_at(len);
    }
    assert_eq!(opcodes, [0x9, 0x8], "a ping, then a close");
    assert_eq!(&last[..2], &1008u16.to_be_bytes());
    assert_eq!(&last[2..], b"no pong within 0.2 s");
}
