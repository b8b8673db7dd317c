//! Finds or provisions what cross-compiling needs: the Rust standard library for each
//! target and a C compiler for it (zig, unless the user set `CC_<target>`).

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::interrupt::Undo;
use crate::model::project::Project;
use crate::model::target::Target;
use crate::tools::process::{self, Io};
use crate::tools::which::find_on_path;

/// The cargo that runs us (cargo sets `CARGO` for its children), else the one on PATH.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The active toolchain's sysroot, where each target's standard library lives.
pub fn sysroot(sh: &Shell) -> anyhow::Result<Utf8PathBuf> {
    let sysroot = cmd!(sh, "rustc --print sysroot")
        .quiet()
        .read()
        .context("`rustc` did not run: install Rust with rustup (https://rustup.rs)")?;
    Ok(Utf8PathBuf::from(sysroot))
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
    /// `CC_<target>` and `AR_<target>` for cargo (cc-rs reads them).
    pub env: Vec<(String, String)>,
    /// Each target's C compiler, for the build log and errors.
    pub compilers: Vec<String>,
}

/// Adds any missing standard library and finds, or provisions, each target's C compiler.
pub fn cross_env(sh: &Shell, project: &Project, targets: &[Target]) -> anyhow::Result<CrossEnv> {
    let sysroot = sysroot(sh)?;
    let mut cross = CrossEnv {
        env: Vec::new(),
        compilers: Vec::new(),
    };
    for &target in targets {
        ensure_rust_target(sh, &sysroot, target)?;
        let cc = c_compiler(sh, project, target)?;
        cross
            .compilers
            .push(format!("{target}: {}", cc.description));
        cross.env.extend(cc.env);
    }
    Ok(cross)
}

/// The C compiler for one target, as environment for cargo (cc-rs reads `CC_<target>`).
struct CCompiler {
    /// Where it came from, for `doctor` and the build log.
    pub description: String,
    pub env: Vec<(String, String)>,
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
    for var in [target.cc_env(), format!("CC_{}", target.triple())] {
        match std::env::var(&var) {
            Ok(value) if !value.trim().is_empty() => return CSource::UserSet { var, value },
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

/// Finds, or provisions, the C compiler for `target` and writes the zig wrappers.
fn c_compiler(sh: &Shell, project: &Project, target: Target) -> anyhow::Result<CCompiler> {
    let zig = match locate_c_compiler(project, target) {
        CSource::UserSet { var, value } => {
            return Ok(CCompiler {
                description: format!("{value} (from {var})"),
                env: vec![],
            });
        }
        CSource::Zig(zig) => zig,
        CSource::Provisionable => provision_zig(sh, project, target)?,
        CSource::Missing => bail!("{}", missing_c_compiler(project, target)),
    };
    let wrappers = project.work_dir().join("cc");
    let cc = wrappers.join(format!("{}-cc", target.triple()));
    let ar = wrappers.join(format!("{}-ar", target.triple()));
    write_script(&cc, &cc_wrapper(&zig, target))?;
    write_script(&ar, &ar_wrapper(&zig))?;
    let ar_env = format!("AR_{}", target.triple().replace('-', "_"));
    Ok(CCompiler {
        description: format!("zig cc -target {} ({zig})", target.zig_target()),
        env: vec![
            (target.cc_env(), cc.into_string()),
            (ar_env, ar.into_string()),
        ],
    })
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

fn cc_wrapper(zig: &Utf8Path, target: Target) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask build`: zig as the C compiler for {triple}.\n\
         # cc-rs passes --target=<rust triple>, which zig rejects: drop it, give zig its own.\n\
         for arg do\n  shift\n  case \"$arg\" in --target=*) ;; *) set -- \"$@\" \"$arg\" ;; esac\ndone\n\
         exec {zig} cc -target {zig_target} \"$@\"\n",
        triple = target.triple(),
        zig = shell_quote(zig.as_str()),
        zig_target = target.zig_target(),
    )
}

fn ar_wrapper(zig: &Utf8Path) -> String {
    format!(
        "#!/bin/sh\n# Written by `cargo xtask build`: zig's archiver.\nexec {} ar \"$@\"\n",
        shell_quote(zig.as_str())
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes an executable script, leaving an identical one untouched.
fn write_script(path: &Utf8Path, contents: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    let dir = path.parent().context("script path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {tmp}"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cc_wrapper_drops_cc_rs_target_flag_and_quotes_the_path() {
        let script = cc_wrapper(Utf8Path::new("/opt/it's/zig"), Target::Aarch64Musl);
        assert!(
            script.contains("exec '/opt/it'\\''s/zig' cc -target aarch64-linux-musl \"$@\""),
            "{script}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let fake_zig = dir.join("zig");
        write_script(&fake_zig, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
        let wrapper = dir.join("cc");
        write_script(&wrapper, &cc_wrapper(&fake_zig, Target::Aarch64Musl)).unwrap();
        let out = std::process::Command::new(&wrapper)
            .args(["-O2", "--target=aarch64-unknown-linux-musl", "-c", "a b.c"])
            .output()
            .unwrap();
        let args = String::from_utf8(out.stdout).unwrap();
        assert_eq!(args, "cc\n-target\naarch64-linux-musl\n-O2\n-c\na b.c\n");
    }
}
