//! `bench --only devloop --json`, read as a machine reads it: the development loop's figures
//! in their documented schema, the fast path within its goal, and the user's tree untouched.
//!
//! Ignored by default: on a fresh target dir it builds both profiles for both targets first
//! (about 4 minutes on 2 cores; warm, about 1 minute). Run it with
//! `cargo test -p xtask --test bench -- --ignored`.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{root, run, xtask_ok};

#[test]
#[ignore = "builds both profiles for both targets: minutes on a fresh target dir"]
fn bench_json_reports_the_development_loop_within_its_goal() {
    let status_before = run(
        "git",
        &["-C", root().to_str().unwrap(), "status", "--porcelain"],
    );
    let out = xtask_ok(&[
        "bench",
        "--only",
        "devloop",
        "--devloop-rounds",
        "1",
        "--json",
    ]);
    let figures: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(figures["schema"], 1, "{figures:#}");
    let devloop = &figures["devloop"];
    let runs = devloop["runs"].as_array().unwrap();
    let paths: Vec<(&str, usize)> = runs
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["targets"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(paths, [("release", 2), ("fast", 2), ("fast", 1)]);
    let seconds = |i: usize| runs[i]["seconds"].as_f64().unwrap();
    assert!(runs.iter().all(|r| r["rounds"] == 1));
    let ratio = devloop["fast_over_release"].as_f64().unwrap();
    assert!((ratio - seconds(1) / seconds(0)).abs() < 1e-9);
    assert!(
        ratio <= devloop["goal"].as_f64().unwrap(),
        "the fast path took {ratio:.2} of the release path's time"
    );
    let sizes = devloop["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 4, "two binaries for each of two targets");
    assert!(sizes.iter().all(|s| s["fast"].as_u64() > Some(0)));
    // The edits happened in a worktree of HEAD, removed again.
    assert_eq!(
        run(
            "git",
            &["-C", root().to_str().unwrap(), "status", "--porcelain"]
        ),
        status_before
    );
    let worktrees = Command::new("git")
        .args(["-C", root().to_str().unwrap(), "worktree", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&worktrees.stdout).contains("devloop"));
}
