//! A shared compilation cache: every rustc and C compile of one build goes through
//! [sccache](https://github.com/mozilla/sccache), whose backend (Redis, S3, WebDAV, the
//! GitHub Actions cache, a local folder) its own `SCCACHE_*` variables configure.
//!
//! Each build starts a server of its own on a free loopback port, so that it reports the
//! hits and misses of this build alone, sees the compilers of this build only, and never
//! meets a server someone else started with other settings. The compiles reach it through
//! the committed wrappers (`.cargo/rustc-wrapper`, `.cargo/cc/zig`), which hand sccache a
//! compiler that maps this machine's paths itself (`.cargo/cache/rustc` and `cc`): sccache
//! keys entries on the arguments it sees, so two clones at different paths share them.
//!
//! A cache that fails never fails the build: a server that does not start is an
//! [`crate::Error`], on which the caller builds without it; compiles whose cache read or write
//! failed ran locally and show as [`Stats::errors`]; a server gone mid-build leaves the
//! compilers running without it (`SCCACHE_IGNORE_SERVER_IO_ERROR`). A backend that stops
//! answering mid-build is cut off at its first failure: a watcher connects to its
//! [`backend_address`] every half second and, when that fails, creates a flag file
//! ([`Sccache::env`]'s `XTASK_SCCACHE_OFF`) on which the wrappers compile without sccache
//! (with the same path mapping: the same bytes). The server goes on for the compiles it
//! holds, which would fail if it stopped under them.
//!
//! ```
//! use tiny_cross::cache::Stats;
//!
//! let json = r#"{"stats": {"compile_requests": 9, "requests_not_cacheable": 3,
//!   "cache_hits": {"counts": {"Rust": 4, "C/C++": 1}}, "cache_misses": {"counts": {"Rust": 1}},
//!   "cache_errors": {"counts": {}}, "cache_read_errors": 0, "cache_write_errors": 0,
//!   "cache_timeouts": 0}}"#;
//! let stats = Stats::parse(json)?;
//! assert_eq!((stats.hits, stats.misses, stats.not_cacheable), (5, 1, 3));
//! assert_eq!(stats.to_string(), "5 hits, 1 miss (83% hit), 3 not cacheable");
//! # Ok::<(), tiny_cross::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tiny_interrupt::process::{self, Io, Running};
use tiny_interrupt::wait_until;
use xshell::{Shell, cmd};

use crate::error::bail;

/// What sccache counted, over a whole server's life or (after [`Stats::since`]) one build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Compiles served from the cache.
    pub hits: u64,
    /// Compiles that could be cached and were not there (compiled, then stored).
    pub misses: u64,
    /// Compiles sccache does not cache: crates that link (binaries, build scripts,
    /// proc-macros), incremental ones, version queries.
    pub not_cacheable: u64,
    /// Cache reads or writes that failed or timed out (the compile ran here).
    pub errors: u64,
    /// Every compile request the server got.
    pub requests: u64,
}

#[derive(Deserialize)]
struct Counts {
    counts: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Raw {
    compile_requests: u64,
    requests_not_cacheable: u64,
    cache_hits: Counts,
    cache_misses: Counts,
    cache_errors: Counts,
    cache_read_errors: u64,
    cache_write_errors: u64,
    cache_timeouts: u64,
}

#[derive(Deserialize)]
struct Report {
    stats: Raw,
}

impl Stats {
    /// Reads `sccache --show-stats --stats-format json`.
    pub fn parse(json: &str) -> crate::Result<Stats> {
        let raw = serde_json::from_str::<Report>(json)
            .context("reading sccache's statistics")?
            .stats;
        let sum = |c: &Counts| c.counts.values().sum::<u64>();
        Ok(Stats {
            hits: sum(&raw.cache_hits),
            misses: sum(&raw.cache_misses),
            not_cacheable: raw.requests_not_cacheable,
            errors: sum(&raw.cache_errors)
                + raw.cache_read_errors
                + raw.cache_write_errors
                + raw.cache_timeouts,
            requests: raw.compile_requests,
        })
    }

    /// What was counted since `before`; `None` when these counts are not a continuation
    /// of those (the server was restarted in between).
    pub fn since(self, before: Stats) -> Option<Stats> {
        Some(Stats {
            hits: self.hits.checked_sub(before.hits)?,
            misses: self.misses.checked_sub(before.misses)?,
            not_cacheable: self.not_cacheable.checked_sub(before.not_cacheable)?,
            errors: self.errors.checked_sub(before.errors)?,
            requests: self.requests.checked_sub(before.requests)?,
        })
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, one: &str, many: &str| match n {
            1 => format!("{n} {one}"),
            _ => format!("{n} {many}"),
        };
        write!(
            f,
            "{}, {}",
            plural(self.hits, "hit", "hits"),
            plural(self.misses, "miss", "misses")
        )?;
        if let Some(rate) = (self.hits * 100).checked_div(self.hits + self.misses) {
            write!(f, " ({rate}% hit)")?;
        }
        write!(f, ", {} not cacheable", self.not_cacheable)?;
        if self.errors > 0 {
            write!(
                f,
                ", {}",
                plural(self.errors, "cache error", "cache errors")
            )?;
        }
        Ok(())
    }
}

/// A running sccache server of one build; stopped when dropped.
pub struct Sccache {
    program: Utf8PathBuf,
    port: u16,
    c_key: String,
    started: Stats,
    server: Option<Running>,
    off: Utf8PathBuf,
    watcher: Option<Watcher>,
}

/// The thread that watches the backend and cuts the cache off at its first failure.
struct Watcher {
    stop: Arc<AtomicBool>,
    cut: Arc<OnceLock<String>>,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Connects to `address` about every `every`; at the first failure creates `off` (the
    /// wrappers then compile without sccache) and calls `on_cut_off` with the reason.
    fn start(
        address: (String, u16),
        off: Utf8PathBuf,
        every: Duration,
        on_cut_off: Box<dyn FnOnce(&str) + Send>,
    ) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(OnceLock::new());
        let (stopped, reason) = (stop.clone(), cut.clone());
        let thread = std::thread::spawn(move || {
            let (host, port) = address;
            while !stopped.load(Ordering::SeqCst) {
                if let Err(e) = connects(&host, port, every.max(Duration::from_millis(500))) {
                    let mut why = format!("{host}:{port}: {e}");
                    if let Err(e) = std::fs::write(&off, why.as_bytes()) {
                        // Not cut off: the remaining compiles wait out sccache's retries.
                        why = format!("{why}; and {off}: {e}");
                    }
                    let _ = reason.set(why.clone());
                    on_cut_off(&why);
                    break;
                }
                std::thread::park_timeout(every);
            }
        });
        Watcher { stop, cut, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// Whether `host:port` accepts a connection within `limit`.
fn connects(host: &str, port: u16, limit: Duration) -> std::io::Result<()> {
    let addresses = (host, port).to_socket_addrs()?;
    let mut last = std::io::Error::other("no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, limit) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The host and port that sccache's backend settings name, for a backend reached over TCP:
/// Redis (`SCCACHE_REDIS_ENDPOINT`, `SCCACHE_REDIS`, the first of
/// `SCCACHE_REDIS_CLUSTER_ENDPOINTS`), memcached (`SCCACHE_MEMCACHED_ENDPOINT`,
/// `SCCACHE_MEMCACHED`), WebDAV (`SCCACHE_WEBDAV_ENDPOINT`) or an S3 endpoint
/// (`SCCACHE_ENDPOINT`). `None` for the others (a local folder, the GitHub Actions cache,
/// S3 at AWS's default): nothing to watch.
///
/// ```
/// use tiny_cross::cache::backend_address;
///
/// let env = |name: &str| (name == "SCCACHE_REDIS_ENDPOINT").then(|| "redis://:pw@10.0.0.2/1".to_owned());
/// assert_eq!(backend_address(env), Some(("10.0.0.2".to_owned(), 6379)));
/// let env = |name: &str| (name == "SCCACHE_WEBDAV_ENDPOINT").then(|| "https://[::1]:8443/cache".to_owned());
/// assert_eq!(backend_address(env), Some(("::1".to_owned(), 8443)));
/// assert_eq!(backend_address(|_| None), None);
/// ```
pub fn backend_address(env: impl Fn(&str) -> Option<String>) -> Option<(String, u16)> {
    const SETTINGS: [(&str, u16); 7] = [
        ("SCCACHE_REDIS_ENDPOINT", 6379),
        ("SCCACHE_REDIS", 6379),
        ("SCCACHE_REDIS_CLUSTER_ENDPOINTS", 6379),
        ("SCCACHE_MEMCACHED_ENDPOINT", 11211),
        ("SCCACHE_MEMCACHED", 11211),
        ("SCCACHE_WEBDAV_ENDPOINT", 80),
        ("SCCACHE_ENDPOINT", 80),
    ];
    SETTINGS.iter().find_map(|&(name, port)| {
        let value = env(name)?;
        let first = value.split(',').next()?.trim();
        address_of(first, port)
    })
}

/// `host` and `port` of `[scheme://][user[:password]@]host[:port][/path]`.
fn address_of(url: &str, default_port: u16) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("", url),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => default_port,
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

impl Sccache {
    /// Starts `program` (an sccache) as a server of its own on a free loopback port, with
    /// this process's environment (the `SCCACHE_*` backend settings). `c_key` names what
    /// sccache cannot see of the C compiler (the zig version, the wrappers): it is part of
    /// every C entry's key. An error (the program did not run, the backend did not answer
    /// within `limit`) means: build without the cache.
    ///
    /// When `backend` names a host and port (see [`backend_address`]), a watcher connects
    /// to it about every half second; at the first failure it creates a flag file in
    /// `dir`, on which the wrappers compile without sccache, and calls `on_cut_off` with
    /// the reason, once.
    pub fn start(
        sh: &Shell,
        program: &Utf8Path,
        c_key: &str,
        limit: Duration,
        dir: &Utf8Path,
        backend: Option<(String, u16)>,
        on_cut_off: Box<dyn FnOnce(&str) + Send>,
    ) -> crate::Result<Sccache> {
        let port = free_port()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let off = dir.join(format!("sccache-{port}.off"));
        match std::fs::remove_file(&off) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("removing {off}: {e}")
            }
            _ => {}
        }
        // In the foreground, as our child: a server that never gets ready (a backend that
        // does not answer) is stopped with us, instead of living on as a daemon.
        let server = cmd!(sh, "{program}")
            .env("SCCACHE_START_SERVER", "1")
            .env("SCCACHE_NO_DAEMON", "1")
            .env("SCCACHE_SERVER_PORT", port.to_string())
            // Never on its own: an idle one (a long fat-LTO link, no compile to serve) would
            // go, and the next compile would start a daemon we do not know. It goes with us
            // (a signal stops its process group, `Drop` stops it).
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .ignore_stderr();
        let mut server = process::spawn(server, Io::Null)
            .map_err(|e| anyhow::anyhow!("{program} did not run: {e}"))?;
        let ready = wait_until(limit, || -> crate::Result<Option<()>> {
            if let Ok(Some(status)) = server.try_wait() {
                bail!("sccache stopped as it started ({status})");
            }
            Ok(listening(port).then_some(()))
        })?;
        if ready.is_none() {
            bail!(
                "sccache was not ready within {} s (does its backend answer?)",
                limit.as_secs()
            );
        }
        let mut cache = Sccache {
            program: program.to_owned(),
            port,
            c_key: c_key.to_owned(),
            started: Stats::default(),
            server: Some(server),
            off: off.clone(),
            watcher: None,
        };
        cache.started = cache.stats(sh)?;
        cache.watcher = backend
            .map(|address| Watcher::start(address, off, Duration::from_millis(500), on_cut_off));
        Ok(cache)
    }

    /// Why the cache was cut off during the build, if it was.
    pub fn cut_off(&self) -> Option<&str> {
        self.watcher
            .as_ref()
            .and_then(|w| w.cut.get())
            .map(String::as_str)
    }

    /// The variables the compiles of the build need (for cargo): the committed wrappers
    /// run through this sccache, which they reach on its port, and compile here when it
    /// stops answering, or when the flag file `XTASK_SCCACHE_OFF` names exists (the
    /// backend was cut off).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("XTASK_SCCACHE", self.program.to_string()),
            ("XTASK_SCCACHE_OFF", self.off.to_string()),
            ("SCCACHE_SERVER_PORT", self.port.to_string()),
            ("SCCACHE_IGNORE_SERVER_IO_ERROR", "1".into()),
            ("SCCACHE_C_CUSTOM_CACHE_BUSTER", self.c_key.clone()),
        ]
    }

    /// What the server counted since it started (this build); an error when it no longer
    /// answers, or answers as another (restarted) server.
    pub fn stats_since_start(&mut self, sh: &Shell) -> crate::Result<Stats> {
        if let Some(Ok(Some(status))) = self.server.as_mut().map(Running::try_wait) {
            bail!("the sccache server stopped during the build ({status})");
        }
        let now = self.stats(sh)?;
        match now.since(self.started) {
            Some(stats) => Ok(stats),
            None => bail!("the sccache server was restarted during the build"),
        }
    }

    fn stats(&self, sh: &Shell) -> crate::Result<Stats> {
        // Asked with nobody listening, sccache would start a server of its own.
        if !listening(self.port) {
            bail!("the sccache server is gone");
        }
        let json = self
            .command(sh, &["--show-stats", "--stats-format", "json"])
            .ignore_stderr()
            .read()
            .context("sccache does not answer")?;
        Stats::parse(&json)
    }

    fn command<'a>(&self, sh: &'a Shell, args: &[&str]) -> xshell::Cmd<'a> {
        let program = &self.program;
        cmd!(sh, "{program} {args...}")
            .quiet()
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
    }
}

impl Drop for Sccache {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
        let _ = std::fs::remove_file(&self.off);
        if let (true, Ok(sh)) = (listening(self.port), Shell::new()) {
            let stop = self.command(&sh, &["--stop-server"]).ignore_stdout();
            let _ = process::run_for(stop, Io::Null, Io::Null, Duration::from_secs(10));
        }
        // Reaped, or stopped if it did not go.
        self.server.take();
    }
}

/// Whether something accepts connections on the loopback `port`.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// A loopback port nobody listens on right now.
fn free_port() -> crate::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The key for what sccache cannot see of a C compile through the committed wrappers: the
/// C compiler's version line (`zig version`) and the wrappers' contents, hashed.
///
/// ```
/// let a = tiny_cross::cache::c_key("0.13.0", &[b"#!/bin/sh\n".as_slice()]);
/// assert_ne!(a, tiny_cross::cache::c_key("0.14.0", &[b"#!/bin/sh\n".as_slice()]));
/// assert!(a.starts_with("zig 0.13.0, wrappers "));
/// ```
pub fn c_key(zig_version: &str, wrappers: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for wrapper in wrappers {
        digest.update((wrapper.len() as u64).to_le_bytes());
        digest.update(wrapper);
    }
    let hex: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("zig {}, wrappers {hex}", zig_version.trim())
}
