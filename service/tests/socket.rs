//! The server on a real socket on 127.0.0.1:0: websocket echo, storage, graceful shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusqlite::Connection;
use service::db::{self, Db};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

struct Running {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    db: Db,
}

async fn start() -> Running {
    let mut conn = Connection::open_in_memory().unwrap();
    db::migrations().to_latest(&mut conn).unwrap();
    let db = Db::new(conn);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(service::server::serve(listener, db.clone(), async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        server,
        db,
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(running: &Running) -> Socket {
    let url = format!("ws://{}/ws", running.addr);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

#[tokio::test]
async fn websocket_echoes_and_stores_text() {
    let running = start().await;
    let mut ws = connect(&running).await;
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
    let running = start().await;
    let mut ws = connect(&running).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away_and_stops_the_server() {
    let running = start().await;
    let mut ws = connect(&running).await;
    ws.send(Message::text("before")).await.unwrap();
    ws.next().await.unwrap().unwrap();

    running.stop.send(()).unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap();
    match frame.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(ws);
    tokio::time::timeout(Duration::from_secs(2), running.server)
        .await
        .expect("server stops within 2 s")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_still_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let running = start().await;
    // Hold the database for a while, so /messages is still waiting when shutdown begins.
    let busy = running.db.clone();
    let holder = tokio::spawn(async move {
        busy.call(|_| {
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    stream
        .write_all(b"GET /messages HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop.send(()).unwrap();

    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut response))
        .await
        .expect("the answer comes within 2 s")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("[]"), "{response}");
    holder.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(2), running.server)
        .await
        .expect("server stops within 2 s")
        .unwrap()
        .unwrap();
}
