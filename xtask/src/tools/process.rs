//! Running children so that a signal never strands us waiting on one: each child gets a
//! process group of its own (Ctrl-C at the terminal reaches the xtask alone, never an
//! engine client that would forward it into a container), and the xtask polls it, stopping
//! the whole group when the run is interrupted or a time limit passes.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use xshell::Cmd;

use crate::interrupt::{self, Group, Interrupted};

/// What becomes of a child's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Shown on our own stream (cargo's progress and diagnostics).
    Inherit,
    /// Returned in `Finished`.
    Capture,
    /// Onto our stderr, keeping our stdout for results.
    Stderr,
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
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A child stopped on a time limit.
#[derive(Debug)]
pub struct TimedOut {
    pub program: String,
    pub limit: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} did not finish within {}s",
            self.program,
            self.limit.as_secs_f64()
        )
    }
}

impl std::error::Error for TimedOut {}

/// How long a stopped group gets to exit on SIGTERM before SIGKILL: enough for podman or a
/// nested xtask to clean up after itself.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Runs `cmd` to its end; an interrupt stops it and returns `Interrupted`.
/// The running xtask's own executable, for commands that run another xtask command as a
/// child (commands never call one another in-process).
pub fn own_exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("finding the running xtask's executable")
}

pub fn run(cmd: Cmd<'_>, stdout: Io, stderr: Io) -> anyhow::Result<Finished> {
    interrupt::check()?;
    run_inner(cmd.into(), stdout, stderr, true, None)
}

/// Like `run`, stopped after `limit` with `TimedOut`.
pub fn run_for(cmd: Cmd<'_>, stdout: Io, stderr: Io, limit: Duration) -> anyhow::Result<Finished> {
    interrupt::check()?;
    run_inner(cmd.into(), stdout, stderr, true, Some(limit))
}

/// For undoing: runs even after an interrupt (in its own group, so a further Ctrl-C does
/// not cut it short), but never longer than `limit`.
pub fn run_cleanup(cmd: Cmd<'_>, limit: Duration) -> anyhow::Result<Finished> {
    run_inner(cmd.into(), Io::Capture, Io::Capture, false, Some(limit))
}

/// Spawns `command` in a group of its own, for children that are polled by their caller
/// (a server under load): the group is stopped and reaped when the returned value drops.
pub fn spawn(cmd: Cmd<'_>, stdout: Io) -> anyhow::Result<Running> {
    interrupt::check()?;
    let mut command = Command::from(cmd);
    command
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .process_group(0);
    let program = command.get_program().to_string_lossy().into_owned();
    mark_nested(&mut command);
    let child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
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
    pub fn output(mut self) -> anyhow::Result<(ExitStatus, String)> {
        let out = self.child.stdout.take().map(drain).unwrap_or_default();
        let status = self.child.wait()?;
        Ok((status, out))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.child, &self.group);
    }
}

/// A child that is this xtask again learns that its parent reports an interrupt (see
/// `interrupt::report`), so that a Ctrl-C is reported once.
fn mark_nested(command: &mut Command) {
    let ours = std::env::current_exe().ok();
    if ours.is_some_and(|exe| Path::new(command.get_program()) == exe) {
        command.env(interrupt::PARENT, std::process::id().to_string());
    }
}

fn run_inner(
    mut command: Command,
    stdout: Io,
    stderr: Io,
    interruptible: bool,
    limit: Option<Duration>,
) -> anyhow::Result<Finished> {
    let program = command.get_program().to_string_lossy().into_owned();
    mark_nested(&mut command);
    command
        .stdin(Stdio::null())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .process_group(0);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let group = Group::register(child.id());
    let out = child.stdout.take().map(|s| std::thread::spawn(|| drain(s)));
    let err = child.stderr.take().map(|s| std::thread::spawn(|| drain(s)));
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interruptible && interrupt::requested() {
            stop(&mut child, &group);
            return Err(Interrupted.into());
        }
        if let Some(limit) = limit.filter(|l| started.elapsed() > *l) {
            stop(&mut child, &group);
            return Err(TimedOut { program, limit }.into());
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
    use xshell::{Shell, cmd};

    use super::*;

    #[test]
    fn output_is_captured_and_the_status_kept() {
        let sh = Shell::new().unwrap();
        let done = run(
            cmd!(sh, "sh -c 'echo out; echo err >&2; exit 3'"),
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
        let sh = Shell::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        let pid_path = pid_file.to_str().unwrap();
        let script = format!("sleep 30 & echo $! > {pid_path}; wait");
        let started = Instant::now();
        let err = run_for(
            cmd!(sh, "sh -c {script}"),
            Io::Null,
            Io::Null,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.downcast_ref::<TimedOut>().is_some(), "{err:#}");
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
