//! The developer's loop: `cargo xtask build` and a plain `cargo build` of the same target
//! share one build. Each finds the other's work fresh, and the staged binaries stay the same
//! files. A no-op `cargo xtask build` does not run cargo at all, but does as soon as any
//! input it watches changes. One target, to keep it short; it builds the service in release
//! once if needed.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use support::{root, succeed};

const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// What `cargo xtask build` prints when it proved cargo had nothing to do.
const NOT_RUN: &str = "nothing changed since the last build (not run)";

/// The tests share one target directory and one record of the last build.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs cargo as a user types it, from the workspace root; fails the test on failure.
fn cargo(args: &[&str]) -> Output {
    cargo_with(args, &[])
}

fn cargo_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    succeed(
        Command::new(cargo)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(root()),
    )
}

/// `cargo xtask build --target amd64 --json`: the staged files as (path, sha256, inode).
fn xtask_build() -> (Vec<(String, String, u64)>, String) {
    xtask_build_with(&[])
}

fn xtask_build_with(env: &[(&str, &str)]) -> (Vec<(String, String, u64)>, String) {
    let out = cargo_with(&["xtask", "build", "--target", "amd64", "--json"], env);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let dirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut files = Vec::new();
    for pair in dirs.as_array().unwrap() {
        let dir = Path::new(pair[0].as_str().unwrap());
        for file in pair[1]["files"].as_array().unwrap() {
            let path = dir.join(file["name"].as_str().unwrap());
            let inode = std::fs::metadata(&path).unwrap().ino();
            let sha256 = file["sha256"].as_str().unwrap().to_owned();
            files.push((path.display().to_string(), sha256, inode));
        }
    }
    assert!(!files.is_empty());
    (files, stderr)
}

#[test]
fn plain_cargo_and_the_xtask_reuse_each_others_build() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (first, _) = xtask_build();

    let plain = cargo(&[
        "build",
        "--release",
        "--target",
        TRIPLE,
        "--package",
        "service",
        "--message-format=json",
    ]);
    let stderr = String::from_utf8(plain.stderr).unwrap();
    assert!(
        !stderr.contains("Compiling"),
        "plain cargo rebuilt:\n{stderr}"
    );
    let mut artifacts = 0;
    for line in String::from_utf8(plain.stdout).unwrap().lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        if message["reason"] == "compiler-artifact" {
            artifacts += 1;
            assert_eq!(message["fresh"], true, "not fresh: {line}");
        }
    }
    assert!(artifacts > 0, "cargo reported no artifacts");

    let (again, stderr) = xtask_build();
    assert!(
        !stderr.contains("Compiling"),
        "the xtask rebuilt:\n{stderr}"
    );
    // Same digests, and the very same files: nothing was staged again.
    assert_eq!(again, first, "{stderr}");
    // The plain build left everything as it was: the xtask did not even run cargo.
    assert!(stderr.contains(NOT_RUN), "{stderr}");
}

/// Rewrites a file's metadata only: its mtime is set to what it was, which moves its ctime.
/// Cargo compares mtimes and finds everything fresh, so cargo runs and compiles nothing;
/// the xtask, which compares more than cargo does, must notice and run cargo.
fn touch_metadata(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    file.set_modified(mtime).unwrap();
}

/// The xtask makes no record when an input changed within 2 s before cargo started (by the
/// file system's clock, which may lag the system's): waits until that clock has moved more
/// than that past now, so the build after a change can be recorded.
fn wait_out_the_margin() {
    let target_dir = support::target_dir();
    let probe = target_dir.join(format!("devloop-clock-{}", std::process::id()));
    let time = || {
        std::fs::write(&probe, "").unwrap();
        let meta = std::fs::metadata(&probe).unwrap();
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
    };
    let now = time();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while time() <= now + 2_000_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the file system's clock did not move"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::fs::remove_file(&probe).unwrap();
}

/// After each change, `cargo xtask build` runs cargo (which finds nothing to compile) and
/// stages the same files; the build after it is a no-op again.
#[test]
fn the_xtask_runs_cargo_again_whenever_an_input_changed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (first, _) = xtask_build();
    let (_, stderr) = xtask_build();
    assert!(stderr.contains(NOT_RUN), "{stderr}");

    let target_dir = support::target_dir();
    let output = target_dir.join(TRIPLE).join("release/service");
    type Change<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let changes: [Change; 6] = [
        (
            "a source file",
            Box::new(|| touch_metadata(&root().join("service/src/lib.rs"))),
        ),
        (
            "Cargo.lock",
            Box::new(|| touch_metadata(&root().join("Cargo.lock"))),
        ),
        (
            "a member's manifest",
            Box::new(|| touch_metadata(&root().join("xtask/Cargo.toml"))),
        ),
        (
            "the cargo config",
            Box::new(|| touch_metadata(&root().join(".cargo/config.toml"))),
        ),
        (
            "the built binary, replaced by a copy",
            Box::new(|| {
                let bytes = std::fs::read(&output).unwrap();
                std::fs::remove_file(&output).unwrap();
                std::fs::write(&output, bytes).unwrap();
            }),
        ),
        ("nothing on disk (a variable, below)", Box::new(|| {})),
    ];
    for (what, change) in changes {
        change();
        wait_out_the_margin();
        let env: &[(&str, &str)] = if what.starts_with("nothing") {
            &[("DEVLOOP_SOME_VARIABLE", "1")]
        } else {
            &[]
        };
        let (again, stderr) = xtask_build_with(env);
        assert!(
            !stderr.contains(NOT_RUN),
            "{what} changed, cargo did not run:\n{stderr}"
        );
        assert!(stderr.contains("Finished"), "{what}: {stderr}");
        assert!(
            !stderr.contains("Compiling"),
            "{what}: cargo rebuilt:\n{stderr}"
        );
        assert_eq!(again, first, "{what}: {stderr}");
        let (_, stderr) = xtask_build_with(env);
        assert!(stderr.contains(NOT_RUN), "after {what}: {stderr}");
    }
}
