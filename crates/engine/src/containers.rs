//! The containers and volumes of a run of the image (`smoke-test`, `run`): locked-down
//! runs, state, stop, and clean-up that happens however the run ends. Every container runs
//! detached and is waited on, so no signal ever reaches an engine client attached to it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tiny_interrupt::{Undo, wait_until};
use xshell::Shell;

use crate::engine::{Engine, Remover};
use crate::error::{Error, Result, bail, ensure};
use crate::probe::http_get;
use crate::process::{self, Finished, Io, Running};
use crate::run_id::RunId;

/// `docker stop` would wait 10 s; a clean service exits well within this.
pub const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// Containers and volumes of one run, removed when it ends however it ends.
pub struct Resources<'a> {
    sh: &'a Shell,
    engine: &'a Engine,
    remover: Remover,
    label: String,
    timeout: Duration,
    // Containers go before the volumes they use: fields drop in this order.
    containers: RefCell<Vec<(String, Undo)>>,
    volumes: RefCell<Vec<Undo>>,
}

impl<'a> Resources<'a> {
    /// `timeout` bounds how long a run of the companion tool may take.
    pub fn new(sh: &'a Shell, engine: &'a Engine, timeout: Duration) -> Resources<'a> {
        Resources {
            sh,
            engine,
            remover: engine.remover(),
            label: RunId::current().label(),
            timeout,
            containers: RefCell::default(),
            volumes: RefCell::default(),
        }
    }

    /// Removes the container `name` at the end, whoever created it; tracked before it is
    /// created, so an interrupted `create` leaves nothing either.
    fn track_container(&self, name: &str) {
        let undo = self.remover.container(name);
        self.containers.borrow_mut().push((name.to_owned(), undo));
    }

    /// Removes the container `name` now.
    fn remove_container(&self, name: &str) {
        let mut containers = self.containers.borrow_mut();
        if let Some(i) = containers.iter().position(|(n, _)| n == name) {
            drop(containers.remove(i));
        }
    }

    /// Copies `path` out of the image into `dest` through a container `name` that is
    /// created, never started.
    pub fn copy_out(
        &self,
        name: &str,
        platform: &str,
        reference: &str,
        path: &str,
        dest: &Path,
    ) -> Result<()> {
        self.track_container(name);
        let create = [
            "create",
            "--name",
            name,
            "--label",
            &self.label,
            "--platform",
            platform,
            reference,
        ];
        self.engine.run(self.sh, &create)?;
        let source = format!("{name}:{path}");
        let dest = dest.to_string_lossy();
        self.engine.run(self.sh, &["cp", &source, &dest])?;
        self.remove_container(name);
        Ok(())
    }

    /// Creates the volume `name`, labelled with this run, removed at the end.
    pub fn volume(&self, name: &str) -> Result<()> {
        self.volumes.borrow_mut().push(self.remover.volume(name));
        self.engine
            .run(self.sh, &["volume", "create", "--label", &self.label, name])?;
        Ok(())
    }

    /// The locked-down container options, with `mounts` (`volume:path`). The image's
    /// HEALTHCHECK is run by the `healthcheck` check itself rather than on the engine's timer
    /// (podman needs systemd for that timer), so the result does not depend on the interval.
    fn run_args<'s>(&'s self, platform: &'s str, mounts: &'s [String]) -> Vec<&'s str> {
        let mut args = vec![
            "--label",
            &self.label,
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
        ];
        for mount in mounts {
            args.extend(["--volume", mount.as_str()]);
        }
        args
    }

    /// Runs `argv` to completion in a fresh container of the image, detached, as container
    /// `name` (the image's own entrypoint when `argv` is empty), and returns its exit status
    /// and output.
    pub fn run_once(
        &self,
        name: &str,
        platform: &str,
        mounts: &[String],
        reference: &str,
        argv: &[String],
    ) -> Result<(i64, Finished)> {
        self.track_container(name);
        let mut all = vec!["run", "--detach", "--name", name];
        if let Some(program) = argv.first() {
            all.extend(["--entrypoint", program.as_str()]);
        }
        all.extend(self.run_args(platform, mounts));
        all.push(reference);
        all.extend(argv.iter().skip(1).map(String::as_str));
        self.engine.run(self.sh, &all)?;
        let exited = wait_until::<_, Error>(self.timeout, || {
            let state = self.engine.container_state(self.sh, name)?;
            Ok((!state.running).then_some(state.exit_code))
        })?;
        let what = match argv.is_empty() {
            true => "the entrypoint".to_owned(),
            false => argv.join(" "),
        };
        let Some(code) = exited else {
            bail!("{what} did not finish within {}s", self.timeout.as_secs());
        };
        let logs = self.engine.logs(self.sh, name)?;
        self.remove_container(name);
        Ok((code, logs))
    }

    /// Starts the service detached with `env` added (what puts it on a port of loopback
    /// only: the containers share the host's network).
    pub fn start(
        &self,
        name: &str,
        platform: &str,
        mounts: &[String],
        reference: &str,
        env: &[(String, String)],
    ) -> Result<()> {
        self.track_container(name);
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut all = vec!["run", "--detach", "--name", name];
        for pair in &env {
            all.extend(["--env", pair.as_str()]);
        }
        all.extend(self.run_args(platform, mounts));
        all.push(reference);
        self.engine.run(self.sh, &all)?;
        Ok(())
    }

    /// Waits until `health` answers at `addr`; fails at once if the container exits.
    pub fn wait_healthy(
        &self,
        name: &str,
        addr: SocketAddr,
        health: &str,
        limit: Duration,
    ) -> Result<String> {
        let started = Instant::now();
        let answered = wait_until::<_, Error>(limit, || {
            if http_get(addr, health).is_ok() {
                return Ok(Some(()));
            }
            let (running, code) = self.state(name)?;
            ensure!(
                running,
                "the container exited with status {code} before {health} answered"
            );
            Ok(None)
        })?;
        ensure!(
            answered.is_some(),
            "no answer from http://{addr}{health} within {}s",
            limit.as_secs()
        );
        Ok(format!("answered after {}", seconds(started.elapsed())))
    }

    /// Streams the container's output to our stderr until it stops (or the returned child
    /// is dropped); in a process group of its own like every child.
    pub fn follow_logs(&self, name: &str) -> Result<Running> {
        let command = self.engine.cmd(self.sh, &["logs", "--follow", name]);
        process::spawn(command, Io::Stderr)
    }

    /// `(running, exit code)` of a container.
    pub fn state(&self, name: &str) -> Result<(bool, i64)> {
        let state = self.engine.container_state(self.sh, name)?;
        Ok((state.running, state.exit_code))
    }

    /// SIGTERM, then the container must exit 0 within `STOP_DEADLINE`.
    pub fn stop(&self, name: &str) -> Result<String> {
        self.engine
            .run(self.sh, &["kill", "--signal", "TERM", name])?;
        let started = Instant::now();
        let exited = wait_until::<_, Error>(STOP_DEADLINE, || {
            let (running, code) = self.state(name)?;
            Ok((!running).then_some(code))
        })?;
        match exited {
            Some(0) => Ok(format!("exit 0 after {}", seconds(started.elapsed()))),
            Some(code) => bail!("exited with status {code} after SIGTERM"),
            None => bail!("still running {}s after SIGTERM", STOP_DEADLINE.as_secs()),
        }
    }

    /// The real user of the container's main process, from the host's /proc.
    pub fn process_user(&self, name: &str) -> Result<String> {
        let pid = self.engine.container_state(self.sh, name)?.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading the process status")?;
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .context("no Uid line")?;
        let uid = uid.split_whitespace().next().unwrap_or_default();
        ensure!(uid != "0", "the service runs as root");
        Ok(format!("uid {uid}"))
    }

    /// Whether the engine runs the container with a read-only root file system.
    pub fn read_only(&self, name: &str) -> Result<String> {
        let out = self.engine.run(
            self.sh,
            &[
                "container",
                "inspect",
                "--format",
                "{{.HostConfig.ReadonlyRootfs}}",
                name,
            ],
        )?;
        ensure!(
            out.trim() == "true",
            "the root file system is writable ({})",
            out.trim()
        );
        Ok("read-only root file system".into())
    }

    /// The output of every container still tracked, by name: what the caller shows after a
    /// failure. A container whose logs the engine cannot give is left out.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.containers
            .borrow()
            .iter()
            .filter_map(|(name, _)| {
                let out = self.engine.logs(self.sh, name).ok()?;
                Some((name.clone(), format!("{}{}", out.stdout, out.stderr)))
            })
            .collect()
    }
}

/// `1.2s`: how the checks report how long something took.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
