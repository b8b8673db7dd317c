//! `cargo xtask build`: cross-compile, verify and stage the service's binaries per target.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8PathBuf;
use cargo_metadata::{Message, TargetKind};
use xshell::{Shell, cmd};

use crate::cli::BuildArgs;
use crate::dist::{Manifest, Staging};
use crate::project::Project;
use crate::report::{self, step};
use crate::target::Target;
use crate::{elf, interrupt, toolchain};

/// One target's staged, verified binaries.
pub struct Built {
    pub target: Target,
    pub dir: Utf8PathBuf,
    pub manifest: Manifest,
    pub elapsed: Duration,
}

impl BuildArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let targets = resolve_targets(&self.targets, project);
        let built = build(sh, project, &targets, &self.profile)?;
        if self.json {
            let manifests: Vec<_> = built.iter().map(|b| (&b.dir, &b.manifest)).collect();
            println!("{}", serde_json::to_string_pretty(&manifests)?);
        } else {
            print!("{}", artifact_table(project, &built)?);
        }
        Ok(())
    }
}

/// The targets asked for, or the workspace's defaults, each once, in order.
pub fn resolve_targets(asked: &[Target], project: &Project) -> Vec<Target> {
    let mut targets = if asked.is_empty() {
        project.settings.targets.clone()
    } else {
        asked.to_vec()
    };
    let mut seen = Vec::new();
    targets.retain(|t| {
        let first = !seen.contains(t);
        seen.push(*t);
        first
    });
    targets
}

pub fn build(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    profile: &str,
) -> anyhow::Result<Vec<Built>> {
    targets
        .iter()
        .map(|&t| build_one(sh, project, t, profile))
        .collect()
}

fn build_one(
    sh: &Shell,
    project: &Project,
    target: Target,
    profile: &str,
) -> anyhow::Result<Built> {
    let started = Instant::now();
    toolchain::ensure_rust_target(sh, target)?;
    let cc = toolchain::c_compiler(sh, project, target)?;
    let binaries = step(format_args!("{target}: compiled"), || {
        compile(sh, project, target, profile, &cc.env)
    })
    .with_context(|| {
        format!(
            "building {} for {target} (C compiler: {})",
            project.package.name, cc.description
        )
    })?;

    let dest = project.dist_dir(target);
    let staging = Staging::new(&dest)?;
    let mut files = Vec::new();
    for (name, path) in &binaries {
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        elf::verify(&bytes, target)
            .with_context(|| format!("refusing {}", project.relative(path)))?;
        files.push(staging.add(path, name)?);
    }
    let manifest = Manifest {
        package: project.package.name.clone(),
        version: project.package.version.clone(),
        target: target.triple().to_owned(),
        files,
    };
    let dir = staging.commit(&manifest)?;
    eprintln!(
        "  {target}: verified and staged in {}",
        project.relative(&dir)
    );
    Ok(Built {
        target,
        dir,
        manifest,
        elapsed: started.elapsed(),
    })
}

/// Runs cargo and returns the package's executables (name, path) from its JSON messages.
fn compile(
    sh: &Shell,
    project: &Project,
    target: Target,
    profile: &str,
    env: &[(String, String)],
) -> anyhow::Result<Vec<(String, Utf8PathBuf)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let package = &project.package.name;
    let triple = target.triple();
    let mut command = cmd!(
        sh,
        "{cargo} build --package {package} --target {triple} --profile {profile} --message-format=json-render-diagnostics"
    )
    .quiet();
    for (key, value) in env {
        command = command.env(key, value);
    }
    let output = command.read();
    interrupt::check()?;
    let stdout = output.context("cargo build failed")?;
    let mut binaries = Vec::new();
    for message in Message::parse_stream(stdout.as_bytes()) {
        if let Message::CompilerArtifact(artifact) = message? {
            let ours = artifact.package_id == project.package.id;
            if let (true, Some(exe)) = (
                ours && artifact.target.kind.contains(&TargetKind::Bin),
                artifact.executable,
            ) {
                binaries.push((artifact.target.name.clone(), exe));
            }
        }
    }
    binaries.retain(|(name, _)| project.package.binaries.contains(name));
    binaries.sort();
    for name in &project.package.binaries {
        if !binaries.iter().any(|(n, _)| n == name) {
            bail!("cargo did not report the binary `{name}`");
        }
    }
    Ok(binaries)
}

fn artifact_table(project: &Project, built: &[Built]) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for b in built {
        for file in &b.manifest.files {
            rows.push(vec![
                b.target.triple().to_owned(),
                file.name.clone(),
                report::size(file.size),
                report::size(gzip_size(&b.dir.join(&file.name))?),
                file.sha256[..12].to_owned(),
                report::seconds(b.elapsed),
                project.relative(&b.dir.join(&file.name)).to_string(),
            ]);
        }
    }
    Ok(report::table(
        &[
            "target", "binary", "size", "gzipped", "sha256", "time", "path",
        ],
        &rows,
    ))
}

/// The size of a file after gzip at the default level: what a registry stores and sends.
pub fn gzip_size(path: &cargo_metadata::camino::Utf8Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut encoder = flate2::read::GzEncoder::new(file, flate2::Compression::default());
    Ok(std::io::copy(&mut encoder.by_ref(), &mut std::io::sink())?)
}
