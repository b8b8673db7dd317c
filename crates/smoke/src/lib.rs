//! Smoke tests of container images, run the way production runs them: what
//! container-structure-test checks of an image, then the image started as a real container,
//! locked down (read-only root, non-root, no capabilities, host network bound to loopback),
//! probed, stopped with SIGTERM and started again on the same volumes.
//!
//! Each image is checked against its declaration ([`tiny_declare::Image`]): labels, a
//! non-root user, the platform, static binaries of the right machine and ABI (copied out and
//! read as ELF), the size budget, then its declared commands; a service is started, its
//! health path awaited, its declared HTTP probes and the caller's own checks ([`Own`]) run,
//! its `healthcheck` executed, then it must exit 0 on SIGTERM in time and come back on the
//! same volumes for the checks marked `after-restart`; a job must run to exit 0. Under qemu
//! the same checks get [`tiny_cross::qemu::SLOWDOWN`] times the time. After the first
//! failure an image's remaining checks are skipped, and whatever was made (containers,
//! volumes) is removed however the run ends.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # fn main() -> anyhow::Result<()> {
//! # let declared: tiny_declare::Image = unimplemented!();
//! let sh = xshell::Shell::new()?;
//! let engine = tiny_engine::Engine::detect(&sh, None)?;
//! let reference = "app:1.0-amd64";
//! let image = engine.find_image(&sh, reference)?.expect("built before");
//! let subject = tiny_smoke::Subject {
//!     declared,
//!     reference: reference.to_owned(),
//!     expected_arch: Some("amd64"),
//!     image,
//! };
//! let options = tiny_smoke::Options {
//!     timeout: Duration::from_secs(30),
//!     own: vec![tiny_smoke::Own {
//!         name: "hello says hello",
//!         after_restart: false,
//!         run: Box::new(|s| {
//!             let answer = s.http("GET", "/hello", [], None)?;
//!             anyhow::ensure!(answer.body.contains("hello"), "answered {answer:?}");
//!             Ok(format!("{}", answer.status))
//!         }),
//!     }],
//!     names: "app-smoke".to_owned(),
//! };
//! let result = tiny_smoke::check_image(&sh, &engine, &subject, &options, &())?;
//! for check in &result.checks {
//!     println!("{} {} {}", check.name, check.result.word(), check.detail);
//! }
//! assert!(result.passed, "{:?}", result.failure);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod facts;
pub mod results;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use tiny_cross::qemu;
use tiny_cross::target::Target;
use tiny_declare::{self as declared, Check as Declared, Expect, Role};
use tiny_engine::{Engine, Resources, inspect, probe};
use xshell::Shell;

pub use facts::REQUIRED_LABELS;
use results::{Check, Outcome};

/// One image to check: the engine's view of it and the declaration it is held to.
pub struct Subject {
    /// The declaration it is checked against.
    pub declared: declared::Image,
    /// The reference the engine knows it by.
    pub reference: String,
    /// The platform it must be (`amd64`, `armv7`, as [`Target::short`] names them), when the
    /// caller knows: a tag naming one platform over an image of another fails the first
    /// check.
    pub expected_arch: Option<&'static str>,
    /// What the engine says of it.
    pub image: inspect::Image,
}

/// What one of the caller's own checks of a running service is given.
pub struct Running<'a> {
    /// Where the service listens (loopback, a free port).
    pub addr: SocketAddr,
    /// A text unique to this run and image, for a check to store and find again.
    pub token: &'a str,
}

pub use tiny_engine::probe::Answer;

impl Running<'_> {
    /// Sends `method path` to the service, with `headers` and `body` if any; the answer
    /// whatever its status, a redirect not followed (see [`tiny_engine::probe::http`]).
    pub fn http<'h>(
        &self,
        method: &str,
        path: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: Option<&str>,
    ) -> anyhow::Result<Answer> {
        Ok(probe::http(self.addr, method, path, headers, body)?)
    }
}

/// A check of the running service written in Rust, for what declared HTTP probes and
/// commands cannot say (a websocket round trip, a message log); its `Ok` is the row's detail.
pub struct Own {
    /// The row's name.
    pub name: &'static str,
    /// Run after the service was stopped and started again on the same volumes.
    pub after_restart: bool,
    /// What it does.
    pub run: Probe,
}

/// What a check does: a closure, so checks can share state (an id stored before the restart
/// and looked up after it, through an `Arc<Mutex<_>>` both capture).
pub type Probe = Box<dyn Fn(&Running<'_>) -> anyhow::Result<String>>;

/// How a run is checked, besides the declaration.
pub struct Options {
    /// How long a container may take to answer its health path, and to stop (multiplied by
    /// [`qemu::SLOWDOWN`] under emulation).
    pub timeout: Duration,
    /// The caller's own checks of a service, run after the declared HTTP probes.
    pub own: Vec<Own>,
    /// What the containers and volumes of the run are named after:
    /// `<names>-<process id>-<arch>[-…]`, so that a user who finds one knows whose it is.
    pub names: String,
}

/// What a caller sees of a run as it goes: `()` sees nothing.
pub trait Observer {
    /// A check of the image whose rows are labelled `label` starts; what this returns is
    /// dropped when the check ends (a progress line that ticks, say).
    fn started(&self, label: &str, check: &str) -> Box<dyn std::any::Any> {
        let _ = (label, check);
        Box::new(())
    }

    /// A check ended (or was skipped); last comes the image's total ([`results::Image::total`]).
    fn ended(&self, label: &str, check: &Check) {
        let _ = (label, check);
    }

    /// A check of the image failed: what one of its containers printed, for the reader.
    fn logs(&self, label: &str, container: &str, output: &str) {
        let _ = (label, container, output);
    }
}

impl Observer for () {}

/// A step that leaves nothing worth checking further: a signal, or the engine gone.
fn is_fatal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tiny_interrupt::Interrupted>().is_some()
        || matches!(
            e.downcast_ref::<tiny_engine::Error>(),
            Some(tiny_engine::Error::Interrupted | tiny_engine::Error::Unreachable(_))
        )
}

/// The checks of one image, in order; after the first failure the rest are skipped.
struct Checks<'a> {
    label: String,
    checks: Vec<Check>,
    failure: Option<String>,
    /// Why the whole run must stop, when it must.
    fatal: Option<anyhow::Error>,
    observer: &'a dyn Observer,
}

impl Checks<'_> {
    fn run(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<String>) {
        if self.failure.is_some() {
            self.record(Check {
                name: name.into(),
                result: Outcome::Skip,
                seconds: None,
                detail: String::new(),
            });
            return;
        }
        let started = Instant::now();
        let ticking = self.observer.started(&self.label, name);
        // A check that a signal cut short failed because of it, whatever it says.
        let result = tiny_interrupt::check()
            .map_err(anyhow::Error::from)
            .and_then(|()| f())
            .map_err(|e| tiny_interrupt::check().err().map_or(e, anyhow::Error::from));
        drop(ticking);
        let seconds = Some(started.elapsed().as_secs_f64());
        let (result, detail) = match result {
            Ok(detail) => (Outcome::Pass, detail),
            Err(e) if is_fatal(&e) => {
                self.failure = Some(format!("{name}: {e:#}"));
                self.fatal = Some(e);
                return;
            }
            Err(e) => {
                let reason = format!("{name}: {e:#}");
                self.failure = Some(reason.clone());
                (Outcome::Fail, reason)
            }
        };
        self.record(Check {
            name: name.into(),
            result,
            seconds,
            detail,
        });
    }

    fn record(&mut self, check: Check) {
        self.observer.ended(&self.label, &check);
        self.checks.push(check);
    }

    /// Ends the run with the reason it must stop, if there is one.
    fn stop_if_fatal(&mut self) -> Result<(), tiny_engine::Error> {
        match self.fatal.take() {
            Some(fatal) => Err(fatal.into()),
            None => Ok(()),
        }
    }
}

/// Checks one image (see the crate's documentation): the result of every check, or, when
/// the run must stop (a signal, the engine gone), that error, after removing what the
/// checks made.
pub fn check_image(
    sh: &Shell,
    engine: &Engine,
    subject: &Subject,
    options: &Options,
    observer: &dyn Observer,
) -> Result<results::Image, tiny_engine::Error> {
    let started = Instant::now();
    let mut checks = Checks {
        label: subject
            .expected_arch
            .unwrap_or(&subject.reference)
            .to_owned(),
        checks: Vec::new(),
        failure: None,
        fatal: None,
        observer,
    };
    // Under qemu everything takes longer: the same checks, with more time.
    let emulated = Target::from_arch(
        &subject.image.architecture,
        subject.image.variant.as_deref(),
    )
    .is_some_and(|t| !t.runs_natively());
    let timeout = match emulated {
        true => options.timeout * qemu::SLOWDOWN,
        false => options.timeout,
    };
    let resources = Resources::new(sh, engine, timeout);
    let reference = subject.reference.as_str();
    let token = format!("smoke {} {}", checks.label, std::process::id());
    let image = |checks: Checks, arch: Option<String>| {
        let total = results::Image {
            image: reference.to_owned(),
            arch,
            passed: checks.failure.is_none(),
            seconds: started.elapsed().as_secs_f64(),
            failure: checks.failure,
            checks: checks.checks,
        };
        observer.ended(total.label(), &total.total());
        total
    };

    let declared = &subject.declared;
    let mut facts = None;
    checks.run("image", || {
        let f = facts::read_facts(&subject.image, subject.expected_arch)?;
        let program = &declared.entrypoint.program;
        ensure!(
            f.entrypoint == program.as_str(),
            "the entrypoint is {}, [workspace.metadata.xtask.images.{}] declares {program}",
            f.entrypoint,
            declared.name
        );
        let detail = format!(
            "linux/{}, user {}, entrypoint {}",
            f.arch, f.user, f.entrypoint
        );
        facts = Some(f);
        Ok(detail)
    });
    let Some(facts) = facts else {
        checks.stop_if_fatal()?;
        return Ok(image(checks, subject.expected_arch.map(str::to_owned)));
    };
    // Rows name the architecture; the image's reference stands in the total row.
    checks.label = facts.arch.clone();
    let target = facts.target();
    let platform = facts.platform();
    checks.run("binary", || {
        let copies = format!(
            "{}-{}-{}-copy",
            options.names,
            std::process::id(),
            facts.arch
        );
        facts::binary_matches(sh, &resources, reference, &facts, declared, &copies)
    });
    if let Some(foreign) = target.filter(|t| !t.runs_natively()) {
        checks.run("emulation", || Ok(qemu::emulation(foreign)?));
    }
    checks.run("size", || {
        let base = match facts.base.as_str() {
            "scratch" => declared::Base::Scratch,
            _ => declared::Base::Alpine,
        };
        let size = tiny_oci::progress::size;
        let Some(budget) = declared.size_budget(base) else {
            return Ok(format!("{} (no budget)", size(facts.size)));
        };
        ensure!(
            facts.size <= budget,
            "{} is over the budget of {}",
            size(facts.size),
            size(budget)
        );
        Ok(format!("{} of {} budget", size(facts.size), size(budget)))
    });
    let volume = format!("{}-{}-{}", options.names, std::process::id(), facts.arch);
    checks.stop_if_fatal()?;
    // Every declared volume, each on a volume of its own, the same for every container.
    let mounts: Vec<String> = declared
        .volumes
        .iter()
        .enumerate()
        .map(|(i, path)| format!("{volume}-v{i}:{path}"))
        .collect();
    checks.run("volumes", || {
        for i in 0..mounts.len() {
            resources.volume(&format!("{volume}-v{i}"))?;
        }
        Ok(format!("{} volume(s)", mounts.len()))
    });
    let commands = |checks: &mut Checks, after: bool| {
        for (i, check) in declared.checks.iter().enumerate() {
            let Declared::Command(c) = check else {
                continue;
            };
            if c.after_restart != after {
                continue;
            }
            checks.run(&check.to_string(), || {
                let name = format!("{volume}-command-{i}");
                let argv = c.argv.to_vec();
                let (code, out) =
                    resources.run_once(&name, &platform, &mounts, reference, &argv)?;
                ensure!(
                    code == i64::from(c.exit),
                    "exited with status {code}, expected {}: {} {}",
                    c.exit,
                    out.stdout.trim(),
                    out.stderr.trim()
                );
                expect(c.expect.as_ref(), &out.stdout)?;
                Ok(last_line(&out.stdout))
            });
        }
    };
    let port = probe::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let running = Running {
        addr,
        token: &token,
    };
    let http = |checks: &mut Checks, after: bool| {
        for check in &declared.checks {
            let Declared::Http(c) = check else { continue };
            if c.after_restart != after {
                continue;
            }
            checks.run(&check.to_string(), || {
                let method = c.method.as_str();
                let headers = c.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                let answer = probe::http(addr, method, &c.path, headers, c.body.as_deref())?;
                ensure!(
                    answer.status == c.status,
                    "answered {}, expected {}: {}",
                    answer.status,
                    c.status,
                    declared::excerpt(&answer.body)
                );
                expect(c.expect.as_ref(), &answer.body)?;
                Ok(format!("{}", answer.status))
            });
        }
        for check in options.own.iter().filter(|o| o.after_restart == after) {
            checks.run(check.name, || (check.run)(&running));
        }
    };
    commands(&mut checks, false);
    match &declared.role {
        Role::Job => {
            checks.run("job", || {
                let name = format!("{volume}-job");
                let (code, out) = resources.run_once(&name, &platform, &mounts, reference, &[])?;
                ensure!(
                    code == 0,
                    "{} exited with status {code}: {} {}",
                    declared.entrypoint,
                    out.stdout.trim(),
                    out.stderr.trim()
                );
                Ok(format!("{} exits 0", declared.entrypoint))
            });
            commands(&mut checks, true);
        }
        Role::Service { health, .. } => {
            let env = declared.listen_on_loopback(port);
            let env = env.as_slice();
            let first = format!("{volume}-1");
            checks.run(health, || {
                resources.start(&first, &platform, &mounts, reference, env)?;
                Ok(resources.wait_healthy(&first, addr, health, timeout)?)
            });
            http(&mut checks, false);
            if let Some(healthcheck) = &declared.healthcheck {
                checks.run("healthcheck", || {
                    let argv = healthcheck.to_vec();
                    let mut exec = vec!["exec", first.as_str()];
                    exec.extend(argv.iter().map(String::as_str));
                    engine.run(sh, &exec)?;
                    Ok(format!("{healthcheck} exits 0"))
                });
            }
            checks.run("non-root", || Ok(resources.process_user(&first)?));
            checks.run("read-only", || Ok(resources.read_only(&first)?));
            checks.run("sigterm", || Ok(resources.stop(&first)?));
            let after = declared.checks.iter().any(Declared::after_restart)
                || options.own.iter().any(|o| o.after_restart);
            if !mounts.is_empty() && after {
                let second = format!("{volume}-2");
                checks.run("restart", || {
                    resources.start(&second, &platform, &mounts, reference, env)?;
                    Ok(resources.wait_healthy(&second, addr, health, timeout)?)
                });
                http(&mut checks, true);
                checks.run("sigterm again", || Ok(resources.stop(&second)?));
            }
            commands(&mut checks, true);
        }
    }
    if let Err(fatal) = checks.stop_if_fatal() {
        drop(resources);
        return Err(fatal);
    }
    if checks.failure.is_some() {
        for (container, output) in resources.logs() {
            observer.logs(&checks.label, &container, &output);
        }
    }
    drop(resources);
    Ok(image(checks, Some(facts.arch.clone())))
}

/// The last line of a command's output: a row's detail.
fn last_line(out: &str) -> String {
    out.trim().lines().last().unwrap_or_default().to_owned()
}

fn expect(expect: Option<&Expect>, got: &str) -> anyhow::Result<()> {
    match expect.map(|e| e.check(got)) {
        Some(Err(e)) => bail!("{e}"),
        _ => Ok(()),
    }
}
