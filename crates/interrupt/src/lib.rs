//! Cancellation for long-running build steps: a stop flag set by SIGINT, SIGTERM or SIGHUP,
//! undo actions that run when a step unwinds (or, if it does not unwind in time, from the
//! signal thread), and children run in process groups of their own ([`process`]) so that a
//! signal reaches this process alone and it decides what to stop.
//!
//! Nothing is installed by linking the crate: a program calls [`install`] once at the start
//! of `main`. Library code calls [`check`] between steps and guards what it creates with an
//! [`Undo`]; without [`install`], [`check`] never fails and an [`Undo`] simply runs when it
//! is dropped without being disarmed.
//!
//! After the first signal the main thread may unwind for three seconds, undoing what it made;
//! after that, or at a second signal, every running child group is killed, the pending undo
//! actions run (newest first) and the function given to [`install`] ends the process.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tiny_interrupt::{Undo, check, wait_until};
//!
//! let dir = tempfile::tempdir()?;
//! let staging = dir.path().join("staging");
//! std::fs::create_dir(&staging)?;
//! // Removed again if anything below fails or a signal unwinds the run.
//! let guard = Undo::remove_dir(&staging);
//! check()?;
//! let mut polls = 0;
//! let ready = wait_until(Duration::from_secs(5), || {
//!     polls += 1;
//!     Ok::<_, tiny_interrupt::Interrupted>((polls == 2).then_some("ready"))
//! })?;
//! assert_eq!(ready, Some("ready"));
//! // The work is complete: keep the folder.
//! guard.disarm();
//! assert!(staging.is_dir());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod process;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The exit status of an interrupted command, as shells report death by SIGINT.
pub const EXIT_STATUS: u8 = 130;
/// How long the main thread may unwind by itself after the first signal.
const GRACE: Duration = Duration::from_millis(3000);
/// When, after the first signal, the undo actions run at once must be done: the process
/// exits by then even if one of them hangs (the engine's own clean-up goes on without us).
const DEADLINE: Duration = Duration::from_millis(4500);

/// Set inside the signal handler itself, so that no step can see a child fail because of
/// the signal before it sees the signal.
static REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);
static EMERGENCY: AtomicBool = AtomicBool::new(false);
/// Undo actions the main thread is running now: the rest wait for them (a volume cannot go
/// before the container using it).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static FIRST_SIGNAL: OnceLock<Instant> = OnceLock::new();
static UNDO: Mutex<Actions> = Mutex::new(Actions {
    next: 0,
    pending: BTreeMap::new(),
});
/// Process groups of the children running now.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

type Action = Box<dyn FnOnce() + Send>;

struct Actions {
    next: u64,
    pending: BTreeMap<u64, Action>,
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP: from now on a signal sets the stop
/// flag ([`requested`], [`check`]) instead of ending the process. When the run does not
/// unwind within the grace period, or a second signal comes, the signal thread kills every
/// registered child group, runs the pending undo actions and calls `exit`, which must end
/// the process (typically after reporting the interrupt, with [`EXIT_STATUS`]).
///
/// Failing to install only loses the clean-up on a signal; the program itself still works.
pub fn install(exit: fn() -> !) {
    const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];
    for signal in SIGNALS {
        let _ = signal_hook::flag::register(signal, Arc::clone(&REQUESTED));
    }
    let Ok(mut signals) = Signals::new(SIGNALS) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if FIRST_SIGNAL.set(Instant::now()).is_ok() {
                std::thread::spawn(move || {
                    std::thread::sleep(GRACE);
                    undo_all_and_exit(exit);
                });
            } else {
                undo_all_and_exit(exit);
            }
        }
    });
}

/// Whether a signal asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a step returns when it stopped because of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// An error once a signal came, for loops and long steps to stop at.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        return Err(Interrupted);
    }
    Ok(())
}

/// Polls `condition` until it gives a value, stopping at a signal; `None` when `limit`
/// passes first.
pub fn wait_until<T, E: From<Interrupted>>(
    limit: Duration,
    mut condition: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = Instant::now() + limit;
    loop {
        check()?;
        if let Some(value) = condition()? {
            return Ok(Some(value));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// For the main thread at its end: if the signal thread is undoing what is left, it must not
/// end the process under it; that thread exits when done.
pub fn await_undo() {
    while EMERGENCY.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

/// Undoes something unless disarmed: runs its action when dropped (an error, a signal
/// unwinding the run), or from the signal thread if the run does not unwind in time.
#[must_use = "dropping it undoes at once"]
pub struct Undo(Option<u64>);

impl Undo {
    /// Registers `action`, run when the returned guard drops undisarmed.
    pub fn new(action: impl FnOnce() + Send + 'static) -> Undo {
        let mut actions = lock(&UNDO);
        let id = actions.next;
        actions.next += 1;
        actions.pending.insert(id, Box::new(action));
        Undo(Some(id))
    }

    /// Removes the directory `path` and everything in it.
    pub fn remove_dir(path: impl Into<std::path::PathBuf>) -> Undo {
        let path = path.into();
        Undo::new(move || {
            let _ = std::fs::remove_dir_all(path);
        })
    }

    /// Keeps what the action would undo: the work it guards is complete. After a signal
    /// the run ends as interrupted, so the action runs instead: an interrupted run keeps
    /// nothing it made.
    pub fn disarm(mut self) {
        if requested() {
            return;
        }
        if let Some(id) = self.0.take() {
            lock(&UNDO).pending.remove(&id);
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        let action = {
            let mut actions = lock(&UNDO);
            let action = self.0.take().and_then(|id| actions.pending.remove(&id));
            if action.is_some() {
                IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            }
            action
        };
        if let Some(action) = action {
            action();
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A running child's process group, known to the signal thread while it lives.
pub(crate) struct Group(u32);

impl Group {
    /// Makes the process group `pgid` known to the signal thread until the value drops.
    pub(crate) fn register(pgid: u32) -> Group {
        lock(&GROUPS).push(pgid);
        Group(pgid)
    }

    /// Sends `signal` to every process of the group.
    pub(crate) fn signal(&self, signal: Signal) {
        signal_group(self.0, signal);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        lock(&GROUPS).retain(|g| *g != self.0);
    }
}

fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// The second signal, or a run that did not unwind within `GRACE`: kill every child,
/// run the pending undo actions, newest first, until `DEADLINE` after the first signal,
/// and exit.
fn undo_all_and_exit(exit: fn() -> !) {
    if EMERGENCY.swap(true, Ordering::SeqCst) {
        return;
    }
    for &pgid in lock(&GROUPS).iter() {
        signal_group(pgid, Signal::SIGKILL);
    }
    // Last made, first undone, as unwinding would: a container goes before its volume.
    let actions = std::mem::take(&mut lock(&UNDO).pending);
    let first = FIRST_SIGNAL.get().copied().unwrap_or_else(Instant::now);
    let deadline = (first + DEADLINE).max(Instant::now() + Duration::from_millis(500));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for action in actions.into_values().rev() {
            action();
        }
        let _ = done.send(());
    });
    let _ = finished.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    exit()
}

/// A poisoned lock only means a panic elsewhere; the registry itself is still sound.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn an_undo_runs_once_when_dropped_and_never_when_disarmed() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        drop(Undo::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let counter = runs.clone();
        Undo::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .disarm();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn waiting_ends_with_the_value_or_at_the_limit() {
        let mut tries = 0;
        let found = wait_until(Duration::from_secs(5), || {
            tries += 1;
            Ok::<_, Interrupted>((tries == 3).then_some(tries))
        })
        .unwrap();
        assert_eq!(found, Some(3));
        let started = Instant::now();
        let none = wait_until(Duration::from_millis(120), || {
            Ok::<_, Interrupted>(None::<()>)
        })
        .unwrap();
        assert!(none.is_none() && started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn without_install_nothing_is_requested() {
        assert!(!requested());
        assert_eq!(check(), Ok(()));
    }
}
