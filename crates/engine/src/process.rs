//! The engines' clients as children: each in a process group of its own, stopped on a
//! signal or a time limit (`tiny_interrupt::process`).

use std::time::Duration;

use tiny_interrupt::process;
use xshell::Cmd;

pub use tiny_interrupt::process::{Finished, Io, Running};

use crate::error::Result;

pub(crate) fn run(cmd: Cmd<'_>, stdout: Io, stderr: Io) -> Result<Finished> {
    Ok(process::run(cmd, stdout, stderr)?)
}

pub(crate) fn run_for(cmd: Cmd<'_>, stdout: Io, stderr: Io, limit: Duration) -> Result<Finished> {
    Ok(process::run_for(cmd, stdout, stderr, limit)?)
}

pub(crate) fn run_cleanup(cmd: Cmd<'_>, limit: Duration) -> Result<Finished> {
    Ok(process::run_cleanup(cmd, limit)?)
}

pub(crate) fn spawn(cmd: Cmd<'_>, stdout: Io) -> Result<Running> {
    Ok(process::spawn(cmd, stdout)?)
}
