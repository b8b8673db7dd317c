//! Finds or provisions what cross-compiling needs: the Rust standard library for each
//! target and a C compiler for it (zig, unless the user set `CC_<target>`).

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::interrupt::Undo;
use crate::model::project::Project;
use crate::tools::process::{self, Io};
use crate::tools::which::find_on_path;
use tiny_cross::target::Target;

/// The cargo that runs us (cargo sets `CARGO` for its children), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The line of `.cargo/config.toml` that makes cargo run every rustc through our wrapper,
/// which maps this machine's paths to fixed names (README, Reproducibility).
pub const RUSTC_WRAPPER_SETTING: &str = "rustc-wrapper = \".cargo/rustc-wrapper\"";

/// The project's own compiler wrappers: what they pass changes every output, so a build is
/// only as fresh as they are.
pub fn wrappers(project: &Project) -> Vec<Utf8PathBuf> {
    let dir = project.root.join(".cargo");
    let mut files = vec![
        dir.join("rustc-wrapper"),
        dir.join("cc/zig"),
        dir.join("cc/ar"),
    ];
    files.extend(Target::ALL.map(|t| committed_wrapper(project, t)));
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
pub fn sysroot(sh: &Shell) -> anyhow::Result<Utf8PathBuf> {
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

/// Adds the target's standard library with rustup when it is missing.
fn ensure_rust_target(sh: &Shell, sysroot: &Utf8Path, target: Target) -> anyhow::Result<()> {
    if rust_target_installed(sysroot, target) {
        return Ok(());
    }
    let triple = target.triple();
    if find_on_path("rustup").is_none() {
        bail!(
            "the Rust standard library for {triple} is missing and there is no rustup to add it: \
             install it for your toolchain (rustup target add {triple})"
        );
    }
    eprintln!("adding the Rust standard library for {triple}: rustup target add {triple}");
    let done = process::run(
        cmd!(sh, "rustup target add {triple}").quiet(),
        Io::Null,
        Io::Inherit,
    )?;
    if !done.status.success() {
        bail!("`rustup target add {triple}` failed (offline?)");
    }
    Ok(())
}

/// What cargo needs to cross-compile for some targets, all provisioned.
pub struct CrossEnv {
    /// Each target's C compiler, for the build log and errors.
    pub compilers: Vec<String>,
}

/// Adds any missing standard library and finds, or provisions, each target's C compiler.
/// Cargo itself gets the compiler from `[env]` in `.cargo/config.toml` (or the user's
/// `CC_<target>`): we set no variables, so a plain `cargo build` sees the same environment
/// and reuses this build, and the other way round.
pub fn cross_env(sh: &Shell, project: &Project, targets: &[Target]) -> anyhow::Result<CrossEnv> {
    let sysroot = sysroot(sh)?;
    let mut compilers = Vec::new();
    for &target in targets {
        ensure_rust_target(sh, &sysroot, target)?;
        compilers.push(format!("{target}: {}", c_compiler(sh, project, target)?));
    }
    Ok(CrossEnv { compilers })
}

/// How the C cross compiler would be found, without changing anything.
pub enum CSource {
    /// The user's `CC_<target>` (or `CC_<triple>` with dashes).
    UserSet { var: String, value: String },
    /// zig on PATH or already provisioned.
    Zig(Utf8PathBuf),
    /// Nothing yet; `pip` can install the pinned `ziglang`.
    Provisionable,
    /// Nothing, and no python3 to provision with.
    Missing,
}

pub fn locate_c_compiler(project: &Project, target: Target) -> CSource {
    // The dashed name first, as cc-rs reads them. Cargo's `[env]` hands our own wrapper to
    // us too (`cargo xtask` is `cargo run`): that one is not the user's choice.
    for var in [format!("CC_{}", target.triple()), target.cc_env()] {
        match std::env::var(&var) {
            Ok(value)
                if !value.trim().is_empty() && !is_committed_wrapper(project, target, &value) =>
            {
                return CSource::UserSet { var, value };
            }
            _ => {}
        }
    }
    if let Some(zig) = find_on_path("zig").or_else(|| provisioned_zig(project)) {
        return CSource::Zig(zig);
    }
    if find_on_path("python3").is_some() {
        CSource::Provisionable
    } else {
        CSource::Missing
    }
}

/// The committed wrapper `.cargo/config.toml` names as `CC_<target>`.
pub fn committed_wrapper(project: &Project, target: Target) -> Utf8PathBuf {
    project
        .root
        .join(".cargo/cc")
        .join(format!("{}-cc", target.triple()))
}

fn is_committed_wrapper(project: &Project, target: Target, value: &str) -> bool {
    let ours = committed_wrapper(project, target);
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
fn c_compiler(sh: &Shell, project: &Project, target: Target) -> anyhow::Result<String> {
    let zig = match locate_c_compiler(project, target) {
        CSource::UserSet { var, value } => return Ok(format!("{value} (from {var})")),
        CSource::Zig(zig) => zig,
        CSource::Provisionable => provision_zig(sh, project, target)?,
        CSource::Missing => bail!("{}", missing_c_compiler(project, target)),
    };
    link(&zig, &zig_link(&project.target_dir))?;
    Ok(format!("zig cc -target {} ({zig})", target.zig_target()))
}

/// The one-line fix when no C compiler can be found or provisioned.
pub fn missing_c_compiler(project: &Project, target: Target) -> String {
    format!(
        "no C compiler for {}: install zig (`pip install ziglang=={}` or a release on PATH), \
         or set {} to a C compiler for that target",
        target.triple(),
        project.settings.zig,
        target.cc_env()
    )
}

fn provisioned_zig(project: &Project) -> Option<Utf8PathBuf> {
    let zig = zig_home(project).join("ziglang/zig");
    zig.is_file().then_some(zig)
}

/// Lets builds in another target directory (the bench's scratch ones) use the zig provisioned
/// in ours rather than download their own.
pub fn share_zig(project: &Project, other_target_dir: &Utf8Path) -> anyhow::Result<()> {
    if provisioned_zig(project).is_none() {
        return Ok(());
    }
    let other = other_target_dir
        .join("xtask/zig")
        .join(&project.settings.zig);
    link(&zig_home(project), &other)
}

fn zig_home(project: &Project) -> Utf8PathBuf {
    project.work_dir().join("zig").join(&project.settings.zig)
}

/// Installs PyPI's `ziglang` wheel (a self-contained zig) under the target directory. The
/// install goes to a temporary folder that is renamed into place, so an interrupted
/// download never leaves a broken zig behind.
fn provision_zig(sh: &Shell, project: &Project, target: Target) -> anyhow::Result<Utf8PathBuf> {
    let version = &project.settings.zig;
    let home = zig_home(project);
    let partial = home.with_extension("partial");
    eprintln!(
        "provisioning zig {version} (C cross compiler) into {}",
        project.relative(&home)
    );
    let _ = std::fs::remove_dir_all(&partial);
    let spec = format!("ziglang=={version}");
    let _partial_removed = Undo::remove_dir(&partial);
    let pip = cmd!(
        sh,
        "python3 -m pip install --quiet --disable-pip-version-check --no-deps --target {partial} {spec}"
    )
    .env("PIP_ROOT_USER_ACTION", "ignore")
    .quiet();
    let installed = process::run(pip, Io::Inherit, Io::Inherit)?;
    if !installed.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        bail!(
            "could not install zig {version} with pip (offline, or no pip?); {}",
            missing_c_compiler(project, target)
        );
    }
    std::fs::rename(&partial, &home).with_context(|| format!("moving zig into {home}"))?;
    Ok(home.join("ziglang/zig"))
}

/// Points `link` at `to`, leaving a correct link untouched (its mtime is no input to cargo,
/// but a rewrite for nothing is still a write).
pub fn link(to: &Utf8Path, link: &Utf8Path) -> anyhow::Result<()> {
    if link.read_link_utf8().is_ok_and(|old| old == to) {
        return Ok(());
    }
    let dir = link.parent().context("link path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(to, &tmp).with_context(|| format!("linking {tmp}"))?;
    std::fs::rename(&tmp, link).with_context(|| format!("linking {link}"))
}

/// `command`, an xtask run in another checkout of this project (verify's clean rebuild,
/// bench's development loop), with `target_dir` as its target dir. It shares the zig
/// provisioned here through PATH instead of fetching its own, and uses its own checkout's C
/// compiler wrappers: `cargo xtask` hands this run ours through cargo's `[env]`, and the
/// other run would take them for the user's.
pub fn in_other_checkout<'a>(
    project: &Project,
    command: xshell::Cmd<'a>,
    target_dir: &Utf8Path,
) -> xshell::Cmd<'a> {
    let mut command = command.env("CARGO_TARGET_DIR", target_dir);
    if let Some(path) = path_with_zig(project) {
        command = command.env("PATH", path);
    }
    let ours = project.root.join(".cargo/cc");
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
fn path_with_zig(project: &Project) -> Option<std::ffi::OsString> {
    let zig =
        project
            .settings
            .targets
            .iter()
            .find_map(|&t| match locate_c_compiler(project, t) {
                CSource::Zig(zig) => Some(zig),
                _ => None,
            })?;
    let mut dirs = vec![zig.parent()?.as_std_path().to_owned()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH")?));
    std::env::join_paths(dirs).ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn committed(name: &str) -> Utf8PathBuf {
        Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.cargo/cc")
            .join(name)
    }

    /// Runs a committed wrapper as cc-rs does, from a build script whose OUT_DIR is `out`.
    fn run(name: &str, out: &Utf8Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(committed(name))
            .args(args)
            .env("OUT_DIR", out)
            .output()
            .unwrap()
    }

    #[test]
    fn the_committed_wrappers_run_the_linked_zig_without_cc_rs_target_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let target_dir = Utf8Path::from_path(tmp.path()).unwrap().join("it's target");
        let out = target_dir.join("aarch64-unknown-linux-musl/release/build/x-1/out");
        std::fs::create_dir_all(&out).unwrap();

        let missing = run("aarch64-unknown-linux-musl-cc", &out, &["-c", "a.c"]);
        assert!(!missing.status.success());
        let err = String::from_utf8(missing.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("run `cargo xtask build` once"), "{err}");

        let fake_zig = target_dir.join("fake zig");
        let print =
            "#!/bin/sh\necho \"SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH\"\nprintf '%s\\n' \"$@\"\n";
        std::fs::write(&fake_zig, print).unwrap();
        std::fs::set_permissions(&fake_zig, std::fs::Permissions::from_mode(0o755)).unwrap();
        link(&fake_zig, &zig_link(&target_dir)).unwrap();
        let cc = run(
            "aarch64-unknown-linux-musl-cc",
            &out,
            &["-O2", "--target=aarch64-unknown-linux-musl", "-c", "a b.c"],
        );
        assert!(cc.status.success());
        let args = String::from_utf8(cc.stdout).unwrap();
        let cargo_home = tool_home("CARGO_HOME", ".cargo").unwrap();
        let root = committed("../..").canonicalize_utf8().unwrap();
        assert_eq!(
            args,
            format!(
                "SOURCE_DATE_EPOCH=315532800\ncc\n-target\naarch64-linux-musl\n\
                 -ffile-prefix-map={cargo_home}=/cargo\n-ffile-prefix-map={root}=.\n\
                 -ffile-prefix-map={target_dir}=/target\n-O2\n-c\na b.c\n"
            )
        );
        let ar = run("ar", &out, &["cq", "lib.a", "x.o"]);
        let ar = String::from_utf8(ar.stdout).unwrap();
        assert!(ar.ends_with("\nar\ncq\nlib.a\nx.o\n"), "{ar}");
    }

    /// Runs the committed rustc wrapper as cargo does, with a fake rustc that prints its
    /// arguments.
    fn rustc(dir: &Utf8Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let fake = dir.join("fake rustc");
        if !fake.exists() {
            let print = "#!/bin/sh\nprintf '%s\\n' \"$@\"\n";
            std::fs::write(&fake, print).unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::process::Command::new(committed("../rustc-wrapper"))
            .arg(&fake)
            .args(args)
            .env_remove("XTASK_RUSTC_WRAPPER")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    #[test]
    fn the_rustc_wrapper_maps_this_machines_paths_and_says_when_zig_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let target_dir = dir.join("it's target");
        let out = target_dir.join("aarch64-unknown-linux-musl/release/deps");
        std::fs::create_dir_all(&out).unwrap();
        for dir in [&target_dir, &target_dir.join("aarch64-unknown-linux-musl")] {
            std::fs::write(dir.join("CACHEDIR.TAG"), "").unwrap();
        }
        let homes = [
            ("CARGO_HOME", "/h/cargo home"),
            ("RUSTUP_HOME", "/h/rustup"),
        ];
        let root = committed("../..").canonicalize_utf8().unwrap();

        let host_out = target_dir.join("release/deps");
        std::fs::create_dir_all(&host_out).unwrap();
        let host_args = ["--crate-name", "a", "--out-dir", host_out.as_str()];
        let host = rustc(dir, &host_args, &homes);
        assert!(host.status.success());
        let mapped = format!(
            "--crate-name\na\n--out-dir\n{host_out}\n--remap-path-prefix={root}=.\n\
             --remap-path-prefix={target_dir}=/target\n--remap-path-prefix=/h/cargo home=/cargo\n\
             --remap-path-prefix=/h/rustup=/rustup\n"
        );
        assert_eq!(String::from_utf8(host.stdout).unwrap(), mapped);

        // Cross-compiling with our C wrapper and no zig linked yet: one line, what to do.
        let ours = root.join(".cargo/cc/aarch64-unknown-linux-musl-cc");
        let cc = [("CC_aarch64_unknown_linux_musl", ours.as_str())];
        let cross = [
            "--out-dir",
            out.as_str(),
            "--target",
            "aarch64-unknown-linux-musl",
        ];
        let missing = rustc(dir, &cross, &cc);
        assert!(!missing.status.success());
        let err = String::from_utf8(missing.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("run `cargo xtask build` once"), "{err}");
        link(Utf8Path::new("/bin/true"), &zig_link(&target_dir)).unwrap();
        assert!(rustc(dir, &cross, &cc).status.success());

        // cargo keeps the version in every fingerprint: it names the wrappers' contents.
        let version = rustc(dir, &["-vV"], &[]);
        let version = String::from_utf8(version.stdout).unwrap();
        assert!(
            version.starts_with("-vV\npath-remapping-wrappers: "),
            "{version}"
        );
    }

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

    #[test]
    fn a_link_is_replaced_only_when_it_points_elsewhere() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let at = zig_link(dir);
        link(Utf8Path::new("/a/zig"), &at).unwrap();
        let first = at.symlink_metadata().unwrap().modified().unwrap();
        link(Utf8Path::new("/a/zig"), &at).unwrap();
        assert_eq!(at.symlink_metadata().unwrap().modified().unwrap(), first);
        link(Utf8Path::new("/b/zig"), &at).unwrap();
        assert_eq!(at.read_link_utf8().unwrap(), "/b/zig");
    }

    #[test]
    fn the_cargo_config_names_the_committed_wrappers() {
        let config = std::fs::read_to_string(committed("../config.toml")).unwrap();
        // The only mention of rustc: the no-op record accepts exactly this line.
        let rest = config.replacen(RUSTC_WRAPPER_SETTING, "", 1);
        assert_ne!(rest, config, "missing: {RUSTC_WRAPPER_SETTING}");
        assert!(!rest.contains("rustc"), "{rest}");
        assert!(committed("../rustc-wrapper").is_file());
        for target in Target::ALL {
            let line = format!(
                "{} = {{ value = \".cargo/cc/{}-cc\", relative = true }}",
                target.cc_env(),
                target.triple()
            );
            assert!(config.contains(&line), "missing: {line}");
            let ar = format!(
                "AR_{} = {{ value = \".cargo/cc/ar\", relative = true }}",
                &target.cc_env()[3..]
            );
            assert!(config.contains(&ar), "missing: {ar}");
        }
    }
}
