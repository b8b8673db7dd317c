//! The toolchain for this project's workspace (see `tiny_cross::toolchain`): its
//! configuration from `Project`, its notes on stderr.

use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

use crate::model::project::Project;
use tiny_cross::target::Target;
use tiny_cross::workspace::{Progress, Workspace};

pub use tiny_cross::toolchain::{
    BUILD_STD, CSource, CrossEnv, RUSTC_WRAPPER_SETTING, as_typed, cargo, link, rust_src,
    rust_target_installed, std_from_source_dir, std_from_source_noted, sysroot, tool_home,
    watched_files, zig_link,
};

/// The workspace as the cross crate sees it.
pub fn workspace(project: &Project) -> Workspace {
    Workspace {
        targets: project.settings.targets.clone(),
        ..Workspace::new(
            project.root.clone(),
            project.target_dir.clone(),
            project.settings.zig.clone(),
        )
    }
}

/// Notes on stderr, one line each.
pub struct Notes;

impl Progress for Notes {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// See `tiny_cross::toolchain::wrappers`.
pub fn wrappers(project: &Project) -> Vec<Utf8PathBuf> {
    tiny_cross::toolchain::wrappers(&workspace(project))
}

/// See `tiny_cross::toolchain::cross_env`.
pub fn cross_env(sh: &Shell, project: &Project, targets: &[Target]) -> anyhow::Result<CrossEnv> {
    Ok(tiny_cross::toolchain::cross_env(
        sh,
        &workspace(project),
        targets,
        &Notes,
    )?)
}

/// See `tiny_cross::toolchain::locate_c_compiler`.
pub fn locate_c_compiler(project: &Project, target: Target) -> CSource {
    tiny_cross::toolchain::locate_c_compiler(&workspace(project), target)
}

/// See `tiny_cross::toolchain::missing_c_compiler`.
pub fn missing_c_compiler(project: &Project, target: Target) -> String {
    tiny_cross::toolchain::missing_c_compiler(&workspace(project), target)
}

/// See `tiny_cross::toolchain::share_zig`.
pub fn share_zig(project: &Project, other_target_dir: &Utf8Path) -> anyhow::Result<()> {
    Ok(tiny_cross::toolchain::share_zig(
        &workspace(project),
        other_target_dir,
    )?)
}

/// See `tiny_cross::toolchain::in_other_checkout`.
pub fn in_other_checkout<'a>(
    project: &Project,
    command: xshell::Cmd<'a>,
    target_dir: &Utf8Path,
) -> xshell::Cmd<'a> {
    tiny_cross::toolchain::in_other_checkout(&workspace(project), command, target_dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Checks that a run through the fake sccache succeeded and that sccache was handed the
    /// committed `shim` and `args`; returns the other lines of `said` (what then ran).
    fn sccache_saw<'s>(
        run: &std::process::Output,
        said: &'s str,
        shim: &str,
        args: &[&str],
    ) -> Vec<&'s str> {
        assert!(run.status.success(), "{run:?}");
        let (seen, ran): (Vec<&str>, Vec<&str>) =
            said.lines().partition(|l| l.starts_with("sccache:"));
        let expected: Vec<String> = std::iter::once(committed(shim).to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| format!("sccache:{a}"))
            .collect();
        assert_eq!(seen, expected);
        ran
    }

    fn committed(name: &str) -> Utf8PathBuf {
        Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cargo/cc")
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

    /// A target directory under `dir` as cargo leaves it, with its `release/deps`.
    fn target_with_deps(dir: &Utf8Path) -> Utf8PathBuf {
        let target_dir = dir.join("target");
        std::fs::create_dir_all(target_dir.join("release/deps")).unwrap();
        std::fs::write(target_dir.join("CACHEDIR.TAG"), "").unwrap();
        target_dir
    }

    #[test]
    fn with_the_shared_cache_sccache_sees_no_path_of_this_machine_and_the_compiler_maps_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let target_dir = target_with_deps(dir);
        let out = target_dir.join("release/deps");
        // A fake sccache that prints what it was given, then runs it as sccache would.
        let sccache = dir.join("sccache");
        let script = "#!/bin/sh\nprintf 'sccache:%s\\n' \"$@\"\nexec \"$@\"\n";
        std::fs::write(&sccache, script).unwrap();
        std::fs::set_permissions(&sccache, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = ["--crate-name", "a", "--out-dir", out.as_str()];
        let env = [
            ("XTASK_SCCACHE", sccache.as_str()),
            ("CARGO_HOME", "/h/cargo"),
            ("RUSTUP_HOME", "/h/rustup"),
        ];
        let ran = rustc(dir, &args, &env);
        let said = String::from_utf8(ran.stdout.clone()).unwrap();
        let ran = sccache_saw(
            &ran,
            &said,
            "../cache/rustc",
            &["--crate-name", "a", "--out-dir", out.as_str()],
        );
        let root = committed("../..").canonicalize_utf8().unwrap();
        assert_eq!(
            ran,
            [
                "--crate-name".to_owned(),
                "a".into(),
                "--out-dir".into(),
                out.to_string(),
                format!("--remap-path-prefix={root}=."),
                format!("--remap-path-prefix={target_dir}=/target"),
                "--remap-path-prefix=/h/cargo=/cargo".into(),
                "--remap-path-prefix=/h/rustup=/rustup".into(),
            ]
        );

        // The C compiler: sccache sees the target and the compiler's own arguments; zig
        // gets the mapping, as without the cache.
        let out = target_dir.join("x86_64-unknown-linux-musl/release/build/x-1/out");
        std::fs::create_dir_all(&out).unwrap();
        let fake_zig = dir.join("zig");
        std::fs::write(&fake_zig, "#!/bin/sh\nprintf 'zig:%s\\n' \"$@\"\n").unwrap();
        std::fs::set_permissions(&fake_zig, std::fs::Permissions::from_mode(0o755)).unwrap();
        link(&fake_zig, &zig_link(&target_dir)).unwrap();
        let cc = std::process::Command::new(committed("x86_64-unknown-linux-musl-cc"))
            .args(["-O2", "--target=x86_64-unknown-linux-musl", "-c", "a.c"])
            .env("OUT_DIR", &out)
            .env("XTASK_SCCACHE", &sccache)
            .env("CARGO_HOME", "/h/cargo")
            .output()
            .unwrap();
        let said = String::from_utf8(cc.stdout.clone()).unwrap();
        let ran = sccache_saw(
            &cc,
            &said,
            "../cache/cc",
            &["-target", "x86_64-linux-musl", "-O2", "-c", "a.c"],
        );
        let expected = [
            "cc".to_owned(),
            "-target".into(),
            "x86_64-linux-musl".into(),
            "-ffile-prefix-map=/h/cargo=/cargo".into(),
            format!("-ffile-prefix-map={root}=."),
            format!("-ffile-prefix-map={target_dir}=/target"),
            "-O2".into(),
            "-c".into(),
            "a.c".into(),
        ];
        assert_eq!(ran, expected.map(|a| format!("zig:{a}")));
    }

    #[test]
    fn once_the_cache_is_cut_off_the_wrappers_compile_here_with_the_same_mapping() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let target_dir = target_with_deps(dir);
        let out = target_dir.join("release/deps");
        // An sccache that must not run, and the flag file the build creates.
        let sccache = dir.join("sccache");
        std::fs::write(&sccache, "#!/bin/sh\necho sccache ran\nexit 1\n").unwrap();
        std::fs::set_permissions(&sccache, std::fs::Permissions::from_mode(0o755)).unwrap();
        let off = dir.join("sccache-1.off");
        let args = ["--crate-name", "a", "--out-dir", out.as_str()];
        let homes = [("CARGO_HOME", "/h/cargo"), ("RUSTUP_HOME", "/h/rustup")];
        let without = rustc(dir, &args, &homes);
        let mut env = vec![
            ("XTASK_SCCACHE", sccache.as_str()),
            ("XTASK_SCCACHE_OFF", off.as_str()),
        ];
        env.extend(homes);
        // Before the cut: through sccache.
        let ran = rustc(dir, &args, &env);
        assert!(!ran.status.success(), "{ran:?}");
        std::fs::write(&off, "").unwrap();
        let ran = rustc(dir, &args, &env);
        assert!(ran.status.success(), "{ran:?}");
        assert_eq!(ran.stdout, without.stdout);

        let out = target_dir.join("x86_64-unknown-linux-musl/release/build/x-1/out");
        std::fs::create_dir_all(&out).unwrap();
        let fake_zig = dir.join("zig");
        std::fs::write(&fake_zig, "#!/bin/sh\nprintf 'zig:%s\\n' \"$@\"\n").unwrap();
        std::fs::set_permissions(&fake_zig, std::fs::Permissions::from_mode(0o755)).unwrap();
        link(&fake_zig, &zig_link(&target_dir)).unwrap();
        let cc = |env: &[(&str, &str)]| {
            std::process::Command::new(committed("x86_64-unknown-linux-musl-cc"))
                .args(["-O2", "--target=x86_64-unknown-linux-musl", "-c", "a.c"])
                .env("OUT_DIR", &out)
                .env("CARGO_HOME", "/h/cargo")
                .env_remove("XTASK_SCCACHE")
                .envs(env.iter().copied())
                .output()
                .unwrap()
        };
        let ran = cc(&env);
        assert!(ran.status.success(), "{ran:?}");
        assert!(!ran.stdout.is_empty());
        assert_eq!(ran.stdout, cc(&[]).stdout);
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

    /// `.cargo/config.toml` and the C wrappers cover every target the same way the cross
    /// crate describes it: plain cargo builds what `cargo xtask build` builds.
    #[test]
    fn every_target_has_its_cargo_config_and_c_wrapper() {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config: toml::Table =
            toml::from_str(&std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap())
                .unwrap();
        for target in Target::ALL {
            let triple = target.triple();
            let wrapper = std::fs::read_to_string(committed(&format!("{triple}-cc"))).unwrap();
            let exec = wrapper.lines().last().unwrap();
            assert!(
                exec.contains(&format!(" cc {} ", target.zig_target())),
                "{triple}: {exec}"
            );
            match target.zig_cpu() {
                Some(cpu) => assert!(exec.contains(&format!("-mcpu={cpu} ")), "{triple}: {exec}"),
                None => assert!(!exec.contains("-mcpu"), "{triple}: {exec}"),
            }
            let section = &config["target"][triple];
            let linker = section["linker"].as_str().unwrap();
            let flags: Vec<&str> = section
                .get("rustflags")
                .and_then(|f| f.as_array())
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .collect();
            let flags = flags.join(" ");
            if matches!(
                target,
                Target::X86_64Musl | Target::Aarch64Musl | Target::I686Musl
            ) {
                assert_eq!(linker, "rust-lld", "{triple}");
            } else {
                assert_eq!(linker, format!(".cargo/cc/{triple}-cc"), "{triple}");
                assert!(
                    flags.contains("link-self-contained=no"),
                    "{triple}: {flags}"
                );
                assert!(flags.contains("+crt-static"), "{triple}: {flags}");
            }
            for var in [target.cc_env(), target.cc_env().replacen("CC_", "AR_", 1)] {
                assert!(config["env"].get(&var).is_some(), "{var}");
            }
        }
    }
}
