//! Checks of the repository itself.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// The fenced `sh` blocks of the README, one command each.
fn readme_commands() -> Vec<String> {
    let readme = read("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn ci_runs_the_readme_test_command() {
    let commands = readme_commands();
    let test = commands
        .iter()
        .find(|c| c.contains("cargo test"))
        .expect("a test command in the README");
    let ci = read(".ci/run");
    assert_eq!(
        ci.lines().last().unwrap().trim(),
        test,
        ".ci/run must end with the README's test command"
    );
}

#[test]
fn the_readme_main_command_builds_and_smoke_tests() {
    let commands = readme_commands();
    assert!(
        commands
            .iter()
            .any(|c| c.contains("cargo xtask image") && c.contains("cargo xtask smoke-test"))
    );
}

#[test]
fn code_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["fmt", "--all", "--check"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run `cargo fmt --all`:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
