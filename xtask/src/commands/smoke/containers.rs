//! The containers and volumes of a smoke test: locked-down runs, state, stop, and clean-up
//! that happens however the test ends.

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use xshell::Shell;

use crate::report;
use crate::tools::engine::Engine;

/// Marks every container and volume we create, so leftovers can be found and removed.
pub const LABEL: &str = "xtask.smoke-test";
/// `docker stop` would wait 10 s; a clean service exits well within this.
const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// Containers and volumes of one smoke test, removed when it ends however it ends.
pub struct Resources<'a> {
    sh: &'a Shell,
    engine: &'a Engine,
    containers: RefCell<Vec<String>>,
    volumes: RefCell<Vec<String>>,
}

impl<'a> Resources<'a> {
    pub fn new(sh: &'a Shell, engine: &'a Engine) -> Resources<'a> {
        Resources {
            sh,
            engine,
            containers: RefCell::default(),
            volumes: RefCell::default(),
        }
    }

    /// Removes the container `name` at the end, whoever created it.
    pub fn track_container(&self, name: &str) {
        self.containers.borrow_mut().push(name.to_owned());
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
    ) -> anyhow::Result<()> {
        self.track_container(name);
        let create = [
            "create",
            "--name",
            name,
            "--label",
            LABEL,
            "--platform",
            platform,
            reference,
        ];
        self.engine.cmd(self.sh, &create).ignore_stdout().run()?;
        let source = format!("{name}:{path}");
        let dest = dest.to_string_lossy();
        self.engine.cmd(self.sh, &["cp", &source, &dest]).run()?;
        Ok(())
    }

    pub fn volume(&self, name: &str) -> anyhow::Result<()> {
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
    pub fn run_once(
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
    pub fn start(
        &self,
        name: &str,
        platform: &str,
        volume: &str,
        reference: &str,
        port: u16,
    ) -> anyhow::Result<()> {
        self.track_container(name);
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

    /// `(running, exit code)` of a container.
    pub fn state(&self, name: &str) -> anyhow::Result<(bool, i64)> {
        let out = self
            .engine
            .cmd(
                self.sh,
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

    /// SIGTERM, then the container must exit 0 within `STOP_DEADLINE`.
    pub fn stop(&self, name: &str) -> anyhow::Result<String> {
        self.engine
            .cmd(self.sh, &["kill", "--signal", "TERM", name])
            .ignore_stdout()
            .run()?;
        let started = Instant::now();
        loop {
            let (running, code) = self.state(name)?;
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
    pub fn process_user(&self, name: &str) -> anyhow::Result<String> {
        let pid = self
            .engine
            .cmd(self.sh, &["inspect", "--format", "{{.State.Pid}}", name])
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

    pub fn print_logs(&self) {
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
