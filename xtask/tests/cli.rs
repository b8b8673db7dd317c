//! The xtask binary as a user meets it: help, bad input, a missing engine. These run
//! without building the service.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use support::reports::Doctor;
use support::{XTASK, root};

mod support;

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(XTASK);
    command.args(args).current_dir(root());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A PATH with the Rust toolchain and nothing else: no docker, no podman.
fn rust_only_path() -> String {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap());
    cargo.parent().unwrap().display().to_string()
}

#[test]
fn help_lists_every_command_with_a_line_each() {
    let out = xtask(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "build",
        "image",
        "push",
        "pull",
        "index",
        "smoke-test",
        "doctor",
        "bench",
        "sbom",
        "run",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("{help}"));
        assert!(
            line.split_whitespace().count() > 3,
            "no description for {command}: {line}"
        );
    }
}

#[test]
fn unsupported_targets_fail_with_one_line_naming_the_supported_ones() {
    for target in ["riscv64gc-unknown-linux-gnu", "nonsense"] {
        let out = xtask(&["build", "--target", target], &[("RUST_BACKTRACE", "1")]);
        assert_eq!(out.status.code(), Some(2), "{target}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("unsupported target `{target}`")),
            "{err}"
        );
        assert!(
            err.contains("x86_64-unknown-linux-musl") && err.contains("aarch64-unknown-linux-musl"),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
}

#[test]
fn a_stopped_docker_daemon_is_one_line_that_says_what_to_start() {
    let dead = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    for command in ["image", "smoke-test"] {
        let out = xtask(&[command, "--engine", "docker"], &dead);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{command}: {err}");
        assert!(
            err.starts_with("error: the Docker daemon is not running: start it"),
            "{command}: {err}"
        );
    }
}

#[test]
fn no_engine_at_all_says_what_to_start_or_install_and_doctor_agrees() {
    let path = rust_only_path();
    // `image` needs no engine (the builtin one writes an OCI layout), unless asked to load.
    let out = xtask(&["smoke-test"], &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no container engine is running: start the Docker daemon"),
        "{err}"
    );
    assert!(err.contains("install podman"), "{err}");
    let out = xtask(&["image", "--load", "docker"], &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: docker is not installed: install it"),
        "{err}"
    );
    let out = xtask(&["doctor", "--json"], &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(1));
    let doctor = Doctor::parse(&out.stdout);
    assert!(!doctor.ok);
    for (engine, fix) in [
        ("docker", "apt-get install docker.io"),
        ("podman", "apt-get install podman"),
    ] {
        let tool = doctor.tool(engine);
        assert_eq!(tool.status, "missing", "{tool:?}");
        assert!(!tool.found && tool.path.is_none(), "{tool:?}");
        assert!(
            tool.fix.as_deref().unwrap_or_default().contains(fix),
            "{tool:?}"
        );
    }
    // The table says the same.
    let out = xtask(&["doctor"], &[("PATH", &path)]);
    let table = String::from_utf8(out.stdout).unwrap();
    let docker = table.lines().find(|l| l.starts_with("docker ")).unwrap();
    assert!(docker.contains("missing") && docker.contains("apt-get install docker.io"));
}

#[test]
fn doctor_json_names_each_engine_found_with_its_version_and_path() {
    let out = xtask(&["doctor", "--json"], &[]);
    let doctor = Doctor::parse(&out.stdout);
    assert_eq!(out.status.success(), doctor.ok);
    for tool in &doctor.tools {
        assert_eq!(
            tool.found,
            matches!(tool.status.as_str(), "ok" | "limited"),
            "{tool:?}"
        );
        assert_eq!(tool.fix.is_none(), tool.status == "ok", "{tool:?}");
    }
    for engine in ["docker", "podman"] {
        let tool = doctor.tool(engine);
        if tool.found {
            assert!(
                tool.version.as_deref().is_some_and(|v| !v.is_empty()),
                "{tool:?}"
            );
            assert!(
                tool.path.as_deref().is_some_and(|p| p.ends_with(engine)),
                "{tool:?}"
            );
        }
    }
}

/// `cargo xtask doctor | head -1`: the reader is gone before the xtask prints. No panic, no
/// backtrace; the status is 141 (as after SIGPIPE), never success, since the output was cut.
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    for args in [&["doctor"][..], &["doctor", "--json"], &["build", "--help"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(XTASK)
            .args(args)
            .current_dir(root())
            .env("RUST_BACKTRACE", "1")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err}"
        );
        // clap prints help itself and ignores the error: success, with nothing cut that
        // anyone reads.
        let expected = if args.contains(&"--help") { 0 } else { 141 };
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {err}");
    }
}

#[test]
fn push_without_a_registry_is_refused_before_any_work() {
    let out = xtask(&["image", "--push"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: --push needs a registry"), "{err}");
}
