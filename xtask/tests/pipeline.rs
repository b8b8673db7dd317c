//! The whole pipeline against the real parts: `cargo xtask build` for both targets, images
//! on scratch and on a local alpine stand-in, smoke tests (arm64 under qemu), a push to a
//! real registry on 127.0.0.1, podman, and the failures a user must be told about clearly:
//! signals at any moment, the engine going away, a binary cut short.
//!
//! One test, in order: the steps share the engine's image store and the registry.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::registry::Registry;
use support::reports::{BenchRun, SmokeRun};
use support::{XTASK, platforms, root, run, sha256_hex, succeed, xtask_ok, xtask_ok_with};

mod support;

const LABEL: &str = "xtask.run";

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

/// The docker CLI on PATH: any client talks to the same daemon for run, ps, pull and rmi.
fn docker(args: &[&str]) -> String {
    run("docker", args)
}

/// `smoke-test <args> --json`, to success, read.
fn smoke_ok(args: &[&str]) -> SmokeRun {
    let args = [args, &["--json"]].concat();
    SmokeRun::parse(xtask_ok(&args).as_bytes())
}

/// Both declared images (tiny-service, then tiny-service-migrate), each on both.
fn assert_both_architectures_pass(run: &SmokeRun) {
    run.assert_all_passed(&["amd64", "arm64", "amd64", "arm64"]);
}

/// Labelled containers and volumes (named), as docker lists them.
fn labelled() -> (String, String) {
    let filter = format!("label={LABEL}");
    (
        docker(&["ps", "--all", "--format", "{{.Names}}", "--filter", &filter]),
        docker(&["volume", "ls", "--quiet", "--filter", &filter]),
    )
}

fn assert_nothing_left() {
    let (containers, volumes) = labelled();
    assert_eq!(containers, "", "containers left behind");
    assert_eq!(volumes, "", "volumes left behind");
}

/// Waits for `condition`, polling; fails the test naming `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipeline() {
    // Every step reads and writes the shared engines' images under the project's names.
    let _turn = support::engine_turn();
    let dist = build_both_targets_static();
    a_truncated_binary_in_cargos_output_is_refused();
    scratch_images_are_small_and_pass_the_smoke_test();
    fast_images_are_marked_and_pass_the_same_smoke_test();
    signals_at_any_moment_of_the_smoke_test_leave_nothing();
    a_second_ctrl_c_ends_the_run_at_once();
    the_engine_going_away_stops_the_run_and_the_next_run_sweeps_up();
    ctrl_c_during_image_leaves_no_tag();
    let registry = Registry::start();
    let busybox = alpine_stand_in_images_have_a_shell_and_pass(&registry);
    pushed_index_covers_both_platforms_and_each_runs(&registry);
    per_architecture_pushes_merge_into_one_index(&registry);
    failing_images_fail_clearly_and_leave_nothing(&dist);
    ctrl_c_during_the_smoke_test_leaves_nothing();
    drop(busybox);
    podman_builds_pushes_and_runs_the_same_images(&registry);
    ctrl_c_during_a_build_leaves_the_dist_folders_whole(&dist);
    sigterm_during_bench_stops_its_builds();
    bench_json_reports_the_fast_path_within_its_goal();
    support::tidy(&[support::target_dir().join("xtask/devloop")]);
    bench_json_reports_no_op_builds_against_plain_cargo();
}

/// The turn at the engines is the machine's, not the process's: another test run (`flock`,
/// a process of its own) cannot take it while this one holds it.
#[test]
fn the_engine_turn_keeps_other_runs_out() {
    let _turn = support::engine_turn();
    let taken = Command::new("flock")
        .args(["--nonblock", "--conflict-exit-code", "75"])
        .arg(support::engine_lock_path())
        .arg("true")
        .status()
        .unwrap();
    assert_eq!(
        taken.code(),
        Some(75),
        "another run took the turn while it was held"
    );
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
    assert_both_architectures_pass(&smoke_ok(&["smoke-test"]));
    assert_nothing_left();
}

/// `image --fast`: dev images beside the release ones (`-dev` tags, the profile label), then
/// the same smoke test on both architectures; the release images stay as they were.
fn fast_images_are_marked_and_pass_the_same_smoke_test() {
    let release_id = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "tiny-service:0.1.0-arm64",
    ]);
    let images: Value = serde_json::from_str(&xtask_ok(&["image", "--fast", "--json"])).unwrap();
    for image in images.as_array().unwrap() {
        let arch = image["arch"].as_str().unwrap();
        let reference = image["reference"].as_str().unwrap();
        assert!(
            [
                format!("tiny-service:0.1.0-dev-{arch}"),
                format!("tiny-service-migrate:0.1.0-dev-{arch}")
            ]
            .contains(&reference.to_owned()),
            "{reference}"
        );
        let profile = docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"xtask.profile\"}}",
            reference,
        ]);
        assert_eq!(profile.trim(), "dev-image", "{reference}");
    }
    let smoke = smoke_ok(&["smoke-test", "--fast"]);
    assert_both_architectures_pass(&smoke);
    assert!(
        smoke.images.iter().all(|i| i.image.contains("-dev-")),
        "{smoke:#?}"
    );
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "tiny-service:0.1.0-arm64"
        ]),
        release_id,
        "the release image changed"
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
    assert_eq!(
        images.as_array().unwrap().len(),
        4,
        "2 images, 2 architectures"
    );
    assert_both_architectures_pass(&smoke_ok(&["smoke-test"]));
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
    // The registry goes with the test: a local list naming its images would break
    // `podman images` for everyone once they are gone.
    let _ = Command::new("podman")
        .args(["manifest", "rm", &base])
        .output();
    let _ = Command::new("podman").arg("rmi").args(&members).output();
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
    (
        list["mediaType"].as_str().unwrap_or_default().to_owned(),
        platforms(&list),
    )
}

/// A PATH with what a build needs (cargo, rustc, git) and no container engine.
fn path_without_engines() -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap());
    let rustc = cargo.with_file_name("rustc");
    let git = PathBuf::from(run("sh", &["-c", "command -v git"]).trim());
    for tool in [cargo, rustc, git] {
        std::os::unix::fs::symlink(&tool, bin.path().join(tool.file_name().unwrap())).unwrap();
    }
    bin
}

/// Each platform, pulled from the registry through `index`, passes the smoke test.
fn each_platform_of_the_index_runs(index: &str) {
    for arch in ["amd64", "arm64"] {
        let _ = Command::new("docker").args(["rmi", index]).output();
        docker(&[
            "pull",
            "--quiet",
            "--platform",
            &format!("linux/{arch}"),
            index,
        ]);
        let smoke = smoke_ok(&["smoke-test", "--image", index]);
        smoke.assert_all_passed(&[arch]);
        let image = &smoke.images[0];
        assert_eq!(image.image, index);
        let facts = &image.check("image").detail;
        assert!(
            facts.starts_with(&format!("linux/{arch}, user 65532")),
            "{facts}"
        );
    }
    assert_nothing_left();
    let pushed = [
        index.to_owned(),
        format!("{index}-amd64"),
        format!("{index}-arm64"),
    ];
    let _ = Command::new("docker").arg("rmi").args(&pushed).output();
}

/// With no docker or podman to be found and no daemon, the builtin engine builds both
/// images and pushes them and their index straight to the registry.
fn pushed_index_covers_both_platforms_and_each_runs(registry: &Registry) {
    let bin = path_without_engines();
    let images: Value = serde_json::from_str(&xtask_ok_with(
        &["image", "--push", "--registry", &registry.host, "--json"],
        &[
            ("PATH", bin.path().to_str().unwrap()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    ))
    .unwrap();
    let index = format!("{}/tiny-service:0.1.0", registry.host);
    assert_eq!(
        index_platforms(&index),
        (
            "application/vnd.oci.image.index.v1+json".to_owned(),
            vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()]
        )
    );
    // Each declared image has an index of its own.
    assert_eq!(
        index_platforms(&format!("{}/tiny-service-migrate:0.1.0", registry.host)).1,
        ["linux/amd64".to_owned(), "linux/arm64".to_owned()]
    );
    // The registry holds exactly what the layout holds: the digests did not change in transit.
    let ours = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["reference"].as_str().unwrap().contains("/tiny-service:"));
    for image in ours {
        let arch = image["arch"].as_str().unwrap();
        let pushed = run(
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{index}-{arch}"),
            ],
        );
        let digest = format!("sha256:{}", sha256_hex(pushed.as_bytes()));
        assert_eq!(image["digest"].as_str(), Some(digest.as_str()), "{arch}");
    }
    each_platform_of_the_index_runs(&index);
}

/// Native runners side by side: each builds and pushes its own architecture, and one job
/// merges the two into the index, reading each platform from its image's config.
fn per_architecture_pushes_merge_into_one_index(registry: &Registry) {
    let repository = format!("{}/runners/tiny-service", registry.host);
    let ci = format!("{repository}:ci");
    for arch in ["arm64", "amd64"] {
        xtask_ok(&[
            "image",
            "--image",
            "tiny-service",
            "--target",
            arch,
            "--no-load",
            "--push",
            "--tag",
            &ci,
        ]);
    }
    let merged = format!("{repository}:0.1.0");
    xtask_ok(&[
        "index",
        "--tag",
        &merged,
        &format!("{ci}-arm64"),
        &format!("{ci}-amd64"),
    ]);
    assert_eq!(
        index_platforms(&merged).1,
        ["linux/amd64".to_owned(), "linux/arm64".to_owned()]
    );
    each_platform_of_the_index_runs(&merged);
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
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // A failed run still prints its results, the failed check with its reason and the rest
    // skipped.
    let smoke = SmokeRun::parse(&out.stdout);
    assert!(!smoke.passed && !smoke.images[0].passed, "{smoke:#?}");
    let healthz = smoke.images[0].check("/healthz");
    assert_eq!(healthz.result, "fail");
    assert_eq!(
        healthz.detail,
        "/healthz: the container exited with status 1 before /healthz answered"
    );
    assert_eq!(smoke.images[0].check("GET /hello -> 200").result, "skip");
    assert_eq!(
        smoke.images[0].failure.as_deref(),
        Some(healthz.detail.as_str())
    );
    // Each row went to stderr as its check ended, the error after them.
    let row = err
        .lines()
        .position(|l| l.contains(" /healthz ") && l.contains(" FAIL "));
    let error = err
        .lines()
        .position(|l| l.starts_with("error: smoke test failed"));
    assert!(row.is_some() && row < error, "{err}");
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

/// xtask running in a process group of its own, as a shell runs a foreground job, with a
/// temporary directory of its own to check that it leaves nothing there.
struct Job {
    child: Child,
    tmp: tempfile::TempDir,
    started: Instant,
}

/// A mark in the environment of xtask and everything it starts, to find stray processes.
const MARK: &str = "XTASK_PIPELINE_TEST_JOB";

fn spawn_job(args: &[&str], env: &[(&str, &str)]) -> Job {
    use std::os::unix::process::CommandExt;
    eprintln!("$ cargo xtask {}", args.join(" "));
    let tmp = tempfile::tempdir().unwrap();
    let mut command = Command::new(XTASK);
    command
        .args(args)
        .current_dir(root())
        .process_group(0)
        .env("TMPDIR", tmp.path())
        .env("RUST_BACKTRACE", "1")
        .env(MARK, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    Job {
        child: command.spawn().unwrap(),
        tmp,
        started: Instant::now(),
    }
}

/// Processes carrying `MARK` in their environment.
fn marked_processes() -> Vec<String> {
    let mark = format!("{MARK}=1");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .map(|c| c.replace('\0', " "))
        .collect()
}

/// How a signalled job ended.
struct Ended {
    status: ExitStatus,
    /// From the signal to the exit.
    after: Duration,
    stderr: String,
    temp_left: usize,
}

impl Job {
    /// Sends `signal` (`INT` to the whole group, as Ctrl-C does; `TERM` to xtask alone);
    /// `None` if xtask had already finished.
    fn signal(&mut self, signal: &str) -> Option<Ended> {
        if self.child.try_wait().unwrap().is_some() {
            return None;
        }
        let target = match signal {
            "INT" => format!("-{}", self.child.id()),
            _ => self.child.id().to_string(),
        };
        run("kill", &[&format!("-{signal}"), "--", &target]);
        Some(self.wait_after(Instant::now()))
    }

    fn wait_after(&mut self, signalled: Instant) -> Ended {
        wait_for(Duration::from_secs(30), "xtask to exit", || {
            self.child.try_wait().unwrap().is_some()
        });
        let status = self.child.wait().unwrap();
        let after = signalled.elapsed();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let temp_left = std::fs::read_dir(self.tmp.path()).unwrap().count();
        Ended {
            status,
            after,
            stderr,
            temp_left,
        }
    }
}

/// What an interrupted run must look like: status 130 within 5 s, one line saying so and
/// no error, nothing left in the engine, the temporary directory or the process table.
fn assert_interrupted_cleanly(ended: &Ended, moment: &str) {
    let err = &ended.stderr;
    assert_eq!(ended.status.code(), Some(130), "{moment}: {err}");
    assert!(
        ended.after <= Duration::from_secs(5),
        "{moment}: exited {:?} after the signal",
        ended.after
    );
    assert_eq!(err.lines().last(), Some("interrupted"), "{moment}: {err}");
    assert_eq!(err.matches("interrupted").count(), 1, "{moment}: {err}");
    assert!(
        !err.contains("error") && !err.contains("panicked"),
        "{moment}: {err}"
    );
    assert_eq!(ended.temp_left, 0, "{moment}: temporary files left");
    let (containers, volumes) = labelled();
    assert!(
        containers.is_empty() && volumes.is_empty(),
        "{moment}: left containers {containers:?} and volumes {volumes:?}"
    );
    let strays = marked_processes();
    assert!(strays.is_empty(), "{moment}: processes left {strays:?}");
}

/// SIGINT to the whole group (Ctrl-C) at 20 moments spread evenly over a smoke test of both
/// architectures, then SIGTERM to xtask alone at 5 more: each run ends within 5 s with
/// status 130 and leaves nothing.
fn signals_at_any_moment_of_the_smoke_test_leave_nothing() {
    // A run like the ones to interrupt (the first run of all is slower) sets the span; the
    // moments stop short of its end, so that no run finishes before its signal.
    let started = Instant::now();
    xtask_ok(&["smoke-test"]);
    let smoke_time = started.elapsed();
    let span = smoke_time.mul_f64(0.9);
    let mut worst = Duration::ZERO;
    for (signal, count) in [("INT", 20), ("TERM", 5)] {
        for k in 0..count {
            let mut at = span.mul_f64((k as f64 + 0.5) / count as f64);
            let ended = loop {
                let mut job = spawn_job(&["smoke-test"], &[]);
                wait_for(at + Duration::from_secs(1), "the moment", || {
                    job.started.elapsed() >= at
                });
                match job.signal(signal) {
                    Some(ended) => break ended,
                    // This run was quicker than the first: the same moment, earlier.
                    None => at = at.mul_f64(0.8),
                }
            };
            let moment = format!("SIG{signal} at {:.2}s", at.as_secs_f64());
            eprintln!(
                "{moment}: status {:?} after {:.2}s",
                ended.status.code(),
                ended.after.as_secs_f64()
            );
            assert_interrupted_cleanly(&ended, &moment);
            worst = worst.max(ended.after);
        }
    }
    eprintln!(
        "25 signals over a {:.1}s smoke test: every run exited 130, the slowest {:.2}s after its signal",
        smoke_time.as_secs_f64(),
        worst.as_secs_f64()
    );
}

/// Waits until the smoke test runs a service container (not the short-lived ones before).
fn wait_for_a_service_container() {
    let filter = format!("label={LABEL}");
    wait_for(Duration::from_secs(60), "a service container", || {
        docker(&["ps", "--format", "{{.Names}}", "--filter", &filter])
            .lines()
            .any(|n| n.ends_with("-1"))
    });
}

fn a_second_ctrl_c_ends_the_run_at_once() {
    let mut job = spawn_job(&["smoke-test"], &[]);
    wait_for_a_service_container();
    let group = format!("-{}", job.child.id());
    run("kill", &["-INT", "--", &group]);
    run("kill", &["-INT", "--", &group]);
    let ended = job.wait_after(Instant::now());
    assert_interrupted_cleanly(&ended, "two Ctrl-C");
}

/// A unix socket in front of the real Docker socket, to take the daemon away from xtask
/// without stopping it for everyone else.
struct DockerProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<UnixStream>>>,
    accepting: Option<JoinHandle<()>>,
}

impl DockerProxy {
    fn start(path: &Path) -> DockerProxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (stopping, open) = (stop.clone(), connections.clone());
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(daemon) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(daemon.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), daemon.try_clone().unwrap()),
                    (daemon, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        DockerProxy {
            path: path.to_owned(),
            stop,
            connections,
            accepting: Some(accepting),
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// The daemon goes away: no new connections, and the open ones are cut.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(accepting) = self.accepting.take() {
            accepting.join().unwrap();
        }
        let _ = std::fs::remove_file(&self.path);
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

fn the_engine_going_away_stops_the_run_and_the_next_run_sweeps_up() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let mut proxy = DockerProxy::start(&socket);
    let host = proxy.host();
    let mut job = spawn_job(
        &["smoke-test", "--engine", "docker"],
        &[("DOCKER_HOST", &host)],
    );
    wait_for_a_service_container();
    proxy.kill();
    let ended = job.wait_after(Instant::now());
    let err = &ended.stderr;
    eprint!("{err}");
    eprintln!(
        "the engine went away: status {:?} after {:.2}s",
        ended.status.code(),
        ended.after.as_secs_f64()
    );
    assert_eq!(ended.status.code(), Some(1), "{err}");
    assert!(ended.after <= Duration::from_secs(10), "{:?}", ended.after);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(&format!(
            "error: the Docker daemon at {host} stopped answering: start it (`sudo systemctl start docker`"
        )),
        "{err}"
    );
    assert!(
        !err.contains("arm64"),
        "went on to the next architecture: {err}"
    );
    let (containers, volumes) = labelled();
    assert!(
        !containers.is_empty(),
        "the run could not have removed its containers"
    );

    let _proxy = DockerProxy::start(&socket);
    let out = Command::new(XTASK)
        .args(["smoke-test", "--engine", "docker", "--json"])
        .current_dir(root())
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprint!("{err}");
    assert!(out.status.success(), "{err}");
    let swept = format!(
        "removed {} container(s) and {} volume(s) left behind by stopped runs (pid {})",
        containers.lines().count(),
        volumes.lines().count(),
        job.child.id()
    );
    assert!(err.contains(&swept), "{err}");
    assert_both_architectures_pass(&SmokeRun::parse(&out.stdout));
    assert_nothing_left();
}

/// Ctrl-C at moments of `image`: no tag of this run stays behind.
fn ctrl_c_during_image_leaves_no_tag() {
    let tag = "xtask-test/cut-short:1";
    let started = Instant::now();
    xtask_ok(&["image", "--image", "tiny-service", "--tag", tag]);
    let took = started.elapsed();
    // The builtin engine loads into docker and podman alike.
    let tags = || {
        docker(&["images", "--quiet", "xtask-test/cut-short"])
            + &run("podman", &["images", "--quiet", "xtask-test/cut-short"])
    };
    let remove_tags = || {
        for engine in ["docker", "podman"] {
            let _ = Command::new(engine)
                .args([
                    "rmi",
                    "xtask-test/cut-short:1-amd64",
                    "xtask-test/cut-short:1-arm64",
                ])
                .output();
        }
    };
    remove_tags();
    for k in 0..6 {
        let at = took.mul_f64(0.9 * (k as f64 + 0.5) / 6.0);
        let mut job = spawn_job(&["image", "--image", "tiny-service", "--tag", tag], &[]);
        wait_for(at + Duration::from_secs(1), "the moment", || {
            job.started.elapsed() >= at
        });
        let Some(ended) = job.signal("INT") else {
            // Finished first: its tags are a result, not a leftover.
            remove_tags();
            continue;
        };
        let moment = format!("image, SIGINT at {:.2}s", at.as_secs_f64());
        assert_interrupted_cleanly(&ended, &moment);
        assert_eq!(tags(), "", "{moment}: tags left");
    }
}

/// A binary cut short in cargo's own output folder passes cargo's freshness check; the
/// build must refuse it rather than stage it.
fn a_truncated_binary_in_cargos_output_is_refused() {
    let binary = root().join("target/x86_64-unknown-linux-musl/release/service");
    let whole = std::fs::read(&binary).unwrap();
    std::fs::write(&binary, &whole[..whole.len() - 100_000]).unwrap();
    let out = xtask(&["build", "--target", "amd64"]);
    std::fs::write(&binary, &whole).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(
            "error: refusing target/x86_64-unknown-linux-musl/release/service: not whole: loadable segment"
        ),
        "{err}"
    );
    assert!(errors[0].ends_with("delete it and build again"), "{err}");
    xtask_ok(&["build", "--target", "amd64"]);
}

/// Ctrl-C reaches the whole foreground process group; xtask must still remove what it
/// started and exit non-zero.
fn ctrl_c_during_the_smoke_test_leaves_nothing() {
    // The declared entrypoint, as a static binary that never answers: smoke-test checks
    // the image as tiny-service and then waits for /healthz.
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("never_healthy.rs");
    std::fs::write(
        &source,
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(600)); }\n",
    )
    .unwrap();
    let binary = scratch.path().join("service");
    succeed(
        Command::new("rustc")
            .args(["--edition", "2021", "--target", "x86_64-unknown-linux-musl"])
            .args([
                "-C",
                "linker=rust-lld",
                "-C",
                "relocation-model=static",
                "-o",
            ])
            .arg(&binary)
            .arg(&source),
    );
    let image = "xtask-test/tiny-service:never-healthy";
    derived_image(
        image,
        "FROM tiny-service:0.1.0-amd64\nCOPY service /usr/local/bin/service\n",
        &[("service", &binary)],
    );
    let mut job = spawn_job(&["smoke-test", "--image", image, "--timeout", "300"], &[]);
    wait_for_a_service_container();
    let ended = job.signal("INT").expect("still running");
    assert_interrupted_cleanly(&ended, "Ctrl-C while waiting for /healthz");
    docker(&["rmi", image]);
}

fn podman_builds_pushes_and_runs_the_same_images(registry: &Registry) {
    let index = format!("{}/podman/tiny-service:edge", registry.host);
    xtask_ok(&[
        "image",
        "--image",
        "tiny-service",
        "--engine",
        "podman",
        "--push",
        "--tag",
        &index,
    ]);
    let (media_type, platforms) = index_platforms(&index);
    assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let _ = Command::new("podman")
        .args(["manifest", "rm", &index])
        .output();
    let members = ["amd64", "arm64"].map(|arch| format!("{index}-{arch}"));
    let _ = Command::new("podman").arg("rmi").args(&members).output();
    xtask_ok(&["image", "--engine", "podman"]);
    let smoke = smoke_ok(&["smoke-test", "--engine", "podman"]);
    assert_both_architectures_pass(&smoke);
    assert!(smoke.engine.starts_with("podman "), "{}", smoke.engine);
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
    let mut job = spawn_job(&["build"], &[]);
    // Stop it while a rustc of this run compiles.
    wait_for(Duration::from_secs(60), "cargo compiling", || {
        marked_processes().iter().any(|c| c.contains("rustc"))
    });
    let ended = job.signal("TERM").expect("still building");
    assert_interrupted_cleanly(&ended, "SIGTERM while cargo compiles");
    let hidden: Vec<_> = std::fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    assert_eq!(manifests(), before);
}

/// SIGTERM to xtask alone while bench builds its variants: the builds stop with it, and
/// its scratch folder goes.
fn sigterm_during_bench_stops_its_builds() {
    let scratch = root().join("target/xtask/bench");
    let mut job = spawn_job(&["bench", "--skip-cold", "--duration", "1"], &[]);
    wait_for(Duration::from_secs(120), "bench building", || {
        marked_processes().iter().any(|c| c.contains("cargo build"))
    });
    let ended = job.signal("TERM").expect("still running");
    assert_interrupted_cleanly(&ended, "SIGTERM during bench");
    assert!(!scratch.exists(), "{scratch:?} left behind");
}

/// `bench --only devloop --json`, read as a machine reads it: a one-line change to both
/// images on either path (one round: its target dir starts from this run's builds), the
/// fast path within its goal, and the user's tree untouched.
fn bench_json_reports_the_fast_path_within_its_goal() {
    let status = || {
        run(
            "git",
            &["-C", root().to_str().unwrap(), "status", "--porcelain"],
        )
    };
    let before = status();
    let out = xtask_ok(&[
        "bench",
        "--only",
        "devloop",
        "--devloop-rounds",
        "1",
        "--json",
    ]);
    let devloop = BenchRun::parse(out.as_bytes())
        .devloop
        .expect("a devloop section");
    eprintln!("{devloop:#?}");
    let plan: Vec<(&str, usize, usize)> = devloop
        .runs
        .iter()
        .map(|r| (r.path.as_str(), r.targets.len(), r.rounds))
        .collect();
    assert_eq!(plan, [("release", 2, 1), ("fast", 2, 1), ("fast", 1, 1)]);
    assert!(
        (devloop.fast_over_release - devloop.runs[1].seconds / devloop.runs[0].seconds).abs()
            < 1e-9
    );
    assert!(
        devloop.fast_over_release <= devloop.goal,
        "the fast path took {:.2} of the release path's time",
        devloop.fast_over_release
    );
    assert_eq!(devloop.edit, "service/src/routes.rs");
    assert_eq!(
        devloop.sizes.len(),
        4,
        "two binaries for each of two targets"
    );
    for size in &devloop.sizes {
        assert!(size.release > 0 && size.fast > 0, "{size:?}");
    }
    assert_eq!(status(), before, "the bench changed the working tree");
    let worktrees = run("git", &["-C", root().to_str().unwrap(), "worktree", "list"]);
    assert!(!worktrees.contains("devloop"), "{worktrees}");
}

/// `bench --only noop --json`: the alias as typed, the binary alone and plain cargo, each a
/// no-op (the bench fails if one compiles), medians in the documented schema. The ratio is
/// printed, not asserted: a timing on a shared machine is the bench's job, not a test's.
fn bench_json_reports_no_op_builds_against_plain_cargo() {
    let out = xtask_ok(&["bench", "--only", "noop", "--json"]);
    let bench = BenchRun::parse(out.as_bytes());
    assert!(bench.devloop.is_none());
    let noop = bench.noop.expect("a noop section");
    eprintln!("{noop:#?}");
    let drivers: Vec<&str> = noop.runs.iter().map(|r| r.driver.as_str()).collect();
    assert_eq!(
        drivers,
        [
            "cargo xtask build",
            "xtask build (the binary alone)",
            "plain cargo build --release"
        ]
    );
    assert!(noop.rounds >= 10 && noop.goal == 1.5, "{noop:?}");
    assert!(noop.runs.iter().all(|r| r.seconds > 0.0), "{noop:?}");
    let ratio = noop.runs[0].seconds / noop.runs[2].seconds;
    assert!((noop.xtask_over_plain - ratio).abs() < 1e-9, "{noop:?}");
}
