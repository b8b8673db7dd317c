//! The service as a client sees it: HTTP on loopback and a websocket round trip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(8080, |a| a.port())
}

/// Checks, before anything is built, that the service as `run` starts it (host network, a
/// non-root user without capabilities) can listen on `port` of 127.0.0.1.
pub fn servable_port(port: u16) -> anyhow::Result<()> {
    let fix = "give another --port, or leave it out for a free one";
    ensure!(port != 0, "--port 0 is not a port to serve on: {fix}");
    // Binding below this needs CAP_NET_BIND_SERVICE, which the container does not have,
    // whoever runs the xtask.
    let unprivileged = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    ensure!(
        port >= unprivileged,
        "port {port} is privileged (below {unprivileged}) and the service runs as a non-root \
         user without capabilities: {fix} ({unprivileged} or above)"
    );
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        bail!("port {port} on 127.0.0.1 is taken ({e}): {fix}");
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

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

/// `method path` (with `body`, if any) and the answer: its status and body, whatever the
/// status.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(body.unwrap_or_default().to_owned())
        .with_context(|| format!("{method} {path} is not a request"))?;
    let mut response = agent().run(request)?;
    let text = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), text))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_privileged_or_zero_port_is_refused_and_a_free_one_accepted() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = servable_port(port).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("port {port} on 127.0.0.1 is taken")),
            "{err}"
        );
        assert!(err.contains("--port"), "{err}");
        drop(held);
        servable_port(port).unwrap();
        let err = servable_port(80).unwrap_err().to_string();
        assert!(err.starts_with("port 80 is privileged"), "{err}");
        assert!(servable_port(0).is_err());
    }
}
