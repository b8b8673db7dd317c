//! What the images take from git: the revision they label, and the time every file and
//! config in them carries.

use std::path::Path;

use anyhow::Context;
use xshell::{Shell, cmd};

use tiny_oci::epoch::Epoch;

/// HEAD's commit, marked `-dirty` when tracked files changed; `None` outside a checkout.
pub fn revision(sh: &Shell) -> Option<String> {
    let head = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    let dirty = is_dirty(sh);
    Some(format!(
        "{}{}",
        head.trim(),
        if dirty { "-dirty" } else { "" }
    ))
}

/// Whether tracked files differ from HEAD (untracked files build nothing).
pub fn is_dirty(sh: &Shell) -> bool {
    cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|d| !d.trim().is_empty())
}

/// HEAD's commit id.
pub fn head(sh: &Shell) -> anyhow::Result<String> {
    let head = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .context("`git rev-parse HEAD` failed: verify needs a git checkout with a commit")?;
    Ok(head.trim().to_owned())
}

/// Checks `commit` out, detached, in a new worktree at `dir`.
pub fn add_worktree(sh: &Shell, dir: &Path, commit: &str) -> anyhow::Result<()> {
    cmd!(sh, "git worktree add --detach --quiet {dir} {commit}")
        .quiet()
        .run()
        .with_context(|| format!("checking out {commit} in {}", dir.display()))
}

/// Removes the worktree at `dir` however much of it exists, and git's record of it.
pub fn remove_worktree(root: &Path, dir: &Path) {
    if let Ok(sh) = Shell::new() {
        sh.change_dir(root);
        let _ = cmd!(sh, "git worktree remove --force {dir}")
            .quiet()
            .ignore_stderr()
            .run();
        let _ = std::fs::remove_dir_all(dir);
        let _ = cmd!(sh, "git worktree prune").quiet().ignore_stderr().run();
    }
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) if set, else HEAD's commit time: the same
/// commit gives the same times in any folder and at any hour. Outside a checkout, 0.
pub fn source_date_epoch(sh: &Shell) -> anyhow::Result<Epoch> {
    if let Some(epoch) = Epoch::from_env()? {
        return Ok(epoch);
    }
    Ok(commit_time(sh).unwrap_or(Epoch::ZERO))
}

/// HEAD's commit time, if there is a HEAD.
pub fn commit_time(sh: &Shell) -> Option<Epoch> {
    let time = cmd!(sh, "git log -1 --format=%ct")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    time.trim().parse().ok()
}
