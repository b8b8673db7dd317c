//! Running children through `tiny_interrupt::process` (a process group each, stopped on a
//! signal or a time limit), from xshell commands, with anyhow errors in which an interrupt
//! is still found as `Interrupted`.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use tiny_interrupt::process::{self, Error};
use xshell::Cmd;

pub use tiny_interrupt::process::{Finished, Io, Running};

use crate::interrupt::{self, Interrupted};

/// The running xtask's own executable, for commands that run another xtask command as a
/// child (commands never call one another in-process).
pub fn own_exe() -> anyhow::Result<std::path::PathBuf> {
    // The kernel's link runs this very binary even after cargo replaced the file (a rebuild
    // of the xtask while a long `verify` runs).
    let running = Path::new(SELF_EXE);
    if running.exists() {
        return Ok(running.to_owned());
    }
    std::env::current_exe().context("finding the running xtask's executable")
}

const SELF_EXE: &str = "/proc/self/exe";

/// Runs `cmd` to its end; an interrupt stops it and returns `Interrupted`.
pub fn run(cmd: Cmd<'_>, stdout: Io, stderr: Io) -> anyhow::Result<Finished> {
    process::run(nested(cmd), stdout, stderr).map_err(error)
}

/// Spawns `command` in a group of its own, for children that are polled by their caller
/// (a server under load): the group is stopped and reaped when the returned value drops.
pub fn spawn(cmd: Cmd<'_>, stdout: Io) -> anyhow::Result<Running> {
    process::spawn(nested(cmd), stdout).map_err(error)
}

/// An interrupt stays `Interrupted`, for the checks that stop a whole run at it.
fn error(e: Error) -> anyhow::Error {
    match e {
        Error::Interrupted => Interrupted.into(),
        e => e.into(),
    }
}

/// A child that is this xtask again learns that its parent reports an interrupt (see
/// `interrupt::report`), so that a Ctrl-C is reported once.
fn nested(cmd: Cmd<'_>) -> Command {
    let mut command = Command::from(cmd);
    let program = Path::new(command.get_program());
    let ours = std::env::current_exe().ok();
    if program == Path::new(SELF_EXE) || ours.is_some_and(|exe| program == exe) {
        command.env(interrupt::PARENT, std::process::id().to_string());
    }
    command
}
