//! Every Linux platform Rust has a musl standard library for, end to end: `--target all`
//! builds each one static for its own machine and ABI, with its crate list embedded; its
//! images pass the smoke test under their qemu, and pushed to a real registry the index
//! lists all eight, which docker pulls and runs by platform.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::registry::Registry;
use support::reports::SmokeRun;
use support::{run, xtask_ok};

/// Each platform: how docker names it, and what `file` says of its binaries.
const PLATFORMS: [(&str, &str); 8] = [
    ("linux/386", "Intel 80386"),
    ("linux/amd64", "x86-64"),
    ("linux/arm/v6", "ARM, EABI5"),
    ("linux/arm/v7", "ARM, EABI5"),
    ("linux/arm64", "ARM aarch64"),
    ("linux/loong64", "LoongArch"),
    ("linux/ppc64le", "64-bit PowerPC"),
    ("linux/riscv64", "RISC-V"),
];

#[test]
fn every_platform_builds_static_passes_its_smoke_test_and_runs_from_the_registry() {
    let _turn = support::engine_turn();
    let built: Value = serde_json::from_str(&xtask_ok(&["build", "--target", "all", "--json"]))
        .expect("build --json");
    let built = built.as_array().unwrap();
    assert_eq!(built.len(), PLATFORMS.len(), "{built:?}");
    // The builds of the platforms that no later test uses, and the standard libraries built
    // from source for them (removed at the end, when the run tidies).
    let target_dir = support::target_dir();
    let only_ours: Vec<PathBuf> = built
        .iter()
        .map(|e| {
            Path::new(e[0].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_owned()
        })
        .filter(|triple| {
            !["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
                .contains(&triple.to_str().unwrap())
        })
        .map(|triple| target_dir.join(triple))
        .chain([target_dir.join("std-from-source")])
        .collect();
    for (dir, manifest) in built.iter().map(|e| (e[0].as_str().unwrap(), &e[1])) {
        for file in manifest["files"].as_array().unwrap() {
            let path = format!("{dir}/{}", file["name"].as_str().unwrap());
            let described = run("file", &[&path]);
            assert!(described.contains("statically linked"), "{described}");
            assert!(
                PLATFORMS
                    .iter()
                    .any(|(_, machine)| described.contains(machine)),
                "{described}"
            );
            // The crate list is embedded on every platform: syft reads it.
            let crates = support::syft_crates(&path);
            assert!(
                crates.iter().any(|(name, _)| name == "tokio"),
                "{path}: syft finds {crates:?}"
            );
        }
    }

    let registry = Registry::start();
    let images: Value = serde_json::from_str(&xtask_ok(&[
        "image",
        "--target",
        "all",
        "--push",
        "--registry",
        &registry.host,
        "--json",
    ]))
    .unwrap();
    // Both declared images, on every platform.
    assert_eq!(
        images.as_array().unwrap().len(),
        2 * PLATFORMS.len(),
        "{images}"
    );
    let smoke = SmokeRun::parse(
        xtask_ok(&[
            "smoke-test",
            "--target",
            "all",
            "--tag",
            &format!("{}/tiny-service", registry.host),
            "--json",
        ])
        .as_bytes(),
    );
    assert!(smoke.passed, "{smoke:#?}");
    assert_eq!(smoke.images.len(), PLATFORMS.len(), "{smoke:#?}");

    let index = format!("{}/tiny-service:0.1.0", registry.host);
    let raw: Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{index}"),
        ],
    ))
    .unwrap();
    let mut listed: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            match p["variant"].as_str() {
                Some(v) => format!(
                    "{}/{}/{v}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
                None => format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
            }
        })
        .collect();
    listed.sort();
    let expected: Vec<&str> = PLATFORMS.iter().map(|(p, _)| *p).collect();
    assert_eq!(listed, expected);

    // docker picks each platform's image from the pushed index and runs it (under qemu
    // where the host cannot), and the service answers.
    for (platform, _) in PLATFORMS {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("xtask-platforms-{}-{port}", std::process::id());
        let volume = format!("{name}:/data");
        // The service refuses a database with pending migrations: the job runs first.
        run(
            "docker",
            &[
                "run",
                "--rm",
                "--platform",
                platform,
                "--volume",
                &volume,
                "--entrypoint",
                "/usr/local/bin/migrate",
                &index,
                "up",
            ],
        );
        run(
            "docker",
            &[
                "run",
                "--detach",
                "--name",
                &name,
                "--platform",
                platform,
                "--network",
                "host",
                "--env",
                &format!("PORT={port}"),
                "--env",
                "BIND_ADDRESS=127.0.0.1",
                "--volume",
                &volume,
                &index,
            ],
        );
        let answered = healthz(SocketAddr::from(([127, 0, 0, 1], port)));
        let arch = run(
            "docker",
            &[
                "image",
                "inspect",
                "--format",
                "{{.Architecture}}/{{.Variant}}",
                &index,
            ],
        );
        let _ = Command::new("docker")
            .args(["rm", "--force", &name])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", &name])
            .output();
        let _ = Command::new("docker").args(["rmi", &index]).output();
        assert!(
            answered,
            "{platform} ({}) did not answer /healthz",
            arch.trim()
        );
    }
    support::tidy(&only_ours);
}

/// Whether `/healthz` answers 200 within a minute (a service under qemu starts slower).
fn healthz(addr: SocketAddr) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if agent.get(format!("http://{addr}/healthz")).call().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
