//! The adopter fixture (`fixtures/adopter`): a service of its own with its images declared,
//! set up the way the adoption guide says (the xtask, `init`), then taken through `image` and
//! `smoke-test` with the xtask and the libraries; and `init` on workspaces of every kind.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::reports::SmokeRun;
use support::root;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => todo.push(path),
                false => found.push(path.strip_prefix(dir).unwrap().display().to_string()),
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_fixture_is_a_workspace_of_its_own() {
    let manifest: toml::Table = toml::from_str(&read("fixtures/adopter/Cargo.toml")).unwrap();
    assert!(
        manifest.contains_key("workspace"),
        "cargo would look for a parent workspace"
    );
    let lock = read("fixtures/adopter/Cargo.lock");
    assert!(
        lock.contains("name = \"cc\""),
        "the fixture builds C through the cc crate"
    );
    for ours in ["\"service\"", "\"xtask\"", "\"axum\"", "\"rusqlite\""] {
        assert!(
            !lock.contains(&format!("name = {ours}")),
            "the fixture depends on {ours}"
        );
    }
}

/// A code block of the adoption guide (README, "Use it in your workspace"): the one whose
/// first line is `first`, without that line.
fn guide_block(first: &str) -> String {
    let readme = read("README.md");
    let guide = &readme[readme.find("## Use it in your workspace").unwrap()..];
    let lines: Vec<&str> = guide.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == first)
        .unwrap_or_else(|| panic!("README's adoption guide has no block starting `{first}`"));
    let end = at + lines[at..].iter().position(|l| *l == "```").unwrap();
    // Indented as the list item is: the lines as written, less that indent.
    let raw: Vec<&str> = guide.lines().skip(at + 1).take(end - at - 1).collect();
    raw.iter()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The guide's xtask, its two files as written there, with the library by path.
fn guide_xtask(ws: &Path) {
    let manifest = guide_block("# xtask/Cargo.toml");
    let git = "git = \"https://github.com/tiny-images/tiny-images\"";
    assert!(manifest.contains(git), "{manifest}");
    let by_path = format!("path = \"{}/crates/commands\"", root().display());
    std::fs::create_dir_all(ws.join("xtask/src")).unwrap();
    std::fs::write(ws.join("xtask/Cargo.toml"), manifest.replace(git, &by_path)).unwrap();
    std::fs::write(
        ws.join("xtask/src/main.rs"),
        guide_block("// xtask/src/main.rs"),
    )
    .unwrap();
}

#[test]
fn the_guide_gives_the_xtask_as_two_files() {
    let dir = tempfile::tempdir().unwrap();
    guide_xtask(dir.path());
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.path().join("xtask/Cargo.toml")).unwrap())
            .unwrap();
    assert_eq!(manifest["package"]["name"].as_str(), Some("xtask"));
    let main = std::fs::read_to_string(dir.path().join("xtask/src/main.rs")).unwrap();
    assert!(main.contains("tiny_commands::main::<"), "{main}");
}

/// `init` in a new package, run as a user would: it writes our settings, keeps them when run
/// again, puts ours after settings of the package's own, and writes nothing when a file of
/// the package's own is in the way.
#[test]
fn init_writes_our_settings_keeps_them_and_leaves_a_file_in_the_way_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    std::fs::create_dir(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    let init = || {
        let out = Command::new(support::XTASK)
            .arg("init")
            .current_dir(ws)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let same_as_ours = |name: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            std::fs::read(ws.join(name)).unwrap(),
            std::fs::read(root().join(name)).unwrap(),
            "{name}"
        );
        assert_eq!(mode(&ws.join(name)), mode(&root().join(name)), "{name}");
    };

    let (ok, said) = init();
    assert!(ok, "{said}");
    let ours = files(&root().join(".cargo"));
    assert_eq!(files(&ws.join(".cargo")), ours);
    for name in &ours {
        same_as_ours(&format!(".cargo/{name}"));
    }
    same_as_ours("Dockerfile.runtime");
    // Again: all kept; and, as the package declares no image yet, what comes next.
    let (ok, said) = init();
    let kept = format!(
        "  kept {} file(s) that are this version's already\n",
        ours.len() + 1
    );
    assert!(ok && said.starts_with(&kept), "{said}");
    assert!(
        said.contains("next: declare your images in Cargo.toml"),
        "{said}"
    );

    // Settings of the package's own that share a table with ours: one line, nothing written.
    std::fs::remove_dir_all(ws.join(".cargo")).unwrap();
    std::fs::remove_file(ws.join("Dockerfile.runtime")).unwrap();
    std::fs::create_dir(ws.join(".cargo")).unwrap();
    let own = "[build]\njobs = 2\n";
    std::fs::write(ws.join(".cargo/config.toml"), own).unwrap();
    let (ok, said) = init();
    assert!(!ok);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("error: .cargo/config.toml sets [build] of its own"),
        "{said}"
    );
    assert_eq!(files(&ws.join(".cargo")), ["config.toml"]);
    assert!(!ws.join("Dockerfile.runtime").exists());

    // Settings that share none: ours go after them.
    let own = "[net]\noffline = true\n";
    std::fs::write(ws.join(".cargo/config.toml"), own).unwrap();
    let (ok, said) = init();
    assert!(ok, "{said}");
    let config = std::fs::read_to_string(ws.join(".cargo/config.toml")).unwrap();
    assert!(config.starts_with(own) && config.ends_with(&read(".cargo/config.toml")));
    assert!(
        said.contains("added ours after the settings in .cargo/config.toml"),
        "{said}"
    );
}

/// The guide's command that writes the settings (step 3).
const INIT: &str = "cargo run -p xtask -- init";

/// The adoption guide, followed by a test: the fixture gets the guide's two-file xtask (the
/// library by path), the xtask as a member, the settings its `init` writes, and nothing else.
/// Its own images (another package, port, health path and C code) then build for both
/// architectures and pass their declared checks in real containers. The fixture has a
/// target directory of its own (`target/adopter`), so its first run compiles everything,
/// as it would for a new user.
#[test]
fn the_fixture_adopts_the_xtask_and_passes_image_and_smoke_test() {
    // Outside this repository: cargo would merge our `.cargo/config.toml` into the
    // fixture's (its alias arrays concatenated), as it would for no adopter.
    let work = tempfile::Builder::new()
        .prefix("adopter-")
        .tempdir()
        .unwrap();
    let ws = work.path().join("notes");
    copy_tree(&root().join("fixtures/adopter"), &ws);
    // Step 1: the xtask as the guide writes it.
    guide_xtask(&ws);
    // Step 2: the xtask a member of the package's own workspace; and step 5's library,
    // which the fixture takes by a path inside this repository, taken from where it is.
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen("[workspace]\n", "[workspace]\nmembers = [\"xtask\"]\n", 1);
    let embed = "path = \"../../crates/embed\"";
    assert!(text.contains(embed), "{text}");
    let text = text.replace(
        embed,
        &format!("path = \"{}/crates/embed\"", root().display()),
    );
    std::fs::write(&manifest, text).unwrap();

    let target = root().join("target/adopter");
    let cargo = |args: &[&str]| -> String {
        eprintln!("$ (fixture) cargo {}", args.join(" "));
        let mut command = Command::new(env!("CARGO"));
        command
            .args(args)
            .current_dir(&ws)
            .env("CARGO_TARGET_DIR", &target)
            // The xtask's dependencies resolve from what this workspace already fetched:
            // a test reaches no registry but the local one.
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("CARGO_MANIFEST_DIR")
            .stderr(Stdio::inherit());
        // `cargo test` hands us our own [env] (the C compilers of this checkout): the
        // fixture's cargo reads its own.
        for (key, _) in std::env::vars() {
            if key.starts_with("CC_") || key.starts_with("AR_") {
                command.env_remove(key);
            }
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "(fixture) cargo {} failed:\n{stdout}",
            args.join(" ")
        );
        stdout
    };
    // Step 3: the settings, written by the xtask itself before its alias exists.
    assert!(
        read("README.md").contains(&format!("   {INIT}\n")),
        "the guide has no `{INIT}`"
    );
    cargo(&INIT.split(' ').skip(1).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_to_string(ws.join(".cargo/config.toml")).unwrap(),
        read(".cargo/config.toml")
    );
    // Compiling needs no engine: the turn at the engines is taken after.
    cargo(&["xtask", "build"]);
    // An adopter's repository is a git checkout, committed with the lock file cargo updated
    // for the xtask (provenance records the commit).
    for args in [
        &["init", "--quiet"][..],
        &["add", "--all"],
        &["commit", "--quiet", "--message", "adopt the xtask"],
    ] {
        support::succeed(
            Command::new("git")
                .args(args)
                .current_dir(&ws)
                .env("GIT_AUTHOR_NAME", "notes")
                .env("GIT_AUTHOR_EMAIL", "notes@example.com")
                .env("GIT_COMMITTER_NAME", "notes")
                .env("GIT_COMMITTER_EMAIL", "notes@example.com"),
        );
    }
    let _turn = support::engine_turn();
    let images: Value = serde_json::from_str(&cargo(&["xtask", "image", "--json"])).unwrap();
    let built: Vec<String> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(built.len(), 4, "two images on two architectures: {built:?}");
    // Step 5: the crate list is in the binaries, where scanners find it.
    for triple in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let binary = target.join("dist").join(triple).join("notes");
        let crates = support::syft_crates(binary.to_str().unwrap());
        assert!(
            crates.iter().any(|(name, _)| name == "tiny_http"),
            "{}: syft finds {crates:?}",
            binary.display()
        );
    }
    let smoke = SmokeRun::parse(cargo(&["xtask", "smoke-test", "--json"]).as_bytes());
    let names: Vec<&str> = smoke.images.iter().map(|i| i.image.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("notes:"))
            && names.iter().any(|n| n.starts_with("notes-verify:")),
        "{names:?}"
    );
    assert_eq!(smoke.images.len(), 4, "{smoke:#?}");
    assert!(smoke.passed, "{smoke:#?}");
    // Declared checks ran, and none of ours did.
    let checks: Vec<&str> = smoke
        .images
        .iter()
        .flat_map(|i| i.checks.iter().map(|c| c.name.as_str()))
        .collect();
    for declared in [
        "POST /checksum -> 200",
        "GET /notes/1 -> 200 (after restart)",
    ] {
        assert!(checks.contains(&declared), "{declared} not run: {checks:?}");
    }
    assert!(
        !checks
            .iter()
            .any(|c| c.contains("/hello") || c.contains("/ws")),
        "{checks:?}"
    );
    for image in &smoke.images {
        assert!(image.passed, "{image:#?}");
        let _ = Command::new("docker").args(["rmi", &image.image]).output();
    }
    support::tidy(&[target]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&source, &dest);
            }
        } else {
            std::fs::copy(&source, &dest).unwrap();
        }
    }
}
