//! Ctrl-C (SIGINT), SIGTERM and SIGHUP, as `tiny_interrupt` handles them (children in
//! process groups of their own, undo on unwind, an emergency undo after a grace period),
//! plus what the command line adds: the one line an interrupted run prints, and exit 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use tiny_interrupt::{EXIT_STATUS, Interrupted, Undo, await_undo, requested};

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Installs the signal handlers: first of all in `main`.
pub fn install() {
    tiny_interrupt::install(exit_interrupted);
}

/// How the signal thread ends a run that did not unwind in time.
fn exit_interrupted() -> ! {
    report();
    std::process::exit(EXIT_STATUS.into())
}

/// An error once a signal came, for loops and long steps to stop at.
pub fn check() -> anyhow::Result<()> {
    Ok(tiny_interrupt::check()?)
}

/// Polls `condition` until it gives a value, stopping at a signal; `None` when `limit`
/// passes first.
pub fn wait_until<T>(
    limit: Duration,
    condition: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<T>> {
    tiny_interrupt::wait_until(limit, condition)
}

/// Set by an xtask on a child that is the xtask again (`verify`'s rebuild, `run`'s image
/// build), to its own process id: that parent reports the interrupt.
pub const PARENT: &str = "XTASK_PARENT_PID";

/// The one line an interrupted run prints, printed once whoever gets there first, and not
/// at all by an xtask whose parent xtask reports it.
pub fn report() {
    if !REPORTED.swap(true, Ordering::SeqCst) && !parent_reports() {
        eprintln!("interrupted");
    }
}

/// Whether this process runs under an xtask that reports the interrupt itself: `PARENT`
/// names our parent (a marker inherited by a grandchild does not count).
fn parent_reports() -> bool {
    std::env::var(PARENT)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
        .is_some_and(|pid| pid == nix::unistd::getppid().as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_is_found_through_context() {
        let e = anyhow::Error::from(Interrupted).context("smoke test");
        assert!(e.downcast_ref::<Interrupted>().is_some());
        assert_eq!(format!("{e:#}"), "smoke test: interrupted");
    }
}
