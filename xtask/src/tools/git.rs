//! What the images take from git: the revision they label, and the time every file and
//! config in them carries.

use anyhow::Context;
use xshell::{Shell, cmd};

/// HEAD's commit, marked `-dirty` when tracked files changed; `None` outside a checkout.
pub fn revision(sh: &Shell) -> Option<String> {
    let head = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|d| !d.trim().is_empty());
    Some(format!(
        "{}{}",
        head.trim(),
        if dirty { "-dirty" } else { "" }
    ))
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) if set, else HEAD's commit time: the same
/// commit gives the same times in any folder and at any hour. Outside a checkout, 0.
pub fn source_date_epoch(sh: &Shell) -> anyhow::Result<u64> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={value} is not a number of seconds since 1970")
        });
    }
    let time = cmd!(sh, "git log -1 --format=%ct")
        .quiet()
        .ignore_stderr()
        .read();
    Ok(time.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0))
}
