//! Ctrl-C while a command runs the xtask again as a child (`verify`'s rebuild): the child is
//! stopped and the run ends with one `interrupted` line, not one from each xtask, and leaves
//! no temporary folder or git worktree. Needs no engine.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{XTASK, root, run, xtask_ok};

mod support;

/// Waits for `condition`, polling; fails the test naming `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose environment says `parent` started them as a nested xtask.
fn nested_under(parent: u32) -> usize {
    let mark = format!("XTASK_PARENT_PID={parent}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
        })
        .count()
}

#[test]
fn ctrl_c_during_verifys_rebuild_says_interrupted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let layout = layout.to_str().unwrap();
    let tag = "xtask-interrupt-test/tiny-service:t";
    let options = ["--target", "amd64", "--layout", layout, "--tag", tag];
    xtask_ok(&[&["image", "--no-load"][..], &options].concat());
    let worktrees = run("git", &["worktree", "list"]);

    let scratch = tempfile::tempdir().unwrap();
    let mut child = Command::new(XTASK)
        .args([&["verify", "--allow-dirty"][..], &options].concat())
        .current_dir(root())
        .env("TMPDIR", scratch.path())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (mut pipe, stderr) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let pid = child.id();
    wait_for(Duration::from_secs(120), "the rebuild's xtask", || {
        nested_under(pid) > 0 || child.try_wait().unwrap().is_some()
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "verify ended before its rebuild started: {}",
        stderr.lock().unwrap()
    );
    // Ctrl-C: SIGINT to the terminal's foreground group, which the nested xtask is not in.
    run("kill", &["-INT", "--", &format!("-{pid}")]);
    let signalled = Instant::now();
    wait_for(Duration::from_secs(30), "verify to exit", || {
        child.try_wait().unwrap().is_some()
    });
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let err = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "{err}");
    assert_eq!(err.matches("interrupted").count(), 1, "{err}");
    assert_eq!(err.lines().last(), Some("interrupted"), "{err}");
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "left {left:?}");
    assert_eq!(run("git", &["worktree", "list"]), worktrees);
    assert_eq!(nested_under(pid), 0, "the nested xtask outlived verify");
}
