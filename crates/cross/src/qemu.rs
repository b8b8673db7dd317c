//! Foreign binaries (arm64, arm, riscv64, ppc64le, loong64 on an x86-64 host) run through
//! qemu-user registered with binfmt_misc.
//!
//! ```no_run
//! use tiny_cross::target::Target;
//!
//! match tiny_cross::qemu::emulation(Target::Aarch64Musl) {
//!     Ok(interpreter) => println!("arm64 binaries run through {interpreter}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! ```

use anyhow::Context;
use camino::Utf8Path;

use crate::error::bail;
use crate::target::Target;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// How many times longer to wait for a program under qemu-user than for one that runs
/// natively: start-up (a service opening its database, migrating) measured 2-4 times slower
/// under qemu 7.2 on x86-64, and a loaded machine slows emulation more than native code.
///
/// ```
/// use std::time::Duration;
/// use tiny_cross::qemu::SLOWDOWN;
///
/// assert_eq!(Duration::from_secs(10) * SLOWDOWN, Duration::from_secs(40));
/// ```
pub const SLOWDOWN: u32 = 4;

/// Whether the kernel runs `target`'s binaries through qemu, also inside containers (the
/// `F` flag: the interpreter is opened at registration, not looked up in the container).
pub fn emulation(target: Target) -> crate::Result<String> {
    let machine = target.qemu();
    let fix = format!(
        "install qemu-user-static and register qemu-{machine} with binfmt_misc with the F flag \
         (README: Troubleshooting)"
    );
    let entries = Utf8Path::new(BINFMT)
        .read_dir_utf8()
        .with_context(|| format!("{BINFMT} is not mounted: {fix}"))?;
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let interpreter = text
            .lines()
            .find_map(|l| l.strip_prefix("interpreter "))
            .unwrap_or_default();
        if !interpreter.ends_with(&format!("qemu-{machine}-static"))
            && !interpreter.ends_with(&format!("qemu-{machine}"))
        {
            continue;
        }
        let enabled = text.lines().next() == Some("enabled");
        let flags = text
            .lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or_default();
        if enabled && flags.contains('F') {
            return Ok(format!(
                "{interpreter} (binfmt_misc {}, flags {flags})",
                entry.file_name()
            ));
        }
        if enabled {
            bail!(
                "{interpreter} is registered without the F flag, so containers cannot use it: {fix}"
            );
        }
    }
    bail!("no qemu emulation for {machine} is registered: {fix}")
}
