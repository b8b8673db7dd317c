//! The container engine: docker (BuildKit through buildx, or the BuildKit built into
//! clients before 23.0) or podman, found automatically or chosen with `--engine`.

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use xshell::{Cmd, Shell, cmd};

use crate::model::choice::EngineKind;
use crate::model::target::Target;
use crate::tools::which::{find_all_on_path, find_on_path};

/// How a docker client builds images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `docker buildx build --load`.
    Buildx,
    /// `DOCKER_BUILDKIT=1 docker build`: clients before 23.0 carry BuildKit themselves.
    BuiltinBuildKit,
    /// The legacy builder: it mislabels `FROM scratch` images built for a foreign platform,
    /// so it is only used for the host's own architecture.
    Legacy,
    Podman,
}

pub struct Engine {
    pub kind: EngineKind,
    pub program: Utf8PathBuf,
    pub builder: Builder,
    pub version: String,
}

/// What [`Engine::build`] builds.
#[derive(Clone, Copy)]
pub struct BuildRequest<'a> {
    pub target: Target,
    pub dockerfile: &'a Utf8Path,
    pub context: &'a Utf8Path,
    pub tag: &'a str,
    pub build_args: &'a [(String, String)],
    /// SOURCE_DATE_EPOCH, for the engines that take it.
    pub epoch: u64,
}

/// The one-line fix when no engine answers.
pub const NO_ENGINE: &str = "no container engine is running: start the Docker daemon \
    (`sudo systemctl start docker`, or `sudo dockerd &`) or install podman (`sudo apt-get install podman`)";

impl Engine {
    pub fn detect(sh: &Shell, choice: Option<EngineKind>) -> anyhow::Result<Engine> {
        match choice {
            Some(EngineKind::Docker) => docker(sh),
            Some(EngineKind::Podman) => podman(sh),
            // Docker with BuildKit, else podman, else docker's legacy builder (host
            // architecture only) rather than nothing.
            None => match (docker(sh), podman(sh)) {
                (Ok(docker), _) if docker.builder != Builder::Legacy => Ok(docker),
                (_, Ok(podman)) => Ok(podman),
                (Ok(legacy), Err(_)) => Ok(legacy),
                // Docker is installed: its own message says what to start.
                (Err(e), Err(_)) if find_on_path("docker").is_some() => Err(e),
                (Err(_), Err(_)) => Err(anyhow::anyhow!(NO_ENGINE)),
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    pub fn describe(&self) -> String {
        let builder = match self.builder {
            Builder::Buildx => "buildx",
            Builder::BuiltinBuildKit => "built-in BuildKit",
            Builder::Legacy => "legacy builder: host architecture only",
            Builder::Podman => "buildah",
        };
        format!(
            "{} {} at {} ({builder})",
            self.name(),
            self.version,
            self.program
        )
    }

    /// `<engine> <args...>`, for everything but builds.
    pub fn cmd<'a>(&self, sh: &'a Shell, args: &[&str]) -> Cmd<'a> {
        let program = &self.program;
        cmd!(sh, "{program} {args...}").quiet()
    }

    /// Refuses what this engine would build wrong: the legacy builder mislabels `FROM
    /// scratch` images for a foreign platform.
    pub fn can_build(&self, target: Target) -> anyhow::Result<()> {
        if self.builder == Builder::Legacy && Target::host() != Some(target) {
            bail!(
                "the legacy docker builder at {} mislabels images built for {}: install \
                 the buildx plugin (docker-buildx), or use --engine podman",
                self.program,
                target.platform()
            );
        }
        Ok(())
    }

    /// Builds `dockerfile` with `context` for `target`'s platform and tags the result.
    pub fn build(&self, sh: &Shell, request: &BuildRequest<'_>) -> anyhow::Result<()> {
        let BuildRequest {
            target,
            dockerfile,
            context,
            tag,
            build_args,
            epoch,
        } = *request;
        let platform = target.platform();
        self.can_build(target)?;
        let mut args: Vec<String> = match self.builder {
            Builder::Buildx => vec!["buildx".into(), "build".into(), "--load".into()],
            // Every time in the image at SOURCE_DATE_EPOCH, and no builder label, so that
            // podman's image matches the builtin engine's.
            Builder::Podman => vec![
                "build".into(),
                "--format=docker".into(),
                format!("--timestamp={epoch}"),
                "--identity-label=false".into(),
            ],
            Builder::BuiltinBuildKit | Builder::Legacy => vec!["build".into()],
        };
        args.extend([
            "--quiet".into(),
            // Build caches key COPY on content, not mtime: a layer cached from another
            // checkout would bring that checkout's file times. Copies alone cost little.
            "--no-cache".into(),
            format!("--platform={platform}"),
            format!("--file={dockerfile}"),
        ]);
        args.extend(["--tag".into(), tag.into()]);
        for (key, value) in build_args {
            args.extend(["--build-arg".into(), format!("{key}={value}")]);
        }
        args.push(context.to_string());
        let program = &self.program;
        let mut command = cmd!(sh, "{program} {args...}").quiet().ignore_status();
        if self.builder == Builder::BuiltinBuildKit {
            command = command.env("DOCKER_BUILDKIT", "1");
        }
        let out = command.output()?;
        if !out.status.success() {
            // The builder's log is long; its last line is the reason.
            let log = String::from_utf8_lossy(&out.stderr);
            let reason = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no output");
            bail!("{} build for {platform} failed: {reason}", self.name());
        }
        Ok(())
    }

    /// `image inspect`, as JSON (the two engines share the fields used here).
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> anyhow::Result<serde_json::Value> {
        let out = self
            .cmd(sh, &["image", "inspect", reference])
            .ignore_stderr()
            .read()
            .with_context(|| {
                format!(
                    "no image {reference} in {}: build it with `cargo xtask image`",
                    self.name()
                )
            })?;
        let mut list: Vec<serde_json::Value> = serde_json::from_str(&out)?;
        list.pop().with_context(|| format!("no image {reference}"))
    }

    /// Removes an image that must not be used; best effort, as it runs on the error path.
    pub fn remove_image(&self, sh: &Shell, reference: &str) {
        let _ = self
            .cmd(sh, &["rmi", reference])
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }

    /// Pushes one image (plain HTTP is allowed: the registries here are on loopback).
    pub fn push(&self, sh: &Shell, reference: &str) -> anyhow::Result<()> {
        let mut args = vec!["push", "--quiet"];
        if self.kind == EngineKind::Podman {
            // Docker allows plain HTTP to 127.0.0.0/8 on its own; podman must be told.
            args.push("--tls-verify=false");
        }
        args.push(reference);
        self.cmd(sh, &args)
            .ignore_stdout()
            .run()
            .with_context(|| format!("pushing {reference} failed"))
    }

    /// Creates and pushes the multi-architecture index `index` over already pushed `members`.
    pub fn push_index(&self, sh: &Shell, index: &str, members: &[String]) -> anyhow::Result<()> {
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        match self.kind {
            EngineKind::Docker => {
                let create = [
                    &["manifest", "create", "--insecure", "--amend", index][..],
                    &members,
                ]
                .concat();
                self.cmd(sh, &create).ignore_stdout().run()?;
                self.cmd(sh, &["manifest", "push", "--insecure", "--purge", index])
                    .ignore_stdout()
                    .run()?;
            }
            EngineKind::Podman => {
                // A stale local list with the same name would keep old members.
                let _ = self
                    .cmd(sh, &["manifest", "rm", index])
                    .ignore_stderr()
                    .ignore_stdout()
                    .run();
                self.cmd(sh, &["manifest", "create", index])
                    .ignore_stdout()
                    .run()?;
                for member in &members {
                    let source = format!("docker://{member}");
                    self.cmd(
                        sh,
                        &["manifest", "add", "--tls-verify=false", index, &source],
                    )
                    .ignore_stdout()
                    .run()?;
                }
                let dest = format!("docker://{index}");
                self.cmd(
                    sh,
                    &[
                        "manifest",
                        "push",
                        "--quiet",
                        "--all",
                        "--tls-verify=false",
                        index,
                        &dest,
                    ],
                )
                .ignore_stdout()
                .run()?;
            }
        }
        Ok(())
    }
}

const SERVER_VERSION: &str = "{{.Server.Version}}";
const CLIENT_VERSION: &str = "{{.Client.Version}}";

fn docker(sh: &Shell) -> anyhow::Result<Engine> {
    let candidates = find_all_on_path("docker");
    if candidates.is_empty() {
        bail!(
            "docker is not installed: install it (`sudo apt-get install docker.io`) or use --engine podman"
        );
    }
    // Several clients can be installed (a new one without buildx beside an older one with
    // BuildKit built in): prefer one that can build for foreign platforms.
    let mut usable = Vec::new();
    for program in candidates {
        let Ok(version) = cmd!(sh, "{program} version --format {SERVER_VERSION}")
            .quiet()
            .ignore_stderr()
            .read()
        else {
            continue;
        };
        let builder = docker_builder(sh, &program);
        usable.push(Engine {
            kind: EngineKind::Docker,
            program,
            builder,
            version: version.trim().to_owned(),
        });
    }
    usable.sort_by_key(|e| e.builder == Builder::Legacy);
    usable.into_iter().next().with_context(|| {
        "the Docker daemon is not running: start it (`sudo systemctl start docker`, or \
         `sudo dockerd &`), or use --engine podman"
    })
}

fn docker_builder(sh: &Shell, program: &Utf8Path) -> Builder {
    if cmd!(sh, "{program} buildx version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Builder::Buildx;
    }
    let client = cmd!(sh, "{program} version --format {CLIENT_VERSION}")
        .quiet()
        .ignore_stderr()
        .read();
    let major = client
        .ok()
        .and_then(|v| v.trim().split('.').next()?.parse::<u32>().ok());
    match major {
        Some(m) if m < 23 => Builder::BuiltinBuildKit,
        _ => Builder::Legacy,
    }
}

fn podman(sh: &Shell) -> anyhow::Result<Engine> {
    let program = find_on_path("podman")
        .context("podman is not installed: install it (`sudo apt-get install podman`) or use --engine docker")?;
    let version = cmd!(sh, "{program} version --format {CLIENT_VERSION}")
        .quiet()
        .ignore_stderr()
        .read()
        .context("podman does not run: see `podman info`")?;
    Ok(Engine {
        kind: EngineKind::Podman,
        program,
        builder: Builder::Podman,
        version: version.trim().to_owned(),
    })
}
