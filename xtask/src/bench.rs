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
use clap::Args;
use serde::Serialize;
use xshell::{Shell, cmd};

use tiny_commands::interrupt::{self, Undo, wait_until};
use tiny_commands::model::choice::Compression;
use tiny_commands::model::project::Project;
use tiny_commands::oci::{arch, context};
use tiny_commands::report;
use tiny_commands::tools::process::{self, Io};
use tiny_commands::tools::{compile, git, probe, toolchain, which};
use tiny_cross::dist::gzip_size;
use tiny_cross::profile;
use tiny_cross::target::{Selection, Target};
use tiny_engine::EngineKind;
use tiny_engine::{BuildRequest, Engine};
use tiny_oci::assemble::{self, Settings};
use tiny_oci::layout::Layout;

/// Rounds of each throughput comparison. The runs are short and interleaved, the order
/// reversed every other round, so that the load of other processes on a shared machine hits
/// every variant alike; a ratio is the median of the rounds' ratios, each between runs
/// seconds apart.
const ROUNDS: usize = 9;
/// The variant the others are compared with.
const GLIBC: usize = 1;
/// The niceness of the servers and wrk during the throughput rounds, when we may raise it
/// (root): on a machine busy with other work, the comparison then measures the builds more
/// than the others' load.
const NICENESS: &str = "-10";
/// The kernel's clock tick for `/proc/<pid>/stat` times (`USER_HZ`, fixed at 100 on Linux).
const USER_HZ: f64 = 100.0;

mod devloop;
mod hostile;
mod load;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds of load per throughput run (9 interleaved rounds per build and path)
    #[arg(long, value_name = "SECONDS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Concurrent connections for the throughput runs
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Skip the cold builds (minutes each); measure no-op builds, sizes and throughput only
    #[arg(long)]
    pub skip_cold: bool,
    /// Measure this section only
    #[arg(long, value_enum, value_name = "SECTION")]
    pub only: Option<BenchSection>,
    /// The targets of `--only cold`, or `all`; repeatable [default: `targets` in
    /// [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Rounds of each path in the change-to-images loop (the median is reported)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub devloop_rounds: u32,
    /// Print the figures as one JSON object (schema in the README) instead of tables
    #[arg(long)]
    pub json: bool,
}

/// A part of `bench` that can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSection {
    /// From a one-line change in the service to both images, release path against fast path
    Devloop,
    /// A no-op `cargo xtask build` against a no-op plain `cargo build`, both targets
    Noop,
    /// `/hello` and `/messages` throughput: the musl build against a glibc build
    Throughput,
    /// `/healthz` and `/hello` latency under 300 idle websockets and 1,100 slow clients
    Hostile,
    /// A cold `cargo xtask build` of each target alone, then of all of them in one run (the
    /// standard library built from source included where rustup has none)
    Cold,
}

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
                toolchain::cross_env(sh, project, &project.targets(&[]))?;
                out.devloop(devloop::measure(sh, project, self.devloop_rounds as usize)?);
                return out.finish();
            }
            Some(BenchSection::Noop) => {
                compile::build(sh, project, &project.targets(&[]), profile::RELEASE)?;
                out.noop(noop_times(sh, project)?);
                return out.finish();
            }
            Some(BenchSection::Throughput) => {
                let wrk = which::find_on_path("wrk")
                    .context("the benchmark needs wrk: sudo apt-get install wrk")?;
                toolchain::cross_env(sh, project, &project.targets(&[]))?;
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
            Some(BenchSection::Cold) => {
                let targets = project.targets(&self.targets);
                toolchain::cross_env(sh, project, &targets)?;
                let scratch = project.work_dir().join("bench-cold");
                let _ = std::fs::remove_dir_all(&scratch);
                let _scratch_removed = Undo::remove_dir(&scratch);
                std::fs::create_dir_all(&scratch)?;
                out.table(cold_times(sh, project, &targets, &scratch)?);
                return out.finish();
            }
            None => {}
        }
        let wrk = which::find_on_path("wrk")
            .context("the benchmark needs wrk: sudo apt-get install wrk")?;
        // Provisions zig once; the builds below, in scratch target directories under ours,
        // share it (see `share_zig`), so they differ only in the driver.
        toolchain::cross_env(sh, project, &project.targets(&[]))?;
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
    let triples = Target::cargo_args(&project.targets(&[]));
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

/// A cold `cargo xtask build` of each target alone, then of all of them in one run, each in
/// a fresh target directory that shares only zig: what a checkout without a cache pays,
/// including a standard library built from rust-src where rustup has none to download.
fn cold_times(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    scratch: &Utf8Path,
) -> anyhow::Result<String> {
    let xtask = process::own_exe()?;
    let mut runs: Vec<Vec<Target>> = targets.iter().map(|&t| vec![t]).collect();
    if targets.len() > 1 {
        runs.push(targets.to_vec());
    }
    let mut rows = Vec::new();
    for run in runs {
        let target_dir = scratch.join("target");
        toolchain::share_zig(project, &target_dir)?;
        let label = match run.as_slice() {
            [one] => one.short().to_owned(),
            all => format!("all {} in one run", all.len()),
        };
        let triples = Target::cargo_args(&run);
        let command = cmd!(sh, "{xtask} build {triples...}")
            .env("CARGO_TARGET_DIR", &target_dir)
            .quiet();
        let started = Instant::now();
        let done = process::run(toolchain::as_typed(command), Io::Null, Io::Null)?;
        if !done.status.success() {
            bail!("a cold `cargo xtask build` of {label} failed: run it by hand to see why");
        }
        let elapsed = started.elapsed();
        let from_source = toolchain::std_from_source_dir(&target_dir);
        let built = run.iter().filter(|t| from_source.join(t.triple()).is_dir());
        let std = match (built.count(), run.len()) {
            (0, _) => "prebuilt".to_owned(),
            (n, all) if n == all => "from source".to_owned(),
            (n, all) => format!("from source for {n} of {all}"),
        };
        eprintln!("  cold {label}: {}", report::seconds(elapsed));
        rows.push(vec![label, std, report::seconds(elapsed)]);
        std::fs::remove_dir_all(&target_dir).with_context(|| format!("removing {target_dir}"))?;
    }
    Ok(format!(
        "cold builds, a fresh target directory each ({} cores)\n{}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        report::table(&["targets", "std", "cold"], &rows)
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
    let triples = Target::cargo_args(&project.targets(&[]));
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
    let built = compile::build(sh, project, &project.targets(&[]), "release")?;
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
    let built = compile::build(sh, project, &project.targets(&[]), "release")?;
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
        context::stage(
            &contexts.join(b.target.short()),
            b,
            &project.image,
            true,
            epoch,
        )?;
    }
    let mut out = format!("image assembly, both architectures (median of {IMAGE_ROUNDS})\n");
    let mut builtin = Vec::new();
    let mut rows = Vec::new();
    for compression in [Compression::Gzip, Compression::Zstd] {
        let settings = Settings {
            epoch,
            compression: compression.into(),
        };
        let mut times = Vec::new();
        let mut images = Vec::new();
        for round in 0..IMAGE_ROUNDS {
            let dir = scratch.join(format!("layout-{round}"));
            let started = Instant::now();
            let layout = Layout::create(&dir)?;
            // As `image` does it: the architectures side by side.
            images = assemble::side_by_side(&built, |b| {
                let context = contexts.join(b.target.short());
                assemble::image(&layout, &recipe, None, &context, arch(b.target), settings)
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
                i.target.as_str().to_owned(),
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
            let dockerfile = contexts.join(context::DOCKERFILE);
            std::fs::write(&dockerfile, context::dockerfile(project)?)?;
            let tag = |target: Target| format!("xtask-bench/tiny-service:{}", target.short());
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
                            context: &contexts.join(b.target.short()),
                            tag: &tag(b.target),
                            build_args: &args,
                            epoch: epoch.seconds(),
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

/// One workload against every variant. Each variant's server runs through all the rounds,
/// pinned to the same cores as the others, and wrk to the other cores (see `Cpus`); the
/// rounds interleave the variants. Reported: median req/s, p99 latency and CPU time per
/// request (the server's user and system time, which the machine's other load disturbs far
/// less than req/s), and the median of each round's req/s ratio to the glibc build, with
/// the range over the rounds.
fn compare(
    sh: &Shell,
    wrk: &Utf8Path,
    variants: &[Variant],
    scratch: &Utf8Path,
    args: &BenchArgs,
    workload: &Workload,
) -> anyhow::Result<String> {
    let cpus = Cpus::split(&std::fs::read_to_string("/proc/self/status")?)
        .context("cannot read which cores this process may use from /proc/self/status")?;
    let taskset = which::find_on_path("taskset").context(
        "the benchmark pins the server and wrk with taskset: sudo apt-get install util-linux",
    )?;
    // `nice` runs its command at the niceness it could get: ask it which.
    let nice = cmd!(sh, "nice -n {NICENESS} nice")
        .quiet()
        .ignore_stderr()
        .read()
        .context("the benchmark runs its processes through nice: sudo apt-get install coreutils")?;
    let priority = if nice.trim() == NICENESS {
        format!("nice {NICENESS}")
    } else {
        "normal priority (raising it needs root)".to_owned()
    };
    let servers = variants
        .iter()
        .map(|v| Server::start(sh, &taskset, &cpus, &v.binary, scratch, workload))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let load = Load {
        sh,
        wrk,
        taskset: &taskset,
        cpus: &cpus,
        connections: args.connections,
    };
    // A short run each first: caches, the allocator's pages, SQLite's statement cache.
    for server in &servers {
        load.run(server, workload, 1)?;
    }
    let mut runs: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let run = load.run(&servers[i], workload, args.duration)?;
            eprintln!(
                "  {} round {}: {}: {:.0} req/s, p99 {:.2} ms, {:.1} us CPU per request",
                workload.path,
                round + 1,
                variants[i].label,
                run.rps,
                run.p99_ms,
                run.cpu_us
            );
            runs[i].push(run);
        }
        interrupt::check()?;
    }
    drop(servers);
    let rows: Vec<Vec<String>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = |f: fn(&Run) -> f64| median(&mut runs[i].iter().map(f).collect::<Vec<_>>());
            let mut ratios: Vec<f64> = runs[i]
                .iter()
                .zip(&runs[GLIBC])
                .map(|(run, glibc)| run.rps / glibc.rps)
                .collect();
            let ratio = median(&mut ratios);
            vec![
                v.label.to_owned(),
                format!("{:.0}", field(|r| r.rps)),
                format!("{:.2}", field(|r| r.p99_ms)),
                format!("{:.1}", field(|r| r.cpu_us)),
                format!(
                    "{ratio:.2} ({:.2}-{:.2})",
                    ratios.first().copied().unwrap_or(f64::NAN),
                    ratios.last().copied().unwrap_or(f64::NAN)
                ),
            ]
        })
        .collect();
    Ok(format!(
        "GET {}, {} connections, {}s x {ROUNDS} interleaved rounds (medians), {priority}, server \
         on cores {}, wrk -t{} on cores {}\n{}",
        workload.path,
        args.connections,
        args.duration,
        cpus.server_label(),
        cpus.wrk_threads(),
        cpus.wrk_label(),
        report::table(
            &["build", "req/s", "p99 ms", "CPU us/req", "vs glibc (range)"],
            &rows
        )
    ))
}

/// Which cores the servers and wrk run on: the servers on one half of the cores this
/// process may use, wrk on the other, so the server under load never competes with wrk and
/// every variant gets the same cores. With a single core, both share it.
#[derive(Debug, PartialEq, Eq)]
struct Cpus {
    server: Vec<u32>,
    wrk: Vec<u32>,
}

impl Cpus {
    /// From `/proc/self/status` (its `Cpus_allowed_list`, such as `0-3,6`).
    fn split(status: &str) -> Option<Cpus> {
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
            .trim();
        let mut cpus = Vec::new();
        for part in list.split(',') {
            match part.split_once('-') {
                Some((first, last)) => cpus.extend(first.parse::<u32>().ok()?..=last.parse().ok()?),
                None => cpus.push(part.parse().ok()?),
            }
        }
        if cpus.len() < 2 {
            return Some(Cpus {
                server: cpus.clone(),
                wrk: cpus,
            });
        }
        let server = cpus.split_off(cpus.len() / 2);
        Some(Cpus { server, wrk: cpus })
    }

    fn list(cpus: &[u32]) -> String {
        cpus.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn server_label(&self) -> String {
        Cpus::list(&self.server)
    }

    fn wrk_label(&self) -> String {
        Cpus::list(&self.wrk)
    }

    fn wrk_threads(&self) -> usize {
        self.wrk.len().max(1)
    }
}

/// One variant's server, with the workload's messages stored; stopped when dropped.
struct Server {
    process: process::Running,
    port: u16,
}

impl Server {
    fn start(
        sh: &Shell,
        taskset: &Utf8Path,
        cpus: &Cpus,
        binary: &str,
        scratch: &Utf8Path,
        workload: &Workload,
    ) -> anyhow::Result<Server> {
        let port = probe::free_port();
        let db = scratch.join(format!("bench-{port}.db"));
        let cores = cpus.server_label();
        let server = cmd!(sh, "nice -n {NICENESS} {taskset} -c {cores} {binary}")
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("DATABASE_PATH", &db)
            .env("MIGRATE_ON_START", "true")
            .env("RUST_LOG", "warn");
        // Stopped (its whole process group) when dropped, however the bench ends.
        let process = process::spawn(server, Io::Null)?;
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
            crate::ours::websocket_echo(
                addr,
                &format!("benchmark message {i}: {}", "x".repeat(64)),
            )?;
        }
        Ok(Server { process, port })
    }

    /// Its user and system CPU time so far, in seconds (nice and taskset exec what they run,
    /// so the pid is the service's).
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let pid = self.process.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("the server (pid {pid}) has stopped"))?;
        cpu_seconds(&stat).with_context(|| format!("unexpected /proc/{pid}/stat: {stat}"))
    }
}

/// `utime` and `stime` of a `/proc/<pid>/stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name, in parentheses, may hold spaces: count fields after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; the first after the name is field 3.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// wrk as the throughput rounds run it.
struct Load<'a> {
    sh: &'a Shell,
    wrk: &'a Utf8Path,
    taskset: &'a Utf8Path,
    cpus: &'a Cpus,
    connections: u32,
}

/// One wrk run's figures.
struct Run {
    rps: f64,
    p99_ms: f64,
    /// The server's CPU time per request, in microseconds.
    cpu_us: f64,
}

impl Load<'_> {
    fn run(&self, server: &Server, workload: &Workload, seconds: u64) -> anyhow::Result<Run> {
        let (sh, wrk, taskset) = (self.sh, self.wrk, self.taskset);
        let url = format!("http://127.0.0.1:{}{}", server.port, workload.path);
        let cores = self.cpus.wrk_label();
        let threads = self.cpus.wrk_threads().to_string();
        let connections = self.connections.to_string();
        let duration = format!("{seconds}s");
        let command = cmd!(
            sh,
            "nice -n {NICENESS} {taskset} -c {cores} {wrk} -t{threads} -c{connections} -d{duration} --latency {url}"
        )
        .quiet();
        let before = server.cpu_seconds()?;
        let out = process::run(command, Io::Capture, Io::Inherit)?;
        let cpu = server.cpu_seconds()? - before;
        if !out.status.success() {
            bail!("wrk failed: its errors are above");
        }
        let (rps, p99_ms, requests) = parse_wrk(&out.stdout)
            .with_context(|| format!("unexpected wrk output:\n{}", out.stdout))?;
        Ok(Run {
            rps,
            p99_ms,
            cpu_us: cpu * 1e6 / requests.max(1) as f64,
        })
    }
}

/// Requests per second, the 99th percentile latency in milliseconds, and the number of
/// requests.
fn parse_wrk(out: &str) -> Option<(f64, f64, u64)> {
    let requests = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))?
        .0
        .parse()
        .ok()?;
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
    Some((rps, parse_duration_ms(p99)?, requests))
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
        assert_eq!(parse_wrk(out), Some((81234.5, 2.31, 812345)));
        assert_eq!(parse_duration_ms("812.00us"), Some(0.812));
        assert_eq!(parse_duration_ms("1.50s"), Some(1500.0));
        assert_eq!(parse_wrk("garbage"), None);
    }

    #[test]
    fn cores_split_between_server_and_wrk() {
        let status = |list: &str| format!("Name:\txtask\nCpus_allowed_list:\t{list}\n");
        assert_eq!(
            Cpus::split(&status("0-1")),
            Some(Cpus {
                server: vec![1],
                wrk: vec![0]
            })
        );
        let cpus = Cpus::split(&status("0-3,6")).unwrap();
        assert_eq!(
            (cpus.wrk_label(), cpus.server_label()),
            ("0,1".into(), "2,3,6".into())
        );
        assert_eq!(
            Cpus::split(&status("5")),
            Some(Cpus {
                server: vec![5],
                wrk: vec![5]
            })
        );
        assert_eq!(Cpus::split("Name:\txtask\n"), None);
        assert_eq!(Cpus::split(&status("0-x")), None);
    }

    #[test]
    fn cpu_time_comes_from_proc_stat() {
        let stat = "4242 (my service) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 75 0 0 20 0 3 0";
        assert_eq!(cpu_seconds(stat), Some(2.25));
        assert_eq!(cpu_seconds("4242 (x) S 1"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
