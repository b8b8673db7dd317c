//! The server on a real socket: websocket echo and storage, and what stopping does to
//! websockets and to requests in flight.

mod common;

use std::time::Duration;

use common::{Client, PATIENCE, expect_close, start, websocket};
use futures_util::{SinkExt, StreamExt};
use service::config::Limits;
use service::db;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// No drain window: these tests are about what happens once the server stops.
fn limits() -> Limits {
    Limits {
        drain: Duration::ZERO,
        ..Limits::default()
    }
}

#[tokio::test]
async fn websocket_echoes_and_stores_text() {
    let running = start(limits()).await;
    let mut ws = websocket(&running).await;
    for text in ["ping one", "ping two"] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo, Message::text(text));
    }
    let stored = running
        .db
        .call(|c| db::latest_messages(c, 10))
        .await
        .unwrap();
    let bodies: Vec<_> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["ping two", "ping one"]);
}

#[tokio::test]
async fn binary_frames_are_refused_with_1003() {
    let running = start(limits()).await;
    let mut ws = websocket(&running).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    expect_close(&mut ws, CloseCode::Unsupported).await;
}

#[tokio::test]
async fn stopping_closes_websockets_with_going_away_and_the_server_returns() {
    let mut running = start(limits()).await;
    let mut ws = websocket(&running).await;
    ws.send(Message::text("before")).await.unwrap();
    ws.next().await.unwrap().unwrap();

    running.stop();
    expect_close(&mut ws, CloseCode::Away).await;
    drop(ws);
    running.stopped(PATIENCE).await;
}

#[tokio::test]
async fn a_request_in_flight_when_the_server_stops_still_gets_its_answer() {
    let mut running = start(limits()).await;
    // A websocket tells when the server has stopped accepting: it gets its 1001 then.
    let mut observer = websocket(&running).await;
    let mut client = Client::connect(running.addr).await;
    assert_eq!(client.get("/hello").await.status, 200);

    // Hold the database until the server is stopping, so /messages is in flight then.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let busy = running.db.clone();
    let holder = tokio::spawn(async move {
        busy.call(move |_| {
            let _ = released.recv();
            Ok(())
        })
        .await
    });
    client
        .write(b"GET /messages HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    running.stop();
    let away = tokio::time::timeout(PATIENCE, observer.next())
        .await
        .unwrap();
    assert!(matches!(away, Some(Ok(Message::Close(_)))), "{away:?}");
    drop(observer);
    release.send(()).unwrap();

    let answer = tokio::time::timeout(PATIENCE, client.read()).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "[]");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(client.closed().await);
    holder.await.unwrap().unwrap();
    running.stopped(PATIENCE).await;
}
