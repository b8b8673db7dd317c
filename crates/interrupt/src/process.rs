//! Running children so that a signal never strands us waiting on one: each child gets a
//! process group of its own (Ctrl-C at the terminal reaches this process alone, never an
//! engine client that would forward it into a container), and this process polls it,
//! stopping the whole group when the run is interrupted or a time limit passes.
//!
//! ```
//! use std::process::Command;
//! use std::time::Duration;
//! use tiny_interrupt::process::{Error, Io, run, run_for};
//!
//! let mut echo = Command::new("echo");
//! echo.arg("hello");
//! let done = run(echo, Io::Capture, Io::Null)?;
//! assert!(done.status.success());
//! assert_eq!(done.stdout, "hello\n");
//!
//! let mut sleep = Command::new("sleep");
//! sleep.arg("30");
//! let late = run_for(sleep, Io::Null, Io::Null, Duration::from_millis(100));
//! assert!(matches!(late, Err(Error::TimedOut { .. })));
//! # Ok::<(), Error>(())
//! ```

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::{Group, Interrupted};

/// Why a child did not run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signal stopped the run (see [`crate::install`]); the child was stopped.
    #[error("interrupted")]
    Interrupted,
    /// The child ran longer than its time limit and was stopped.
    #[error("{program} did not finish within {}s", limit.as_secs_f64())]
    TimedOut {
        /// The program as it was started.
        program: String,
        /// The limit it ran over.
        limit: Duration,
    },
    /// The child could not be started (typically: the program is not installed).
    // The OS error is said in the message, not chained as a source: a chain printer would
    // say it twice.
    #[error("starting {program}: {error}")]
    Start {
        /// The program as it was started.
        program: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// Waiting on the child failed.
    #[error("waiting for {program}: {error}")]
    Wait {
        /// The program as it was started.
        program: String,
        /// What the operating system said.
        error: std::io::Error,
    },
}

impl From<Interrupted> for Error {
    fn from(_: Interrupted) -> Error {
        Error::Interrupted
    }
}

/// What becomes of a child's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Shown on our own stream (cargo's progress and diagnostics).
    Inherit,
    /// Returned in `Finished`.
    Capture,
    /// Onto our stderr, keeping our stdout for results.
    Stderr,
    /// Discarded.
    Null,
}

impl Io {
    fn stdio(self) -> Stdio {
        match self {
            Io::Inherit => Stdio::inherit(),
            Io::Capture => Stdio::piped(),
            Io::Stderr => std::io::stderr().into(),
            Io::Null => Stdio::null(),
        }
    }
}

/// A child that ran to its end, successfully or not.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// What it wrote on stdout, when captured ([`Io::Capture`]), lossily as UTF-8.
    pub stdout: String,
    /// What it wrote on stderr, when captured.
    pub stderr: String,
}

/// How long a stopped group gets to exit on SIGTERM before SIGKILL: enough for podman or a
/// nested xtask to clean up after itself.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Runs `cmd` to its end (stdin closed); an interrupt stops it and returns
/// [`Error::Interrupted`].
pub fn run(cmd: impl Into<Command>, stdout: Io, stderr: Io) -> Result<Finished, Error> {
    crate::check()?;
    run_inner(cmd.into(), stdout, stderr, true, None)
}

/// Like [`run`], stopped after `limit` with [`Error::TimedOut`].
pub fn run_for(
    cmd: impl Into<Command>,
    stdout: Io,
    stderr: Io,
    limit: Duration,
) -> Result<Finished, Error> {
    crate::check()?;
    run_inner(cmd.into(), stdout, stderr, true, Some(limit))
}

/// For undoing: runs even after an interrupt (in its own group, so a further Ctrl-C does
/// not cut it short), but never longer than `limit`; both streams are captured.
pub fn run_cleanup(cmd: impl Into<Command>, limit: Duration) -> Result<Finished, Error> {
    run_inner(cmd.into(), Io::Capture, Io::Capture, false, Some(limit))
}

/// Spawns `command` in a group of its own, for children that are polled by their caller
/// (a server under load): the group is stopped and reaped when the returned value drops.
pub fn spawn(cmd: impl Into<Command>, stdout: Io) -> Result<Running, Error> {
    crate::check()?;
    let mut command = cmd.into();
    command
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .process_group(0);
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command
        .spawn()
        .map_err(|error| Error::Start { program, error })?;
    let group = Group::register(child.id());
    Ok(Running { child, group })
}

/// A child running in a group of its own, stopped when dropped.
pub struct Running {
    child: std::process::Child,
    group: Group,
}

impl Running {
    /// Its process id, which is also its group's.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it has ended.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for it to end; returns its status and what it wrote on stdout (spawned with
    /// `Io::Capture`).
    pub fn output(mut self) -> Result<(ExitStatus, String), Error> {
        let out = self.child.stdout.take().map(drain).unwrap_or_default();
        let status = self.child.wait().map_err(|error| Error::Wait {
            program: "the spawned child".into(),
            error,
        })?;
        Ok((status, out))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.child, &self.group);
    }
}

fn run_inner(
    mut command: Command,
    stdout: Io,
    stderr: Io,
    interruptible: bool,
    limit: Option<Duration>,
) -> Result<Finished, Error> {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return Err(Error::Start { program, error }),
    };
    let group = Group::register(child.id());
    let out = child.stdout.take().map(|s| std::thread::spawn(|| drain(s)));
    let err = child.stderr.take().map(|s| std::thread::spawn(|| drain(s)));
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => return Err(Error::Wait { program, error }),
        }
        if interruptible && crate::requested() {
            stop(&mut child, &group);
            return Err(Error::Interrupted);
        }
        if let Some(limit) = limit.filter(|l| started.elapsed() > *l) {
            stop(&mut child, &group);
            return Err(Error::TimedOut { program, limit });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    };
    Ok(Finished {
        status,
        stdout: joined(out),
        stderr: joined(err),
    })
}

/// SIGTERM to the group, SIGKILL after `TERM_GRACE`; the child is reaped either way.
fn stop(child: &mut std::process::Child, group: &Group) {
    group.signal(Signal::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            // The leader is gone; anything it left in its group goes too.
            group.signal(Signal::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    group.signal(Signal::SIGKILL);
    let _ = child.wait();
}

fn drain(mut stream: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn joined(reader: Option<JoinHandle<String>>) -> String {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    #[test]
    fn output_is_captured_and_the_status_kept() {
        let done = run(
            sh("echo out; echo err >&2; exit 3"),
            Io::Capture,
            Io::Capture,
        )
        .unwrap();
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert_eq!(done.status.code(), Some(3));
    }

    #[test]
    fn a_time_limit_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        let pid_path = pid_file.to_str().unwrap();
        let script = format!("sleep 30 & echo $! > {pid_path}; wait");
        let started = Instant::now();
        let err = run_for(sh(&script), Io::Null, Io::Null, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, Error::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", grandchild.trim());
        // Gone, or a zombie waiting for init to reap it.
        let dead = || {
            std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead() {
            assert!(Instant::now() < deadline, "the grandchild survived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
