//! A service as a client sees it: free ports and HTTP on loopback.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;

use crate::error::{Result, bail, ensure};

/// A port of 127.0.0.1 that nothing listens on now (8080 if none can be found).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(8080, |a| a.port())
}

/// Checks, before anything is built, that a service as [`crate::Resources`] starts it (host network, a
/// non-root user without capabilities) can listen on `port` of 127.0.0.1.
pub fn servable_port(port: u16) -> Result<()> {
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

/// The HTTP client of every probe: 5 s for a whole request, and any status an answer (a
/// check decides what it expects).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET path`: the body of a 2xx answer; any other status is an error with the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut response = agent().get(format!("http://{addr}{path}")).call()?;
    let body = response.body_mut().read_to_string()?;
    ensure!(
        response.status().is_success(),
        "{path} answered {}: {body}",
        response.status()
    );
    Ok(body)
}

/// `method path` (with `headers` and `body`, if any) and the answer: its status and body,
/// whatever the status. The body goes with no `Content-Type` unless `headers` has one.
pub fn http<'a>(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body.unwrap_or_default().to_owned())
        .with_context(|| format!("{method} {path} is not a request"))?;
    let mut response = agent().run(request)?;
    let text = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), text))
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
