//! `cargo xtask smoke-test`: each architecture's image as a real container, checked the way
//! production would use it: read-only, non-root, no capabilities, host network on loopback.

mod results;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use xshell::Shell;

use crate::cli::SmokeArgs;
use crate::interrupt::{self, Interrupted, Undo};
use crate::model::project::Project;
use crate::oci::reference::ImageNames;
use crate::report;
use crate::tools::containers::Resources;
use crate::tools::engine::{Engine, Unreachable};
use crate::tools::inspect;
use crate::tools::probe::{self, free_port, http_get, messages_contain, websocket_echo};
use results::{Check, Outcome};
use tiny_cross::elf;
use tiny_cross::qemu;
use tiny_cross::target::Target;

/// The labels every image must carry.
const REQUIRED_LABELS: [&str; 6] = [
    "title", "version", "revision", "created", "source", "licenses",
];

struct Subject {
    reference: String,
    expected_arch: Option<&'static str>,
    image: inspect::Image,
}

impl SmokeArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let engine = Engine::detect(sh, self.engine)?;
        let _whole_run = engine.remover().whole_run();
        if let Some(notice) = engine.sweep_leftovers(sh)? {
            eprintln!("  {notice}");
        }
        let subjects = self.subjects(sh, project, &engine)?;
        eprintln!("  engine: {}", engine.describe());
        let timeout = Duration::from_secs(self.timeout);
        eprintln!("{}", results::live_header());
        let mut images = Vec::new();
        for subject in &subjects {
            images.push(smoke(sh, project, &engine, subject, timeout)?);
        }
        let failed: Vec<String> = images
            .iter()
            .filter_map(|i| Some(format!("{} ({})", i.image, i.failure.as_ref()?)))
            .collect();
        let run = results::Run {
            schema: results::SCHEMA,
            passed: failed.is_empty(),
            engine: engine.describe(),
            images,
        };
        // Printed whether or not every check passed: a failed run's results matter most.
        // Where stdout and stderr are both the terminal, the rows are on it already.
        if self.json {
            println!("{}", serde_json::to_string_pretty(&run)?);
        } else if !report::on_one_terminal() {
            print!("{}", run.table());
        }
        if !failed.is_empty() {
            bail!("smoke test failed for {}", failed.join("; "));
        }
        Ok(())
    }

    /// The images to test, each found in the engine before any container starts.
    fn subjects(
        &self,
        sh: &Shell,
        project: &Project,
        engine: &Engine,
    ) -> anyhow::Result<Vec<Subject>> {
        let mut subjects = Vec::new();
        if self.images.is_empty() {
            let name = project.image_name();
            let names = ImageNames::new(self.tag.as_deref(), None, name, &project.package.version)?;
            let names = if self.fast { names.dev()? } else { names };
            let tag = self
                .tag
                .as_ref()
                .map(|t| format!(" --tag {t}"))
                .unwrap_or_default()
                + if self.fast { " --fast" } else { "" };
            for target in project.targets(&self.targets) {
                let reference = names.for_target(target);
                let image = engine.find_image(sh, &reference)?.with_context(|| {
                    format!(
                        "no image {reference} in {}: build it with `cargo xtask image --target {}{tag}`",
                        engine.name(),
                        target.arch()
                    )
                })?;
                subjects.push(Subject {
                    reference,
                    expected_arch: Some(target.arch()),
                    image,
                });
            }
        } else {
            for reference in &self.images {
                let image = engine.find_image(sh, reference)?.with_context(|| {
                    format!(
                        "no image {reference} in {}: pull it (`{} pull {reference}`) or build it first",
                        engine.name(),
                        engine.name()
                    )
                })?;
                subjects.push(Subject {
                    reference: reference.to_string(),
                    expected_arch: None,
                    image,
                });
            }
        }
        Ok(subjects)
    }
}

/// A step that leaves nothing worth checking further: a signal, or the engine gone.
fn is_fatal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Interrupted>().is_some() || e.downcast_ref::<Unreachable>().is_some()
}

/// The checks of one image, in order; after the first failure the rest are skipped. Each
/// shows its elapsed time while it runs and prints its row on stderr when it ends.
struct Checks {
    label: String,
    checks: Vec<Check>,
    failure: Option<String>,
    /// Why the whole run must stop, when it must.
    fatal: Option<anyhow::Error>,
}

impl Checks {
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
        let ticking = report::ticking(format!("{} {name}", self.label));
        // A check that a signal cut short failed because of it, whatever it says.
        let result = interrupt::check()
            .and_then(|()| f())
            .map_err(|e| interrupt::check().err().unwrap_or(e));
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
        eprintln!("{}", results::live_row(&self.label, &check));
        self.checks.push(check);
    }
}

/// The checks of one image; `Err` when the run must stop (a signal, the engine gone), after
/// removing what the checks created.
fn smoke(
    sh: &Shell,
    project: &Project,
    engine: &Engine,
    subject: &Subject,
    timeout: Duration,
) -> anyhow::Result<results::Image> {
    let started = Instant::now();
    let label = subject
        .expected_arch
        .unwrap_or(&subject.reference)
        .to_owned();
    let mut checks = Checks {
        label,
        checks: Vec::new(),
        failure: None,
        fatal: None,
    };
    let resources = Resources::new(sh, engine, timeout);
    let reference = subject.reference.as_str();
    let message = format!("smoke {} {}", checks.label, std::process::id());
    let image = |checks: Checks, arch: Option<String>| {
        let total = results::Image {
            image: reference.to_owned(),
            arch,
            passed: checks.failure.is_none(),
            seconds: started.elapsed().as_secs_f64(),
            failure: checks.failure,
            checks: checks.checks,
        };
        eprintln!("{}", results::live_row(total.label(), &total.total()));
        total
    };

    let mut facts = None;
    checks.run("image", || {
        let f = read_facts(&subject.image, subject.expected_arch)?;
        let detail = format!(
            "linux/{}, user {}, entrypoint {}",
            f.arch, f.user, f.entrypoint
        );
        facts = Some(f);
        Ok(detail)
    });
    let Some(facts) = facts else {
        if let Some(fatal) = checks.fatal.take() {
            return Err(fatal);
        }
        return Ok(image(checks, subject.expected_arch.map(str::to_owned)));
    };
    // Rows name the architecture; the image's reference stands in the total row.
    checks.label = facts.arch.clone();
    let platform = format!("linux/{}", facts.arch);
    let target = Target::from_arch(&facts.arch);
    checks.run("binary", || {
        binary_matches(sh, &resources, target, &platform, reference, &facts)
    });
    if let Some(foreign) = target.filter(|t| Target::host() != Some(*t)) {
        checks.run("emulation", || Ok(qemu::emulation(foreign)?));
    }
    checks.run("size", || {
        let budget = project.size_budget(&facts.base)?;
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
    if let Some(fatal) = checks.fatal.take() {
        return Err(fatal);
    }
    checks.run("migrate up", || {
        resources.volume(&volume)?;
        let name = format!("{volume}-migrate-up");
        let out = resources.run_once(&name, &platform, &volume, reference, &["up"])?;
        Ok(out.lines().last().unwrap_or_default().to_owned())
    });

    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let first = format!("{volume}-1");
    checks.run("healthz", || {
        resources.start(&first, &platform, &volume, reference, port)?;
        resources.wait_healthy(&first, addr, timeout)
    });
    checks.run("hello", || {
        let body = http_get(addr, "/hello")?;
        ensure!(body == "hello", "/hello answered {body:?}");
        Ok("hello".into())
    });
    checks.run("websocket", || websocket_echo(addr, &message));
    checks.run("messages", || messages_contain(addr, &message));
    checks.run("message limit", || {
        let (big, detail) = probe::websocket_limit(addr, &message)?;
        messages_contain(addr, &big)?;
        Ok(format!("{detail}; the big one is listed"))
    });
    checks.run("body limit", || probe::body_limit(addr));
    checks.run("healthcheck", || {
        let entry = facts.entrypoint.clone();
        engine.run(sh, &["exec", &first, &entry, "healthcheck"])?;
        Ok(format!("{entry} healthcheck exits 0"))
    });
    checks.run("migrate status", || {
        let name = format!("{volume}-migrate-status");
        let out = resources.run_once(&name, &platform, &volume, reference, &["status"])?;
        Ok(out.lines().last().unwrap_or_default().to_owned())
    });
    checks.run("non-root", || resources.process_user(&first));
    checks.run("sigterm", || resources.stop(&first));
    checks.run("restart", || {
        let second = format!("{volume}-2");
        resources.start(&second, &platform, &volume, reference, port)?;
        resources.wait_healthy(&second, addr, timeout)?;
        messages_contain(addr, &message)?;
        resources.stop(&second)?;
        Ok("the message survived on the volume".into())
    });
    if let Some(fatal) = checks.fatal.take() {
        drop(resources);
        return Err(fatal);
    }
    if checks.failure.is_some() {
        resources.print_logs();
    }
    drop(resources);
    Ok(image(checks, Some(facts.arch.clone())))
}

/// What `image inspect` says, checked.
struct Facts {
    arch: String,
    user: String,
    entrypoint: String,
    base: String,
    size: u64,
}

fn read_facts(image: &inspect::Image, expected_arch: Option<&str>) -> anyhow::Result<Facts> {
    let arch = image.architecture.clone();
    if let Some(expected) = expected_arch {
        ensure!(
            arch == expected,
            "the image is for `{arch}`, expected `{expected}`"
        );
    }
    let user = image.config.user.clone().unwrap_or_default();
    let uid = user.split(':').next().unwrap_or_default();
    ensure!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the image runs as root (User {user:?})"
    );
    let entrypoint = image
        .config
        .entrypoint
        .as_ref()
        .and_then(|e| e.first())
        .map(String::as_str)
        .unwrap_or_default();
    ensure!(
        entrypoint.starts_with('/'),
        "no absolute entrypoint (Entrypoint {:?})",
        image.config.entrypoint
    );
    let missing: Vec<&str> = REQUIRED_LABELS
        .into_iter()
        .filter(|l| {
            image
                .label(&format!("org.opencontainers.image.{l}"))
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
        // Without the label the strictest budget applies.
        base: image
            .label("org.opencontainers.image.base.name")
            .unwrap_or("scratch")
            .to_owned(),
        size: image.size,
    })
}

/// Copies the entrypoint out of the image and checks it is a static binary for the
/// image's architecture: a mislabelled image would otherwise run under emulation here and
/// fail on real hardware.
fn binary_matches(
    sh: &Shell,
    resources: &Resources,
    target: Option<Target>,
    platform: &str,
    reference: &str,
    facts: &Facts,
) -> anyhow::Result<String> {
    let target =
        target.with_context(|| format!("unsupported image architecture `{}`", facts.arch))?;
    let name = format!("xtask-smoke-{}-{}-copy", std::process::id(), facts.arch);
    let dir = sh.create_temp_dir()?;
    let _removed = Undo::remove_dir(dir.path());
    let local = dir.path().join("entrypoint");
    resources.copy_out(&name, platform, reference, &facts.entrypoint, &local)?;
    let bytes = std::fs::read(&local)?;
    let linkage = elf::verify(&bytes, target)
        .with_context(|| format!("{} in this {platform} image", facts.entrypoint))?;
    Ok(format!("{:?} {} executable", linkage, target.machine()))
}
