//! The whole pipeline against the real parts: `cargo xtask build` for both targets, images
//! on scratch and on a local alpine stand-in, smoke tests (arm64 under qemu), a push to a
//! real registry on 127.0.0.1, podman, and the failures a user must be told about clearly.
//!
//! One test, in order: the steps share the engine's image store and the registry.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
const LABEL: &str = "xtask.smoke-test";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn xtask(args: &[&str]) -> Output {
    eprintln!("$ cargo xtask {}", args.join(" "));
    let out = Command::new(XTASK)
        .args(args)
        .current_dir(root())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs xtask and insists on success; returns stdout.
fn xtask_ok(args: &[&str]) -> String {
    let out = xtask(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "cargo xtask {} failed:\n{stdout}",
        args.join(" ")
    );
    stdout
}

/// Runs a command to success and returns its stdout.
fn succeed(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    succeed(Command::new(program).args(args))
}

/// The docker CLI on PATH: any client talks to the same daemon for run, ps, pull and rmi.
fn docker(args: &[&str]) -> String {
    run("docker", args)
}

fn assert_both_architectures_pass(table: &str) {
    let passed = table
        .lines()
        .filter(|l| l.contains(" total ") && l.contains(" pass "));
    assert_eq!(passed.count(), 2, "{table}");
}

fn assert_nothing_left() {
    let filter = format!("label={LABEL}");
    assert_eq!(
        docker(&["ps", "--all", "--quiet", "--filter", &filter]),
        "",
        "containers left behind"
    );
    assert_eq!(
        docker(&["volume", "ls", "--quiet", "--filter", &filter]),
        "",
        "volumes left behind"
    );
}

/// A docker registry (distribution) on a free loopback port, stopped on drop.
struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) must be installed: see .ci/provision");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(format!("http://{host}/v2/")).call().is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry {
            child,
            host,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pipeline() {
    let dist = build_both_targets_static();
    scratch_images_are_small_and_pass_the_smoke_test();
    let registry = Registry::start();
    let busybox = alpine_stand_in_images_have_a_shell_and_pass(&registry);
    pushed_index_covers_both_platforms_and_each_runs(&registry);
    failing_images_fail_clearly_and_leave_nothing(&dist);
    ctrl_c_during_the_smoke_test_leaves_nothing(
        &busybox.path().join("amd64/context/rootfs/bin/busybox"),
    );
    podman_builds_pushes_and_runs_the_same_images(&registry);
    ctrl_c_during_a_build_leaves_the_dist_folders_whole(&dist);
}

fn build_both_targets_static() -> PathBuf {
    let json = xtask_ok(&[
        "build",
        "--target",
        "aarch64-unknown-linux-musl",
        "--target",
        "x86_64-unknown-linux-musl",
        "--json",
    ]);
    let staged: Value = serde_json::from_str(&json).unwrap();
    let staged = staged.as_array().unwrap();
    assert_eq!(staged.len(), 2);
    for (dir, manifest) in staged.iter().map(|e| (e[0].as_str().unwrap(), &e[1])) {
        let machine = match manifest["target"].as_str().unwrap() {
            "x86_64-unknown-linux-musl" => "x86-64",
            "aarch64-unknown-linux-musl" => "ARM aarch64",
            other => panic!("unexpected target {other}"),
        };
        let names: Vec<&str> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["migrate", "service"]);
        for name in names {
            let described = run("file", &[&format!("{dir}/{name}")]);
            assert!(
                described.contains(machine) && described.contains("statically linked"),
                "{described}"
            );
        }
    }
    PathBuf::from(staged[0][0].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

fn scratch_images_are_small_and_pass_the_smoke_test() {
    let images: Value =
        serde_json::from_str(&xtask_ok(&["image", "--base", "scratch", "--json"])).unwrap();
    for image in images.as_array().unwrap() {
        let (size, files) = (
            image["size"].as_f64().unwrap(),
            image["context_size"].as_f64().unwrap(),
        );
        eprintln!(
            "{}: image {size} B from {files} B of files ({:.3}x)",
            image["arch"],
            size / files
        );
        assert!(
            size <= files * 1.1,
            "{image}: more than 1.1 times its files"
        );
    }
    let table = xtask_ok(&["smoke-test"]);
    assert_both_architectures_pass(&table);
    assert!(
        !table.contains("FAIL") && !table.contains("skip"),
        "{table}"
    );
    assert_nothing_left();
}

/// No base image can be pulled here: an alpine-like stand-in (a static busybox shell from
/// Debian's packages) is built for both architectures and served from the registry.
/// Returns the folder holding the stand-in's files.
fn alpine_stand_in_images_have_a_shell_and_pass(registry: &Registry) -> tempfile::TempDir {
    let base = format!("{}/alpine-stand-in:3.20", registry.host);
    let work = tempfile::tempdir().unwrap();
    let mut members = Vec::new();
    for arch in ["amd64", "arm64"] {
        let debs = work.path().join(arch);
        std::fs::create_dir_all(debs.join("context/rootfs/bin")).unwrap();
        std::fs::create_dir_all(debs.join("context/rootfs/etc")).unwrap();
        succeed(
            Command::new("apt-get")
                .args(["download", &format!("busybox-static:{arch}")])
                .current_dir(&debs),
        );
        let deb = std::fs::read_dir(&debs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .unwrap();
        run(
            "dpkg-deb",
            &[
                "-x",
                deb.to_str().unwrap(),
                debs.join("x").to_str().unwrap(),
            ],
        );
        let rootfs = debs.join("context/rootfs");
        std::fs::copy(debs.join("x/bin/busybox"), rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "ls", "cat", "echo", "id", "sleep", "wget"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(
            debs.join("context/Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n",
        )
        .unwrap();
        let member = format!("{base}-{arch}");
        let context = debs.join("context");
        let platform = format!("linux/{arch}");
        run(
            "podman",
            &[
                "build",
                "--quiet",
                "--platform",
                &platform,
                "--tag",
                &member,
                context.to_str().unwrap(),
            ],
        );
        run(
            "podman",
            &["push", "--quiet", "--tls-verify=false", &member],
        );
        members.push(member);
    }
    let _ = Command::new("podman")
        .args(["manifest", "rm", &base])
        .output();
    run("podman", &["manifest", "create", &base]);
    for member in &members {
        run(
            "podman",
            &[
                "manifest",
                "add",
                "--tls-verify=false",
                &base,
                &format!("docker://{member}"),
            ],
        );
    }
    run(
        "podman",
        &[
            "manifest",
            "push",
            "--all",
            "--tls-verify=false",
            &base,
            &format!("docker://{base}"),
        ],
    );

    // The builtin engine reads bases from its cache layout, which nothing fills from a
    // registry yet: docker builds on the pushed stand-in.
    let images: Value = serde_json::from_str(&xtask_ok(&[
        "image",
        "--engine",
        "docker",
        "--base",
        "alpine",
        "--base-image",
        &base,
        "--json",
    ]))
    .unwrap();
    assert_eq!(images.as_array().unwrap().len(), 2);
    let table = xtask_ok(&["smoke-test"]);
    assert_both_architectures_pass(&table);
    for arch in ["amd64", "arm64"] {
        let reference = format!("tiny-service:0.1.0-{arch}");
        let platform = format!("linux/{arch}");
        let out = docker(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--platform",
            &platform,
            "--entrypoint",
            "/bin/sh",
            &reference,
            "-c",
            "echo shell; id -u",
        ]);
        assert_eq!(out, "shell\n65532\n", "{arch}");
    }
    assert_nothing_left();
    work
}

/// The media type of the index at `reference` in the registry, and its platforms, sorted.
fn index_platforms(reference: &str) -> (String, Vec<String>) {
    let source = format!("docker://{reference}");
    let raw = run(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &source],
    );
    let list: Value = serde_json::from_str(&raw).unwrap();
    let mut platforms: Vec<String> = list["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {raw}"))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    (
        list["mediaType"].as_str().unwrap_or_default().to_owned(),
        platforms,
    )
}

fn pushed_index_covers_both_platforms_and_each_runs(registry: &Registry) {
    xtask_ok(&["image", "--push", "--registry", &registry.host]);
    let index = format!("{}/tiny-service:0.1.0", registry.host);
    assert_eq!(
        index_platforms(&index),
        (
            "application/vnd.docker.distribution.manifest.list.v2+json".to_owned(),
            vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()]
        )
    );

    // Each platform, pulled back through the index, runs.
    for arch in ["amd64", "arm64"] {
        let _ = Command::new("docker").args(["rmi", &index]).output();
        docker(&[
            "pull",
            "--quiet",
            "--platform",
            &format!("linux/{arch}"),
            &index,
        ]);
        let table = xtask_ok(&["smoke-test", "--image", &index]);
        assert!(
            table.contains(&format!("linux/{arch}, user 65532")),
            "{table}"
        );
        assert!(
            table
                .lines()
                .any(|l| l.contains(" total ") && l.contains(" pass ")),
            "{table}"
        );
    }
    assert_nothing_left();
}

/// Builds a small image on top of the amd64 service image with the legacy builder (no
/// foreign platform involved, so it labels correctly).
fn derived_image(tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, source) in files {
        std::fs::copy(source, context.path().join(name)).unwrap();
    }
    let context = context.path().to_str().unwrap();
    succeed(
        Command::new("docker")
            .args(["build", "--quiet", "--tag", tag, context])
            .env("DOCKER_BUILDKIT", "0"),
    );
}

fn failing_images_fail_clearly_and_leave_nothing(dist: &Path) {
    xtask_ok(&["image", "--target", "amd64"]);
    derived_image(
        "xtask-test/exits-1:latest",
        "FROM tiny-service:0.1.0-amd64\nENV MIGRATE_ON_START=maybe\n",
        &[],
    );
    let out = xtask(&[
        "smoke-test",
        "--image",
        "xtask-test/exits-1:latest",
        "--timeout",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the container exited with status 1 before /healthz answered"),
        "{err}"
    );
    assert!(
        err.contains("MIGRATE_ON_START=\"maybe\" is not a boolean"),
        "the container's log is shown: {err}"
    );
    assert_nothing_left();

    let arm64_service = dist.join("aarch64-unknown-linux-musl/service");
    derived_image(
        "xtask-test/wrong-arch:latest",
        "FROM tiny-service:0.1.0-amd64\nCOPY service /usr/local/bin/service\n",
        &[("service", &arm64_service)],
    );
    let out = xtask(&["smoke-test", "--image", "xtask-test/wrong-arch:latest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("binary: /usr/local/bin/service in this linux/amd64 image: built for aarch64, not x86_64: it would fail with \"exec format error\""),
        "{err}"
    );
    assert_nothing_left();
    docker(&[
        "rmi",
        "xtask-test/exits-1:latest",
        "xtask-test/wrong-arch:latest",
    ]);
}

/// Starts xtask in a process group of its own, as a shell runs a foreground job.
fn spawn_in_own_group(args: &[&str]) -> Child {
    use std::os::unix::process::CommandExt;
    eprintln!("$ cargo xtask {}", args.join(" "));
    Command::new(XTASK)
        .args(args)
        .current_dir(root())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ctrl-C as a terminal sends it, to the whole group; returns how xtask ended and what it
/// printed.
fn ctrl_c(mut child: Child) -> (std::process::ExitStatus, String) {
    run("kill", &["-INT", "--", &format!("-{}", child.id())]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "xtask did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    eprint!("{err}");
    (status, err)
}

/// Ctrl-C reaches the whole foreground process group; xtask must still remove what it
/// started and exit non-zero.
fn ctrl_c_during_the_smoke_test_leaves_nothing(busybox: &Path) {
    derived_image(
        "xtask-test/never-healthy:latest",
        "FROM tiny-service:0.1.0-amd64\nCOPY busybox /busybox\nENTRYPOINT [\"/busybox\", \"sleep\", \"600\"]\n",
        &[("busybox", busybox)],
    );
    let child = spawn_in_own_group(&[
        "smoke-test",
        "--image",
        "xtask-test/never-healthy:latest",
        "--timeout",
        "300",
    ]);
    let filter = format!("label={LABEL}");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The service container (`-1`), not the short-lived ones before it.
    while !docker(&["ps", "--format", "{{.Names}}", "--filter", &filter])
        .lines()
        .any(|n| n.ends_with("-1"))
    {
        assert!(
            Instant::now() < deadline,
            "the smoke test never started its container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = ctrl_c(child);
    assert!(!status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_nothing_left();
    docker(&["rmi", "xtask-test/never-healthy:latest"]);
}

fn podman_builds_pushes_and_runs_the_same_images(registry: &Registry) {
    let index = format!("{}/podman/tiny-service:edge", registry.host);
    xtask_ok(&["image", "--engine", "podman", "--push", "--tag", &index]);
    let (media_type, platforms) = index_platforms(&index);
    assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    xtask_ok(&["image", "--engine", "podman"]);
    let table = xtask_ok(&["smoke-test", "--engine", "podman"]);
    assert_both_architectures_pass(&table);
    let filter = format!("label={LABEL}");
    assert_eq!(
        run("podman", &["ps", "--all", "--quiet", "--filter", &filter]),
        ""
    );
    assert_eq!(
        run("podman", &["volume", "ls", "--quiet", "--filter", &filter]),
        ""
    );
}

/// Ctrl-C while cargo compiles: the staged binaries from before stay whole, and nothing
/// half-written is left beside them.
fn ctrl_c_during_a_build_leaves_the_dist_folders_whole(dist: &Path) {
    let manifests = || -> Vec<String> {
        ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
            .iter()
            .map(|t| std::fs::read_to_string(dist.join(t).join("manifest.json")).unwrap())
            .collect()
    };
    let before = manifests();
    // A newer source file makes cargo recompile the service: tens of seconds with LTO.
    let source = root().join("service/src/lib.rs");
    std::fs::File::options()
        .append(true)
        .open(&source)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let child = spawn_in_own_group(&["build"]);
    std::thread::sleep(Duration::from_secs(3));
    let (status, err) = ctrl_c(child);
    assert!(!status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let hidden: Vec<_> = std::fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    assert_eq!(manifests(), before);
}
