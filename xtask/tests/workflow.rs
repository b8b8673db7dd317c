//! Checks of the CI workflows in `.github/workflows`: actionlint (with shellcheck on the
//! `run:` scripts) passes, every `cargo xtask` command they run is one the CLI has, and
//! every action is pinned by a full commit SHA. Plain text checks: no YAML parser.

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{XTASK, root};

mod support;

/// Commands the workflow names before the CLI has them, each in a step that runs only when
/// it is configured (an `if:`). The test fails once the CLI has one: take it off this list,
/// and run it in a local test.
const NOT_YET: &[&str] = &[];

fn workflows() -> Vec<PathBuf> {
    let dir = root().join(".github/workflows");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no workflow in {}", dir.display());
    found
}

/// The workflows and the local actions they use (`.github/actions/*/action.yml`).
fn workflow_files() -> Vec<PathBuf> {
    let mut files = workflows();
    let actions = root().join(".github/actions");
    if let Ok(dirs) = std::fs::read_dir(&actions) {
        let mut local: Vec<PathBuf> = dirs
            .map(|d| d.unwrap().path().join("action.yml"))
            .filter(|p| p.is_file())
            .collect();
        local.sort();
        files.extend(local);
    }
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

/// The lines that are not comments, with their line numbers.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim_start().starts_with('#'))
}

/// What `.ci/provision` installs for the linter: the pip requirement of `ci_tools=(...)`.
fn pinned_actionlint() -> String {
    let provision = read(&root().join(".ci/provision"));
    let line = provision
        .lines()
        .find_map(|l| l.strip_prefix("ci_tools=("))
        .expect("a ci_tools=(...) line in .ci/provision");
    let requirement = line.trim_end_matches(')').trim();
    assert!(
        requirement.contains("=="),
        "the linter is not pinned in .ci/provision: {requirement}"
    );
    requirement.to_owned()
}

fn found(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

#[test]
fn actionlint_with_shellcheck_passes_on_every_workflow() {
    let requirement = pinned_actionlint();
    let version = requirement.split("==").nth(1).unwrap();
    assert!(
        found("shellcheck"),
        "shellcheck is missing (actionlint checks the run: scripts with it): \
         apt-get install shellcheck, or run .ci/provision"
    );
    let out = Command::new("actionlint")
        .arg("-version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "actionlint did not run ({e}): install it with \
                 `python3 -m pip install {requirement}`, or run .ci/provision"
            )
        });
    let reported = String::from_utf8_lossy(&out.stdout);
    assert!(
        reported
            .lines()
            .next()
            .unwrap_or_default()
            .ends_with(version),
        "actionlint on PATH is not the pinned {version}: {}; \
         `python3 -m pip install {requirement}`",
        reported.trim()
    );

    let files: Vec<String> = workflows().iter().map(|p| relative(p)).collect();
    let out = Command::new("actionlint")
        .args(["-shellcheck", "shellcheck", "-no-color"])
        .args(&files)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint found problems in {}:\n{}{}",
        files.join(", "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The subcommands `cargo xtask --help` lists.
fn cli_commands() -> Vec<String> {
    let out = Command::new(XTASK).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(commands.len() > 5, "no command list in --help:\n{help}");
    commands
}

/// Every `cargo xtask <command>` run in `text`: (line number, command).
fn xtask_commands(text: &str) -> Vec<(usize, String)> {
    code_lines(text)
        .flat_map(|(number, line)| {
            line.split("cargo xtask ").skip(1).map(move |rest| {
                let command: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                (number, command)
            })
        })
        .collect()
}

/// The lines of the step that holds line `number` (1-based), from its `- ` on.
fn step_of(text: &str, number: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let at = number - 1;
    let start = (0..=at)
        .rev()
        .find(|&i| lines[i].trim_start().starts_with("- ") && indent(lines[i]) < indent(lines[at]))
        .unwrap_or_else(|| panic!("line {number} is in no step"));
    let step_indent = indent(lines[start]);
    let end = (start + 1..lines.len())
        .find(|&i| !lines[i].trim().is_empty() && indent(lines[i]) <= step_indent)
        .unwrap_or(lines.len());
    lines[start..end].to_vec()
}

#[test]
fn every_xtask_command_in_the_workflows_is_one_the_cli_has() {
    let cli = cli_commands();
    for planned in NOT_YET {
        assert!(
            !cli.iter().any(|c| c == planned),
            "the CLI has `{planned}` now: take it off NOT_YET in this test, and make sure a \
             local test runs it as the workflow does"
        );
    }
    let mut seen = Vec::new();
    for path in workflow_files() {
        let text = read(&path);
        for (number, command) in xtask_commands(&text) {
            let at = format!("{}:{number}", relative(&path));
            if NOT_YET.contains(&command.as_str()) {
                let step = step_of(&text, number);
                assert!(
                    step.iter().any(|l| {
                        let l = l.trim_start().trim_start_matches("- ");
                        l.starts_with("if:")
                    }),
                    "{at}: `cargo xtask {command}` is not in the CLI yet, so its step must \
                     run only when configured (an `if:`):\n{}",
                    step.join("\n")
                );
            } else {
                assert!(
                    cli.contains(&command),
                    "{at}: `cargo xtask {command}` is not a command of the CLI ({})",
                    cli.join(", ")
                );
            }
            seen.push(command);
        }
    }
    for expected in ["image", "smoke-test", "index", "verify"] {
        assert!(
            seen.iter().any(|c| c == expected),
            "no workflow runs `cargo xtask {expected}`: found {seen:?}"
        );
    }
}

/// `uses: owner/repo[/path]@<40 hex> # <version>`: a commit no one can move, and the release
/// it is, for people and for update tools. Local actions (`./...`) are read from the same
/// commit as the workflow; container actions must be pinned by digest.
fn pin_problem(reference: &str, rest: &str) -> Option<&'static str> {
    if reference.starts_with("./") {
        return None;
    }
    if let Some(image) = reference.strip_prefix("docker://") {
        return (!image.contains("@sha256:")).then_some("a container action not pinned by digest");
    }
    let Some((action, commit)) = reference.split_once('@') else {
        return Some("no @<commit>");
    };
    if action.split('/').count() < 2 {
        return Some("not owner/repository");
    }
    if commit.len() != 40 || !commit.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Some("not pinned by a full 40-hex commit SHA");
    }
    let comment = rest
        .trim()
        .strip_prefix('#')
        .map(str::trim)
        .unwrap_or_default();
    if !comment.starts_with('v') {
        return Some("no `# v<version>` comment naming the release the commit is");
    }
    None
}

#[test]
fn every_action_is_pinned_by_a_full_commit_sha() {
    let mut checked = 0;
    for path in workflow_files() {
        let text = read(&path);
        for (number, line) in code_lines(&text) {
            let item = line.trim_start().trim_start_matches("- ");
            let Some(value) = item.strip_prefix("uses:") else {
                continue;
            };
            let value = value.trim();
            let (reference, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
            let reference = reference.trim_matches(|c| c == '"' || c == '\'');
            if let Some(problem) = pin_problem(reference, rest) {
                panic!("{}:{number}: {problem}: {value}", relative(&path));
            }
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no `uses:` found: is the workflow read at all?"
    );
}

#[test]
fn pins_are_told_apart() {
    let sha = "3d3c42e5aac5ba805825da76410c181273ba90b1";
    let pinned = format!("actions/checkout@{sha}");
    assert_eq!(pin_problem(&pinned, "# v7.0.1"), None);
    assert_eq!(pin_problem("./.github/actions/rust", ""), None);
    for (reference, rest) in [
        ("actions/checkout@v7", "# v7"),
        ("actions/checkout@main", ""),
        ("actions/checkout", ""),
        (&pinned[..pinned.len() - 1], "# v7.0.1"),
        (
            &pinned
                .to_uppercase()
                .replace("ACTIONS/CHECKOUT", "actions/checkout"),
            "# v7.0.1",
        ),
        (&pinned, ""),
        ("docker://alpine:3", ""),
    ] {
        assert!(pin_problem(reference, rest).is_some(), "{reference} {rest}");
    }
}
