//! The adopter fixture (`fixtures/adopter`) is set up the way the adoption guide says: its
//! cross-compilation settings are ours, copied, and stay so.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

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
fn the_fixture_copies_our_cargo_settings_and_compiler_wrappers() {
    let ours = files(&root().join(".cargo"));
    assert!(ours.contains(&"rustc-wrapper".to_owned()) && ours.contains(&"cc/zig".to_owned()));
    assert_eq!(
        files(&root().join("fixtures/adopter/.cargo")),
        ours,
        "fixtures/adopter/.cargo lists other files than .cargo: copy ours again"
    );
    for name in ours {
        assert_eq!(
            read(&format!("fixtures/adopter/.cargo/{name}")),
            read(&format!(".cargo/{name}")),
            "fixtures/adopter/.cargo/{name} differs from .cargo/{name}: copy ours again"
        );
    }
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
