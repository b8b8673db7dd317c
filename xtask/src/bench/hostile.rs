//! The service under hostile clients, on loopback: idle websockets that never send anything
//! (more than `MAX_WEBSOCKETS`) and slow clients (more than `MAX_CONNECTIONS`) that trickle
//! header bytes and reconnect whenever they are cut, while a well-behaved client asks for
//! `/healthz` and `/hello`, one new connection per request as a health checker does. Every
//! loop is bounded in count and time, and everything stops by itself.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8Path;
use serde::Serialize;
use xshell::{Shell, cmd};

use tiny_commands::interrupt::{self, wait_until};
use tiny_commands::report;
use tiny_commands::tools::probe;
use tiny_commands::tools::process::{self, Io};

const IDLE_WEBSOCKETS: usize = 300;
const SLOW_CLIENTS: usize = 1100;
/// Threads that drive the slow clients, each an equal share of them.
const SLOW_THREADS: usize = 4;
const _: () = assert!(SLOW_CLIENTS.is_multiple_of(SLOW_THREADS));
/// How often each slow client sends one more header byte.
const TRICKLE: Duration = Duration::from_millis(200);
/// How often a slow-client thread looks at each of its clients: a cut one reconnects
/// within this.
const SWEEP: Duration = Duration::from_millis(50);
/// Requests of each path the well-behaved client sends.
const REQUESTS: usize = 200;
/// Between two of its requests.
const PACE: Duration = Duration::from_millis(10);
/// A request not answered within this counts as unanswered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The p99 the well-behaved client should see.
const GOAL_P99_MS: f64 = 100.0;
const PATHS: [&str; 2] = ["/healthz", "/hello"];

/// What `bench --json` reports under `hostile` (schema in the README).
#[derive(Debug, Serialize)]
pub struct Hostile {
    pub binary: String,
    pub idle_websockets: usize,
    /// How many of them the server took (the rest got 503 at `MAX_WEBSOCKETS`).
    pub websockets_open: usize,
    pub slow_clients: usize,
    /// How often the server cut a slow client (each then reconnected).
    pub slow_client_cuts: u64,
    pub paths: Vec<PathLatency>,
    pub goal_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct PathLatency {
    pub path: String,
    pub requests: usize,
    /// Answered with 200 within `ANSWER_TIMEOUT`.
    pub answered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Hostile {
    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .paths
            .iter()
            .map(|p| {
                vec![
                    format!("GET {}", p.path),
                    format!("{}/{}", p.answered, p.requests),
                    format!("{:.2}", p.p50_ms),
                    format!("{:.2}", p.p99_ms),
                    format!("{:.2}", p.max_ms),
                ]
            })
            .collect();
        let worst = self.paths.iter().map(|p| p.p99_ms).fold(0.0, f64::max);
        let all = self.paths.iter().all(|p| p.answered == p.requests);
        format!(
            "hostile clients: {} idle websockets ({} taken), {} slow clients reconnecting when \
             cut (cut {} times); a new connection per request\n{}{}\n",
            self.idle_websockets,
            self.websockets_open,
            self.slow_clients,
            self.slow_client_cuts,
            report::table(
                &["request", "answered", "p50 ms", "p99 ms", "max ms"],
                &rows
            ),
            if all && worst < self.goal_p99_ms {
                format!("every request answered, p99 under {} ms", self.goal_p99_ms)
            } else {
                format!(
                    "NOT within the goal: every request answered, p99 under {} ms",
                    self.goal_p99_ms
                )
            }
        )
    }
}

/// Starts `binary` on a free loopback port with its database under `scratch` and measures
/// the well-behaved client under the hostile load.
pub fn measure(sh: &Shell, binary: &Utf8Path, scratch: &Utf8Path) -> anyhow::Result<Hostile> {
    raise_open_files_limit()?;
    let port = probe::free_port();
    let db = scratch.join(format!("hostile-{port}.db"));
    let _service = process::spawn(
        cmd!(sh, "{binary}")
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("DATABASE_PATH", &db)
            .env("MIGRATE_ON_START", "true")
            .env("RUST_LOG", "error"),
        Io::Null,
    )
    .with_context(|| format!("cannot start {binary}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listening = wait_until(Duration::from_secs(10), || {
        Ok(TcpStream::connect(addr).is_ok().then_some(()))
    })?;
    if listening.is_none() {
        bail!("{binary} did not start listening on {addr}");
    }

    let websockets = open_idle_websockets(addr, IDLE_WEBSOCKETS)?;
    let websockets_open = websockets.len();
    let stop = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicU64::new(0));
    // However this ends, the slow clients stop: by the flag, or at their own deadline.
    let _stop = StopOnDrop(stop.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    let slow: Vec<_> = (0..SLOW_THREADS)
        .map(|_| {
            let share = SLOW_CLIENTS / SLOW_THREADS;
            let (stop, cuts) = (stop.clone(), cuts.clone());
            thread::spawn(move || slow_clients(addr, share, &stop, &cuts, deadline))
        })
        .collect();
    // Until every slow client has connected and the server is cutting the ones over its limit.
    let cutting = wait_until(Duration::from_secs(30), || {
        Ok((cuts.load(Ordering::Relaxed) >= 200).then_some(()))
    })?;
    if cutting.is_none() {
        bail!("the slow clients were never cut: is MAX_CONNECTIONS above {SLOW_CLIENTS}?");
    }

    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut answered = [0; 2];
    for i in 0..2 * REQUESTS {
        interrupt::check()?;
        let which = i % 2;
        let started = Instant::now();
        if get(addr, PATHS[which]).is_ok() {
            answered[which] += 1;
        }
        times[which].push(started.elapsed().as_secs_f64() * 1000.0);
        thread::sleep(PACE);
    }
    stop.store(true, Ordering::Relaxed);
    for thread in slow {
        let _ = thread.join();
    }
    drop(websockets);
    let paths = PATHS
        .iter()
        .zip(times.iter_mut().zip(answered))
        .map(|(path, (times, answered))| {
            times.sort_by(f64::total_cmp);
            PathLatency {
                path: (*path).to_owned(),
                requests: REQUESTS,
                answered,
                p50_ms: percentile(times, 0.50),
                p99_ms: percentile(times, 0.99),
                max_ms: times.last().copied().unwrap_or(f64::NAN),
            }
        })
        .collect();
    Ok(Hostile {
        binary: binary.to_string(),
        idle_websockets: IDLE_WEBSOCKETS,
        websockets_open,
        slow_clients: SLOW_CLIENTS,
        slow_client_cuts: cuts.load(Ordering::Relaxed),
        paths,
        goal_p99_ms: GOAL_P99_MS,
    })
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Both ends of every connection are files: more than a default soft limit of 1024.
fn raise_open_files_limit() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    let needed = (IDLE_WEBSOCKETS + SLOW_CLIENTS + 256) as u64;
    if hard < needed {
        bail!(
            "the hostile-clients bench needs {needed} open files, the hard limit is {hard}: raise it (ulimit -Hn)"
        );
    }
    Ok(())
}

type Websocket = tungstenite::WebSocket<TcpStream>;

/// Websockets that never send anything; those refused (503) are left out.
fn open_idle_websockets(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Websocket>> {
    let mut open = Vec::new();
    for _ in 0..n {
        interrupt::check()?;
        let stream = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        if let Ok((ws, _)) = tungstenite::client(format!("ws://{addr}/ws"), stream) {
            open.push(ws);
        }
    }
    Ok(open)
}

/// One slow client: a request line, then a header byte every `TRICKLE`, never finished.
struct Slow {
    stream: Option<TcpStream>,
    next: Instant,
}

/// Drives `n` slow clients until `stop` or `deadline`; each one the server cuts reconnects.
fn slow_clients(
    addr: SocketAddr,
    n: usize,
    stop: &AtomicBool,
    cuts: &AtomicU64,
    deadline: Instant,
) {
    let mut clients: Vec<Slow> = (0..n)
        .map(|_| Slow {
            stream: None,
            next: Instant::now(),
        })
        .collect();
    let mut scratch = [0; 1024];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for client in &mut clients {
            let now = Instant::now();
            let Some(stream) = &mut client.stream else {
                client.stream = connect_slow(addr);
                client.next = now + TRICKLE;
                continue;
            };
            let cut = match stream.read(&mut scratch) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            let cut = cut || (now >= client.next && stream.write(b"a").is_err());
            if now >= client.next {
                client.next = now + TRICKLE;
            }
            if cut {
                cuts.fetch_add(1, Ordering::Relaxed);
                client.stream = connect_slow(addr);
            }
        }
        thread::sleep(SWEEP);
    }
}

fn connect_slow(addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.write_all(b"GET /hello HTTP/1.1\r\nX-Slow: ").ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// One request on a new connection, answered with 200 in time.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200 ") {
        bail!("{path} did not answer 200");
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 100.0);
        assert_eq!(percentile(&values, 0.99), 198.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
