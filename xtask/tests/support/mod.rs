//! What the integration tests share: the workspace, running the xtask, reading what a
//! registry holds. Each test file uses a part of it.
#![allow(dead_code)]

pub mod registry;
pub mod reports;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The target directory the tests build in: this checkout's, or `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Removes what only the calling test builds on (a target directory of its own, platforms
/// no later test uses) once it is done with them, when the run sets `XTASK_TEST_TIDY=1`, as
/// CI does: a run that happens once, on a machine that may be short of disk. Otherwise they
/// stay, and the next run starts from them.
pub fn tidy(paths: &[PathBuf]) {
    if std::env::var_os("XTASK_TEST_TIDY").is_none_or(|v| v != "1") {
        return;
    }
    for path in paths {
        match std::fs::remove_dir_all(path) {
            Ok(()) => eprintln!("(XTASK_TEST_TIDY) removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", path.display()),
        }
    }
}

/// The lock file of [`engine_turn`]: one per machine, since the engines' image stores are.
pub fn engine_lock_path() -> PathBuf {
    std::env::temp_dir().join("tiny-images-engine-tests.lock")
}

/// Waits for this test's turn at the machine's engines and holds it until dropped. The
/// pipeline tags images under the project's own names (`tiny-service:0.1.0-arm64`) in the
/// daemon every checkout on the machine shares: a run of another checkout would replace
/// them under this one's feet.
pub fn engine_turn() -> File {
    let path = engine_lock_path();
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    if file.try_lock().is_err() {
        eprintln!(
            "waiting for another test run at the engines ({})",
            path.display()
        );
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    }
    file
}

/// Runs the xtask with `env` added, its stderr shown, and insists on success; returns stdout.
pub fn xtask_ok_with(args: &[&str], env: &[(&str, &str)]) -> String {
    eprintln!("$ cargo xtask {}", args.join(" "));
    let out = Command::new(XTASK)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "cargo xtask {} failed:\n{stdout}",
        args.join(" ")
    );
    stdout
}

pub fn xtask_ok(args: &[&str]) -> String {
    xtask_ok_with(args, &[])
}

/// Runs `command` and insists on success; returns what it wrote.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `program` with `args` to success; returns its stdout.
/// Runs `command` with `stdin` on its standard input and its output captured; what it said
/// on stderr is echoed into the test's log.
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn run(program: &str, args: &[&str]) -> String {
    String::from_utf8(succeed(Command::new(program).args(args)).stdout).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The sorted `os/arch` of an image index's entries.
pub fn platforms(index: &Value) -> Vec<String> {
    let mut found: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {index}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    found
}

/// Runs one of the outside checkers `.ci/provision` installs; its stdout, once it succeeded.
pub fn checker(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .unwrap_or_else(|e| panic!("{program} did not run ({e}): run .ci/provision"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `(name, version)` of the Rust crates syft finds in one binary, located in it.
pub fn syft_crates(binary: &str) -> BTreeSet<(String, String)> {
    let json = checker(
        "syft",
        &["scan", &format!("file:{binary}"), "-o", "json", "-q"],
    );
    let report: Value = serde_json::from_str(&json).unwrap();
    let file_name = Path::new(binary).file_name().unwrap().to_str().unwrap();
    report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "rust-crate")
        .filter(|a| {
            a["locations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["path"].as_str().unwrap().ends_with(file_name))
        })
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
