//! Cross-compiling the shipped package with cargo, then verifying and staging each target's
//! binaries.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8PathBuf;
use cargo_metadata::{Message, TargetKind};
use xshell::{Shell, cmd};

use crate::model::digests::Digests;
use crate::model::dist::{Built, Manifest, Staging, read_manifest};
use crate::model::elf;
use crate::model::project::Project;
use crate::model::target::Target;
use crate::report::step;
use crate::tools::process::{self, Io};
use crate::tools::toolchain;

/// Compiles every target in one cargo run (cargo schedules them side by side, as a plain
/// `cargo build --target a --target b` does), then verifies and stages each target's binaries.
pub fn build(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    profile: &str,
) -> anyhow::Result<Vec<Built>> {
    let started = Instant::now();
    let cross = toolchain::cross_env(sh, project, targets)?;
    let triples: Vec<&str> = targets.iter().map(|t| t.triple()).collect();
    let binaries = step(format_args!("compiled {}", triples.join(", ")), || {
        compile(sh, project, targets, profile)
    })
    .with_context(|| {
        format!(
            "building {} (C compilers: {})",
            project.package.name,
            cross.compilers.join("; ")
        )
    })?;
    let compiled = started.elapsed();
    let mut digests = Digests::load(&project.digest_cache());
    let built = targets
        .iter()
        .map(|&target| {
            let ours: Vec<_> = binaries.iter().filter(|b| b.0 == target).collect();
            stage(project, target, profile, &ours, compiled, &mut digests)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    digests.save()?;
    Ok(built)
}

/// Verifies one target's binaries and swaps them into its dist folder with a manifest,
/// unless the folder already holds exactly these files: then it is left as it is (and
/// nothing is read while the cache vouches for the files).
fn stage(
    project: &Project,
    target: Target,
    profile: &str,
    binaries: &[&(Target, String, Utf8PathBuf)],
    compiled: Duration,
    digests: &mut Digests,
) -> anyhow::Result<Built> {
    let started = Instant::now();
    for name in &project.package.binaries {
        if !binaries.iter().any(|(_, n, _)| n == name) {
            bail!("cargo did not report the binary `{name}` for {target}");
        }
    }
    let mut files = Vec::new();
    for (_, name, path) in binaries {
        let entry = digests.entry(path, name, |bytes| {
            elf::verify(bytes, target)
                .map(|_| ())
                .with_context(|| format!("refusing {}", project.relative(path)))
        })?;
        files.push(entry);
    }
    let manifest = Manifest {
        package: project.package.name.clone(),
        version: project.package.version.clone(),
        target: target.triple().to_owned(),
        files,
    };
    let dest = project.profile_dist_dir(profile, target);
    let unchanged = read_manifest(&dest).is_ok_and(|staged| staged == manifest)
        && manifest
            .files
            .iter()
            .all(|f| digests.holds(&dest.join(&f.name), &f.sha256));
    let dir = if unchanged {
        eprintln!("  {target}: unchanged in {}", project.relative(&dest));
        dest
    } else {
        let staging = Staging::new(&dest)?;
        for (expected, (_, name, path)) in manifest.files.iter().zip(binaries) {
            if staging.add(path, name)? != *expected {
                bail!("{path} changed while it was being staged: build again");
            }
        }
        let dir = staging.commit(&manifest)?;
        for f in &manifest.files {
            digests.record(&dir.join(&f.name), &f.sha256)?;
        }
        eprintln!(
            "  {target}: verified and staged in {}",
            project.relative(&dir)
        );
        dir
    };
    Ok(Built {
        target,
        dir,
        manifest,
        elapsed: compiled + started.elapsed(),
    })
}

/// Runs cargo and returns the package's executables (target, name, path), read from its
/// JSON messages; the target is the first folder of the path under the target directory.
fn compile(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    profile: &str,
) -> anyhow::Result<Vec<(Target, String, Utf8PathBuf)>> {
    let cargo = toolchain::cargo();
    let package = &project.package.name;
    let triples = Target::cargo_args(targets);
    let command = cmd!(
        sh,
        "{cargo} build --package {package} {triples...} --profile {profile} --message-format=json-render-diagnostics"
    )
    .quiet();
    // cargo's progress and errors go to the terminal; its JSON messages come to us.
    let output = process::run(command, Io::Capture, Io::Inherit)?;
    if !output.status.success() {
        bail!("cargo build failed: its errors are above");
    }
    let mut binaries = Vec::new();
    // Only the messages that name an executable matter: parsing the few hundred others
    // would be a noticeable part of a no-op build.
    let executables: String = output
        .stdout
        .lines()
        .filter(|line| line.contains(r#""executable":""#))
        .flat_map(|line| [line, "\n"])
        .collect();
    for message in Message::parse_stream(executables.as_bytes()) {
        let Message::CompilerArtifact(artifact) = message? else {
            continue;
        };
        let Some(exe) = artifact.executable else {
            continue;
        };
        let name = artifact.target.name.clone();
        let is_shipped = artifact.package_id == project.package.id
            && artifact.target.kind.contains(&TargetKind::Bin)
            && project.package.binaries.contains(&name);
        let target = exe
            .strip_prefix(&project.target_dir)
            .ok()
            .and_then(|rel| rel.components().next())
            .and_then(|dir| targets.iter().find(|t| t.triple() == dir.as_str()));
        if let (true, Some(&target)) = (is_shipped, target) {
            binaries.push((target, name, exe));
        }
    }
    binaries.sort();
    Ok(binaries)
}
