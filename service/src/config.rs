//! Settings from the environment, each with a documented default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};

/// `PORT`: the TCP port to listen on.
pub const DEFAULT_PORT: u16 = 8080;
/// `BIND_ADDRESS`: all interfaces, as a container needs.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `DATABASE_PATH`: the SQLite file (the image points it into its `/data` volume).
pub const DEFAULT_DATABASE: &str = "service.db";
/// `RUST_LOG`: a `tracing` filter such as `info` or `warn,service=debug`.
pub const DEFAULT_LOG: &str = "info";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub database: PathBuf,
    pub log: String,
    /// `MIGRATE_ON_START`: apply pending migrations instead of refusing to start.
    pub migrate_on_start: bool,
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
