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
use crate::oci::reference::{ImageNames, ImageRef};
use crate::oci::signing;
use crate::report;
use crate::tools::probe::{self, free_port};
use results::{Check, Outcome};
use tiny_cross::elf;
use tiny_cross::qemu;
use tiny_cross::target::Target;
use tiny_declare::{self as declared, Check as Declared, Expect, Role};
use tiny_engine::Engine;
use tiny_engine::Resources;
use tiny_engine::inspect;

/// What a check of the running service is given (the project's own checks, registered in
/// `crate::ours`).
pub struct Running<'a> {
    pub addr: SocketAddr,
    /// A text unique to this run (the message it stores and finds again).
    pub token: &'a str,
}

/// A check of the running service; its `Ok` is the row's detail.
pub struct Own {
    pub name: &'static str,
    /// Run after the service was stopped and started again on the same volumes.
    pub after_restart: bool,
    pub run: Probe,
}

/// What a check does: a closure, so checks can share state (an id stored before the restart
/// and looked up after it, through an `Arc<Mutex<_>>` both capture).
pub type Probe = Box<dyn Fn(&Running<'_>) -> anyhow::Result<String>>;

/// The labels every image must carry.
const REQUIRED_LABELS: [&str; 6] = [
    "title", "version", "revision", "created", "source", "licenses",
];

struct Subject {
    /// The declaration it is checked against.
    declared: declared::Image,
    reference: String,
    expected_arch: Option<&'static str>,
    image: inspect::Image,
}

impl SmokeArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let key = self.require_signature.as_deref();
        let key = key.map(|k| Ok::<_, anyhow::Error>((signing::public_key(k)?, k)));
        let key = key.transpose()?;
        let engine = Engine::detect(sh, self.engine.map(Into::into))?;
        let _whole_run = engine.remover().whole_run();
        if let Some(notice) = engine.sweep_leftovers(sh)? {
            eprintln!("  {notice}");
        }
        let subjects = self.subjects(sh, project, &engine)?;
        if let Some((key, path)) = &key {
            for subject in &subjects {
                signing::require_signed_engine_image(
                    sh,
                    &subject.reference,
                    &subject.image,
                    key,
                    path,
                )?;
            }
        }
        eprintln!("  engine: {}", engine.describe());
        let timeout = Duration::from_secs(self.timeout);
        eprintln!("{}", results::live_header());
        let mut images = Vec::new();
        for subject in &subjects {
            let project = project.for_image(&subject.declared);
            images.push(smoke(sh, &project, &engine, subject, timeout)?);
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
        // Declared names select declared images; anything else is a reference to test.
        let (named, references): (Vec<&ImageRef>, Vec<&ImageRef>) = self
            .images
            .iter()
            .partition(|r| project.image_names().contains(&r.to_string().as_str()));
        if !references.is_empty() && (!self.targets.is_empty() || self.tag.is_some() || self.fast) {
            bail!(
                "--target, --tag and --fast choose among the declared images' tags: give \
                 --image {} by name, or leave them out",
                project.image_names().join("|")
            );
        }
        if references.is_empty() {
            let named: Vec<String> = named.iter().map(|r| r.to_string()).collect();
            let given = match self.tag {
                Some(_) => &["--tag"][..],
                None => &[],
            };
            for declared in project.select_one_if(&named, given)? {
                self.declared_subjects(sh, &project.for_image(&declared), engine, &mut subjects)?;
            }
        }
        for reference in references {
            let text = reference.to_string();
            let named = text.split('@').next().unwrap_or(&text);
            let repository = match named.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => repository,
                _ => named,
            };
            let last = repository.rsplit('/').next().unwrap_or(repository);
            let image = engine.find_image(sh, &text)?.with_context(|| {
                format!(
                    "no image {reference} in {}: pull it (`{} pull {reference}`) or build it first",
                    engine.name(),
                    engine.name()
                )
            })?;
            // The declared image its repository is named after, else the one whose
            // entrypoint it runs.
            let entrypoint = image.config.entrypoint.as_ref().and_then(|e| e.first());
            let by_entrypoint: Vec<&declared::Image> = project
                .images
                .iter()
                .filter(|i| Some(&i.entrypoint.program.to_string()) == entrypoint)
                .collect();
            let declared = match project.images.iter().find(|i| i.name == last) {
                Some(declared) => declared,
                None => match by_entrypoint[..] {
                    [one] => one,
                    _ => bail!(
                        "--image {reference}: neither its repository `{last}` nor its \
                         entrypoint names one declared image (declared: {}): tag it as one of \
                         them",
                        project.image_names().join(", ")
                    ),
                },
            };
            subjects.push(Subject {
                declared: declared.clone(),
                reference: reference.to_string(),
                expected_arch: None,
                image,
            });
        }
        Ok(subjects)
    }

    /// Each target's tag of the current declared image.
    fn declared_subjects(
        &self,
        sh: &Shell,
        project: &Project,
        engine: &Engine,
        subjects: &mut Vec<Subject>,
    ) -> anyhow::Result<()> {
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
                    "no image {reference} in {}: build it with `cargo xtask image --image {name} --target {}{tag}`",
                    engine.name(),
                    target.short()
                )
            })?;
            subjects.push(Subject {
                declared: project.image.clone(),
                reference,
                expected_arch: Some(target.short()),
                image,
            });
        }
        Ok(())
    }
}

/// A step that leaves nothing worth checking further: a signal, or the engine gone.
fn is_fatal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Interrupted>().is_some()
        || matches!(
            e.downcast_ref::<tiny_engine::Error>(),
            Some(tiny_engine::Error::Interrupted | tiny_engine::Error::Unreachable(_))
        )
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
    // Under qemu everything takes longer: the same checks, with more time.
    let emulated = Target::from_arch(
        &subject.image.architecture,
        subject.image.variant.as_deref(),
    )
    .is_some_and(|t| !t.runs_natively());
    let timeout = if emulated {
        timeout * qemu::SLOWDOWN
    } else {
        timeout
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
        let declared = &subject.declared.entrypoint.program;
        ensure!(
            f.entrypoint == declared.as_str(),
            "the entrypoint is {}, [workspace.metadata.xtask.images.{}] declares {declared}",
            f.entrypoint,
            subject.declared.name
        );
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
    let target = facts.arch.parse::<Target>().ok();
    let platform = target.map_or_else(|| format!("linux/{}", facts.arch), |t| t.platform());
    checks.run("binary", || {
        binary_matches(
            sh,
            &resources,
            target,
            &platform,
            reference,
            &facts,
            &subject.declared,
        )
    });
    if let Some(foreign) = target.filter(|t| !t.runs_natively()) {
        checks.run("emulation", || Ok(qemu::emulation(foreign)?));
    }
    checks.run("size", || {
        let Some(budget) = project.size_budget(&facts.base) else {
            return Ok(format!("{} (no budget)", report::size(facts.size)));
        };
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
    let image_decl = &subject.declared;
    let volume = format!("xtask-smoke-{}-{}", std::process::id(), facts.arch);
    if let Some(fatal) = checks.fatal.take() {
        return Err(fatal);
    }
    // Every declared volume, each on a volume of its own, the same for every container.
    let mounts: Vec<String> = image_decl
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
        for (i, check) in image_decl.checks.iter().enumerate() {
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
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let running = Running {
        addr,
        token: &message,
    };
    let own = crate::ours::checks(&image_decl.name);
    let http = |checks: &mut Checks, after: bool| {
        for check in &image_decl.checks {
            let Declared::Http(c) = check else { continue };
            if c.after_restart != after {
                continue;
            }
            checks.run(&check.to_string(), || {
                let method = c.method.as_str();
                let (status, body) = probe::http(addr, method, &c.path, c.body.as_deref())?;
                ensure!(
                    status == c.status,
                    "answered {status}, expected {}: {body}",
                    c.status
                );
                expect(c.expect.as_ref(), &body)?;
                Ok(format!("{status}"))
            });
        }
        for check in own.iter().filter(|o| o.after_restart == after) {
            checks.run(check.name, || (check.run)(&running));
        }
    };
    commands(&mut checks, false);
    match &image_decl.role {
        Role::Job => {
            checks.run("job", || {
                let name = format!("{volume}-job");
                let (code, out) = resources.run_once(&name, &platform, &mounts, reference, &[])?;
                ensure!(
                    code == 0,
                    "{} exited with status {code}: {} {}",
                    image_decl.entrypoint,
                    out.stdout.trim(),
                    out.stderr.trim()
                );
                Ok(format!("{} exits 0", image_decl.entrypoint))
            });
            commands(&mut checks, true);
        }
        Role::Service { health, .. } => {
            let env = image_decl.listen_on_loopback(port);
            let env = env.as_slice();
            let first = format!("{volume}-1");
            checks.run(health, || {
                resources.start(&first, &platform, &mounts, reference, env)?;
                Ok(resources.wait_healthy(&first, addr, health, timeout)?)
            });
            http(&mut checks, false);
            if let Some(healthcheck) = &image_decl.healthcheck {
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
            let after = image_decl.checks.iter().any(Declared::after_restart)
                || own.iter().any(|o| o.after_restart);
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

/// What `image inspect` says, checked.
struct Facts {
    arch: String,
    user: String,
    entrypoint: String,
    base: String,
    size: u64,
}

fn read_facts(image: &inspect::Image, expected_arch: Option<&str>) -> anyhow::Result<Facts> {
    // The platform's one-word name (`armv7` for arm/v7), as tags and rows name it.
    let arch = Target::from_arch(&image.architecture, image.variant.as_deref())
        .map_or_else(|| image.architecture.clone(), |t| t.short().to_owned());
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

/// Copies the entrypoint and every declared binary out of the image and checks each is a
/// static binary for the image's architecture: a mislabelled image would otherwise run under
/// emulation here and fail on real hardware.
fn binary_matches(
    sh: &Shell,
    resources: &Resources,
    target: Option<Target>,
    platform: &str,
    reference: &str,
    facts: &Facts,
    declared: &declared::Image,
) -> anyhow::Result<String> {
    let target =
        target.with_context(|| format!("unsupported image architecture `{}`", facts.arch))?;
    let mut paths = vec![facts.entrypoint.clone()];
    for binary in &declared.binaries {
        let path = format!("{}/{binary}", declared::BIN_DIR);
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let dir = sh.create_temp_dir()?;
    let _removed = Undo::remove_dir(dir.path());
    let mut linkage = None;
    for (i, path) in paths.iter().enumerate() {
        let name = format!("xtask-smoke-{}-{}-copy-{i}", std::process::id(), facts.arch);
        let local = dir.path().join(format!("binary-{i}"));
        resources.copy_out(&name, platform, reference, path, &local)?;
        let bytes = std::fs::read(&local)?;
        let found = elf::verify(&bytes, target)
            .with_context(|| format!("{path} in this {platform} image"))?;
        linkage.get_or_insert(found);
    }
    Ok(format!(
        "{} {}: {:?} {} executable{}",
        paths.len(),
        if paths.len() == 1 {
            "binary"
        } else {
            "binaries"
        },
        linkage.context("no binary")?,
        target.machine(),
        if paths.len() == 1 { "" } else { "s" }
    ))
}
