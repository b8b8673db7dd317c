//! `cargo xtask bench`: figures, compared within one run. Cold and no-op build times of
//! `cargo xtask build` beside a plain `cargo build` of the same targets, binary sizes raw
//! and gzipped, and throughput of `/hello` and of an allocation-heavy `/messages` for the
//! musl build, with mimalloc and with musl's malloc, against a glibc build; and SIGTERM
//! under keep-alive load; the developer's loop, release path against fast path (see
//! `devloop`); and health checks under hostile clients (see `hostile`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8Path;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::cli::{BenchArgs, BenchSection};
use crate::interrupt::{self, Undo, wait_until};
use crate::model::choice::{Compression, EngineKind};
use crate::model::project::Project;
use crate::oci::assemble::{self, Settings};
use crate::oci::context;
use crate::oci::layout::Layout;
use crate::report;
use crate::tools::engine::{BuildRequest, Engine};
use crate::tools::process::{self, Io};
use crate::tools::{compile, git, load, probe, toolchain, which};
use tiny_cross::dist::gzip_size;
use tiny_cross::profile;
use tiny_cross::target::Target;

/// Rounds of each throughput run; the median is reported.
const ROUNDS: usize = 3;
/// The variant the others are compared with.
const GLIBC: usize = 1;

mod devloop;
mod hostile;

/// What `bench --json` prints (schema in the README).
#[derive(Debug, Serialize)]
struct Figures {
    /// Bumped when a field changes meaning or goes away.
    schema: u32,
    /// No-op builds, when they were measured.
    noop: Option<Noop>,
    /// The development loop, when it was measured.
    devloop: Option<devloop::Devloop>,
    /// Health checks under hostile clients, when they were measured.
    hostile: Option<hostile::Hostile>,
    /// Every other section, as the tables the bench prints without --json.
    tables: Vec<String>,
}

/// Each section's figures: printed as they come, or gathered for --json.
struct Out {
    json: bool,
    figures: Figures,
}

impl Out {
    fn table(&mut self, table: String) {
        if !self.json {
            println!("{table}");
        }
        self.figures.tables.push(table);
    }

    fn noop(&mut self, noop: Noop) {
        self.table(noop.render());
        self.figures.noop = Some(noop);
    }

    fn devloop(&mut self, figures: devloop::Devloop) {
        self.table(devloop::render(&figures));
        self.figures.devloop = Some(figures);
    }

    fn hostile(&mut self, figures: hostile::Hostile) {
        self.table(figures.render());
        self.figures.hostile = Some(figures);
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&self.figures)?);
        }
        Ok(())
    }
}

impl BenchArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let mut out = Out {
            json: self.json,
            figures: Figures {
                schema: 1,
                noop: None,
                devloop: None,
                hostile: None,
                tables: Vec::new(),
            },
        };
        match self.only {
            Some(BenchSection::Devloop) => {
                toolchain::cross_env(sh, project, &Target::ALL)?;
                out.devloop(devloop::measure(sh, project, self.devloop_rounds as usize)?);
                return out.finish();
            }
            Some(BenchSection::Noop) => {
                compile::build(sh, project, &Target::ALL, profile::RELEASE)?;
                out.noop(noop_times(sh, project)?);
                return out.finish();
            }
            Some(BenchSection::Throughput) => {
                let wrk = which::find_on_path("wrk")
                    .context("the benchmark needs wrk: sudo apt-get install wrk")?;
                toolchain::cross_env(sh, project, &Target::ALL)?;
                compile::build(sh, project, &[Target::X86_64Musl], profile::RELEASE)?;
                let scratch = project.work_dir().join("bench-throughput");
                let _scratch_removed = Undo::remove_dir(&scratch);
                std::fs::create_dir_all(&scratch)?;
                out.table(throughput(sh, project, &scratch, &wrk, &self)?);
                return out.finish();
            }
            Some(BenchSection::Hostile) => {
                compile::build(sh, project, &[Target::X86_64Musl], profile::RELEASE)?;
                let scratch = project.work_dir().join("bench-hostile");
                let _scratch_removed = Undo::remove_dir(&scratch);
                std::fs::create_dir_all(&scratch)?;
                let shipped = project.dist_dir(Target::X86_64Musl).join("service");
                out.hostile(hostile::measure(sh, &shipped, &scratch)?);
                return out.finish();
            }
            None => {}
        }
        let wrk = which::find_on_path("wrk")
            .context("the benchmark needs wrk: sudo apt-get install wrk")?;
        // Provisions zig once; the builds below, in scratch target directories under ours,
        // share it (see `share_zig`), so they differ only in the driver.
        toolchain::cross_env(sh, project, &Target::ALL)?;
        let scratch = project.work_dir().join("bench");
        let _ = std::fs::remove_dir_all(&scratch);
        let _scratch_removed = Undo::remove_dir(&scratch);
        std::fs::create_dir_all(&scratch)?;

        if !self.skip_cold {
            out.table(build_times(sh, project, &scratch)?);
        }
        out.table(sizes(sh, project)?);
        out.noop(noop_times(sh, project)?);
        out.table(image_assembly(sh, project, &scratch)?);
        out.devloop(devloop::measure(sh, project, self.devloop_rounds as usize)?);
        out.table(throughput(sh, project, &scratch, &wrk, &self)?);
        let drain = load::DrainLoad {
            connections: self.connections,
            ..Default::default()
        };
        let shipped = project.dist_dir(Target::X86_64Musl).join("service");
        out.table(load::drain_under_load(sh, &wrk, &shipped, &scratch, &drain)?.to_string());
        out.hostile(hostile::measure(sh, &shipped, &scratch)?);
        out.finish()
    }
}

fn build_times(sh: &Shell, project: &Project, scratch: &Utf8Path) -> anyhow::Result<String> {
    let xtask = process::own_exe()?;
    let cargo = toolchain::cargo();
    let package = &project.package.name;
    let triples = Target::cargo_args(&Target::ALL);
    let mut rows = Vec::new();
    let mut cold = Vec::new();
    for (label, dir) in [
        ("cargo xtask build", "xtask"),
        ("plain cargo build --release", "plain"),
    ] {
        let target_dir = scratch.join(dir);
        let mut times = Vec::new();
        for kind in ["cold", "no-op"] {
            let triples = &triples;
            let mut command = if dir == "xtask" {
                cmd!(sh, "{xtask} build {triples...}")
            } else {
                cmd!(
                    sh,
                    "{cargo} build --release --package {package} {triples...}"
                )
            };
            command = toolchain::as_typed(command.env("CARGO_TARGET_DIR", &target_dir).quiet());
            toolchain::share_zig(project, &target_dir)?;
            let started = Instant::now();
            let done = process::run(command, Io::Null, Io::Null)?;
            if !done.status.success() {
                bail!("{kind} {label} failed: run it by hand to see why");
            }
            let elapsed = started.elapsed();
            eprintln!("  {kind} {label}: {}", report::seconds(elapsed));
            times.push(elapsed);
        }
        cold.push(times[0]);
        rows.push(vec![
            label.to_owned(),
            report::seconds(times[0]),
            report::seconds(times[1]),
        ]);
        let _ = std::fs::remove_dir_all(&target_dir);
    }
    let ratio = cold[0].as_secs_f64() / cold[1].as_secs_f64();
    Ok(format!(
        "build times, both targets ({} cores)\n{}cold: xtask / plain = {ratio:.2}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        report::table(&["driver", "cold", "no-op"], &rows)
    ))
}

/// Rounds of each no-op build; the median is reported.
const NOOP_ROUNDS: usize = 11;

/// A no-op `cargo xtask build` (through cargo's alias, as typed) and the xtask binary alone,
/// against a no-op plain `cargo build --release` of the same targets, alternating in our own
/// target directory (built by `sizes` just before): each must find the others' build fresh.
/// The goal is at most 1.5x cargo alone; `cargo run` checking the xtask itself is part of
/// the first figure and not of the second.
fn noop_times(sh: &Shell, project: &Project) -> anyhow::Result<Noop> {
    let xtask = process::own_exe()?;
    let cargo = toolchain::cargo();
    let package = &project.package.name;
    let triples = Target::cargo_args(&Target::ALL);
    let labels = [
        "cargo xtask build",
        "xtask build (the binary alone)",
        "plain cargo build --release",
    ];
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..NOOP_ROUNDS {
        let triples = &triples;
        let runs = [
            // As typed: the default targets are both.
            cmd!(sh, "{cargo} xtask build"),
            cmd!(sh, "{xtask} build {triples...}"),
            cmd!(
                sh,
                "{cargo} build --release --package {package} {triples...}"
            ),
        ];
        for (i, command) in runs.into_iter().enumerate() {
            let started = Instant::now();
            let done = process::run(toolchain::as_typed(command.quiet()), Io::Null, Io::Capture)?;
            let elapsed = started.elapsed();
            if !done.status.success() {
                bail!("a no-op `{}` failed: run it by hand to see why", labels[i]);
            }
            if done.stderr.contains("Compiling") {
                bail!("a no-op `{}` compiled again:\n{}", labels[i], done.stderr);
            }
            times[i].push(elapsed.as_secs_f64());
        }
        interrupt::check()?;
    }
    let medians = times.map(|mut t| median(&mut t));
    Ok(Noop {
        rounds: NOOP_ROUNDS,
        runs: labels
            .iter()
            .zip(medians)
            .map(|(label, seconds)| NoopRun {
                driver: (*label).to_owned(),
                seconds,
            })
            .collect(),
        xtask_over_plain: medians[0] / medians[2],
        goal: NOOP_GOAL,
    })
}

/// The most a no-op `cargo xtask build` should take, against a no-op plain `cargo build`.
const NOOP_GOAL: f64 = 1.5;

/// What `bench --json` reports under `noop` (schema in the README).
#[derive(Debug, Serialize)]
struct Noop {
    rounds: usize,
    /// Each driver's median: `cargo xtask build`, the xtask binary alone, plain cargo.
    runs: Vec<NoopRun>,
    /// `cargo xtask build` (as typed) over plain `cargo build --release`.
    xtask_over_plain: f64,
    goal: f64,
}

#[derive(Debug, Serialize)]
struct NoopRun {
    driver: String,
    seconds: f64,
}

impl Noop {
    fn render(&self) -> String {
        let plain = self.runs.last().map_or(f64::NAN, |r| r.seconds);
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|run| {
                vec![
                    run.driver.clone(),
                    report::millis(Duration::from_secs_f64(run.seconds)),
                    format!("{:.2}", run.seconds / plain),
                ]
            })
            .collect();
        format!(
            "no-op builds, both targets, alternating (median of {})\n{}\
             no-op: cargo xtask build / plain = {:.2} (target: at most {})\n",
            self.rounds,
            report::table(&["driver", "no-op", "vs plain"], &rows),
            self.xtask_over_plain,
            self.goal
        )
    }
}

fn sizes(sh: &Shell, project: &Project) -> anyhow::Result<String> {
    let built = compile::build(sh, project, &Target::ALL, "release")?;
    let mut rows = Vec::new();
    for b in &built {
        for file in &b.manifest.files {
            let gz = gzip_size(&b.dir.join(&file.name))?;
            rows.push(vec![
                b.target.triple().to_owned(),
                file.name.clone(),
                format!("{} ({} B)", report::size(file.size), file.size),
                format!("{} ({} B)", report::size(gz), gz),
                format!("{:.2}", gz as f64 / file.size as f64),
            ]);
        }
    }
    Ok(format!(
        "binary sizes\n{}",
        report::table(&["target", "binary", "raw", "gzipped", "gz/raw"], &rows)
    ))
}

/// Rounds of each image assembly; the median is reported.
const IMAGE_ROUNDS: usize = 3;

/// The builtin engine's assembly of both architectures (layers, gzip, config, manifests,
/// index into a fresh layout) from the staged binaries, against docker building the same
/// `Dockerfile.runtime` from the same staged contexts, in the same run. Docker builds as
/// `image --engine docker` does, with `--no-cache` (its BuildKit cache is not pruned: the
/// build context's synced copy stays warm, which favours docker).
fn image_assembly(sh: &Shell, project: &Project, scratch: &Utf8Path) -> anyhow::Result<String> {
    let built = compile::build(sh, project, &Target::ALL, "release")?;
    let epoch = git::source_date_epoch(sh)?;
    let args = context::build_args(
        project,
        "scratch",
        git::revision(sh).as_deref(),
        epoch,
        profile::RELEASE,
    );
    let recipe = context::recipe(project, &args)?;
    let contexts = scratch.join("image");
    for b in &built {
        context::stage(&contexts.join(b.target.arch()), b, true, epoch)?;
    }
    let mut out = format!("image assembly, both architectures (median of {IMAGE_ROUNDS})\n");
    let mut builtin = Vec::new();
    let mut rows = Vec::new();
    for compression in [Compression::Gzip, Compression::Zstd] {
        let settings = Settings { epoch, compression };
        let mut times = Vec::new();
        let mut images = Vec::new();
        for round in 0..IMAGE_ROUNDS {
            let dir = scratch.join(format!("layout-{round}"));
            let started = Instant::now();
            let layout = Layout::create(&dir)?;
            // As `image` does it: the architectures side by side.
            images = assemble::side_by_side(&built, |b| {
                let context = contexts.join(b.target.arch());
                assemble::image(&layout, &recipe, None, &context, b.target, settings)
            })?;
            assemble::publish(&layout, "bench", &images, &[])?;
            times.push(started.elapsed().as_secs_f64());
            let _ = std::fs::remove_dir_all(&dir);
            interrupt::check()?;
        }
        let time = Duration::from_secs_f64(median(&mut times));
        out += &format!(
            "builtin engine, {compression:?}: {}\n",
            report::seconds(time)
        );
        builtin.push((compression, time));
        for i in &images {
            rows.push(vec![
                i.target.arch().to_owned(),
                format!("{} ({} B)", report::size(i.size), i.size),
                format!("{compression:?}"),
                format!(
                    "{} ({} B)",
                    report::size(i.compressed_size),
                    i.compressed_size
                ),
                format!("{:.2}", i.compressed_size as f64 / i.size as f64),
            ]);
        }
    }
    match Engine::detect(sh, Some(EngineKind::Docker)) {
        Ok(docker) => {
            let dockerfile = project.root.join(context::DOCKERFILE);
            let tag = |target: Target| format!("xtask-bench/tiny-service:{}", target.arch());
            // Removed again however the bench ends.
            let _tags: Vec<Undo> = built
                .iter()
                .map(|b| docker.remover().image(&tag(b.target), None))
                .collect();
            let mut times = Vec::new();
            for _ in 0..IMAGE_ROUNDS {
                let started = Instant::now();
                for b in &built {
                    docker.build(
                        sh,
                        &BuildRequest {
                            target: b.target,
                            dockerfile: &dockerfile,
                            context: &contexts.join(b.target.arch()),
                            tag: &tag(b.target),
                            build_args: &args,
                            epoch,
                        },
                    )?;
                }
                times.push(started.elapsed().as_secs_f64());
                interrupt::check()?;
            }
            let docker_time = median(&mut times);
            out += &format!(
                "docker build ({}, --no-cache; it compresses nothing until a push): {}\n",
                docker.describe(),
                report::seconds(Duration::from_secs_f64(docker_time)),
            );
            for (compression, time) in &builtin {
                out += &format!(
                    "builtin ({compression:?}) / docker = {:.2} (target: at most 0.2)\n",
                    time.as_secs_f64() / docker_time
                );
            }
        }
        Err(e) => out += &format!("docker build: not measured ({e:#})\n"),
    }
    out += &report::table(
        &["arch", "uncompressed", "compression", "compressed", "ratio"],
        &rows,
    );
    Ok(out)
}

struct Variant {
    label: &'static str,
    binary: String,
}

fn throughput(
    sh: &Shell,
    project: &Project,
    scratch: &Utf8Path,
    wrk: &Utf8Path,
    args: &BenchArgs,
) -> anyhow::Result<String> {
    let cargo = toolchain::cargo();
    let package = &project.package.name;
    let musl = Target::X86_64Musl.triple();
    let system_alloc = scratch.join("system-alloc");
    eprintln!("  building the glibc and musl-malloc variants");
    let glibc = cmd!(sh, "{cargo} build --release --quiet --package {package}").quiet();
    let no_mimalloc = cmd!(
        sh,
        "{cargo} build --release --quiet --package {package} --no-default-features --target {musl}"
    )
    .env("CARGO_TARGET_DIR", &system_alloc)
    .quiet();
    for build in [glibc, no_mimalloc] {
        let done = process::run(toolchain::as_typed(build), Io::Null, Io::Inherit)?;
        if !done.status.success() {
            bail!("building a variant to compare failed: its errors are above");
        }
    }
    let variants = [
        Variant {
            label: "musl + mimalloc (shipped)",
            binary: project
                .dist_dir(Target::X86_64Musl)
                .join("service")
                .into_string(),
        },
        Variant {
            label: "glibc (host build)",
            binary: project.target_dir.join("release/service").into_string(),
        },
        Variant {
            label: "musl + musl malloc",
            binary: system_alloc
                .join(musl)
                .join("release/service")
                .into_string(),
        },
    ];
    let mut tables = Vec::new();
    for workload in &WORKLOADS {
        tables.push(compare(sh, wrk, &variants, scratch, args, workload)?);
    }
    Ok(tables.join("\n"))
}

/// What the load generator asks for: `/hello` measures the HTTP stack; `/messages` with
/// stored messages serialises JSON on every worker thread, where the allocator shows.
struct Workload {
    path: &'static str,
    stored_messages: usize,
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        path: "/hello",
        stored_messages: 0,
    },
    Workload {
        path: "/messages?limit=100",
        stored_messages: 100,
    },
];

/// One workload against every variant, in interleaved rounds so that a noisy moment on the
/// machine hits each variant alike; medians, and ratios to the glibc build.
fn compare(
    sh: &Shell,
    wrk: &Utf8Path,
    variants: &[Variant],
    scratch: &Utf8Path,
    args: &BenchArgs,
    workload: &Workload,
) -> anyhow::Result<String> {
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (i, v) in variants.iter().enumerate() {
            let (rps, p99) = load(sh, wrk, &v.binary, scratch, args, workload)?;
            eprintln!(
                "  {} round {}: {}: {rps:.0} req/s, p99 {p99:.2} ms",
                workload.path,
                round + 1,
                v.label
            );
            results[i].push(rps);
            latency[i].push(p99);
        }
    }
    let medians: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
    let rows: Vec<Vec<String>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            vec![
                v.label.to_owned(),
                format!("{:.0}", medians[i]),
                format!("{:.2}", median(&mut latency[i])),
                format!("{:.2}", medians[i] / medians[GLIBC]),
            ]
        })
        .collect();
    Ok(format!(
        "GET {}, {} connections, {}s x {ROUNDS} rounds (median), wrk -t2\n{}",
        workload.path,
        args.connections,
        args.duration,
        report::table(&["build", "req/s", "p99 ms", "vs glibc"], &rows)
    ))
}

/// Starts one build of the service on a free loopback port, stores the workload's messages
/// through the websocket, and loads the workload's path with wrk. Returns requests per
/// second and the 99th percentile latency in milliseconds.
fn load(
    sh: &Shell,
    wrk: &Utf8Path,
    binary: &str,
    scratch: &Utf8Path,
    args: &BenchArgs,
    workload: &Workload,
) -> anyhow::Result<(f64, f64)> {
    let port = probe::free_port();
    let db = scratch.join(format!("bench-{port}.db"));
    let server = cmd!(sh, "{binary}")
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("DATABASE_PATH", &db)
        .env("MIGRATE_ON_START", "true")
        .env("RUST_LOG", "warn");
    // Stopped (its whole process group) when dropped, however this function ends.
    let server = process::spawn(server, Io::Null)?;
    let url = format!("http://127.0.0.1:{port}{}", workload.path);
    let listening = wait_until(Duration::from_secs(10), || {
        Ok(std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(()))
    })?;
    if listening.is_none() {
        bail!("{binary} did not start listening");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..workload.stored_messages {
        probe::websocket_echo(addr, &format!("benchmark message {i}: {}", "x".repeat(64)))?;
    }
    let connections = args.connections.to_string();
    let duration = format!("{}s", args.duration);
    let wrk = cmd!(sh, "{wrk} -t2 -c{connections} -d{duration} --latency {url}").quiet();
    let out = process::run(wrk, Io::Capture, Io::Inherit)?;
    drop(server);
    if !out.status.success() {
        bail!("wrk failed: its errors are above");
    }
    parse_wrk(&out.stdout).with_context(|| format!("unexpected wrk output:\n{}", out.stdout))
}

fn parse_wrk(out: &str) -> Option<(f64, f64)> {
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))?
        .trim();
    Some((rps, parse_duration_ms(p99)?))
}

/// wrk prints latencies as `812.00us`, `1.23ms` or `2.00s`.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    Some(number.parse::<f64>().ok()? * factor)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_parses() {
        let out = "Running 10s test @ http://127.0.0.1:1/hello\n  2 threads and 64 connections\n\
                   Latency Distribution\n     50%  412.00us\n     99%    2.31ms\n\
                   812345 requests in 10.00s, 98.00MB read\nRequests/sec:  81234.50\nTransfer/sec:      9.80MB\n";
        assert_eq!(parse_wrk(out), Some((81234.5, 2.31)));
        assert_eq!(parse_duration_ms("812.00us"), Some(0.812));
        assert_eq!(parse_duration_ms("1.50s"), Some(1500.0));
        assert_eq!(parse_wrk("garbage"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
