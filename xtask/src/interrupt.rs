//! Ctrl-C (SIGINT), SIGTERM and SIGHUP. Children run in process groups of their own (see
//! `tools::process`), so a signal reaches the xtask alone and the xtask decides: the first
//! one stops the running child and unwinds, undoing what the run created (containers,
//! volumes, image tags, staging folders, temporary directories) and exiting 130. If that
//! takes longer than `GRACE`, or a second signal comes, whatever is left is undone at once
//! from the signal thread and the process exits.

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
static REPORTED: AtomicBool = AtomicBool::new(false);
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

pub fn install() {
    const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];
    // Failing to install only loses the clean-up on a signal; the command itself still works.
    for signal in SIGNALS {
        let _ = signal_hook::flag::register(signal, Arc::clone(&REQUESTED));
    }
    let Ok(mut signals) = Signals::new(SIGNALS) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if FIRST_SIGNAL.set(Instant::now()).is_ok() {
                std::thread::spawn(|| {
                    std::thread::sleep(GRACE);
                    undo_all_and_exit();
                });
            } else {
                undo_all_and_exit();
            }
        }
    });
}

/// Whether a signal asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a step returns when it stopped because of a signal.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// An error once a signal came, for loops and long steps to stop at.
pub fn check() -> anyhow::Result<()> {
    if requested() {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Polls `condition` until it gives a value, stopping at a signal; `None` when `limit`
/// passes first.
pub fn wait_until<T>(
    limit: Duration,
    mut condition: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<T>> {
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
pub struct Group(u32);

impl Group {
    pub fn register(pgid: u32) -> Group {
        lock(&GROUPS).push(pgid);
        Group(pgid)
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: Signal) {
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
fn undo_all_and_exit() {
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
    report();
    std::process::exit(EXIT_STATUS.into());
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
            Ok((tries == 3).then_some(tries))
        })
        .unwrap();
        assert_eq!(found, Some(3));
        let started = Instant::now();
        let none = wait_until(Duration::from_millis(120), || Ok(None::<()>)).unwrap();
        assert!(none.is_none() && started.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn interrupted_is_found_through_context() {
        let e = anyhow::Error::from(Interrupted).context("smoke test");
        assert!(e.downcast_ref::<Interrupted>().is_some());
        assert_eq!(format!("{e:#}"), "smoke test: interrupted");
    }
}
