//! Bad input over the whole command line, as a new user types it: each case must fail with
//! a non-zero status and exactly one line on stderr that names the fix, with no panic or
//! backtrace, and leave nothing behind (labelled containers or volumes, temporary
//! directories, staging folders). None of these needs a built image; cases that do live in
//! the pipeline test.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");
/// The label on every container and volume the xtask creates.
const LABEL: &str = "xtask.run";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[derive(Clone)]
struct Case {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// The workspace to run in (a doctored copy), else this one.
    dir: Option<PathBuf>,
    /// What the one line must say: the fix, or what the user must change.
    says: &'static str,
}

fn case(args: &[&str], says: &'static str) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        dir: None,
        says,
    }
}

impl Case {
    fn env(mut self, key: &'static str, value: impl Into<String>) -> Case {
        self.env.push((key, value.into()));
        self
    }

    fn in_dir(mut self, dir: &Path) -> Case {
        self.dir = Some(dir.to_owned());
        self
    }
}

/// Names of labelled containers and volumes in the engine, if docker answers.
fn labelled() -> Vec<String> {
    let filter = format!("label={LABEL}");
    let mut found = Vec::new();
    for args in [
        vec!["ps", "--all", "--quiet", "--filter", &filter],
        vec!["volume", "ls", "--quiet", "--filter", &filter],
    ] {
        if let Ok(out) = Command::new("docker").args(&args).output() {
            found.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned),
            );
        }
    }
    found
}

/// Hidden entries (staging or set-aside folders) in the dist folder.
fn hidden_in_dist() -> Vec<String> {
    let dist = root().join("target/dist");
    std::fs::read_dir(dist)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Every xtask run of these tests takes its turn: the time bound is for one refusal, not
/// for several test threads sharing two cores.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn check(case: &Case) -> Option<String> {
    let _turn = one_at_a_time();
    check_alone(case)
}

/// Runs one case and returns what is wrong with the outcome, if anything.
fn check_alone(case: &Case) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let before = labelled();
    let mut command = Command::new(XTASK);
    command
        .args(&case.args)
        .current_dir(case.dir.as_deref().unwrap_or(root()))
        .env("RUST_BACKTRACE", "1")
        .env("TMPDIR", tmp.path());
    for (k, v) in &case.env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut wrong = Vec::new();
    if out.status.success() {
        wrong.push("succeeded".to_owned());
    }
    if err.lines().count() != 1 {
        wrong.push(format!("{} lines on stderr", err.lines().count()));
    }
    if !err.contains(case.says) {
        wrong.push(format!("does not say {:?}", case.says));
    }
    if err.contains("panicked") || err.contains("backtrace") || err.contains("RUST_BACKTRACE") {
        wrong.push("panicked".to_owned());
    }
    let new: Vec<String> = labelled()
        .into_iter()
        .filter(|r| !before.contains(r))
        .collect();
    if !new.is_empty() {
        wrong.push(format!("left containers or volumes {new:?}"));
    }
    let temp_left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    if !temp_left.is_empty() {
        wrong.push(format!("left {} temporary entries", temp_left.len()));
    }
    let hidden = hidden_in_dist();
    if !hidden.is_empty() {
        wrong.push(format!("left {hidden:?} in the dist folder"));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "cargo xtask {}: {} (status {:?}):\n{err}",
            case.args.join(" "),
            wrong.join(", "),
            out.status.code()
        )
    })
}

/// A copy of the workspace's manifests and sources, with `edit` applied to its root
/// Cargo.toml: enough for `cargo metadata`, which is all these cases reach.
fn doctored_workspace(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let name = entry.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            let (src, dest) = (entry.path(), to.join(&name));
            if entry.file_type().unwrap().is_dir() {
                copy(&src, &dest);
            } else {
                std::fs::copy(&src, &dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for member in ["crates", "service", "xtask"] {
        copy(&root().join(member), &dir.path().join(member));
    }
    std::fs::copy(root().join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), edit(manifest)).unwrap();
    dir
}

/// A PATH with the Rust toolchain and nothing else: no docker, no podman.
fn rust_only_path() -> String {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap());
    cargo.parent().unwrap().display().to_string()
}

/// Something on a loopback port that answers HTTP, but not as a registry.
fn busy_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for mut stream in server.incoming().flatten() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (listener, port)
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn every_bad_input_fails_with_one_line_that_names_the_fix_and_leaves_nothing() {
    let (_busy, busy) = busy_port();
    let closed = closed_port();
    let unknown_setting = doctored_workspace(|m| {
        let doctored = m.replacen(
            "[workspace.metadata.xtask]\n",
            "[workspace.metadata.xtask]\ncolour = \"red\"\n",
            1,
        );
        assert_ne!(
            doctored, m,
            "no [workspace.metadata.xtask] table to add a key to"
        );
        doctored
    });
    let bad_budget = doctored_workspace(|m| m.replace("scratch = \"10 MiB\"", "scratch = \"ten\""));
    let bad_target = doctored_workspace(|m| {
        m.replace(
            "targets = [\"x86_64-unknown-linux-musl\", \"aarch64-unknown-linux-musl\"]",
            "targets = [\"sparc\"]",
        )
    });
    let digest = format!("tiny-service@sha256:{}", "a".repeat(64));
    let closed_registry = format!("127.0.0.1:{closed}");
    let busy_registry = format!("127.0.0.1:{busy}");
    let cases = [
        // Targets.
        case(
            &["build", "--target", "riscv64gc-unknown-linux-gnu"],
            "supported targets are x86_64-unknown-linux-musl",
        ),
        case(&["build", "--target", ""], "supported targets are"),
        case(&["doctor", "--target", "x86"], "supported targets are"),
        case(
            &["build", "--targte", "amd64"],
            "tip: a similar argument exists: '--target'",
        ),
        // Engines and bases.
        case(
            &["image", "--engine", "nosuch"],
            "[possible values: builtin, docker, podman]",
        ),
        case(
            &["smoke-test", "--engine", "nosuch"],
            "[possible values: docker, podman]",
        ),
        case(
            &["image", "--base", "debian"],
            "[possible values: scratch, alpine]",
        ),
        case(
            &["image", "--base-image", "alpine:"],
            "invalid image reference `alpine:`",
        ),
        case(
            &["image", "--engine", "docker"],
            "the Docker daemon is not running: start it",
        )
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        case(
            &["smoke-test"],
            "no container engine is running: start the Docker daemon",
        )
        .env("PATH", rust_only_path()),
        // References and registries.
        case(
            &["image", "--tag", "Team/Svc:1"],
            "invalid image reference `Team/Svc:1`: invalid reference format: repository names are lower-case",
        ),
        case(&["image", "--tag", "svc:bad tag"], "it contains spaces"),
        case(
            &["image", "--image", "tiny-service", "--tag", &digest],
            "--tag takes a tag, not a digest",
        ),
        case(
            &["image", "--registry", "not a registry!!", "--push"],
            "invalid registry `not a registry!!`: expected `host[:port]`",
        ),
        case(
            &["image", "--registry", "myregistry"],
            "invalid registry `myregistry`",
        ),
        case(
            &[
                "image",
                "--image",
                "tiny-service",
                "--tag",
                "a.io/svc:1",
                "--registry",
                "b.io",
            ],
            "disagree: give one of them",
        ),
        case(
            &["image", "--push"],
            "--push needs a registry: give --registry <host:port>",
        ),
        case(&["smoke-test", "--image", ""], "invalid image reference ``"),
        case(
            &["smoke-test", "--imgae", "x"],
            "tip: a similar argument exists: '--image'",
        ),
        // An unreachable registry, and a port held by something else.
        case(
            &["image", "--push", "--registry", &closed_registry],
            "does not answer",
        ),
        case(
            &["image", "--push", "--registry", &busy_registry],
            "answers, but not as a registry (GET /v2/ gave 404)",
        ),
        // Dev images are not pushed unless forced; refused before anything is built.
        case(
            &["image", "--fast", "--push", "--registry", &closed_registry],
            "refusing to push dev images (--fast",
        ),
        // Missing artifacts.
        case(
            &["smoke-test", "--image", "xtask-bad-input/nope:nope"],
            "no image xtask-bad-input/nope:nope in docker: pull it",
        ),
        case(
            &[
                "smoke-test",
                "--engine",
                "docker",
                "--image",
                "tiny-service-migrate",
                "--tag",
                "xtask-bad-input/none",
            ],
            "build it with `cargo xtask image --image tiny-service-migrate --target amd64 --tag xtask-bad-input/none`",
        ),
        case(
            &[
                "smoke-test",
                "--engine",
                "docker",
                "--tag",
                "xtask-bad-input/none",
            ],
            "build it with `cargo xtask image --image tiny-service --target amd64 --tag xtask-bad-input/none`",
        ),
        case(
            &["image", "--image", "tiny"],
            "--image tiny: no such image in [workspace.metadata.xtask.images] (declared: tiny-service, tiny-service-migrate)",
        ),
        // Settings in [workspace.metadata].
        case(&["build"], "unknown field `colour`").in_dir(unknown_setting.path()),
        case(&["image"], "`ten` is not a size (for example `8 MiB`").in_dir(bad_budget.path()),
        case(
            &["doctor"],
            "unsupported target `sparc`: supported targets are",
        )
        .in_dir(bad_target.path()),
        // Other misspellings.
        case(&["frobnicate"], "try '--help'"),
        case(&["smoke-test", "--timeout", "soon"], "invalid digit"),
    ];
    assert!(cases.len() >= 20);
    // Leftovers of earlier killed runs would be removed, with a notice, by the first case
    // that uses the engine: clear them first so that every case prints one line.
    let _ = Command::new(XTASK)
        .args(["smoke-test", "--image", "xtask-bad-input/warm-up"])
        .current_dir(root())
        .output();
    assert_all(&cases, check);
}

/// A registry that answers `GET /v2/` (200, as an open registry does) and then never
/// answers anything else: every other request is read and held open.
fn stalling_registry() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in server.incoming().flatten() {
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            if request[..n].starts_with(b"GET /v2/ ") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            } else {
                held.push(stream);
            }
        }
    });
    (listener, port)
}

#[test]
fn a_registry_that_stalls_after_v2_fails_at_the_idle_deadline_before_any_build() {
    let (_stalling, port) = stalling_registry();
    let registry = format!("127.0.0.1:{port}");
    let home = tempfile::tempdir().unwrap();
    let stall = case(
        &["image", "--push", "--registry", &registry],
        "stopped answering while opening an upload to tiny-service (no data for 2 s",
    )
    .env("XTASK_REGISTRY_IDLE_TIMEOUT", "2")
    .env("HOME", home.path().display().to_string())
    .env(
        "DOCKER_CONFIG",
        home.path().join("docker").display().to_string(),
    )
    .env(
        "XDG_RUNTIME_DIR",
        home.path().join("run").display().to_string(),
    )
    .env(
        "XDG_CONFIG_HOME",
        home.path().join("config").display().to_string(),
    );
    let started = std::time::Instant::now();
    let wrong = check(&stall);
    let took = started.elapsed();
    assert!(wrong.is_none(), "{}", wrong.unwrap_or_default());
    // The 2 s deadline, the project's metadata and the pre-build checks: no compile.
    assert!(
        took < std::time::Duration::from_secs(8),
        "took {took:?}: more than the deadline"
    );
    let bad = case(
        &["image", "--push", "--registry", &registry],
        "XTASK_REGISTRY_IDLE_TIMEOUT=soon is not a number of seconds",
    )
    .env("XTASK_REGISTRY_IDLE_TIMEOUT", "soon");
    if let Some(wrong) = check(&bad) {
        panic!("{wrong}");
    }
}

#[test]
fn an_unreachable_base_image_registry_fails_at_once_before_the_build() {
    let closed = closed_port();
    let base = format!("127.0.0.1:{closed}/alpine:3.20");
    let cases = [
        case(
            &["image", "--base-image", &base],
            &*format!("registry 127.0.0.1:{closed} is unreachable").leak(),
        ),
        case(
            &["pull", &base],
            &*format!("registry 127.0.0.1:{closed} is unreachable").leak(),
        ),
    ];
    assert_all_refused_early(&cases);
}

/// How long a refusal may take: far less than a build, or a wait on an engine or a network,
/// and with room for a loaded two-core machine (2.1 s seen there, for a refusal that takes
/// 0.3 s on an idle one). What proves that nothing was built is the cargo it was given.
const REFUSED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// `check`, with a `cargo` that notes what it is asked: the refusal must come within
/// `REFUSED_WITHIN`, having asked cargo for nothing but metadata and its version.
fn check_early(case: &Case) -> Option<String> {
    let _turn = one_at_a_time();
    let spy = tempfile::tempdir().unwrap();
    let (cargo, calls) = cargo_spy(spy.path());
    let spied = case.clone().env("CARGO", cargo.to_str().unwrap());
    let started = std::time::Instant::now();
    let wrong = check_alone(&spied);
    let took = started.elapsed();
    let asked = std::fs::read_to_string(calls).unwrap_or_default();
    let built: Vec<&str> = asked
        .lines()
        .filter(|l| !matches!(l.split(' ').next(), Some("metadata" | "-V" | "--version")))
        .collect();
    match wrong {
        Some(wrong) => Some(wrong),
        None if !built.is_empty() => Some(format!(
            "cargo xtask {}: ran `cargo {}` before refusing",
            case.args.join(" "),
            built.join("`, `cargo ")
        )),
        None if took > REFUSED_WITHIN => Some(format!(
            "cargo xtask {}: refused after {took:?}",
            case.args.join(" ")
        )),
        None => None,
    }
}

/// A `cargo` in `dir` that appends each command line it is given to a file, then runs the
/// real one; returns both paths.
fn cargo_spy(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (cargo, calls) = (dir.join("cargo"), dir.join("calls"));
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
        calls.display()
    );
    std::fs::write(&cargo, script).unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    (cargo, calls)
}

fn assert_all_refused_early(cases: &[Case]) {
    assert_all(cases, check_early);
}

/// Every case passes `check`; the failures are listed together.
fn assert_all(cases: &[Case], check: fn(&Case) -> Option<String>) {
    let failures: Vec<String> = cases.iter().filter_map(check).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_source_date_epoch_no_build_can_record_is_refused_before_building() {
    let mut cases = Vec::new();
    for value in ["99999999999999", "-5", "", "1.5", "8589934592", "17e8"] {
        for command in [
            &["image", "--no-load"][..],
            &["build"],
            &["run", "--target", "amd64"],
            &["sbom"],
            &["verify", "--allow-dirty"],
            &["bench", "--skip-cold"],
        ] {
            cases.push(case(command, "SOURCE_DATE_EPOCH=\"").env("SOURCE_DATE_EPOCH", value));
        }
    }
    // The one line names the accepted form.
    cases.push(
        case(
            &["image"],
            "give whole seconds since 1970 in digits, from 0 to 8589934591",
        )
        .env("SOURCE_DATE_EPOCH", "-5"),
    );
    assert_all_refused_early(&cases);
}

#[test]
fn a_port_the_service_cannot_listen_on_is_refused_before_building() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    assert_all_refused_early(&[
        case(
            &["run", "--port", &port],
            "is taken (Address already in use",
        ),
        case(&["run", "--port", &port], "give another --port"),
        case(&["run", "--port", "80"], "port 80 is privileged (below"),
        case(&["run", "--port", "0"], "--port 0 is not a port"),
    ]);
}

/// A doctored workspace (see `doctored_workspace`) with `Dockerfile.runtime`, edited.
fn doctored_dockerfile(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = doctored_workspace(|m| m);
    let text = std::fs::read_to_string(root().join("Dockerfile.runtime")).unwrap();
    std::fs::write(dir.path().join("Dockerfile.runtime"), edit(text)).unwrap();
    dir
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut found = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => todo.push(entry.path()),
                false => {
                    found.insert(entry.path(), std::fs::read(entry.path()).unwrap());
                }
            }
        }
    }
    found
}

#[test]
fn a_copy_of_what_the_build_context_lacks_is_refused_before_building() {
    let dir = doctored_dockerfile(|d| {
        d.replace(
            "COPY bin/ /usr/local/bin/",
            "COPY bin/ /usr/local/bin/\nCOPY nope/ /x/",
        )
    });
    let says = "Dockerfile.runtime line 35: `COPY nope/ /x/` copies nope/, which the build context does not hold";
    assert_all_refused_early(&[
        case(&["image"], says).in_dir(dir.path()),
        case(&["image", "--engine", "docker"], says).in_dir(dir.path()),
        case(&["image", "--engine", "podman"], says).in_dir(dir.path()),
        case(&["run", "--target", "amd64"], says).in_dir(dir.path()),
    ]);
    // Nothing built, staged or written there.
    assert!(!dir.path().join("target").exists());
    // A base image's files are not the context's: rootfs/ holds only what scratch lacks.
    let dir = doctored_dockerfile(|d| d.replace("COPY rootfs/ /", "COPY rootfs/etc/passwd /etc/"));
    assert_all_refused_early(&[case(
        &["image", "--base", "alpine"],
        "copies rootfs/etc/passwd, which the build context does not hold",
    )
    .in_dir(dir.path())]);
}

#[test]
fn a_layout_that_cannot_be_added_to_is_refused_before_building_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = |name: &str, index: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(dir.join("index.json"), index).unwrap();
        dir.to_str().unwrap().to_owned()
    };
    let garbage = layout("garbage", "not json\n");
    let empty = layout("empty", "");
    let missing = layout(
        "missing",
        &format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":2}}]}}"#,
            "b".repeat(64)
        ),
    );
    let before = snapshot(tmp.path());
    // `run` builds into the workspace's own layout.
    let workspace = doctored_dockerfile(|d| d);
    let own = workspace.path().join("target/xtask/oci/tiny-service");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("index.json"), "{").unwrap();
    assert_all_refused_early(&[
        case(
            &["image", "--image", "tiny-service", "--layout", &garbage],
            "index.json is not an OCI image index (expected ident at line 1 column 2); remove",
        ),
        case(
            &["image", "--image", "tiny-service", "--layout", &garbage],
            "or give --layout another folder",
        ),
        case(
            &["image", "--image", "tiny-service", "--layout", &empty],
            "is not an OCI image index (EOF",
        ),
        case(
            &["image", "--image", "tiny-service", "--layout", &missing],
            "is missing; remove",
        ),
        case(
            &["run", "--target", "amd64"],
            "is not an OCI image index (EOF",
        )
        .in_dir(workspace.path()),
        case(
            &[
                "image",
                "--base-image",
                &format!("oci:{}:nope", tmp.path().display()),
            ],
            "is not an OCI image layout",
        ),
        case(
            &["image", "--base-image", &format!("oci:{garbage}:base")],
            "is not an OCI image index",
        ),
    ]);
    assert_eq!(snapshot(tmp.path()), before, "a layout was changed");
    assert_eq!(std::fs::read(own.join("index.json")).unwrap(), b"{");
}

#[test]
fn what_a_command_checks_after_building_it_checks_before() {
    // A copy with no .git: provenance has no commit to name.
    let no_checkout = doctored_dockerfile(|d| d);
    assert_all_refused_early(&[
        case(
            &["sbom", "--out", "/proc/xtask-sbom"],
            "give --out a folder you can write",
        ),
        case(
            &[
                "image",
                "--image",
                "tiny-service",
                "--layout",
                "/proc/xtask-layout",
            ],
            "give --layout a folder you can write",
        ),
        case(&["smoke-test", "--timeout", "0"], "0 is not in 1.."),
        case(&["run", "--timeout", "0"], "0 is not in 1.."),
        case(&["bench", "--connections", "0"], "0 is not in 1.."),
        case(&["bench", "--duration", "0"], "0 is not in 1.."),
        case(&["sbom"], "provenance needs the source as a git checkout").in_dir(no_checkout.path()),
        case(&["image"], "provenance needs the source as a git checkout")
            .in_dir(no_checkout.path()),
        case(
            &[
                "push",
                "--layout",
                "/nonexistent",
                "--tag",
                "127.0.0.1:1/a:1",
            ],
            "is not an OCI image layout",
        ),
    ]);
    assert!(!no_checkout.path().join("target").exists());
}

#[test]
fn bad_signing_keys_are_refused_in_one_line_before_the_registry_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let keygen = |prefix: &str, password: &str| {
        let out = Command::new(XTASK)
            .args(["keygen", "--output-key-prefix", &path(prefix)])
            .env("COSIGN_PASSWORD", password)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    keygen("cosign", "right");
    keygen("loose", "right");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path("loose.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // Nothing listens there: the key is refused before any connection is tried.
    let image = format!("127.0.0.1:{}/signed/app:1", closed_port());
    let sign = |key: &str| {
        vec![
            "sign".to_owned(),
            image.clone(),
            "--key".to_owned(),
            path(key),
        ]
    };
    let cases: Vec<Case> = vec![
        Case {
            args: sign("cosign.key"),
            ..case(&[], "wrong password for the encrypted private key")
        }
        .env("COSIGN_PASSWORD", "wrong"),
        Case {
            args: sign("loose.key"),
            ..case(&[], "chmod 600 it")
        }
        .env("COSIGN_PASSWORD", "right"),
        Case {
            args: sign("cosign.pub"),
            ..case(&[], "this is a public key; signing needs the private key")
        },
        Case {
            args: sign("missing.key"),
            ..case(&[], "missing.key")
        },
        case(
            &["keygen", "--output-key-prefix", &path("cosign")],
            "refusing to overwrite",
        )
        .env("COSIGN_PASSWORD", "x"),
        case(
            &["keygen", "--output-key-prefix", &path("fresh")],
            "pipe it with --password-stdin or set COSIGN_PASSWORD",
        ),
        case(&["image", "--sign"], "--key"),
        case(
            &[
                "image",
                "--engine",
                "docker",
                "--sign",
                "--key",
                &path("missing.key"),
            ],
            "add --push to sign them in the registry",
        ),
    ];
    assert_all(&cases, check);
    assert!(!dir.path().join("fresh.key").exists());
}

#[test]
fn required_signatures_that_cannot_be_checked_are_refused_in_one_line_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let out = Command::new(XTASK)
        .args(["keygen", "--output-key-prefix", &path("cosign")])
        .env("COSIGN_PASSWORD", "pw")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (public, private) = (path("cosign.pub"), path("cosign.key"));
    // Nothing listens there: each is refused before any connection is tried.
    let against = format!("127.0.0.1:{}/signed/app:1", closed_port());
    assert_all_refused_early(&[
        case(
            &["run", "--target", "amd64", "--require-signature", &public],
            "give --tag REGISTRY/NAME:TAG",
        ),
        case(
            &[
                "run",
                "--target",
                "amd64",
                "--tag",
                "app:1",
                "--require-signature",
                &public,
            ],
            "give --tag REGISTRY/NAME:TAG",
        ),
        case(
            &["run", "--require-signature", &private],
            "verifying needs the public key",
        ),
        case(
            &["smoke-test", "--require-signature", &path("missing.pub")],
            "missing.pub",
        ),
        case(
            &[
                "verify",
                "--allow-dirty",
                "--key",
                &private,
                "--against",
                &against,
            ],
            "verifying needs the public key",
        ),
        case(
            &[
                "verify",
                "--allow-dirty",
                "--key",
                &public,
                "--layout",
                &path("no-layout"),
            ],
            "no staged images",
        ),
    ]);
}

/// A file put in place of another by rename, as a user moving binaries around would; the
/// original is put back, the same way, when this is dropped.
struct RenamedOver {
    path: PathBuf,
    original: Vec<u8>,
}

impl RenamedOver {
    fn new(from: &Path, over: &Path) -> RenamedOver {
        let original = std::fs::read(over).unwrap();
        let copy = over.with_file_name(".renamed-over");
        std::fs::copy(from, &copy).unwrap();
        std::fs::rename(&copy, over).unwrap();
        RenamedOver {
            path: over.to_owned(),
            original,
        }
    }
}

impl Drop for RenamedOver {
    fn drop(&mut self) {
        let copy = self.path.with_file_name(".renamed-back");
        std::fs::write(&copy, &self.original).unwrap();
        std::fs::rename(&copy, &self.path).unwrap();
    }
}

#[test]
fn an_arm_v6_binary_in_the_arm_v7_dist_folder_and_the_reverse_are_refused_in_one_line() {
    const V7: &str = "armv7-unknown-linux-musleabihf";
    const V6: &str = "arm-unknown-linux-musleabihf";
    let _turn = one_at_a_time();
    // Both folders staged: a no-op when they are, as after the platforms test.
    let built = Command::new(XTASK)
        .args(["build", "--target", "arm/v6", "--target", "arm/v7"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let dist = root().join("target/dist");
    let cases = [
        (
            V6,
            V7,
            "built for ARMv6 (arm/v6), not ARMv7 (arm/v7) (armv7-unknown-linux-musleabihf): an \
             arm/v6 and an arm/v7 binary are not interchangeable; build it for \
             armv7-unknown-linux-musleabihf",
        ),
        (
            V7,
            V6,
            "built for ARMv7 (arm/v7), not ARMv6 (arm/v6) (arm-unknown-linux-musleabihf): an \
             arm/v6 and an arm/v7 binary are not interchangeable; build it for \
             arm-unknown-linux-musleabihf",
        ),
    ];
    for (from, into, says) in cases {
        let folder = dist.join(into);
        let _renamed = RenamedOver::new(&dist.join(from).join("service"), &folder.join("service"));
        let before = snapshot(&folder);
        // verify reads what is staged before anything else (the manifest still lists the
        // file, its content is what is checked).
        let wrong = check_alone(&case(&["verify", "--allow-dirty", "--target", into], says));
        assert!(wrong.is_none(), "{}", wrong.unwrap_or_default());
        assert!(
            snapshot(&folder) == before,
            "{into}: the dist folder was changed"
        );
    }
}
