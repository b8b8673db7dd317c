//! The service as a client sees it: HTTP on loopback and a websocket round trip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(8080, |a| a.port())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut response = agent().get(format!("http://{addr}{path}")).call()?;
    let body = response.body_mut().read_to_string()?;
    ensure!(
        response.status().is_success(),
        "{path} answered {}: {body}",
        response.status()
    );
    Ok(body)
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
    ensure!(
        list.iter().any(|m| m["body"] == message),
        "{message:?} is not in /messages: {body}"
    );
    Ok(format!("{} message(s), ours included", list.len()))
}
