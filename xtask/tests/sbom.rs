//! `cargo xtask sbom` against the real checkers: each SBOM validates with pyspdxtools and
//! meets the NTIA minimum elements, syft finds our crates in the staged binaries (the
//! embedded `.dep-v0` data), and a second run writes the same bytes.
//!
//! Needs the release binaries for both targets (built if stale) and the checkers that
//! `.ci/provision` installs: syft, pyspdxtools, ntia-checker.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{checker, syft_crates, xtask_ok};

/// Runs a checker to success and returns its stdout.
fn sbom_run() -> Vec<Value> {
    serde_json::from_str(&xtask_ok(&["sbom", "--image", "tiny-service", "--json"])).unwrap()
}

fn read(path: &Value) -> Vec<u8> {
    std::fs::read(path.as_str().unwrap()).unwrap()
}

/// `(name, version)` of every crate (a `pkg:cargo` purl) in our SBOM.
fn sbom_crates(sbom: &Value) -> BTreeSet<(String, String)> {
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"].as_array().unwrap().iter().any(|r| {
                r["referenceLocator"]
                    .as_str()
                    .unwrap()
                    .starts_with("pkg:cargo/")
            })
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["versionInfo"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn sboms_validate_scanners_find_our_crates_and_reruns_are_identical() {
    let first = sbom_run();
    assert_eq!(first.len(), 2, "one entry per default target: {first:?}");
    for written in &first {
        let target = written["target"].as_str().unwrap();
        let sbom_path = written["sbom"].as_str().unwrap();
        checker("pyspdxtools", &["-i", sbom_path]);
        let ntia = checker("ntia-checker", &[sbom_path]);
        assert!(ntia.contains("Conformant: True"), "{target}:\n{ntia}");

        let sbom: Value = serde_json::from_slice(&read(&written["sbom"])).unwrap();
        let ours = sbom_crates(&sbom);
        assert!(ours.len() > 50, "{target}: only {} crates", ours.len());
        let names: BTreeSet<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
        for expected in ["service", "tokio", "axum", "rusqlite", "libsqlite3-sys"] {
            assert!(names.contains(expected), "{target}: no {expected}");
        }
        // Dev-only and build-only crates are not in the binaries.
        for absent in ["tempfile", "cc", "pkg-config", "syn", "serde_derive"] {
            assert!(!names.contains(absent), "{target}: {absent} listed");
        }
        let c_code: Vec<&str> = written["c_libraries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(
            c_code.iter().any(|c| c.starts_with("sqlite 3.")),
            "{c_code:?}"
        );
        assert!(
            c_code.iter().any(|c| c.starts_with("mimalloc ")),
            "{c_code:?}"
        );

        for binary in written["binaries"].as_array().unwrap() {
            let binary = binary.as_str().unwrap();
            let found = syft_crates(binary);
            let matched = ours.intersection(&found).count();
            eprintln!(
                "{target}: syft finds {matched} of our {} crates in {binary}",
                ours.len()
            );
            assert!(
                matched * 100 >= ours.len() * 95,
                "{target}: syft found {matched} of {} crates in {binary}; missing {:?}",
                ours.len(),
                ours.difference(&found).collect::<Vec<_>>()
            );
        }
    }

    let second = sbom_run();
    for (a, b) in first.iter().zip(&second) {
        for document in ["sbom", "provenance"] {
            assert_eq!(a[document], b[document]);
            assert!(
                read(&a[document]) == read(&b[document]),
                "{} differs between two runs",
                a[document]
            );
        }
    }
}
