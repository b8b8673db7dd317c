//! Settings from the environment, each with a documented default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// `PORT`: the TCP port to listen on.
pub const DEFAULT_PORT: u16 = 8080;
/// `BIND_ADDRESS`: all interfaces, as a container needs.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `DATABASE_PATH`: the SQLite file (the image points it into its `/data` volume).
pub const DEFAULT_DATABASE: &str = "service.db";
/// `RUST_LOG`: a `tracing` filter such as `info` or `warn,service=debug`.
pub const DEFAULT_LOG: &str = "info";

// Limits for a service exposed to the internet: each bounds what one client can make the
// server hold (memory, sockets, time) while leaving room for every honest use.

/// `MAX_MESSAGE_BYTES`: the largest websocket message; a larger one is closed with 1009.
/// 1 MiB holds any chat-sized text; each open websocket may buffer one such message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// `MAX_BODY_BYTES`: the largest request body (`POST /messages`); larger gets 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// `MAX_CONNECTIONS`: open TCP connections (websockets included). A new connection over it
/// takes the place of one that is not being answered: the oldest still waiting for its
/// first request's headers (slow or stuck clients), else the oldest closing one, else the
/// oldest idle keep-alive one. When every connection is busy, `/healthz` and `/readyz` get
/// one of `HEALTH_RESERVE` more places; past that, new connections wait in the kernel's
/// backlog instead of costing memory and file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// `MAX_WEBSOCKETS`: open websockets, which are long-lived and buffer a message each: 256 of
/// them hold at most 256 MiB of messages. Over the limit, `/ws` answers 503.
pub const DEFAULT_MAX_WEBSOCKETS: usize = 256;
/// `HEADER_TIMEOUT_SECONDS`: time to send a request's headers, counted from when the server
/// waits for them, so it is also how long an idle keep-alive connection stays open. Stops
/// slowloris clients from holding connections with a trickle of header bytes.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `MAX_HEADER_BYTES`: the request line and headers together; larger gets 431 and the
/// connection is closed. 32 KiB is twice what the largest cookies and tokens browsers send
/// need; at least 8192 (the least the HTTP parser works with).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 << 10;
/// The smallest `MAX_HEADER_BYTES` accepted.
pub const MIN_HEADER_BYTES: usize = 8 << 10;
/// Connections kept beyond `MAX_CONNECTIONS` for `/healthz` and `/readyz` alone, used when
/// every other connection is busy with a request or a websocket: health checks are answered
/// even then. Any other path on them gets 503, and every answer closes the connection.
pub const HEALTH_RESERVE: usize = 16;
/// `WS_IDLE_TIMEOUT_SECONDS`: a websocket whose client sends no message for this long is
/// closed with 1001 (pings and pongs do not count), so idle sockets cannot hold every
/// `MAX_WEBSOCKETS` place; nginx proxies close idle websockets after 60 s too.
pub const DEFAULT_WS_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `WS_PING_SECONDS`: how often the server pings each websocket.
pub const DEFAULT_WS_PING: Duration = Duration::from_secs(20);
/// `WS_PONG_TIMEOUT_SECONDS`: a ping not answered within this is a dead or stuck peer: the
/// websocket is closed with 1008.
pub const DEFAULT_WS_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// `REQUEST_TIMEOUT_SECONDS`: time from a request's headers to its answer, body upload
/// included (a 1 MiB body needs 30 s only below ~300 kbit/s); later gets 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `DRAIN_SECONDS`: after SIGTERM, how long the server keeps answering (with `/readyz` at
/// 503 and `Connection: close`) so load balancers move clients away; it ends sooner once no
/// connection is open.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
/// `SHUTDOWN_TIMEOUT_SECONDS`: from SIGTERM to exit at the latest, whatever is still open;
/// below the 10 s after which `docker stop` kills.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(9);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub database: PathBuf,
    pub log: String,
    /// `MIGRATE_ON_START`: apply pending migrations instead of refusing to start.
    pub migrate_on_start: bool,
    pub limits: Limits,
}

/// What one client may ask of the server, and how it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub max_websockets: usize,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub ws_idle_timeout: Duration,
    pub ws_ping: Duration,
    pub ws_pong_timeout: Duration,
    pub drain: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_websockets: DEFAULT_MAX_WEBSOCKETS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ws_idle_timeout: DEFAULT_WS_IDLE_TIMEOUT,
            ws_ping: DEFAULT_WS_PING,
            ws_pong_timeout: DEFAULT_WS_PONG_TIMEOUT,
            drain: DEFAULT_DRAIN,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl Limits {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Limits> {
        let d = Limits::default();
        let limits = Limits {
            max_message_bytes: count(lookup, "MAX_MESSAGE_BYTES", d.max_message_bytes)?,
            max_body_bytes: count(lookup, "MAX_BODY_BYTES", d.max_body_bytes)?,
            max_connections: count(lookup, "MAX_CONNECTIONS", d.max_connections)?,
            max_websockets: count(lookup, "MAX_WEBSOCKETS", d.max_websockets)?,
            max_header_bytes: count(lookup, "MAX_HEADER_BYTES", d.max_header_bytes)?,
            header_timeout: seconds(lookup, "HEADER_TIMEOUT_SECONDS", d.header_timeout)?,
            request_timeout: seconds(lookup, "REQUEST_TIMEOUT_SECONDS", d.request_timeout)?,
            ws_idle_timeout: seconds(lookup, "WS_IDLE_TIMEOUT_SECONDS", d.ws_idle_timeout)?,
            ws_ping: seconds(lookup, "WS_PING_SECONDS", d.ws_ping)?,
            ws_pong_timeout: seconds(lookup, "WS_PONG_TIMEOUT_SECONDS", d.ws_pong_timeout)?,
            drain: seconds(lookup, "DRAIN_SECONDS", d.drain)?,
            shutdown_timeout: seconds(lookup, "SHUTDOWN_TIMEOUT_SECONDS", d.shutdown_timeout)?,
        };
        for (name, timeout) in [
            ("HEADER_TIMEOUT_SECONDS", limits.header_timeout),
            ("REQUEST_TIMEOUT_SECONDS", limits.request_timeout),
        ] {
            if timeout.is_zero() {
                bail!("{name}=0 would refuse every request: set a number of seconds above 0");
            }
        }
        for (name, timeout) in [
            ("WS_IDLE_TIMEOUT_SECONDS", limits.ws_idle_timeout),
            ("WS_PING_SECONDS", limits.ws_ping),
            ("WS_PONG_TIMEOUT_SECONDS", limits.ws_pong_timeout),
        ] {
            if timeout.is_zero() {
                bail!("{name}=0 would close every websocket: set a number of seconds above 0");
            }
        }
        if limits.max_header_bytes < MIN_HEADER_BYTES {
            bail!(
                "MAX_HEADER_BYTES={} is below {MIN_HEADER_BYTES}, the least the HTTP parser \
                 works with: set {MIN_HEADER_BYTES} or more",
                limits.max_header_bytes
            );
        }
        if limits.shutdown_timeout < limits.drain {
            bail!(
                "SHUTDOWN_TIMEOUT_SECONDS ({:?}) is shorter than DRAIN_SECONDS ({:?}): raise it \
                 or shorten the drain",
                limits.shutdown_timeout,
                limits.drain
            );
        }
        Ok(limits)
    }
}

/// A whole number above zero: a limit of zero would refuse everything.
fn count(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
) -> anyhow::Result<usize> {
    let Some(v) = lookup(name) else {
        return Ok(default);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{name}={v:?} is not a whole number above 0 (default {default})"),
    }
}

/// Seconds, to the millisecond (`0.25`).
fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    let Some(v) = lookup(name) else {
        return Ok(default);
    };
    parse_seconds(v.trim())
        .with_context(|| format!("{name}={v:?} is not a number of seconds (default {default:?})"))
}

/// Parsed by hand, without floating point: that would add float parsing and formatting
/// code to the binary for this alone.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = match whole {
        "" if !fraction.is_empty() => 0,
        whole => whole.parse().ok()?,
    };
    let millis: u64 = format!("{fraction:0<3}").parse().ok()?;
    Some(Duration::from_secs(whole) + Duration::from_millis(millis))
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let port = match lookup("PORT") {
            Some(v) => v
                .trim()
                .parse()
                .with_context(|| format!("PORT={v:?} is not a port number (0-65535)"))?,
            None => DEFAULT_PORT,
        };
        let bind = match lookup("BIND_ADDRESS") {
            Some(v) => v.trim().parse().with_context(|| {
                format!("BIND_ADDRESS={v:?} is not an IP address (for example 0.0.0.0 or ::1)")
            })?,
            None => DEFAULT_BIND,
        };
        let migrate_on_start = match lookup("MIGRATE_ON_START").as_deref().map(str::trim) {
            None | Some("" | "0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(other) => bail!("MIGRATE_ON_START={other:?} is not a boolean (true or false)"),
        };
        Ok(Config {
            bind,
            port,
            database: lookup("DATABASE_PATH")
                .map_or_else(|| DEFAULT_DATABASE.into(), PathBuf::from),
            log: lookup("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG.to_owned()),
            migrate_on_start,
            limits: Limits::from_lookup(&lookup)?,
        })
    }

    pub fn listen_address(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Where a client on this host reaches the service: the wildcard address is not one.
    pub fn local_address(&self) -> SocketAddr {
        let ip = match self.bind {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen_address(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.local_address(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.database, PathBuf::from("service.db"));
        assert_eq!(c.log, "info");
        assert!(!c.migrate_on_start);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_message_bytes, 1 << 20);
        assert_eq!(c.limits.drain, Duration::from_secs(5));
    }

    #[test]
    fn limits_override() {
        let c = config(&[
            ("MAX_MESSAGE_BYTES", "4096"),
            ("MAX_BODY_BYTES", " 100 "),
            ("MAX_CONNECTIONS", "8"),
            ("MAX_WEBSOCKETS", "2"),
            ("MAX_HEADER_BYTES", "16384"),
            ("HEADER_TIMEOUT_SECONDS", "1.5"),
            ("REQUEST_TIMEOUT_SECONDS", "3"),
            ("WS_IDLE_TIMEOUT_SECONDS", "0.3"),
            ("WS_PING_SECONDS", "0.1"),
            ("WS_PONG_TIMEOUT_SECONDS", "0.2"),
            ("DRAIN_SECONDS", "0"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "0.25"),
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_message_bytes: 4096,
                max_body_bytes: 100,
                max_connections: 8,
                max_websockets: 2,
                max_header_bytes: 16384,
                header_timeout: Duration::from_millis(1500),
                request_timeout: Duration::from_secs(3),
                ws_idle_timeout: Duration::from_millis(300),
                ws_ping: Duration::from_millis(100),
                ws_pong_timeout: Duration::from_millis(200),
                drain: Duration::ZERO,
                shutdown_timeout: Duration::from_millis(250),
            }
        );
    }

    #[test]
    fn bad_limits_name_the_variable_and_the_default() {
        for (name, value) in [
            ("MAX_MESSAGE_BYTES", "0"),
            ("MAX_BODY_BYTES", "1MiB"),
            ("MAX_CONNECTIONS", "-1"),
            ("DRAIN_SECONDS", "-1"),
            ("REQUEST_TIMEOUT_SECONDS", "soon"),
            ("HEADER_TIMEOUT_SECONDS", "inf"),
            ("MAX_HEADER_BYTES", "32KiB"),
            ("WS_PING_SECONDS", "often"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{name}={value:?} is not")),
                "{err}"
            );
            assert!(err.contains("(default "), "{err}");
        }
        let err = config(&[("MAX_HEADER_BYTES", "4096")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MAX_HEADER_BYTES=4096 is below 8192"),
            "{err}"
        );
        let err = config(&[("WS_PONG_TIMEOUT_SECONDS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("WS_PONG_TIMEOUT_SECONDS=0 would close"),
            "{err}"
        );
        let err = config(&[("DRAIN_SECONDS", "20")]).unwrap_err().to_string();
        assert!(
            err.contains("SHUTDOWN_TIMEOUT_SECONDS (9s) is shorter than DRAIN_SECONDS (20s)"),
            "{err}"
        );
    }

    #[test]
    fn seconds_parse_to_the_millisecond() {
        for (text, millis) in [
            ("0", 0),
            ("2", 2000),
            ("1.5", 1500),
            (".25", 250),
            ("3.", 3000),
        ] {
            assert_eq!(
                parse_seconds(text),
                Some(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for text in ["", ".", "-1", "1.2345", "1e3", "inf", "1.x", "one"] {
            assert_eq!(parse_seconds(text), None, "{text}");
        }
    }

    #[test]
    fn overrides() {
        let c = config(&[
            ("PORT", "9000"),
            ("BIND_ADDRESS", "::"),
            ("DATABASE_PATH", "/data/x.db"),
            ("MIGRATE_ON_START", "true"),
        ])
        .unwrap();
        assert_eq!(c.listen_address(), "[::]:9000".parse().unwrap());
        assert_eq!(c.local_address(), "[::1]:9000".parse().unwrap());
        assert_eq!(c.database, PathBuf::from("/data/x.db"));
        assert!(c.migrate_on_start);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err().to_string();
        assert!(err.starts_with("PORT=\"eighty\""), "{err}");
        let err = config(&[("BIND_ADDRESS", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("BIND_ADDRESS="), "{err}");
        let err = config(&[("MIGRATE_ON_START", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a boolean"), "{err}");
    }
}
