//! A drain under load: wrk keeps keep-alive connections busy on `/hello` while the service
//! gets SIGTERM part-way. A clean drain costs no request: no read errors (a connection
//! reset under a request), no error answers, no timeouts. Connections refused once the
//! listener has closed are expected: wrk retries them until its time is up and counts each
//! as a write error (its connect is non-blocking, so the refusal shows at the first write).

use std::fmt;
use std::net::TcpStream;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8Path;
use xshell::{Shell, cmd};

use tiny_commands::interrupt;
use tiny_commands::report;
use tiny_commands::tools::probe;
use tiny_commands::tools::process::{self, Io};

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct DrainLoad {
    pub connections: u32,
    /// How long wrk runs in all.
    pub duration: Duration,
    /// When SIGTERM is sent, counted from wrk's start.
    pub sigterm_after: Duration,
    /// The service's `DRAIN_SECONDS`.
    pub drain: Duration,
}

impl Default for DrainLoad {
    /// 2 s of load, SIGTERM, a 2 s drain under load, then 2 s of refused connections.
    fn default() -> DrainLoad {
        DrainLoad {
            connections: 64,
            duration: Duration::from_secs(6),
            sigterm_after: Duration::from_secs(2),
            drain: Duration::from_secs(2),
        }
    }
}

/// What wrk counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WrkCounts {
    pub requests: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
    /// Answers with a status of 400 or more (wrk's "Non-2xx or 3xx responses").
    pub non_2xx: u64,
}

impl WrkCounts {
    /// Reads wrk's summary. It prints the socket errors and error answers lines only when
    /// there are some.
    pub fn parse(out: &str) -> anyhow::Result<WrkCounts> {
        let mut counts = WrkCounts::default();
        let mut found_requests = false;
        for line in out.lines().map(str::trim) {
            if let Some((n, _)) = line.split_once(" requests in ") {
                counts.requests = number(n)?;
                found_requests = true;
            } else if let Some(errors) = line.strip_prefix("Socket errors:") {
                for part in errors.split(',') {
                    let (kind, n) = part
                        .trim()
                        .split_once(' ')
                        .with_context(|| format!("unexpected socket errors part {part:?}"))?;
                    let n = number(n)?;
                    match kind {
                        "connect" => counts.connect_errors = n,
                        "read" => counts.read_errors = n,
                        "write" => counts.write_errors = n,
                        "timeout" => counts.timeouts = n,
                        other => bail!("unexpected socket error kind {other:?}"),
                    }
                }
            } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
                counts.non_2xx = number(n)?;
            }
        }
        if !found_requests {
            bail!("no `N requests in` line");
        }
        Ok(counts)
    }
}

fn number(text: &str) -> anyhow::Result<u64> {
    text.trim()
        .parse()
        .with_context(|| format!("{text:?} is not a count"))
}

/// One run's figures.
#[derive(Debug)]
pub struct DrainResult {
    pub load: DrainLoad,
    pub wrk: WrkCounts,
    pub exit: ExitStatus,
    /// From SIGTERM to the service's exit.
    pub exit_after: Duration,
}

impl DrainResult {
    pub fn clean(&self) -> bool {
        self.exit.success()
            && self.wrk.read_errors == 0
            && self.wrk.timeouts == 0
            && self.wrk.non_2xx == 0
    }
}

impl fmt::Display for DrainResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.wrk;
        let row = [
            w.requests,
            w.read_errors,
            w.non_2xx,
            w.timeouts,
            w.write_errors,
            w.connect_errors,
        ]
        .map(|n| n.to_string());
        let mut row = row.to_vec();
        row.push(self.exit.to_string());
        row.push(report::seconds(self.exit_after));
        writeln!(
            f,
            "SIGTERM under load: GET /hello, {} keep-alive connections, SIGTERM at {} of {}, \
             DRAIN_SECONDS={}",
            self.load.connections,
            report::seconds(self.load.sigterm_after),
            report::seconds(self.load.duration),
            self.load.drain.as_secs_f64()
        )?;
        let headers = [
            "requests",
            "read errors",
            "non-2xx",
            "timeouts",
            "write errors (refused after close)",
            "connect errors",
            "exit",
            "SIGTERM to exit",
        ];
        write!(f, "{}", report::table(&headers, &[row]))?;
        let verdict = if self.clean() {
            "clean: no read error, no error answer"
        } else {
            "NOT clean"
        };
        writeln!(f, "{verdict}")
    }
}

/// Starts `binary` on a free loopback port with its database under `scratch`, loads it with
/// wrk and sends SIGTERM part-way.
pub fn drain_under_load(
    sh: &Shell,
    wrk: &Utf8Path,
    binary: &Utf8Path,
    scratch: &Utf8Path,
    load: &DrainLoad,
) -> anyhow::Result<DrainResult> {
    let port = probe::free_port();
    let db = scratch.join(format!("drain-{port}.db"));
    let mut service = process::spawn(
        cmd!(sh, "{binary}")
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("DATABASE_PATH", &db)
            .env("MIGRATE_ON_START", "true")
            .env("RUST_LOG", "warn")
            .env("DRAIN_SECONDS", load.drain.as_secs_f64().to_string()),
        Io::Null,
    )
    .with_context(|| format!("cannot start {binary}"))?;
    wait_listening(port).with_context(|| format!("{binary} did not start listening"))?;

    let connections = load.connections.to_string();
    let seconds = format!("{}s", load.duration.as_secs());
    let url = format!("http://127.0.0.1:{port}/hello");
    let started = Instant::now();
    let wrk = process::spawn(
        cmd!(sh, "{wrk} -t2 -c{connections} -d{seconds} {url}"),
        Io::Capture,
    )
    .context("cannot start wrk: sudo apt-get install wrk")?;
    while started.elapsed() < load.sigterm_after {
        interrupt::check()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = service.id().to_string();
    cmd!(sh, "kill -TERM {pid}").quiet().run()?;
    let sigterm = Instant::now();
    let deadline = load.drain + Duration::from_secs(15);
    let exit = loop {
        interrupt::check()?;
        if let Some(status) = service.try_wait()? {
            break status;
        }
        if sigterm.elapsed() > deadline {
            bail!("the service did not exit within {deadline:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let exit_after = sigterm.elapsed();

    let (status, out) = wrk.output()?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{out}");
    }
    let wrk = WrkCounts::parse(&out).with_context(|| format!("unexpected wrk output:\n{out}"))?;
    Ok(DrainResult {
        load: load.clone(),
        wrk,
        exit,
        exit_after,
    })
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        interrupt::check()?;
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_parses() {
        let out = "Running 6s test @ http://127.0.0.1:1/hello\n  2 threads and 64 connections\n\
                   \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                   \x20 812345 requests in 6.00s, 98.00MB read\n\
                   \x20 Socket errors: connect 5012, read 0, write 0, timeout 0\n\
                   Requests/sec:  81234.50\nTransfer/sec:      9.80MB\n";
        assert_eq!(
            WrkCounts::parse(out).unwrap(),
            WrkCounts {
                requests: 812345,
                connect_errors: 5012,
                ..WrkCounts::default()
            }
        );
    }

    #[test]
    fn errors_and_error_answers_parse() {
        let out = "  100 requests in 1.00s, 1.00KB read\n\
                   \x20 Socket errors: connect 0, read 64, write 2, timeout 3\n\
                   \x20 Non-2xx or 3xx responses: 7\n";
        assert_eq!(
            WrkCounts::parse(out).unwrap(),
            WrkCounts {
                requests: 100,
                connect_errors: 0,
                read_errors: 64,
                write_errors: 2,
                timeouts: 3,
                non_2xx: 7,
            }
        );
    }

    #[test]
    fn output_without_a_summary_is_refused() {
        assert!(WrkCounts::parse("unable to connect to 127.0.0.1:1").is_err());
        let bad = "  1 requests in 1.00s\n  Socket errors: connect x, read 0, write 0, timeout 0\n";
        assert!(WrkCounts::parse(bad).is_err());
    }
}
