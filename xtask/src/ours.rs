//! What is this project's own: the smoke checks of its service, written in Rust and
//! registered by image name (what the declared HTTP probes and commands in Cargo.toml
//! cannot say: a websocket round trip, the message log, the limits), and that service as a
//! client sees it (also used by `bench`'s throughput run). An adopter replaces `checks`:
//! one arm per image, or none.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use tiny_commands::tools::probe::{agent, http_get};
use tiny_smoke::Own;

/// The checks registered for the declared image `image`.
pub fn checks(image: &str) -> Vec<Own> {
    match image {
        "tiny-service" => vec![
            Own {
                name: "websocket",
                after_restart: false,
                run: Box::new(|s| websocket_echo(s.addr, s.token)),
            },
            Own {
                name: "messages",
                after_restart: false,
                run: Box::new(|s| messages_contain(s.addr, s.token)),
            },
            Own {
                name: "message limit",
                after_restart: false,
                run: Box::new(|s| {
                    let (big, detail) = websocket_limit(s.addr, s.token)?;
                    messages_contain(s.addr, &big)?;
                    Ok(format!("{detail}; the big one is listed"))
                }),
            },
            Own {
                name: "body limit",
                after_restart: false,
                run: Box::new(|s| body_limit(s.addr)),
            },
            Own {
                name: "messages kept",
                after_restart: true,
                run: Box::new(|s| {
                    messages_contain(s.addr, s.token)?;
                    Ok("the message survived on the volume".into())
                }),
            },
        ],
        _ => Vec::new(),
    }
}

pub fn websocket_echo(addr: SocketAddr, message: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let started = Instant::now();
    let (mut socket, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).context("websocket handshake")?;
    socket.send(tungstenite::Message::text(message))?;
    let reply = socket.read().context("no echo")?;
    ensure!(
        reply.to_text()? == message,
        "echoed {reply:?}, sent {message:?}"
    );
    let _ = socket.close(None);
    Ok(format!(
        "round trip {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ))
}

pub fn messages_contain(addr: SocketAddr, message: &str) -> anyhow::Result<String> {
    let body = http_get(addr, "/messages?limit=50")?;
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("/messages is not a JSON list")?;
    let shown: String = message.chars().take(60).collect();
    ensure!(
        list.iter().any(|m| m["body"] == message),
        "{shown:?} ({} B) is not among the {} message(s) /messages lists",
        message.len(),
        list.len()
    );
    Ok(format!("{} message(s), ours included", list.len()))
}

/// The service's documented defaults for the largest websocket message and request body
/// (README: The service); the smoke test holds the shipped image to them.
pub const MESSAGE_LIMIT: usize = 1 << 20;

/// A message of exactly `MESSAGE_LIMIT` bytes is echoed (and so stored); one byte more is
/// closed with 1009 "message too big". Returns the big message, for `/messages` to list.
pub fn websocket_limit(addr: SocketAddr, tag: &str) -> anyhow::Result<(String, String)> {
    let at_limit = padded(tag, MESSAGE_LIMIT);
    let echoed = websocket_echo(addr, &at_limit).context("a message at the limit")?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (mut socket, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).context("websocket handshake")?;
    socket.send(tungstenite::Message::text(padded(tag, MESSAGE_LIMIT + 1)))?;
    let code = loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => bail!("no close frame for a message over the limit: {e}"),
        }
    };
    ensure!(
        code == Some(1009),
        "a message over the limit was closed with {code:?}, not 1009"
    );
    Ok((
        at_limit,
        format!("{MESSAGE_LIMIT} B echoed ({echoed}), 1 more closed with 1009"),
    ))
}

/// `POST /messages` with one byte over the body limit answers 413.
pub fn body_limit(addr: SocketAddr) -> anyhow::Result<String> {
    let over = "x".repeat(MESSAGE_LIMIT + 1);
    let response = agent()
        .post(format!("http://{addr}/messages"))
        .send(over.as_bytes())?;
    let status = response.status().as_u16();
    ensure!(status == 413, "a body over the limit got {status}, not 413");
    Ok(format!("{} B body: 413", MESSAGE_LIMIT + 1))
}

/// `text`, then `x` up to `len` bytes.
fn padded(text: &str, len: usize) -> String {
    let mut s = String::with_capacity(len);
    s.push_str(text);
    s.extend(std::iter::repeat_n('x', len.saturating_sub(text.len())));
    s
}
