//! Finds or provisions what cross-compiling needs: the Rust standard library for each
//! target and a C compiler for it (zig, unless the user set `CC_<target>`).

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use tiny_interrupt::Undo;
use tiny_interrupt::process::Io;

use crate::error::bail;
use crate::target::Target;
use crate::which::find_on_path;
use crate::workspace::{Progress, Workspace};

/// The cargo that runs us (cargo sets `CARGO` for its children), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The line of `.cargo/config.toml` that makes cargo run every rustc through our wrapper,
/// which maps this machine's paths to fixed names (README, Reproducibility).
pub const RUSTC_WRAPPER_SETTING: &str = "rustc-wrapper = \".cargo/rustc-wrapper\"";

/// The project's own compiler wrappers: what they pass changes every output, so a build is
/// only as fresh as they are.
pub fn wrappers(workspace: &Workspace) -> Vec<Utf8PathBuf> {
    let dir = workspace.root.join(".cargo");
    let mut files = vec![
        dir.join("rustc-wrapper"),
        dir.join("cc/zig"),
        dir.join("cc/ar"),
        // What sccache runs instead when the build uses a shared cache (`crate::cache`).
        dir.join("cache/rustc"),
        dir.join("cache/cc"),
    ];
    files.extend(Target::ALL.map(|t| committed_wrapper(workspace, t)));
    files
}

/// `command` (a cargo run) without the variables `cargo run` and `cargo test` gave the
/// xtask about its own package (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …). Build scripts may
/// watch them (ring's does), so cargo started with them would find the build dirty that a
/// cargo typed in the user's shell finds fresh: a nested `cargo xtask` rebuilt the xtask
/// itself, under the running one.
///
/// Nor does cargo get `SOURCE_DATE_EPOCH`: the xtask reads it for the times in images, and
/// no compile may depend on it (the C wrappers give zig a constant), but cc-rs has every C
/// build script watch it, so setting or unsetting it would rerun them and recompile all
/// that depends on them.
pub fn as_typed(command: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    const OWN: [&str; 5] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
    ];
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| {
            OWN.contains(&key.as_str())
                || key.starts_with("CARGO_PKG_")
                || key == "SOURCE_DATE_EPOCH"
        })
        .fold(command, |command, key| command.env_remove(key))
}

/// The active toolchain's sysroot, where each target's standard library lives.
pub fn sysroot(sh: &Shell) -> crate::Result<Utf8PathBuf> {
    if let Some(sysroot) = cargo_toolchain() {
        return Ok(sysroot);
    }
    let sysroot = cmd!(sh, "rustc --print sysroot")
        .quiet()
        .read()
        .context("`rustc` did not run: install Rust with rustup (https://rustup.rs)")?;
    Ok(Utf8PathBuf::from(sysroot))
}

/// The toolchain the cargo that runs us belongs to (`<sysroot>/bin/cargo` beside its
/// rustc), found without running rustc: a no-op build is timed in tens of milliseconds and
/// `rustc --print sysroot` through rustup's proxy costs a few of them. None when `RUSTC`
/// names another compiler or the layout is not a toolchain's.
fn cargo_toolchain() -> Option<Utf8PathBuf> {
    if ["RUSTC", "CARGO_BUILD_RUSTC"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return None;
    }
    let cargo = Utf8PathBuf::from(std::env::var("CARGO").ok()?);
    let bin = cargo.parent()?;
    let sysroot = bin.parent()?;
    (bin.join("rustc").is_file() && sysroot.join("lib/rustlib").is_dir())
        .then(|| sysroot.to_owned())
}

/// The variables that make cargo run a compiler or wrapper other than the toolchain's
/// rustc, each in its plain and its `CARGO_BUILD_` spelling: such a program can be rebuilt
/// in place, so no file we watch tells whether it changed.
const COMPILER_VARS: [&str; 7] = [
    "RUSTC",
    "RUSTC_WRAPPER",
    // The wrapper our own (`.cargo/rustc-wrapper`) runs rustc through.
    "XTASK_RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
];

/// Whether a variable (read through `var`) names a compiler or wrapper for cargo to run.
fn compiler_named(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    COMPILER_VARS
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

/// `CARGO_HOME` or `RUSTUP_HOME` (`var`): the variable, else `$HOME/<default>`.
pub fn tool_home(var: &str, default: &str) -> Option<Utf8PathBuf> {
    match std::env::var(var) {
        Ok(home) => Some(Utf8PathBuf::from(home)),
        Err(_) => Some(Utf8PathBuf::from(std::env::var("HOME").ok()?).join(default)),
    }
}

/// The files that tell which compiler cargo would run and which standard library it links
/// (see `model::fresh`), or `None` when that cannot be told from files: a compiler or
/// wrapper named by a variable (`COMPILER_VARS`), no `CARGO` (not started by cargo), or a
/// rustup proxy on PATH without `RUSTUP_TOOLCHAIN` (an override we do not follow picks the
/// toolchain).
pub fn watched_files(targets: &[Target]) -> Option<Vec<Utf8PathBuf>> {
    if compiler_named(|name| std::env::var_os(name)) {
        return None;
    }
    let cargo = Utf8PathBuf::from(std::env::var("CARGO").ok()?);
    let mut sysroots = vec![cargo.parent()?.parent()?.to_owned()];
    let mut files = vec![cargo];
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        let home = tool_home("RUSTUP_HOME", ".rustup")?;
        if toolchain.contains('/') {
            return None;
        }
        sysroots.push(home.join("toolchains").join(toolchain));
    } else if find_on_path("rustup").is_some() {
        return None;
    }
    // Whichever rustc cargo picks: the toolchain's (rustup's shortcut) or PATH's.
    files.extend(find_on_path("rustc"));
    for sysroot in sysroots {
        files.push(sysroot.join("bin/rustc"));
        files.push(sysroot.join("bin/cargo"));
        for target in targets {
            files.push(
                sysroot
                    .join("lib/rustlib")
                    .join(target.triple())
                    .join("lib"),
            );
        }
    }
    Some(files)
}

/// Whether the toolchain at `sysroot` has the target's standard library.
pub fn rust_target_installed(sysroot: &Utf8Path, target: Target) -> bool {
    let lib = sysroot
        .join("lib/rustlib")
        .join(target.triple())
        .join("lib");
    lib.read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
}

/// Where a target's Rust standard library comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdSource {
    /// rustup's prebuilt one, installed in the toolchain.
    Prebuilt,
    /// Built by cargo from the toolchain's `rust-src` (`-Zbuild-std`), because rustup
    /// has none for the target here (a tier-3 target, or a download server without it).
    FromSource,
}

/// The cargo options and environment that build the standard library from `rust-src`
/// along with the crate, on a stable toolchain.
///
/// ```
/// let (args, env) = tiny_cross::toolchain::BUILD_STD;
/// assert_eq!(args, ["-Zbuild-std=std,panic_unwind"]);
/// assert_eq!(env, [("RUSTC_BOOTSTRAP", "1")]);
/// ```
pub const BUILD_STD: ([&str; 1], [(&str, &str); 1]) =
    (["-Zbuild-std=std,panic_unwind"], [("RUSTC_BOOTSTRAP", "1")]);

/// The folder, under the target directory, where the targets whose standard library is
/// built from source are compiled. They get a cargo target directory of their own:
/// `RUSTC_BOOTSTRAP` (which `-Zbuild-std` needs) turns on nightly features in build
/// scripts that probe for them (proc-macro2's), so sharing the host's build scripts and
/// proc macros with the other targets would rebuild them, and all that depends on them,
/// each time one or the other set is built.
pub fn std_from_source_dir(target_dir: &Utf8Path) -> Utf8PathBuf {
    target_dir.join("std-from-source")
}

/// Where the toolchain keeps the standard library's sources (the `rust-src` component).
pub fn rust_src(sysroot: &Utf8Path) -> Utf8PathBuf {
    sysroot.join("lib/rustlib/src/rust/library")
}

/// A note that rustup had no standard library for the target here, so that the next
/// build does not ask again (a failed download costs a round trip each build).
fn no_download_note(workspace: &Workspace, target: Target) -> Utf8PathBuf {
    workspace
        .work_dir()
        .join("std-from-source")
        .join(target.triple())
}

/// Whether an earlier build found no standard library for `target` to download and will
/// build it from the toolchain's `rust-src` (the note it left is still there, and so are
/// the sources).
///
/// ```
/// use tiny_cross::{target::Target, toolchain, workspace::Workspace};
///
/// let workspace = Workspace::new("/nowhere".into(), "/nowhere/target".into(), "0.14.1".into());
/// let sysroot = camino::Utf8Path::new("/nowhere/sysroot");
/// assert!(!toolchain::std_from_source_noted(&workspace, sysroot, Target::X86_64Musl));
/// ```
pub fn std_from_source_noted(workspace: &Workspace, sysroot: &Utf8Path, target: Target) -> bool {
    no_download_note(workspace, target).is_file()
        && rust_src(sysroot).join("std/Cargo.toml").is_file()
}

/// Finds the target's standard library: the installed one, else rustup's download, else
/// the toolchain's `rust-src` (added with rustup when missing) to build it from.
fn ensure_rust_target(
    sh: &Shell,
    workspace: &Workspace,
    sysroot: &Utf8Path,
    target: Target,
    progress: &dyn Progress,
) -> anyhow::Result<StdSource> {
    if rust_target_installed(sysroot, target) {
        return Ok(StdSource::Prebuilt);
    }
    let triple = target.triple();
    let note = no_download_note(workspace, target);
    let has_src = |s: &Utf8Path| rust_src(s).join("std/Cargo.toml").is_file();
    if note.is_file() && has_src(sysroot) {
        return Ok(StdSource::FromSource);
    }
    if find_on_path("rustup").is_none() {
        if has_src(sysroot) {
            return Ok(StdSource::FromSource);
        }
        bail!(
            "the Rust standard library for {triple} is missing and there is no rustup to add it: \
             install it for your toolchain (rustup target add {triple}), or its sources \
             (rust-src) to build it from"
        );
    }
    progress.note(&format!(
        "adding the Rust standard library for {triple}: rustup target add {triple}"
    ));
    let done = run(
        cmd!(sh, "rustup target add {triple}").quiet(),
        Io::Null,
        Io::Null,
    )?;
    if done.status.success() {
        return Ok(StdSource::Prebuilt);
    }
    if !has_src(sysroot) {
        progress.note(&format!(
            "rustup has no standard library for {triple} here: building it from source; \
             adding rust-src (rustup component add rust-src)"
        ));
        let done = run(
            cmd!(sh, "rustup component add rust-src").quiet(),
            Io::Null,
            Io::Inherit,
        )?;
        if !done.status.success() || !has_src(sysroot) {
            bail!(
                "rustup has no standard library for {triple} here and `rustup component add \
                 rust-src` failed (offline?): install either for your toolchain"
            );
        }
    } else {
        progress.note(&format!(
            "rustup has no standard library for {triple} here: building it from rust-src"
        ));
    }
    let dir = note.parent().context("note path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    std::fs::write(
        &note,
        "rustup target add failed; the standard library is built from rust-src\n",
    )
    .with_context(|| format!("writing {note}"))?;
    Ok(StdSource::FromSource)
}

/// What cargo needs to cross-compile for some targets, all provisioned.
pub struct CrossEnv {
    /// Each target's C compiler, for the build log and errors.
    pub compilers: Vec<String>,
    /// Where each target's standard library comes from, in the order asked.
    pub std: Vec<(Target, StdSource)>,
}

/// Adds any missing standard library (or its sources) and finds, or provisions, each
/// target's C compiler. Cargo itself gets the compiler from `[env]` in
/// `.cargo/config.toml` (or the user's `CC_<target>`): we set no variables, so a plain
/// `cargo build` sees the same environment and reuses this build, and the other way round.
pub fn cross_env(
    sh: &Shell,
    workspace: &Workspace,
    targets: &[Target],
    progress: &dyn Progress,
) -> crate::Result<CrossEnv> {
    let sysroot = sysroot(sh)?;
    let mut compilers = Vec::new();
    let mut std = Vec::new();
    for &target in targets {
        std.push((
            target,
            ensure_rust_target(sh, workspace, &sysroot, target, progress)?,
        ));
        compilers.push(format!(
            "{target}: {}",
            c_compiler(sh, workspace, target, progress)?
        ));
    }
    // The wrappers look for zig above the target directory they build in: the targets
    // built from source have one of their own.
    let zig = zig_link(&workspace.target_dir);
    if std.iter().any(|(_, s)| *s == StdSource::FromSource)
        && let Ok(to) = zig.read_link_utf8()
    {
        link(&to, &zig_link(&std_from_source_dir(&workspace.target_dir)))?;
    }
    Ok(CrossEnv { compilers, std })
}

/// How the C cross compiler would be found, without changing anything.
pub enum CSource {
    /// The user's `CC_<target>` (or `CC_<triple>` with dashes).
    UserSet {
        /// The variable.
        var: String,
        /// The compiler it names.
        value: String,
    },
    /// zig on PATH or already provisioned.
    Zig(Utf8PathBuf),
    /// Nothing yet; `pip` can install the pinned `ziglang`.
    Provisionable,
    /// Nothing, and no python3 to provision with.
    Missing,
}

/// Where `target`'s C compiler would come from: the user's variable, zig, or nothing yet.
pub fn locate_c_compiler(workspace: &Workspace, target: Target) -> CSource {
    // The dashed name first, as cc-rs reads them. Cargo's `[env]` hands our own wrapper to
    // us too (`cargo xtask` is `cargo run`): that one is not the user's choice.
    for var in [format!("CC_{}", target.triple()), target.cc_env()] {
        match std::env::var(&var) {
            Ok(value)
                if !value.trim().is_empty() && !is_committed_wrapper(workspace, target, &value) =>
            {
                return CSource::UserSet { var, value };
            }
            _ => {}
        }
    }
    if let Some(zig) = find_on_path("zig").or_else(|| provisioned_zig(workspace)) {
        return CSource::Zig(zig);
    }
    if find_on_path("python3").is_some() {
        CSource::Provisionable
    } else {
        CSource::Missing
    }
}

/// The committed wrapper `.cargo/config.toml` names as `CC_<target>`.
pub fn committed_wrapper(workspace: &Workspace, target: Target) -> Utf8PathBuf {
    workspace
        .root
        .join(".cargo/cc")
        .join(format!("{}-cc", target.triple()))
}

fn is_committed_wrapper(workspace: &Workspace, target: Target, value: &str) -> bool {
    let ours = committed_wrapper(workspace, target);
    let same = |a: &Utf8Path, b: &Utf8Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    same(Utf8Path::new(value), &ours)
}

/// Where the committed wrappers look for the zig to run: a link under the target directory
/// (they find it above the `OUT_DIR` of the build script that runs them).
pub fn zig_link(target_dir: &Utf8Path) -> Utf8PathBuf {
    target_dir.join("xtask/cc/zig")
}

/// Finds, or provisions, the C compiler for `target` and links zig where the committed
/// wrappers find it. Returns a description for the build log.
fn c_compiler(
    sh: &Shell,
    workspace: &Workspace,
    target: Target,
    progress: &dyn Progress,
) -> anyhow::Result<String> {
    let zig = match locate_c_compiler(workspace, target) {
        CSource::UserSet { var, value } => return Ok(format!("{value} (from {var})")),
        CSource::Zig(zig) => zig,
        CSource::Provisionable => provision_zig(sh, workspace, target, progress)?,
        CSource::Missing => bail!("{}", missing_c_compiler(workspace, target)),
    };
    link(&zig, &zig_link(&workspace.target_dir))?;
    Ok(format!("zig cc -target {} ({zig})", target.zig_target()))
}

/// The one-line fix when no C compiler can be found or provisioned.
pub fn missing_c_compiler(workspace: &Workspace, target: Target) -> String {
    format!(
        "no C compiler for {}: install zig (`pip install ziglang=={}` or a release on PATH), \
         or set {} to a C compiler for that target",
        target.triple(),
        workspace.zig,
        target.cc_env()
    )
}

fn provisioned_zig(workspace: &Workspace) -> Option<Utf8PathBuf> {
    let zig = zig_home(workspace).join("ziglang/zig");
    zig.is_file().then_some(zig)
}

/// Lets builds in another target directory (the bench's scratch ones) use the zig provisioned
/// in ours rather than download their own.
pub fn share_zig(workspace: &Workspace, other_target_dir: &Utf8Path) -> crate::Result<()> {
    if provisioned_zig(workspace).is_none() {
        return Ok(());
    }
    let other = other_target_dir.join("xtask/zig").join(&workspace.zig);
    link(&zig_home(workspace), &other)
}

fn zig_home(workspace: &Workspace) -> Utf8PathBuf {
    workspace.work_dir().join("zig").join(&workspace.zig)
}

/// Installs PyPI's `ziglang` wheel (a self-contained zig) under the target directory. The
/// install goes to a temporary folder that is renamed into place, so an interrupted
/// download never leaves a broken zig behind.
fn provision_zig(
    sh: &Shell,
    workspace: &Workspace,
    target: Target,
    progress: &dyn Progress,
) -> anyhow::Result<Utf8PathBuf> {
    let version = &workspace.zig;
    let home = zig_home(workspace);
    let partial = home.with_extension("partial");
    progress.note(&format!(
        "provisioning zig {version} (C cross compiler) into {}",
        workspace.relative(&home)
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let spec = format!("ziglang=={version}");
    let _partial_removed = Undo::remove_dir(&partial);
    let pip = cmd!(
        sh,
        "python3 -m pip install --quiet --disable-pip-version-check --no-deps --target {partial} {spec}"
    )
    .env("PIP_ROOT_USER_ACTION", "ignore")
    .quiet();
    let installed = run(pip, Io::Inherit, Io::Inherit)?;
    if !installed.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        bail!(
            "could not install zig {version} with pip (offline, or no pip?); {}",
            missing_c_compiler(workspace, target)
        );
    }
    std::fs::rename(&partial, &home).with_context(|| format!("moving zig into {home}"))?;
    Ok(home.join("ziglang/zig"))
}

/// Points `link` at `to`, leaving a correct link untouched (its mtime is no input to cargo,
/// but a rewrite for nothing is still a write).
pub fn link(to: &Utf8Path, link: &Utf8Path) -> crate::Result<()> {
    if link.read_link_utf8().is_ok_and(|old| old == to) {
        return Ok(());
    }
    let dir = link.parent().context("link path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(to, &tmp).with_context(|| format!("linking {tmp}"))?;
    Ok(std::fs::rename(&tmp, link).with_context(|| format!("linking {link}"))?)
}

/// `command`, an xtask run in another checkout of this project (verify's clean rebuild,
/// bench's development loop), with `target_dir` as its target dir. It shares the zig
/// provisioned here through PATH instead of fetching its own, and uses its own checkout's C
/// compiler wrappers: `cargo xtask` hands this run ours through cargo's `[env]`, and the
/// other run would take them for the user's.
pub fn in_other_checkout<'a>(
    workspace: &Workspace,
    command: xshell::Cmd<'a>,
    target_dir: &Utf8Path,
) -> xshell::Cmd<'a> {
    let mut command = command.env("CARGO_TARGET_DIR", target_dir);
    if let Some(path) = path_with_zig(workspace) {
        command = command.env("PATH", path);
    }
    let ours = workspace.root.join(".cargo/cc");
    for (key, value) in std::env::vars() {
        if (key.starts_with("CC_") || key.starts_with("AR_"))
            && Utf8Path::new(&value).starts_with(&ours)
        {
            command = command.env_remove(key);
        }
    }
    command
}

/// PATH with the directory of the zig provisioned here first.
fn path_with_zig(workspace: &Workspace) -> Option<std::ffi::OsString> {
    let zig = workspace
        .targets
        .iter()
        .find_map(|&t| match locate_c_compiler(workspace, t) {
            CSource::Zig(zig) => Some(zig),
            _ => None,
        })?;
    let mut dirs = vec![zig.parent()?.as_std_path().to_owned()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH")?));
    std::env::join_paths(dirs).ok()
}

/// Runs `cmd` to its end in a process group of its own; a signal stops it.
fn run(
    cmd: xshell::Cmd<'_>,
    stdout: Io,
    stderr: Io,
) -> crate::Result<tiny_interrupt::process::Finished> {
    tiny_interrupt::process::run(cmd, stdout, stderr).map_err(|e| match e {
        tiny_interrupt::process::Error::Interrupted => crate::Error::Interrupted,
        e => crate::Error::Other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiler_or_wrapper_named_in_any_spelling_is_noticed() {
        let only = |set: &'static str, value: &'static str| {
            move |name: &str| (name == set).then(|| value.into())
        };
        for name in COMPILER_VARS {
            assert!(compiler_named(only(name, "/opt/rustc")), "{name}");
            assert!(!compiler_named(only(name, "")), "{name} empty");
        }
        for name in [
            "CARGO_BUILD_RUSTC",
            "CARGO_BUILD_RUSTC_WRAPPER",
            "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        ] {
            assert!(compiler_named(only(name, "sccache")), "{name}");
        }
        assert!(!compiler_named(only("CARGO_BUILD_RUSTDOC", "/opt/rustdoc")));
    }
}
