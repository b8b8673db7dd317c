//! Hostile clients on loopback, bounded in count and time: idle websockets holding every
//! `MAX_WEBSOCKETS` place and more slow clients than `MAX_CONNECTIONS`, each trickling
//! header bytes and reconnecting when cut. Health checks and `/hello` on new connections
//! must still be answered, promptly. (`cargo xtask bench --only hostile` measures the same
//! load against the built binary; the bound here is generous, for a loaded CI machine.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Client, start};
use service::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const IDLE_WEBSOCKETS: usize = 300;
const SLOW_CLIENTS: usize = 1100;
/// Requests of each path the well-behaved client sends, one connection each.
const REQUESTS: usize = 50;
/// Every hostile client stops after this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// The files this test opens (both ends of each connection) exceed a default soft limit of
/// 1024: raise it to the hard limit.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let needed = 2 * (IDLE_WEBSOCKETS + SLOW_CLIENTS) as u64 + 256;
    assert!(
        hard >= needed,
        "this test needs {needed} open files; the hard limit is {hard}: raise it (ulimit -Hn)"
    );
}

/// Connects, sends a request line and then one header byte at a time, every 200 ms, never
/// finishing; reconnects as soon as the server cuts it.
async fn slow_client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, cuts: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            continue;
        };
        if stream
            .write_all(b"GET /hello HTTP/1.1\r\nX-Slow: ")
            .await
            .is_err()
        {
            cuts.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut scratch = [0; 1024];
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if stream.write_all(b"a").await.is_err() {
                        break;
                    }
                }
                read = stream.read(&mut scratch) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        break;
                    }
                }
            }
        }
        cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens websockets that never send anything; returns how many the server took.
async fn idle_websockets(url: String, n: usize) -> Vec<common::Socket> {
    let mut open = Vec::new();
    for _ in 0..n {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            open.push(ws);
        }
    }
    open
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_hello_are_answered_under_idle_websockets_and_slow_clients() {
    raise_open_files_limit();
    let running = start(Limits::default()).await;
    let addr = running.addr;
    let url = running.ws_url();
    let stop = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicU64::new(0));

    // The hostile clients run on a runtime of their own, as another process would.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let load = {
        let (stop, cuts) = (stop.clone(), cuts.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let websockets = idle_websockets(url, IDLE_WEBSOCKETS).await;
                let slow: Vec<_> = (0..SLOW_CLIENTS)
                    .map(|_| tokio::spawn(slow_client(addr, stop.clone(), cuts.clone())))
                    .collect();
                let _ = ready_tx.send(websockets.len());
                let _ = tokio::time::timeout(LOAD_LIMIT, async {
                    for task in slow {
                        let _ = task.await;
                    }
                })
                .await;
                drop(websockets);
            });
        })
    };
    let websockets = ready_rx.await.unwrap();
    assert_eq!(
        websockets,
        service::config::DEFAULT_MAX_WEBSOCKETS,
        "idle websockets the server took"
    );
    // Until the slow clients are over the limit and being cut.
    common::wait_until("slow clients are being cut", || async {
        cuts.load(Ordering::Relaxed) >= 100
    })
    .await;

    let mut latencies = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for i in 0..2 * REQUESTS {
        pace.tick().await;
        let path = if i % 2 == 0 { "/healthz" } else { "/hello" };
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            Client::connect(addr).await.get(path).await
        })
        .await
        .unwrap_or_else(|_| panic!("{path} was not answered within 5 s under hostile load"));
        latencies.push(started.elapsed());
        assert_eq!(answer.status, 200, "{path}");
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "{} requests: p50 {:?}, p99 {p99:?}, max {:?}; slow clients cut {} times",
        latencies.len(),
        percentile(&latencies, 0.5),
        latencies[latencies.len() - 1],
        cuts.load(Ordering::Relaxed)
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}
