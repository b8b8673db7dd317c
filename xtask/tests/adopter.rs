//! The adopter fixture (`fixtures/adopter`) is set up the way the adoption guide says: its
//! cross-compilation settings are ours, copied, and stay so.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn the_fixture_copies_our_c_compiler_wrappers() {
    let ours = root().join(".cargo/cc");
    let mut names: Vec<_> = std::fs::read_dir(&ours)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aarch64-unknown-linux-musl-cc",
            "ar",
            "x86_64-unknown-linux-musl-cc",
            "zig"
        ]
    );
    for name in names {
        assert_eq!(
            read(&format!("fixtures/adopter/.cargo/cc/{name}")),
            read(&format!(".cargo/cc/{name}")),
            "fixtures/adopter/.cargo/cc/{name} differs from .cargo/cc/{name}: copy ours again"
        );
    }
}

#[test]
fn the_fixture_has_our_musl_target_settings() {
    let config = |path: &str| -> toml::Table { toml::from_str(&read(path)).unwrap() };
    let ours = config(".cargo/config.toml");
    let theirs = config("fixtures/adopter/.cargo/config.toml");
    for key in ["target", "env", "alias"] {
        assert_eq!(
            theirs.get(key),
            ours.get(key),
            "[{key}] in fixtures/adopter/.cargo/config.toml differs from ours"
        );
    }
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
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
