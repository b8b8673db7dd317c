//! Loopback probes (from `tiny_engine`), and a registry's answer before anything is built
//! for it.

use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};

pub use tiny_engine::probe::{agent, free_port, http_get, servable_port};

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
