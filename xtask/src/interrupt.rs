//! Ctrl-C: children in our process group get SIGINT and stop; we stay alive long enough to
//! remove what we created (staging folders, containers, volumes) and exit non-zero.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn install() {
    // Failing to install only loses the clean-up on Ctrl-C; the command itself still works.
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// An error once Ctrl-C was pressed, for loops and long steps to stop at.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
