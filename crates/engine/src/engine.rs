//! The container engine: docker (BuildKit through buildx, or the BuildKit built into
//! clients before 23.0) or podman, found automatically or chosen with `--engine`.

use std::time::Duration;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use tiny_cross::target::Target;
use tiny_cross::which::{find_all_on_path, find_on_path};
use tiny_interrupt::Undo;
use xshell::{Cmd, Shell, cmd};

use crate::error::{Error, Result, bail};
use crate::inspect::{self, parse_list, parse_one};
use crate::process::{self, Finished, Io};
use crate::run_id::{LABEL, RunId};

/// The container engines this crate drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Docker: the daemon and its client (BuildKit through buildx, or built in).
    Docker,
    /// Podman: daemonless, rootless or not.
    Podman,
}

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
    /// `podman build` (buildah).
    Podman,
}

/// One engine, found and told apart.
pub struct Engine {
    /// Docker or podman.
    pub kind: EngineKind,
    /// The client that is run.
    pub program: Utf8PathBuf,
    /// How it builds images.
    pub builder: Builder,
    /// The daemon's version for docker, the client's for podman.
    pub version: String,
}

/// What [`Engine::build`] builds.
#[derive(Clone, Copy)]
pub struct BuildRequest<'a> {
    /// The platform to build for.
    pub target: Target,
    /// The Dockerfile, anywhere.
    pub dockerfile: &'a Utf8Path,
    /// The build context folder.
    pub context: &'a Utf8Path,
    /// The tag the result gets (only once the build succeeded).
    pub tag: &'a str,
    /// `--build-arg` pairs.
    pub build_args: &'a [(String, String)],
    /// `SOURCE_DATE_EPOCH` (seconds since 1970), for the engines that take it.
    pub epoch: u64,
}

/// The one-line fix when no engine answers.
pub const NO_ENGINE: &str = "no container engine is running: start the Docker daemon \
    (`sudo systemctl start docker`, or `sudo dockerd &`) or install podman (`sudo apt-get install podman`)";

/// How to start the Docker daemon, for every message that finds it gone.
const START_DOCKER: &str = "start it (`sudo systemctl start docker`, or `sudo dockerd &`)";

/// How long one undo command may take: removing a container kills it first.
const CLEANUP_LIMIT: Duration = Duration::from_secs(10);
/// How long the daemon may take to answer whether it is there.
const PING_LIMIT: Duration = Duration::from_secs(5);

impl Engine {
    /// The engine asked for, or the best one that answers: docker with BuildKit, else
    /// podman, else docker's legacy builder (host architecture only).
    pub fn detect(sh: &Shell, choice: Option<EngineKind>) -> Result<Engine> {
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
                (Err(_), Err(_)) => Err(Error::Other(NO_ENGINE.into())),
            },
        }
    }

    /// `docker` or `podman`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }

    /// `docker 28.2.2 at /usr/bin/docker (buildx)`.
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

    /// Runs `<engine> <args...>` to success and returns its output; a failure is one line
    /// with the engine's reason, or `Unreachable` when the engine is gone.
    pub fn run(&self, sh: &Shell, args: &[&str]) -> Result<String> {
        let done = process::run(self.cmd(sh, args), Io::Capture, Io::Capture)?;
        self.succeeded(sh, args, done)
    }

    fn succeeded(&self, sh: &Shell, args: &[&str], done: Finished) -> Result<String> {
        if done.status.success() {
            return Ok(done.stdout);
        }
        let what = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
        Err(self.failure(sh, &what, &done.stderr))
    }

    /// Why `<engine> <what>` failed: the engine is gone, or the command's own reason.
    fn failure(&self, sh: &Shell, what: &str, stderr: &str) -> Error {
        if looks_unreachable(stderr) || !self.answers(sh) {
            return self.unreachable();
        }
        Error::Other(format!(
            "{} {what} failed: {}",
            self.name(),
            failure_reason(stderr)
        ))
    }

    /// Whether the engine (the daemon, for docker) answers now.
    pub fn answers(&self, sh: &Shell) -> bool {
        let program = &self.program;
        let probe = cmd!(sh, "{program} version --format {SERVER_VERSION}").quiet();
        let probe = match self.kind {
            EngineKind::Docker => probe,
            EngineKind::Podman => cmd!(sh, "{program} version").quiet(),
        };
        process::run_for(probe, Io::Null, Io::Null, PING_LIMIT).is_ok_and(|d| d.status.success())
    }

    /// The error for an engine that stopped answering, with what to do about it.
    pub fn unreachable(&self) -> Error {
        Error::Unreachable(match self.kind {
            EngineKind::Docker => format!(
                "the Docker daemon{} stopped answering: {START_DOCKER}, then run the command again",
                std::env::var("DOCKER_HOST")
                    .map(|h| format!(" at {h}"))
                    .unwrap_or_default()
            ),
            EngineKind::Podman => {
                "podman stopped answering: see `podman info`, then run the command again".into()
            }
        })
    }

    /// `image inspect`, or `None` when the engine has no such image.
    pub fn find_image(&self, sh: &Shell, reference: &str) -> Result<Option<inspect::Image>> {
        let args = ["image", "inspect", reference];
        let done = process::run(self.cmd(sh, &args), Io::Capture, Io::Capture)?;
        if done.status.success() {
            return parse_one(&done.stdout, "image inspect").map(Some);
        }
        let lower = done.stderr.to_ascii_lowercase();
        if ["no such image", "image not known", "failed to find image"]
            .iter()
            .any(|p| lower.contains(p))
        {
            return Ok(None);
        }
        Err(self.failure(sh, "image inspect", &done.stderr))
    }

    /// `image inspect` of an image this run just made or relies on.
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> Result<inspect::Image> {
        Ok(self
            .find_image(sh, reference)?
            .with_context(|| format!("{} has no image {reference}", self.name()))?)
    }

    /// A container's state.
    pub fn container_state(&self, sh: &Shell, name: &str) -> Result<inspect::ContainerState> {
        let json = self.run(sh, &["container", "inspect", name])?;
        Ok(parse_one::<inspect::Container>(&json, "container inspect")?.state)
    }

    /// A container's output so far, stdout and stderr apart.
    pub fn logs(&self, sh: &Shell, name: &str) -> Result<Finished> {
        let done = process::run(self.cmd(sh, &["logs", name]), Io::Capture, Io::Capture)?;
        if !done.status.success() {
            return Err(self.failure(sh, "logs", &done.stderr));
        }
        Ok(done)
    }

    /// What undo actions need of this engine, owned.
    pub fn remover(&self) -> Remover {
        Remover {
            program: self.program.clone(),
            kind: self.kind,
        }
    }

    /// Removes what earlier runs of the xtask, no longer alive, left behind (they were
    /// killed before they could clean up), and says so in one line.
    pub fn sweep_leftovers(&self, sh: &Shell) -> Result<Option<String>> {
        let mut dead_runs = Vec::new();
        let filter = format!("label={LABEL}");
        let mut is_dead = |labels: &Option<std::collections::BTreeMap<String, String>>| {
            let run = labels
                .as_ref()
                .and_then(|l| l.get(LABEL)?.parse::<RunId>().ok());
            match run {
                Some(run) if run.is_alive() => false,
                Some(run) => {
                    if !dead_runs.contains(&run.pid) {
                        dead_runs.push(run.pid);
                    }
                    true
                }
                // Our label with a value we cannot read: not ours to judge.
                None => false,
            }
        };
        let ids = self.run(sh, &["ps", "--all", "--quiet", "--filter", &filter])?;
        let mut containers = Vec::new();
        if !ids.trim().is_empty() {
            let mut args = vec!["container", "inspect"];
            args.extend(ids.split_whitespace());
            let json = self.run(sh, &args)?;
            for c in parse_list::<inspect::Container>(&json, "container inspect")? {
                if is_dead(&c.config.labels) {
                    containers.push(c.id);
                }
            }
        }
        let names = self.run(sh, &["volume", "ls", "--quiet", "--filter", &filter])?;
        let mut volumes = Vec::new();
        if !names.trim().is_empty() {
            let mut args = vec!["volume", "inspect"];
            args.extend(names.split_whitespace());
            let json = self.run(sh, &args)?;
            for v in parse_list::<inspect::Volume>(&json, "volume inspect")? {
                if is_dead(&v.labels) {
                    volumes.push(v.name);
                }
            }
        }
        if containers.is_empty() && volumes.is_empty() {
            return Ok(None);
        }
        if !containers.is_empty() {
            let mut args = self.remove_container_args();
            args.extend(containers.iter().map(String::as_str));
            self.run(sh, &args)?;
        }
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "--force"];
            args.extend(volumes.iter().map(String::as_str));
            self.run(sh, &args)?;
        }
        dead_runs.sort_unstable();
        let pids: Vec<String> = dead_runs.iter().map(u32::to_string).collect();
        Ok(Some(format!(
            "removed {} container(s) and {} volume(s) left behind by stopped runs (pid {})",
            containers.len(),
            volumes.len(),
            pids.join(", ")
        )))
    }

    fn remove_container_args(&self) -> Vec<&'static str> {
        self.remover().remove_container_args()
    }

    /// Refuses what this engine would build wrong: the legacy builder mislabels `FROM
    /// scratch` images for a foreign platform.
    pub fn can_build(&self, target: Target) -> Result<()> {
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
    pub fn build(&self, sh: &Shell, request: &BuildRequest<'_>) -> Result<()> {
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
        for (key, value) in build_args {
            args.extend(["--build-arg".into(), format!("{key}={value}")]);
        }
        args.push(context.to_string());
        let program = &self.program;
        let mut command = cmd!(sh, "{program} {args...}").quiet();
        if self.builder == Builder::BuiltinBuildKit {
            command = command.env("DOCKER_BUILDKIT", "1");
        }
        // Built untagged, then tagged here: a build whose client was stopped can still
        // finish in the daemon, and must not tag anything then.
        let done = process::run(command, Io::Capture, Io::Capture)?;
        if !done.status.success() {
            return Err(self.failure(sh, &format!("build for {platform}"), &done.stderr));
        }
        let id = done
            .stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .with_context(|| format!("{} build printed no image id", self.name()))?;
        self.run(sh, &["tag", id, tag])?;
        Ok(())
    }

    /// Pushes one image (plain HTTP is allowed: the registries here are on loopback).
    pub fn push(&self, sh: &Shell, reference: &str) -> Result<()> {
        let mut args = vec!["push", "--quiet"];
        if self.kind == EngineKind::Podman {
            // Docker allows plain HTTP to 127.0.0.0/8 on its own; podman must be told.
            args.push("--tls-verify=false");
        }
        args.push(reference);
        self.run(sh, &args)
            .with_context(|| format!("pushing {reference}"))?;
        Ok(())
    }

    /// Creates and pushes the multi-architecture index `index` over already pushed `members`.
    pub fn push_index(&self, sh: &Shell, index: &str, members: &[String]) -> Result<()> {
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        match self.kind {
            EngineKind::Docker => {
                let create = [
                    &["manifest", "create", "--insecure", "--amend", index][..],
                    &members,
                ]
                .concat();
                self.run(sh, &create)?;
                self.run(sh, &["manifest", "push", "--insecure", "--purge", index])?;
            }
            EngineKind::Podman => {
                // A stale local list with the same name would keep old members.
                self.remover().remove(&["manifest", "rm", index]);
                self.run(sh, &["manifest", "create", index])?;
                for member in &members {
                    let source = format!("docker://{member}");
                    self.run(
                        sh,
                        &["manifest", "add", "--tls-verify=false", index, &source],
                    )?;
                }
                let dest = format!("docker://{index}");
                self.run(
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
                )?;
            }
        }
        Ok(())
    }
}

const SERVER_VERSION: &str = "{{.Server.Version}}";
const CLIENT_VERSION: &str = "{{.Client.Version}}";

/// The trimmed output of a version query, `None` when it fails; an interrupt is an error.
fn query(command: Cmd<'_>) -> Result<Option<String>> {
    let done = process::run_for(command, Io::Capture, Io::Null, PING_LIMIT);
    match done {
        Ok(done) if done.status.success() => Ok(Some(done.stdout.trim().to_owned())),
        Err(Error::Interrupted) => Err(Error::Interrupted),
        _ => Ok(None),
    }
}

fn docker(sh: &Shell) -> Result<Engine> {
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
        let Some(version) = query(cmd!(sh, "{program} version --format {SERVER_VERSION}"))? else {
            continue;
        };
        let builder = docker_builder(sh, &program)?;
        usable.push(Engine {
            kind: EngineKind::Docker,
            program,
            builder,
            version,
        });
    }
    usable.sort_by_key(|e| e.builder == Builder::Legacy);
    Ok(usable.into_iter().next().with_context(|| {
        format!("the Docker daemon is not running: {START_DOCKER}, or use --engine podman")
    })?)
}

fn docker_builder(sh: &Shell, program: &Utf8Path) -> Result<Builder> {
    if query(cmd!(sh, "{program} buildx version"))?.is_some() {
        return Ok(Builder::Buildx);
    }
    let client = query(cmd!(sh, "{program} version --format {CLIENT_VERSION}"))?;
    let major = client.and_then(|v| v.split('.').next()?.parse::<u32>().ok());
    Ok(match major {
        Some(m) if m < 23 => Builder::BuiltinBuildKit,
        _ => Builder::Legacy,
    })
}

fn podman(sh: &Shell) -> Result<Engine> {
    let program = find_on_path("podman")
        .context("podman is not installed: install it (`sudo apt-get install podman`) or use --engine docker")?;
    let version = query(cmd!(sh, "{program} version --format {CLIENT_VERSION}"))?
        .context("podman does not run: see `podman info`")?;
    Ok(Engine {
        kind: EngineKind::Podman,
        program,
        builder: Builder::Podman,
        version,
    })
}

/// What undo actions need of an engine, owned, so they can run from the signal thread.
#[derive(Debug, Clone)]
pub struct Remover {
    program: Utf8PathBuf,
    kind: EngineKind,
}

impl Remover {
    /// Removes the container `name` when dropped, unless disarmed.
    pub fn container(&self, name: &str) -> Undo {
        let (this, name) = (self.clone(), name.to_owned());
        Undo::new(move || {
            let mut args = this.remove_container_args();
            args.push(&name);
            this.remove(&args);
        })
    }

    /// Removes the volume `name` when dropped, with any container still using it.
    pub fn volume(&self, name: &str) -> Undo {
        let (this, name) = (self.clone(), name.to_owned());
        Undo::new(move || {
            this.remove_users_of_volume(&name);
            this.remove(&["volume", "rm", "--force", &name]);
        })
    }

    /// Puts the tag `reference` back as it was when dropped, unless disarmed: on the image
    /// `previous` (its id, as inspect gives it), or on none. The build it guards may have
    /// tagged its result even after its client was stopped.
    pub fn image(&self, reference: &str, previous: Option<String>) -> Undo {
        let (this, reference) = (self.clone(), reference.to_owned());
        Undo::new(move || {
            let now = this.read(&["image", "inspect", "--format", "{{.Id}}", &reference]);
            let now = now.trim();
            if Some(now) == previous.as_deref() {
                return;
            }
            if !now.is_empty() {
                this.remove(&["rmi", &reference]);
            }
            if let Some(previous) = &previous {
                this.remove(&["tag", previous, &reference]);
            }
        })
    }

    /// Removes every container and volume of this run when dropped: the net under the
    /// other undo actions, which may run side by side in any order after a second Ctrl-C.
    pub fn whole_run(&self) -> Undo {
        let this = self.clone();
        Undo::new(move || {
            let filter = RunId::current().label();
            let filter = format!("label={filter}");
            let ids = this.read(&["ps", "--all", "--quiet", "--filter", &filter]);
            if !ids.trim().is_empty() {
                let mut args = this.remove_container_args();
                args.extend(ids.split_whitespace());
                this.remove(&args);
            }
            let names = this.read(&["volume", "ls", "--quiet", "--filter", &filter]);
            if !names.trim().is_empty() {
                let mut args = vec!["volume", "rm", "--force"];
                args.extend(names.split_whitespace());
                this.remove(&args);
            }
        })
    }

    fn remove_users_of_volume(&self, volume: &str) {
        let filter = format!("volume={volume}");
        let ids = self.read(&["ps", "--all", "--quiet", "--filter", &filter]);
        if !ids.trim().is_empty() {
            let mut args = self.remove_container_args();
            args.extend(ids.split_whitespace());
            self.remove(&args);
        }
    }

    fn remove_container_args(&self) -> Vec<&'static str> {
        match self.kind {
            EngineKind::Docker => vec!["rm", "--force", "--volumes"],
            // podman would give a running container 10 s to stop first.
            EngineKind::Podman => vec!["rm", "--force", "--volumes", "--time=0"],
        }
    }

    /// Runs an undo command; best effort, as it runs on the error path or after a signal.
    pub fn remove(&self, args: &[&str]) {
        let _ = self.read(args);
    }

    fn read(&self, args: &[&str]) -> String {
        let Ok(sh) = Shell::new() else {
            return String::new();
        };
        let program = &self.program;
        let command = cmd!(sh, "{program} {args...}").quiet();
        match process::run_cleanup(command, CLEANUP_LIMIT) {
            Ok(done) if done.status.success() => done.stdout,
            _ => String::new(),
        }
    }
}

/// Whether an engine's error output says the engine itself cannot be reached.
fn looks_unreachable(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    [
        "cannot connect to the docker daemon",
        "is the docker daemon running",
        "error during connect",
        "cannot connect to podman",
        "unable to connect to podman",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// The lines of an engine's error output that say why, without the advice around them
/// ("See 'docker build --help'"), step logs or repeats; short enough for one line.
pub fn failure_reason(stderr: &str) -> String {
    const MAX: usize = 300;
    let noise = |l: &str| {
        l.is_empty()
            || l.starts_with("See '")
            || l.starts_with("Usage:")
            || l.starts_with("Run '")
            || l.chars().all(|c| c == '-')
    };
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !noise(l))
        .collect();
    let is_error = |l: &&str| {
        let lower = l.to_ascii_lowercase();
        lower.contains("error") || lower.contains("failed") || lower.contains("invalid")
    };
    let mut reasons: Vec<String> = Vec::new();
    let picked: Vec<&str> = if lines.iter().any(is_error) {
        lines.iter().copied().filter(is_error).collect()
    } else {
        lines.last().copied().into_iter().collect()
    };
    for line in picked {
        let reason = strip_error_prefix(line);
        // A line that repeats another is dropped; one that says more replaces it.
        if !reasons.iter().any(|r| r.contains(reason)) {
            reasons.retain(|r| !reason.contains(r.as_str()));
            reasons.push(reason.to_owned());
        }
    }
    let mut joined = if reasons.is_empty() {
        "no output".to_owned()
    } else {
        reasons.join("; ")
    };
    if joined.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(0);
        joined.truncate(cut);
        joined.push('…');
    }
    joined
}

/// `#5 ERROR: x`, `Error response from daemon: x`, `Error: x`, `error: x` -> `x`.
fn strip_error_prefix(line: &str) -> &str {
    let mut rest = line;
    if let Some(step) = rest.strip_prefix('#') {
        rest = step
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
    }
    for prefix in ["ERROR:", "Error response from daemon:", "Error:", "error:"] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r.trim_start();
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_of_a_failed_build_is_kept_and_the_advice_dropped() {
        let stderr = "invalid argument \"Bad\" for \"-t, --tag\" flag: invalid reference format: \
                      repository name must be lowercase\nSee 'docker build --help'.\n";
        assert_eq!(
            failure_reason(stderr),
            "invalid argument \"Bad\" for \"-t, --tag\" flag: invalid reference format: \
             repository name must be lowercase"
        );
    }

    #[test]
    fn buildkit_logs_give_their_error_lines_once() {
        let stderr = "#1 [internal] load build definition from Dockerfile.runtime\n\
                      #1 DONE 0.0s\n\
                      #4 [internal] load metadata for docker.io/library/nope:latest\n\
                      #4 ERROR: pull access denied, repository does not exist\n\
                      ------\n > [internal] load metadata for docker.io/library/nope:latest:\n------\n\
                      error: failed to solve: pull access denied, repository does not exist\n";
        assert_eq!(
            failure_reason(stderr),
            "failed to solve: pull access denied, repository does not exist"
        );
        assert_eq!(
            failure_reason("Error response from daemon: conflict\n"),
            "conflict"
        );
        assert_eq!(failure_reason("something odd\nlast words\n"), "last words");
        assert_eq!(failure_reason(""), "no output");
        assert!(failure_reason(&"error: x".repeat(500)).chars().count() <= 301);
    }

    #[test]
    fn a_gone_daemon_is_told_apart_from_a_failed_command() {
        assert!(looks_unreachable(
            "Cannot connect to the Docker daemon at unix:///tmp/p.sock. Is the docker daemon running?"
        ));
        assert!(looks_unreachable(
            "error during connect: Post \"http://%2Ftmp%2Fp.sock/v1.41/containers/create\": EOF"
        ));
        assert!(!looks_unreachable(
            "Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused"
        ));
        assert!(!looks_unreachable("Error: No such image: nope:nope"));
    }
}
