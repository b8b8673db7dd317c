//! `cargo xtask verify` for real: stage binaries and images of HEAD, build one target's image
//! again into the same layout (as `run --target amd64` does), change one byte of one staged
//! binary, and let verify rebuild HEAD in a clean worktree (a cold build of both targets:
//! minutes). Every other binary, both images and the index must match the rebuild (the
//! single-platform build left the index as it was), and the changed binary must be the one
//! failure, named on one line. Needs a clean working tree (verify checks a commit) and no
//! engine; uses its own tag and layout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{XTASK, root};

mod support;

const TAG: &str = "xtask-verify-test/tiny-service:t";
const TAMPERED_TARGET: &str = "aarch64-unknown-linux-musl";
const TAMPERED: &str = "migrate";

/// Runs the xtask; also returns its process id, which names its temporary folders.
fn xtask_pid(args: &[&str]) -> (Output, u32) {
    eprintln!("$ cargo xtask {}", args.join(" "));
    let child = Command::new(XTASK)
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn xtask(args: &[&str]) -> Output {
    xtask_pid(args).0
}

fn xtask_ok(args: &[&str]) -> String {
    let out = xtask(args);
    assert!(
        out.status.success(),
        "cargo xtask {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Puts a file's bytes back when dropped, also when an assertion fails.
struct Restore {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        std::fs::write(&self.path, &self.bytes).unwrap();
    }
}

#[test]
fn a_clean_rebuild_matches_the_staged_images_and_names_a_changed_binary() {
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        status.stdout.is_empty(),
        "commit your changes first: verify rebuilds HEAD and refuses a dirty tree"
    );
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    let layout = layout.to_str().unwrap();
    let built: Value = serde_json::from_str(&xtask_ok(&["build", "--json"])).unwrap();
    // Without staged images it stops before building anything, with one line.
    let early = xtask(&["verify", "--tag", TAG, "--layout", layout]);
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(!early.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("run `cargo xtask image` first"), "{err}");
    let images: Value = serde_json::from_str(&xtask_ok(&[
        "image",
        "--no-load",
        "--tag",
        TAG,
        "--layout",
        layout,
        "--json",
    ]))
    .unwrap();
    let index = images[0]["layout"]["index_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // One platform built again (what `run --target amd64` runs): it names `t-amd64` only,
    // and the index `t` keeps both platforms, since it still lists that very image.
    let amd64: Value = serde_json::from_str(&xtask_ok(&[
        "image",
        "--no-load",
        "--target",
        "amd64",
        "--tag",
        TAG,
        "--layout",
        layout,
        "--json",
    ]))
    .unwrap();
    assert_eq!(amd64[0]["layout"]["index"], Value::Null, "{amd64}");
    let built_before = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["arch"] == "amd64")
        .unwrap();
    assert_eq!(amd64[0]["digest"], built_before["digest"], "{amd64}");
    let listed: Value =
        serde_json::from_slice(&std::fs::read(Path::new(layout).join("index.json")).unwrap())
            .unwrap();
    let tagged = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "t")
        .unwrap_or_else(|| panic!("no index `t` left: {listed}"));
    assert_eq!(tagged["digest"], index.as_str());

    let dist = built
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| PathBuf::from(pair[0].as_str().unwrap()))
        .find(|dir| dir.ends_with(TAMPERED_TARGET))
        .unwrap();
    let binary = dist.join(TAMPERED);
    let original = std::fs::read(&binary).unwrap();
    let _restore = Restore {
        path: binary.clone(),
        bytes: original.clone(),
    };
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(&binary, &changed).unwrap();

    let (out, pid) = xtask_pid(&["verify", "--tag", TAG, "--layout", layout, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a changed binary passed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let what: Vec<&str> = rows.iter().map(|r| r["what"].as_str().unwrap()).collect();
    for expected in [
        "x86_64-unknown-linux-musl/migrate",
        "x86_64-unknown-linux-musl/service",
        "aarch64-unknown-linux-musl/migrate",
        "aarch64-unknown-linux-musl/service",
        "image linux/amd64",
        "image linux/arm64",
        "index",
    ] {
        assert!(what.contains(&expected), "no row {expected}: {what:?}");
    }
    let tampered = format!("{TAMPERED_TARGET}/{TAMPERED}");
    for row in rows {
        let should = if row["what"] == tampered.as_str() {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(row["result"], should, "{row}");
        assert!(
            row["expected"].as_str().unwrap().len() >= 64,
            "full hashes in --json: {row}"
        );
    }
    assert_eq!(report["passed"], false);
    assert_eq!(report["dirty"], false);
    assert_eq!(report["against"], layout);
    let line = report["first_difference"].as_str().unwrap();
    assert!(line.starts_with(&format!("{tampered} differs (")), "{line}");
    // The error is that one line, naming what was compared with what, and the temporary
    // worktree is gone.
    let last_line = stderr.trim().lines().last().unwrap();
    assert!(
        last_line.starts_with("error: ")
            && last_line.contains(line)
            && last_line.contains("differs from the binaries staged in "),
        "{stderr}"
    );
    let worktrees = Command::new("git")
        .args(["worktree", "list", "--porcelain"])
        .current_dir(root())
        .output()
        .unwrap();
    let worktrees = String::from_utf8_lossy(&worktrees.stdout);
    let ours = format!("xtask-verify-{pid}-");
    assert!(!worktrees.contains(&ours), "{worktrees}");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&ours))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The documents attached to the images were written from the untouched binaries: the
    // rebuild's are the same bytes.
    for row in rows {
        let what = row["what"].as_str().unwrap();
        if what.starts_with("sbom ") || what.starts_with("provenance ") {
            assert_eq!(row["result"], "pass", "{row}");
        }
    }
    for expected in ["sbom linux/amd64", "provenance linux/arm64"] {
        assert!(what.contains(&expected), "no row {expected}: {what:?}");
    }
    drop(_restore);

    // A tampered SBOM attached to an amd64 image (one architecture: one cold rebuild).
    let one = scratch.path().join("amd64");
    let one = one.to_str().unwrap();
    xtask_ok(&[
        "image",
        "--no-load",
        "--target",
        "amd64",
        "--tag",
        TAG,
        "--layout",
        one,
    ]);
    tamper_attached_sbom(Path::new(one));
    let out = xtask(&[
        "verify", "--target", "amd64", "--tag", TAG, "--layout", one, "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a tampered sbom passed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert!(
        !rows.iter().any(|r| r["what"] == "index"),
        "one platform, no index: {rows:?}"
    );
    for row in rows {
        let should = if row["what"] == "sbom linux/amd64" {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(row["result"], should, "{row}");
    }
    let line = report["first_difference"].as_str().unwrap();
    assert!(
        line.starts_with("the sbom attached to linux/amd64 (sha256:")
            && line.ends_with(r#"differs from the rebuild's: comment is "tampered" vs absent"#),
        "{line}"
    );
    let last_line = stderr.trim().lines().last().unwrap();
    assert!(
        last_line.starts_with("error: ")
            && last_line.contains(line)
            && last_line.contains(&format!("differs from what is staged in {one}: ")),
        "{stderr}"
    );
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Replaces the SBOM attached in `layout` by one with a `comment` added: a new document
/// blob, a new referrer manifest naming it, and `index.json` listing that manifest.
fn tamper_attached_sbom(layout: &Path) {
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blob(&digest), bytes).unwrap();
        digest
    };
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|d| d["artifactType"] == "application/spdx+json")
        .expect("an SBOM listed in the layout");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(entry["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let layer = &mut manifest["layers"][0];
    let mut sbom: Value =
        serde_json::from_slice(&std::fs::read(blob(layer["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    sbom["comment"] = "tampered".into();
    let sbom = serde_json::to_vec(&sbom).unwrap();
    layer["size"] = sbom.len().into();
    layer["digest"] = put(&sbom).into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    entry["size"] = manifest.len().into();
    entry["digest"] = put(&manifest).into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A commit whose binaries embed the time they were built at fails verify: the rebuild,
/// seconds later, differs. Kept cheap (seconds, not a cold build of the service): the commit,
/// in a clone, ships a tiny package instead, whose two binaries print the time its build
/// script ran and carry the `.dep-v0` crate list that `image` reads. Needs zig provisioned
/// (any earlier `cargo xtask build`): it is shared through PATH, as verify shares it.
#[test]
fn a_commit_whose_binaries_embed_their_build_time_fails_verify() {
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("clone");
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(
        root(),
        &["clone", "--quiet", "--shared", ".", clone.to_str().unwrap()],
    );
    let clock = clone.join("clock");
    std::fs::create_dir_all(clock.join("src")).unwrap();
    std::fs::write(
        clock.join("Cargo.toml"),
        "[package]\nname = \"clock\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
         license.workspace = true\nrepository.workspace = true\n\n\
         [[bin]]\nname = \"service\"\npath = \"src/main.rs\"\n\n\
         [[bin]]\nname = \"migrate\"\npath = \"src/main.rs\"\n",
    )
    .unwrap();
    std::fs::write(
        clock.join("build.rs"),
        "fn main() {\n    let now = std::time::SystemTime::now()\n        \
         .duration_since(std::time::UNIX_EPOCH)\n        .unwrap()\n        .as_nanos();\n    \
         println!(\"cargo::rustc-env=BUILT_AT={now}\");\n}\n",
    )
    .unwrap();
    std::fs::write(
        clock.join("src/main.rs"),
        "#[used]\n#[unsafe(link_section = \".dep-v0\")]\n\
         static DEP_V0: [u8; include_bytes!(\"dep-v0\").len()] = *include_bytes!(\"dep-v0\");\n\n\
         fn main() {\n    println!(\"built at {}\", env!(\"BUILT_AT\"));\n}\n",
    )
    .unwrap();
    let list = br#"{"packages":[{"name":"clock","version":"0.1.0","source":"local","root":true}],"format":1}"#;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut zlib, list).unwrap();
    std::fs::write(clock.join("src/dep-v0"), zlib.finish().unwrap()).unwrap();
    let manifest = std::fs::read_to_string(clone.join("Cargo.toml")).unwrap();
    for needed in ["members = [", r#"package = "service""#, "port = 8080"] {
        assert!(
            manifest.contains(needed),
            "the root Cargo.toml has no `{needed}`"
        );
    }
    let manifest = manifest
        .replacen("members = [", r#"members = ["clock", "#, 1)
        .replacen(r#"package = "service""#, r#"package = "clock""#, 1)
        // No binary is named like the package: the service image names its entrypoint.
        .replacen("port = 8080", "entrypoint = \"service\"\nport = 8080", 1);
    std::fs::write(clone.join("Cargo.toml"), manifest).unwrap();

    // The clone's own cargo runs: without what `cargo test` gave us about this checkout.
    let target_dir = scratch.path().join("target");
    let zig_dir = support::target_dir().join("xtask/cc");
    assert!(
        zig_dir.join("zig").exists(),
        "run `cargo xtask build` once first"
    );
    let path = std::env::join_paths(
        std::iter::once(zig_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let in_clone = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&clone)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("PATH", &path)
            .env_remove("CARGO_MANIFEST_DIR");
        for (key, _) in std::env::vars() {
            if key.starts_with("CC_") || key.starts_with("AR_") {
                command.env_remove(key);
            }
        }
        eprintln!("$ {program} {}", args.join(" "));
        command.output().unwrap()
    };
    // The lock file names the new member before the commit, so the tree stays clean.
    let locked = in_clone("cargo", &["update", "--workspace", "--offline"]);
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    git(&clone, &["add", "-A"]);
    git(&clone, &["commit", "--quiet", "-m", "ship a clock"]);

    let layout = scratch.path().join("layout");
    let layout = layout.to_str().unwrap();
    for args in [
        &["build", "--target", "amd64"][..],
        &[
            "image",
            "--no-load",
            "--target",
            "amd64",
            "--tag",
            TAG,
            "--layout",
            layout,
        ],
    ] {
        let out = in_clone(XTASK, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = in_clone(
        XTASK,
        &[
            "verify", "--target", "amd64", "--tag", TAG, "--layout", layout, "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a binary holding its build time passed: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for row in report["rows"].as_array().unwrap() {
        let what = row["what"].as_str().unwrap();
        if what.starts_with("x86_64-unknown-linux-musl/") || what.starts_with("image ") {
            assert_eq!(row["result"], "fail", "{row}");
        }
    }
    let line = report["first_difference"].as_str().unwrap();
    assert!(line.contains("/usr/local/bin/"), "{line}");
}
