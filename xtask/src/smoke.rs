//! `cargo xtask smoke-test`: each architecture's image as a real container, checked the way
//! production would use it: read-only, non-root, no capabilities, host network on loopback.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use xshell::Shell;

use crate::cli::SmokeArgs;
use crate::engine::Engine;
use crate::project::Project;
use crate::reference::ImageNames;
use crate::report;
use crate::target::Target;
use crate::{elf, image, interrupt, toolchain};

/// Marks every container and volume we create, so leftovers can be found and removed.
pub const LABEL: &str = "xtask.smoke-test";
/// The labels every image must carry.
const REQUIRED_LABELS: [&str; 6] = [
    "title", "version", "revision", "created", "source", "licenses",
];
/// `docker stop` would wait 10 s; a clean service exits well within this.
const STOP_DEADLINE: Duration = Duration::from_secs(2);

struct Subject {
    reference: String,
    expected_arch: Option<&'static str>,
}

impl SmokeArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let engine = Engine::detect(sh, self.engine)?;
        eprintln!("  engine: {}", engine.describe());
        let subjects: Vec<Subject> = if self.images.is_empty() {
            let name = project.image_name();
            let names = ImageNames::new(self.tag.as_deref(), None, name, &project.package.version)?;
            crate::build::resolve_targets(&self.targets, project)
                .into_iter()
                .map(|t| Subject {
                    reference: names.for_target(t),
                    expected_arch: Some(t.arch()),
                })
                .collect()
        } else {
            self.images
                .iter()
                .map(|r| Subject {
                    reference: r.clone(),
                    expected_arch: None,
                })
                .collect()
        };
        let timeout = Duration::from_secs(self.timeout);
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        for subject in &subjects {
            let checks = smoke(sh, project, &engine, subject, timeout);
            if let Some(reason) = &checks.failure {
                failed.push(format!("{} ({reason})", subject.reference));
            }
            rows.extend(checks.rows);
        }
        print!(
            "{}",
            report::table(&["image", "check", "result", "time", "detail"], &rows)
        );
        if !failed.is_empty() {
            bail!("smoke test failed for {}", failed.join("; "));
        }
        Ok(())
    }
}

/// The checks of one image, in order; after the first failure the rest are skipped.
struct Checks {
    label: String,
    rows: Vec<Vec<String>>,
    failure: Option<String>,
}

impl Checks {
    fn run(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<String>) {
        if self.failure.is_some() {
            self.rows.push(vec![
                self.label.clone(),
                name.into(),
                "skip".into(),
                "-".into(),
                String::new(),
            ]);
            return;
        }
        let started = Instant::now();
        // A child killed by Ctrl-C fails its check: report the interruption, not the symptom.
        let result = interrupt::check()
            .and_then(|()| f())
            .map_err(|e| interrupt::check().err().unwrap_or(e));
        let time = report::seconds(started.elapsed());
        let (result, detail) = match result {
            Ok(detail) => ("pass", detail),
            Err(e) => {
                let reason = format!("{name}: {e:#}");
                self.failure = Some(reason.clone());
                ("FAIL", reason)
            }
        };
        self.rows.push(vec![
            self.label.clone(),
            name.into(),
            result.into(),
            time,
            detail,
        ]);
    }
}

fn smoke(
    sh: &Shell,
    project: &Project,
    engine: &Engine,
    subject: &Subject,
    timeout: Duration,
) -> Checks {
    let started = Instant::now();
    let label = subject
        .expected_arch
        .unwrap_or(&subject.reference)
        .to_owned();
    let mut checks = Checks {
        label,
        rows: Vec::new(),
        failure: None,
    };
    let resources = Resources {
        sh,
        engine,
        containers: RefCell::default(),
        volumes: RefCell::default(),
    };
    let reference = subject.reference.as_str();
    let message = format!("smoke {} {}", checks.label, std::process::id());

    let mut facts = None;
    checks.run("image", || {
        let f = inspect(sh, engine, reference, subject.expected_arch)?;
        let detail = format!(
            "linux/{}, user {}, entrypoint {}",
            f.arch, f.user, f.entrypoint
        );
        facts = Some(f);
        Ok(detail)
    });
    let Some(facts) = facts else { return checks };
    // Rows name the architecture; the image's reference stands in the total row.
    checks.label = facts.arch.clone();
    for row in &mut checks.rows {
        row[0] = facts.arch.clone();
    }
    let platform = format!("linux/{}", facts.arch);
    checks.run("binary", || {
        binary_matches(sh, engine, &resources, reference, &facts)
    });
    if let Some(target) = Target::ALL
        .into_iter()
        .find(|t| t.arch() == facts.arch)
        .filter(|t| Target::host() != Some(*t))
    {
        checks.run("emulation", || toolchain::emulation(target));
    }
    checks.run("size", || {
        let budget = image::size_budget(project, &facts.base)?;
        ensure!(
            facts.size <= budget,
            "{} is over the budget of {}",
            report::size(facts.size),
            report::size(budget)
        );
        Ok(format!(
            "{} of {} budget",
            report::size(facts.size),
            report::size(budget)
        ))
    });
    let volume = format!("xtask-smoke-{}-{}", std::process::id(), facts.arch);
    checks.run("migrate up", || {
        resources.volume(&volume)?;
        let out = resources.run_once(&platform, &volume, reference, &["up"])?;
        Ok(out.lines().last().unwrap_or_default().to_owned())
    });

    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let first = format!("{volume}-1");
    checks.run("healthz", || {
        resources.start(&first, &platform, &volume, reference, port)?;
        wait_healthy(&resources, &first, addr, timeout)
    });
    checks.run("hello", || {
        let body = http_get(addr, "/hello")?;
        ensure!(body == "hello", "/hello answered {body:?}");
        Ok("hello".into())
    });
    checks.run("websocket", || websocket_echo(addr, &message));
    checks.run("messages", || messages_contain(addr, &message));
    checks.run("healthcheck", || {
        let entry = facts.entrypoint.clone();
        engine
            .cmd(sh, &["exec", &first, &entry, "healthcheck"])
            .ignore_stdout()
            .run()?;
        Ok(format!("{entry} healthcheck exits 0"))
    });
    checks.run("migrate status", || {
        let out = resources.run_once(&platform, &volume, reference, &["status"])?;
        Ok(out.lines().last().unwrap_or_default().to_owned())
    });
    checks.run("non-root", || process_user(sh, engine, &first));
    checks.run("sigterm", || stop(sh, engine, &first));
    checks.run("restart", || {
        let second = format!("{volume}-2");
        resources.start(&second, &platform, &volume, reference, port)?;
        wait_healthy(&resources, &second, addr, timeout)?;
        messages_contain(addr, &message)?;
        stop(sh, engine, &second)?;
        Ok("the message survived on the volume".into())
    });
    if checks.failure.is_some() {
        resources.print_logs();
    }
    drop(resources);
    let total = report::seconds(started.elapsed());
    let result = if checks.failure.is_some() {
        "FAIL"
    } else {
        "pass"
    };
    checks.rows.push(vec![
        checks.label.clone(),
        "total".into(),
        result.into(),
        total,
        reference.to_owned(),
    ]);
    checks
}

/// What `image inspect` says, checked.
struct Facts {
    arch: String,
    user: String,
    entrypoint: String,
    base: String,
    size: u64,
}

fn inspect(
    sh: &Shell,
    engine: &Engine,
    reference: &str,
    expected_arch: Option<&str>,
) -> anyhow::Result<Facts> {
    let json = engine.inspect_image(sh, reference)?;
    let config = &json["Config"];
    let arch = json["Architecture"].as_str().unwrap_or_default().to_owned();
    if let Some(expected) = expected_arch {
        ensure!(
            arch == expected,
            "the image is for `{arch}`, expected `{expected}`"
        );
    }
    let user = config["User"].as_str().unwrap_or_default().to_owned();
    let uid = user.split(':').next().unwrap_or_default();
    ensure!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the image runs as root (User {user:?})"
    );
    let entrypoint = config["Entrypoint"]
        .as_array()
        .and_then(|e| e.first())
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    ensure!(
        entrypoint.starts_with('/'),
        "no absolute entrypoint (Entrypoint {})",
        config["Entrypoint"]
    );
    let labels = &config["Labels"];
    let missing: Vec<&str> = REQUIRED_LABELS
        .into_iter()
        .filter(|l| {
            labels[format!("org.opencontainers.image.{l}")]
                .as_str()
                .is_none_or(str::is_empty)
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "missing OCI labels: {}",
        missing.join(", ")
    );
    Ok(Facts {
        arch,
        user,
        entrypoint: entrypoint.to_owned(),
        base: labels["org.opencontainers.image.base.name"]
            .as_str()
            .unwrap_or("scratch")
            .to_owned(),
        size: json["Size"].as_u64().unwrap_or_default(),
    })
}

/// Copies the entrypoint out of the image and checks it is a static binary for the
/// image's architecture: a mislabelled image would otherwise run under emulation here and
/// fail on real hardware.
fn binary_matches(
    sh: &Shell,
    engine: &Engine,
    resources: &Resources,
    reference: &str,
    facts: &Facts,
) -> anyhow::Result<String> {
    let target = Target::ALL
        .into_iter()
        .find(|t| t.arch() == facts.arch)
        .with_context(|| format!("unsupported image architecture `{}`", facts.arch))?;
    let name = format!("xtask-smoke-{}-{}-copy", std::process::id(), facts.arch);
    let platform = format!("linux/{}", facts.arch);
    resources.containers.borrow_mut().push(name.clone());
    engine
        .cmd(
            sh,
            &[
                "create",
                "--name",
                &name,
                "--label",
                LABEL,
                "--platform",
                &platform,
                reference,
            ],
        )
        .ignore_stdout()
        .run()?;
    let dir = sh.create_temp_dir()?;
    let local = dir.path().join("entrypoint");
    let source = format!("{name}:{}", facts.entrypoint);
    engine
        .cmd(sh, &["cp", &source, &local.to_string_lossy()])
        .run()?;
    let bytes = std::fs::read(&local)?;
    let linkage = elf::verify(&bytes, target)
        .with_context(|| format!("{} in this linux/{} image", facts.entrypoint, facts.arch))?;
    Ok(format!("{:?} {} executable", linkage, target.machine()))
}

/// Containers and volumes of one smoke test, removed when it ends however it ends.
struct Resources<'a> {
    sh: &'a Shell,
    engine: &'a Engine,
    containers: RefCell<Vec<String>>,
    volumes: RefCell<Vec<String>>,
}

impl Resources<'_> {
    fn volume(&self, name: &str) -> anyhow::Result<()> {
        self.volumes.borrow_mut().push(name.to_owned());
        self.engine
            .cmd(self.sh, &["volume", "create", "--label", LABEL, name])
            .ignore_stdout()
            .run()?;
        Ok(())
    }

    /// The locked-down container options. The image's HEALTHCHECK is run by the
    /// `healthcheck` check itself rather than on the engine's timer (podman needs systemd
    /// for that timer), so the result does not depend on the interval.
    fn run_args<'s>(&self, platform: &'s str, mount: &'s str) -> Vec<&'s str> {
        vec![
            "--label",
            LABEL,
            "--platform",
            platform,
            "--network",
            "host",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--no-healthcheck",
            "--volume",
            mount,
        ]
    }

    /// Runs the companion `migrate` with `args` to completion and returns its output.
    fn run_once(
        &self,
        platform: &str,
        volume: &str,
        reference: &str,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let mount = format!("{volume}:/data");
        let mut all = vec!["run", "--rm", "--entrypoint", "/usr/local/bin/migrate"];
        all.extend(self.run_args(platform, &mount));
        all.push(reference);
        all.extend(args);
        let out = self.engine.cmd(self.sh, &all).ignore_status().output()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "migrate {} exited with {}: {} {}",
                args.join(" "),
                out.status,
                text,
                err.trim()
            );
        }
        Ok(text)
    }

    /// Starts the service detached on `port`, bound to loopback only (host networking).
    fn start(
        &self,
        name: &str,
        platform: &str,
        volume: &str,
        reference: &str,
        port: u16,
    ) -> anyhow::Result<()> {
        self.containers.borrow_mut().push(name.to_owned());
        let mount = format!("{volume}:/data");
        let port = format!("PORT={port}");
        let mut all = vec![
            "run",
            "--detach",
            "--name",
            name,
            "--env",
            &port,
            "--env",
            "BIND_ADDRESS=127.0.0.1",
        ];
        all.extend(self.run_args(platform, &mount));
        all.push(reference);
        self.engine.cmd(self.sh, &all).ignore_stdout().run()?;
        Ok(())
    }

    fn print_logs(&self) {
        for name in self
            .containers
            .borrow()
            .iter()
            .filter(|n| !n.ends_with("-copy"))
        {
            if let Ok(out) = self
                .engine
                .cmd(self.sh, &["logs", name])
                .ignore_status()
                .output()
            {
                eprintln!("--- logs of {name} ---");
                eprint!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Resources<'_> {
    fn drop(&mut self) {
        for name in self.containers.borrow().iter() {
            let _ = self
                .engine
                .cmd(self.sh, &["rm", "--force", "--volumes", name])
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        for name in self.volumes.borrow().iter() {
            let _ = self
                .engine
                .cmd(self.sh, &["volume", "rm", "--force", name])
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(8080, |a| a.port())
}

/// `(running, exit code)` of a container.
fn state(sh: &Shell, engine: &Engine, name: &str) -> anyhow::Result<(bool, i64)> {
    let out = engine
        .cmd(
            sh,
            &[
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.ExitCode}}",
                name,
            ],
        )
        .read()?;
    let (running, code) = out
        .trim()
        .split_once(' ')
        .context("unexpected inspect output")?;
    Ok((running == "true", code.parse().unwrap_or(-1)))
}

fn wait_healthy(
    resources: &Resources,
    name: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        interrupt::check()?;
        if http_get(addr, "/healthz").is_ok() {
            return Ok(format!(
                "answered after {}",
                report::seconds(started.elapsed())
            ));
        }
        let (running, code) = state(resources.sh, resources.engine, name)?;
        ensure!(
            running,
            "the container exited with status {code} before /healthz answered"
        );
        ensure!(
            started.elapsed() < timeout,
            "no answer from http://{addr}/healthz within {}s",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then the container must exit 0 within `STOP_DEADLINE`.
fn stop(sh: &Shell, engine: &Engine, name: &str) -> anyhow::Result<String> {
    engine
        .cmd(sh, &["kill", "--signal", "TERM", name])
        .ignore_stdout()
        .run()?;
    let started = Instant::now();
    loop {
        let (running, code) = state(sh, engine, name)?;
        if !running {
            ensure!(code == 0, "exited with status {code} after SIGTERM");
            return Ok(format!(
                "exit 0 after {}",
                report::seconds(started.elapsed())
            ));
        }
        ensure!(
            started.elapsed() < STOP_DEADLINE,
            "still running {}s after SIGTERM",
            STOP_DEADLINE.as_secs()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The real user of the container's main process, from the host's /proc.
fn process_user(sh: &Shell, engine: &Engine, name: &str) -> anyhow::Result<String> {
    let pid = engine
        .cmd(sh, &["inspect", "--format", "{{.State.Pid}}", name])
        .read()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .context("reading the process status")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .context("no Uid line")?;
    let uid = uid.split_whitespace().next().unwrap_or_default();
    ensure!(uid != "0", "the service runs as root");
    Ok(format!("uid {uid}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut response = agent().get(format!("http://{addr}{path}")).call()?;
    let body = response.body_mut().read_to_string()?;
    ensure!(
        response.status().is_success(),
        "{path} answered {}: {body}",
        response.status()
    );
    Ok(body)
}

pub fn websocket_echo(addr: SocketAddr, message: &str) -> anyhow::Result<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let started = Instant::now();
    let (mut socket, _) =
        tungstenite::client(format!("ws://{addr}/ws"), stream).context("websocket handshake")?;
    socket.send(tungstenite::Message::text(message))?;
    let reply = socket.read().context("no echo")?;
    ensure!(
        reply.to_text()? == message,
        "echoed {reply:?}, sent {message:?}"
    );
    let _ = socket.close(None);
    Ok(format!(
        "round trip {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ))
}

fn messages_contain(addr: SocketAddr, message: &str) -> anyhow::Result<String> {
    let body = http_get(addr, "/messages?limit=50")?;
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&body).context("/messages is not a JSON list")?;
    ensure!(
        list.iter().any(|m| m["body"] == message),
        "{message:?} is not in /messages: {body}"
    );
    Ok(format!("{} message(s), ours included", list.len()))
}
