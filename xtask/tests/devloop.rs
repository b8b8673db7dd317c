//! The developer's loop: `cargo xtask build` and a plain `cargo build` of the same target
//! share one build. Each finds the other's work fresh, and the staged binaries stay the same
//! files. One target, to keep it short; it builds the service in release once if needed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

const TRIPLE: &str = "x86_64-unknown-linux-musl";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Runs cargo as a user types it, from the workspace root; fails the test on failure.
fn cargo(args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cargo xtask build --target amd64 --json`: the staged files as (path, sha256, inode).
fn xtask_build() -> (Vec<(String, String, u64)>, String) {
    let out = cargo(&["xtask", "build", "--target", "amd64", "--json"]);
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
}
