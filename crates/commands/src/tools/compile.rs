//! Cross-compiling the shipped packages with cargo, then verifying and staging each target's
//! binaries.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8PathBuf;
use cargo_metadata::{Message, TargetKind};
use xshell::{Shell, cmd};

use crate::model::project::Project;
use crate::report::step;
use crate::tools::cache;
use crate::tools::process::{self, Io};
use crate::tools::toolchain;
use tiny_cross::digests::{Digests, Stamp};
use tiny_cross::dist::{Built, Manifest, Staging, read_manifest};
use tiny_cross::elf;
use tiny_cross::fresh::{self, Output, Record};
use tiny_cross::target::Target;
use tiny_cross::toolchain::StdSource;

/// Compiles every target in one cargo run (cargo schedules them side by side, as a plain
/// `cargo build --target a --target b` does), or two: one for the targets with a prebuilt
/// standard library and one for those whose standard library is built from source (in a
/// target directory of their own, see `std_from_source_dir`); then verifies and stages each
/// target's binaries.
pub fn build(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    profile: &str,
) -> anyhow::Result<Vec<Built>> {
    let started = Instant::now();
    let cross = toolchain::cross_env(sh, project, targets)?;
    let mut binaries = Vec::new();
    for std in [StdSource::Prebuilt, StdSource::FromSource] {
        let group: Vec<Target> = cross
            .std
            .iter()
            .filter(|(_, s)| *s == std)
            .map(|(t, _)| *t)
            .collect();
        if group.is_empty() {
            continue;
        }
        let triples: Vec<&str> = group.iter().map(|t| t.triple()).collect();
        let how = match std {
            StdSource::Prebuilt => "",
            StdSource::FromSource => " (standard library from source)",
        };
        let built = step(format_args!("compiled {}{how}", triples.join(", ")), || {
            compile(sh, project, &group, profile, std)
        })
        .with_context(|| {
            format!(
                "building {} (C compilers: {})",
                names(project),
                cross.compilers.join("; ")
            )
        })?;
        binaries.extend(built);
    }
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
    for name in project.packages.iter().flat_map(|p| &p.binaries) {
        if !binaries.iter().any(|(_, n, _)| n == name) {
            bail!("cargo did not report the binary `{name}` for {target}");
        }
    }
    let mut files = Vec::new();
    for (_, name, path) in binaries {
        let entry = digests.entry(path, name, |bytes| {
            elf::verify(bytes, target).map(|_| ()).map_err(|e| {
                tiny_cross::Error::Other(format!("refusing {}: {e}", project.relative(path)))
            })
        })?;
        files.push(entry);
    }
    let versions: Vec<&str> = project
        .packages
        .iter()
        .map(|p| p.version.as_str())
        .collect();
    let manifest = Manifest {
        package: names(project),
        version: versions.join(", "),
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
/// When the last build recorded that nothing it depended on changed since (see
/// `model::fresh`), cargo is not run: its no-op costs about as much again as the xtask's
/// whole start through `cargo run`.
fn compile(
    sh: &Shell,
    project: &Project,
    targets: &[Target],
    profile: &str,
    std: StdSource,
) -> anyhow::Result<Vec<(Target, String, Utf8PathBuf)>> {
    let cargo = toolchain::cargo();
    let triples = Target::cargo_args(targets);
    let mut args = vec!["build"];
    for package in &project.packages {
        args.extend(["--package", package.name.as_str()]);
    }
    args.extend(triples);
    let (build_std, bootstrap) = toolchain::BUILD_STD;
    let target_dir = match std {
        StdSource::Prebuilt => project.target_dir.clone(),
        StdSource::FromSource => toolchain::std_from_source_dir(&project.target_dir),
    };
    if std == StdSource::FromSource {
        args.extend(build_std);
        args.extend(["--target-dir", target_dir.as_str()]);
    }
    args.extend([
        "--profile",
        profile,
        "--message-format=json-render-diagnostics",
    ]);
    let (record, watched) = record_of(project, targets, &cargo, &args);
    if let Some(outputs) = watched.as_ref().and_then(|_| record.fresh()) {
        eprintln!("  cargo: nothing changed since the last build (not run)");
        return executables(targets, outputs);
    }
    let started = record.start()?;
    let server = cache::start(sh, project)?;
    let cached = server.iter().flat_map(|s| s.env());
    let mut command = toolchain::as_typed(cmd!(sh, "{cargo} {args...}").quiet()).envs(cached);
    if std == StdSource::FromSource {
        command = command.envs(bootstrap);
    }
    // cargo's progress and errors go to the terminal; its JSON messages come to us.
    let output = process::run(command, Io::Capture, Io::Inherit)?;
    if let Some(server) = server {
        cache::report(sh, server);
    }
    if !output.status.success() {
        bail!("cargo build failed: its errors are above");
    }
    let mut outputs = Vec::new();
    let mut local = Local::default();
    // Only the messages that name an executable or a local package matter: parsing the few
    // hundred others would be a noticeable part of a no-op build.
    let wanted: String = output
        .stdout
        .lines()
        .filter(|line| {
            line.contains(r#""executable":""#) || line.contains(r#""package_id":"path+"#)
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    for message in Message::parse_stream(wanted.as_bytes()) {
        let artifact = match message? {
            Message::CompilerArtifact(artifact) => artifact,
            Message::BuildScriptExecuted(script) => {
                local.build_scripts.push(script.out_dir);
                continue;
            }
            _ => continue,
        };
        if artifact.package_id.repr.starts_with("path+") {
            local.manifests.push(artifact.manifest_path.clone());
        }
        let Some(exe) = artifact.executable else {
            continue;
        };
        let name = artifact.target.name.clone();
        let is_shipped = artifact.target.kind.contains(&TargetKind::Bin)
            && project
                .packages
                .iter()
                .any(|p| p.id == artifact.package_id && p.binaries.contains(&name));
        let target = exe
            .strip_prefix(&target_dir)
            .ok()
            .and_then(|rel| rel.components().next())
            .and_then(|dir| targets.iter().find(|t| t.triple() == dir.as_str()));
        if let (true, Some(&target)) = (is_shipped, target) {
            outputs.push(Output {
                target: target.triple().to_owned(),
                name,
                path: exe,
            });
        }
    }
    if let Some(watched) = watched {
        // Only a shortcut: a build that cannot be recorded is simply run again next time.
        if let Some(sources) = sources(&outputs, &local) {
            let _ = record.save(started, &watched, &sources, &outputs);
        }
    }
    executables(targets, outputs)
}

/// The record for this cargo command in this environment, and the files it must watch
/// besides the build's own sources (`None`: this build cannot be proven fresh).
fn record_of(
    project: &Project,
    targets: &[Target],
    cargo: &str,
    args: &[&str],
) -> (Record, Option<Vec<Utf8PathBuf>>) {
    // This xtask's own binary is part of the key: a record says what the xtask that wrote
    // it watched, and a rebuilt xtask may watch more.
    let me = std::env::current_exe()
        .ok()
        .and_then(|exe| Utf8PathBuf::from_path_buf(exe).ok())
        .and_then(|exe| Stamp::of(&exe).ok())
        .map(|stamp| format!("{stamp:?}"));
    let command = [&[me.as_deref().unwrap_or_default(), cargo], args].concat();
    let key = fresh::key(&command, &project.root, std::env::vars_os());
    let record = Record::at(&project.work_dir().join("fresh"), &key);
    let watched = me.and_then(|_| watched_inputs(project, targets));
    (record, watched)
}

/// The shipped packages, for messages: `service`, `api, worker`.
fn names(project: &Project) -> String {
    let names: Vec<&str> = project.packages.iter().map(|p| p.name.as_str()).collect();
    names.join(", ")
}

fn executables(
    targets: &[Target],
    outputs: Vec<Output>,
) -> anyhow::Result<Vec<(Target, String, Utf8PathBuf)>> {
    let mut binaries = Vec::new();
    for output in outputs {
        let target = targets
            .iter()
            .find(|t| t.triple() == output.target)
            .with_context(|| format!("cargo built {} for an unknown target", output.path))?;
        binaries.push((*target, output.name, output.path));
    }
    binaries.sort();
    Ok(binaries)
}

/// Files cargo reads, or would read if they appeared, besides the sources of the package:
/// the toolchain, cargo configuration and rustup toolchain files from the workspace root up
/// and in `CARGO_HOME`, the project's own rustc and C compiler wrappers, and the
/// workspace's manifests and lock file. `None` when the build cannot be proven fresh from
/// files: the toolchain cannot be told (see `toolchain::watched_files`), or a configuration
/// file names a compiler (`build.rustc`, a wrapper other than ours) or includes other files.
fn watched_inputs(project: &Project, targets: &[Target]) -> Option<Vec<Utf8PathBuf>> {
    let mut files = toolchain::watched_files(targets)?;
    let cargo_home = toolchain::tool_home("CARGO_HOME", ".cargo")?;
    let mut configs = vec![cargo_home.join("config"), cargo_home.join("config.toml")];
    for dir in project.root.ancestors() {
        configs.push(dir.join(".cargo/config"));
        configs.push(dir.join(".cargo/config.toml"));
        files.push(dir.join("rust-toolchain"));
        files.push(dir.join("rust-toolchain.toml"));
    }
    // Judged by their text: any mention of "rustc" or "include", even in a comment, turns
    // the skip off, which costs a cargo run and is never a wrong skip. The one exception is
    // the line of the project's own config naming our wrapper, which is watched below.
    let own_config = project.root.join(".cargo/config.toml");
    for config in &configs {
        match std::fs::read_to_string(config) {
            Ok(text) => {
                let text = match *config == own_config {
                    true => text.replacen(toolchain::RUSTC_WRAPPER_SETTING, "", 1),
                    false => text,
                };
                if text.contains("rustc") || text.contains("include") {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    files.extend(configs);
    files.extend(toolchain::wrappers(project));
    files.push(project.root.join("Cargo.toml"));
    files.push(project.root.join("Cargo.lock"));
    files.extend(project.manifests.iter().cloned());
    Some(files)
}

/// What cargo's messages tell about the local (path) packages of a build.
#[derive(Default)]
struct Local {
    /// The `OUT_DIR` of each build script run.
    build_scripts: Vec<Utf8PathBuf>,
    /// Each package's manifest (one outside the workspace is no member).
    manifests: Vec<Utf8PathBuf>,
}

/// The local files the outputs were made from: what cargo's dep-info beside each output
/// lists (every local crate's sources, and the files its build script watches) and every
/// local package's manifest. `None` when a local build script watches nothing (cargo then
/// reruns it when any file of its package changes) or a dep-info file cannot be read.
fn sources(outputs: &[Output], local: &Local) -> Option<Vec<Utf8PathBuf>> {
    for out_dir in &local.build_scripts {
        let said = std::fs::read_to_string(out_dir.parent()?.join("output")).ok()?;
        if !said.lines().any(|l| {
            l.starts_with("cargo:rerun-if-changed=") || l.starts_with("cargo::rerun-if-changed=")
        }) {
            return None;
        }
    }
    let mut sources = local.manifests.clone();
    for output in outputs {
        let dep_info = std::fs::read_to_string(output.path.with_extension("d")).ok()?;
        sources.extend(fresh::dep_info_inputs(&dep_info)?);
    }
    sources.sort();
    sources.dedup();
    (!outputs.is_empty()).then_some(sources)
}
