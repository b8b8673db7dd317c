//! This service as a client sees it (websocket round trip, message log, limits), and a
//! registry's answer before anything is built for it.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

pub use tiny_engine::probe::{agent, free_port, http, http_get, servable_port};

/// Checks that the registry at `host[:port]` answers before anything is built for it. A
/// loopback registry must answer `GET /v2/` as a registry does (docker talks plain HTTP to
/// loopback); any other host only has to accept a connection, as it may speak TLS only.
pub fn registry(host: &str) -> anyhow::Result<()> {
    // The reference grammar has no IPv6 literals: `host[:port]` splits at the last colon.
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, port.parse::<u16>().ok()),
        None => (host, None),
    };
    let loopback = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let fix = "start it, or correct --registry/--tag";
    if !loopback {
        let port = port.unwrap_or(443);
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(name, port))
            .with_context(|| format!("the registry host {name} is unknown: {fix}"))?;
        for addr in addrs {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok() {
                return Ok(());
            }
        }
        bail!("the registry at {host} does not answer: {fix}");
    }
    let url = format!("http://{host}/v2/");
    let response = match agent().get(&url).call() {
        Ok(response) => response,
        Err(e) => bail!("the registry at {host} does not answer ({e}): {fix}"),
    };
    let status = response.status().as_u16();
    let is_registry = response
        .headers()
        .contains_key("docker-distribution-api-version")
        || status == 200
        || status == 401;
    if !is_registry {
        bail!(
            "{host} answers, but not as a registry (GET /v2/ gave {status}): another service \
             holds that port; correct --registry/--tag, or move that service"
        );
    }
    Ok(())
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
