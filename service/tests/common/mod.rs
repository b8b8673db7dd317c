//! The server on a real socket on 127.0.0.1:0, and the raw clients the tests talk to it with.

#![allow(dead_code)] // each test crate uses a part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use rusqlite::Connection;
use service::config::Limits;
use service::db::{self, Db};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Any wait in a test that should take milliseconds fails after this.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub server: JoinHandle<()>,
    pub db: Db,
}

impl Running {
    /// What SIGTERM does in the binary.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
    }

    /// Waits for `serve` to return, failing after `within`.
    pub async fn stopped(self, within: Duration) {
        tokio::time::timeout(within, self.server)
            .await
            .expect("the server stops in time")
            .unwrap();
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

pub async fn start(limits: Limits) -> Running {
    let mut conn = Connection::open_in_memory().unwrap();
    db::migrations().to_latest(&mut conn).unwrap();
    let db = Db::new(conn);
    let listener = service::server::bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(service::server::serve(
        listener,
        db.clone(),
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        server,
        db,
    }
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub async fn websocket(running: &Running) -> Socket {
    tokio_tungstenite::connect_async(running.ws_url())
        .await
        .unwrap()
        .0
}

/// An HTTP/1.1 answer as it came over the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A keep-alive HTTP/1.1 connection written by hand, so the tests see what is on the wire.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.write(request.as_bytes()).await.unwrap();
        self.read().await
    }

    /// Reads one answer (its body has a Content-Length, as every answer of the service does).
    pub async fn read(&mut self) -> Answer {
        let (status, headers) = self.read_head().await;
        let mut answer = Answer {
            status,
            headers,
            body: String::new(),
        };
        let length = answer
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.unwrap();
        answer.body = String::from_utf8(body).unwrap();
        answer
    }

    /// Reads a status line and headers.
    pub async fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        (status, headers)
    }

    /// Everything the server sends until it closes the connection.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest).await;
        rest
    }

    /// True once the server has closed the connection (end of file, or a reset); then closes
    /// this end too, as a client does.
    pub async fn closed(mut self) -> bool {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest).await {
            Ok(_) => rest.is_empty(),
            Err(_) => true,
        }
    }
}

/// Polls `condition` until it holds, failing after `PATIENCE`.
pub async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next frame is a close with `code`, within `PATIENCE`; returns its reason.
pub async fn expect_close(ws: &mut Socket, code: CloseCode) -> String {
    let frame = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    match frame {
        Some(Ok(Message::Close(Some(frame)))) if frame.code == code => frame.reason.to_string(),
        other => panic!("expected a close frame with {code}, got {other:?}"),
    }
}
