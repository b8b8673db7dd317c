//! `cargo xtask run`: one target's image, built, assembled and run locally the way the smoke
//! test runs it (read-only, non-root, no capabilities, host network on 127.0.0.1, `/data` on
//! a named volume), its logs streamed until Ctrl-C, which stops and removes what the run made.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use xshell::{Shell, cmd};

use crate::cli::RunArgs;
use crate::interrupt::{Undo, wait_until};
use crate::model::project::Project;
use crate::oci::reference::ImageRef;
use crate::oci::signing;
use crate::report::{self, ExitStatus, Reported, step};
use crate::tools::probe::{self, free_port};
use crate::tools::process::{self, Io};
use tiny_cross::qemu;
use tiny_cross::target::Target;
use tiny_declare::{Check, Role};
use tiny_engine::Engine;
use tiny_engine::Resources;

/// How long each declared command run before the service (a migration, say) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// What `image --json` says of one image; the rest of its fields are not needed here.
#[derive(Debug, Deserialize)]
struct Built {
    arch: String,
    reference: String,
    /// The manifest digest (the builtin engine's).
    digest: Option<String>,
}

impl RunArgs {
    /// Runs `cargo xtask run` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        // Everything that can be refused is, before the image is built.
        let declared = match &self.image_name {
            Some(name) => project.select(std::slice::from_ref(name))?.remove(0),
            None => project
                .images
                .iter()
                .find(|i| i.port().is_some())
                .unwrap_or(&project.image)
                .clone(),
        };
        let Role::Service { health, .. } = &declared.role else {
            bail!(
                "--image {}: a job (no `port` in [workspace.metadata.xtask.images.{}]) has \
                 nothing to serve: run a service image",
                declared.name,
                declared.name
            );
        };
        if let Some(port) = self.port {
            probe::servable_port(port)?;
        }
        let signer = match &self.require_signature {
            Some(path) => Some((
                signing::public_key(path)?,
                path,
                signed_in(self.tag.as_ref())?,
            )),
            None => None,
        };
        let target = match self.target {
            Some(target) => target,
            None => Target::host().context(
                "this host's architecture has no supported target: choose one with --target",
            )?,
        };
        if !target.runs_natively() {
            qemu::emulation(target)?;
        }
        let engine = Engine::detect(sh, self.engine.map(Into::into))?;
        let _whole_run = engine.remover().whole_run();
        if let Some(notice) = engine.sweep_leftovers(sh)? {
            eprintln!("  {notice}");
        }
        let built = build_image(
            sh,
            &engine,
            target,
            &declared.name,
            self.tag.as_deref(),
            self.fast,
        )?;
        let reference = built.reference.as_str();
        if let Some((key, path, registry)) = &signer {
            let Some(digest) = &built.digest else {
                bail!(
                    "{reference} was built without a manifest digest, so there is nothing to \
                     check its signature against: build it with the builtin engine, or leave \
                     out --require-signature"
                );
            };
            let repository = match reference.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => repository,
                _ => reference,
            };
            step(format_args!("signed in {registry}"), || {
                signing::require_signed_image(sh, repository, digest, key, path)
            })?;
        }

        let resources = Resources::new(sh, &engine, COMMAND_LIMIT);
        let run_name = format!("xtask-run-{}-{}", std::process::id(), target.short());
        // A volume the user named is theirs: made by the engine on first use, with no run
        // label, so neither this run nor a later sweep removes it.
        let volume = match &self.volume {
            Some(named) => named.to_string(),
            None => {
                resources.volume(&run_name)?;
                run_name.clone()
            }
        };
        // The declared volumes, one engine volume each; the first is the one --volume names.
        let mounts: Vec<String> = declared
            .volumes
            .iter()
            .enumerate()
            .map(|(i, path)| match i {
                0 => Ok(format!("{volume}:{path}")),
                _ => {
                    let more = format!("{run_name}-v{i}");
                    resources.volume(&more)?;
                    Ok(format!("{more}:{path}"))
                }
            })
            .collect::<anyhow::Result<_>>()?;
        let platform = target.platform();
        // What the smoke test runs before the service starts (our `migrate up`, say).
        for (i, check) in declared.checks.iter().enumerate() {
            let Check::Command(c) = check else { continue };
            if c.after_restart {
                continue;
            }
            let what = c.argv.to_string();
            let (code, out) = {
                let _ticking = report::ticking(&what);
                step(what.clone(), || {
                    let name = format!("{run_name}-command-{i}");
                    Ok(resources.run_once(
                        &name,
                        &platform,
                        &mounts,
                        reference,
                        &c.argv.to_vec(),
                    )?)
                })?
            };
            if let Some(last) = out.stdout.trim().lines().last() {
                eprintln!("    {last}");
            }
            ensure!(
                code == i64::from(c.exit),
                "{what} exited with status {code}: {}",
                out.stderr.trim()
            );
        }
        let port = self.port.unwrap_or_else(free_port);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let name = format!("{run_name}-service");
        let env = declared.listen_on_loopback(port);
        resources.start(&name, &platform, &mounts, reference, &env)?;
        let mut logs = resources.follow_logs(&name)?;
        // Ctrl-C stops the service the way `docker stop` would, briefly, before the
        // container's own undo removes it; made after the log stream, so undone before it
        // and the service's last lines are shown.
        let remover = engine.remover();
        let stopping = name.clone();
        // The smoke test's stop deadline: the signal handler's grace leaves room for it and
        // the removals after it.
        let stop_seconds = tiny_engine::STOP_DEADLINE.as_secs().to_string();
        let _stop = Undo::new(move || {
            remover.remove(&["stop", "--time", &stop_seconds, &stopping]);
        });
        {
            let _ticking = report::ticking(format!("waiting for {health}"));
            let timeout = Duration::from_secs(self.timeout);
            step("healthy", || {
                Ok(resources.wait_healthy(&name, addr, health, timeout)?)
            })?;
        }
        println!("http://{addr}/");
        std::io::stdout().flush()?;
        let kept = match &self.volume {
            Some(named) => format!("; the volume {named} is kept"),
            None => String::new(),
        };
        eprintln!(
            "  {reference} serves on http://{addr}/ (linux/{}); Ctrl-C stops and removes it{kept}",
            built.arch
        );
        // `logs --follow` ends when the container stops: that is the wait, with no polling
        // of the engine meanwhile.
        loop {
            let ended = wait_until(Duration::from_secs(3600), || Ok(logs.try_wait()?))?;
            if ended.is_some() {
                break;
            }
        }
        let (running, code) = resources.state(&name)?;
        ensure!(
            !running,
            "`{} logs --follow {name}` ended while the container still runs",
            engine.name()
        );
        if code == 0 {
            eprintln!("  the service exited with status 0");
            return Ok(());
        }
        Err(ExitStatus {
            code: u8::try_from(code).unwrap_or(1),
            message: format!("the service exited with status {code}"),
        }
        .into())
    }
}

/// The registry `--tag` names, where `--require-signature` looks for the signature of the
/// image built here; refused before anything is built when there is none.
fn signed_in(tag: Option<&ImageRef>) -> anyhow::Result<String> {
    match tag.and_then(ImageRef::registry) {
        Some(registry) => Ok(registry.to_owned()),
        None => bail!(
            "--require-signature: the image run builds is local, with no registry to check its \
             signature in: give --tag REGISTRY/NAME:TAG, the reference it was pushed and signed \
             as"
        ),
    }
}

/// Builds and assembles the image by running this xtask's own `image` command (commands do
/// not call one another), loaded into `engine`, and reads what it made from its `--json`.
fn build_image(
    sh: &Shell,
    engine: &Engine,
    target: Target,
    image: &str,
    tag: Option<&str>,
    fast: bool,
) -> anyhow::Result<Built> {
    let xtask = process::own_exe()?;
    let arch = target.short();
    let load = engine.name();
    let mut options: Vec<&str> = tag.map(|t| vec!["--tag", t]).unwrap_or_default();
    if fast {
        options.push("--fast");
    }
    let command = cmd!(
        sh,
        "{xtask} image --image {image} --target {arch} --load {load} --json {options...}"
    );
    let done = process::run(command, Io::Capture, Io::Inherit)?;
    match done.status.code() {
        Some(0) => {}
        // It has printed its one line: one more would only repeat it.
        Some(code) => {
            return Err(Reported {
                code: u8::try_from(code).unwrap_or(1),
            }
            .into());
        }
        None => bail!("`cargo xtask image --target {arch} --load {load}` was killed"),
    }
    let images: Vec<Built> = serde_json::from_str(&done.stdout)
        .context("reading what `cargo xtask image --json` printed")?;
    images
        .into_iter()
        .find(|i| i.arch == arch)
        .with_context(|| format!("`cargo xtask image --target {arch}` made no {arch} image"))
}
