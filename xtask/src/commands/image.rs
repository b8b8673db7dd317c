//! `cargo xtask image`: one image per architecture from the staged binaries, through
//! `Dockerfile.runtime`, and a multi-architecture index when pushing.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8Path;
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::cli::ImageArgs;
use crate::interrupt::Undo;
use crate::model::choice::BaseKind;
use crate::model::dist::Built;
use crate::model::project::Project;
use crate::oci::reference::ImageNames;
use crate::report::{self, step};
use crate::tools::engine::Engine;
use crate::tools::{compile, probe};

pub const DOCKERFILE: &str = "Dockerfile.runtime";
/// The service's user and group (65532, distroless' `nonroot`), as `Dockerfile.runtime` sets.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One built image.
#[derive(Debug, Serialize)]
pub struct Image {
    pub arch: &'static str,
    pub base: String,
    pub reference: String,
    pub size: u64,
    /// What the image was assembled from: the build context's files.
    pub context_size: u64,
    pub id: String,
    /// The registry digest, once pushed.
    pub digest: Option<String>,
    pub seconds: f64,
}

impl ImageArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let settings = &project.settings.image;
        let name = project.image_name();
        let names = ImageNames::new(
            self.tag.as_deref(),
            self.registry.as_deref(),
            name,
            &project.package.version,
        )?;
        if self.push {
            let Some(registry) = names.registry() else {
                bail!(
                    "--push needs a registry: give --registry <host:port> or a --tag that starts with one"
                );
            };
            probe::registry(registry)?;
        }
        let base = match (&self.base_image, self.base.unwrap_or(settings.base)) {
            (Some(image), _) => image.to_string(),
            (None, BaseKind::Scratch) => "scratch".to_owned(),
            (None, BaseKind::Alpine) => settings.alpine.clone(),
        };
        let budget = project.size_budget(&base)?;
        let engine = Engine::detect(sh, self.engine)?;
        let _whole_run = engine.remover().whole_run();
        if let Some(notice) = engine.sweep_leftovers(sh)? {
            eprintln!("  {notice}");
        }
        eprintln!("  engine: {}", engine.describe());

        let targets = project.targets(&self.targets);
        for &target in &targets {
            engine.can_build(target)?;
        }
        let built = compile::build(sh, project, &targets, "release")?;
        let mut build_args = Labels::collect(sh, project, &base)?.build_args();
        build_args.push(("BASE".into(), base.clone()));
        build_args.push(("PORT".into(), settings.port.to_string()));
        let recipe = Recipe {
            base,
            build_args,
            budget,
        };
        let mut images = Vec::new();
        // The tags this run made: untagged again unless the whole run succeeds.
        let mut made = Vec::new();
        for artifacts in &built {
            let reference = names.for_target(artifacts.target);
            let what = format!("{}: image {reference}", artifacts.target.arch());
            let (image, tag) = step(what, || {
                assemble(sh, project, &engine, &recipe, artifacts, &reference)
            })?;
            images.push(image);
            made.push(tag);
        }
        if self.push {
            push(sh, &engine, &names, &mut images)?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&images)?);
        } else {
            print!("{}", image_table(&images));
            if self.push {
                println!(
                    "index {} (linux/{})",
                    names.index,
                    images
                        .iter()
                        .map(|i| i.arch)
                        .collect::<Vec<_>>()
                        .join(", linux/")
                );
            }
        }
        made.into_iter().for_each(Undo::disarm);
        Ok(())
    }
}

/// What every architecture's image is built from besides its binaries.
struct Recipe {
    base: String,
    build_args: Vec<(String, String)>,
    budget: u64,
}

fn assemble(
    sh: &Shell,
    project: &Project,
    engine: &Engine,
    recipe: &Recipe,
    artifacts: &Built,
    reference: &str,
) -> anyhow::Result<(Image, Undo)> {
    let started = Instant::now();
    let target = artifacts.target;
    let (base, budget) = (&recipe.base, recipe.budget);
    let context = project.work_dir().join("image").join(target.arch());
    let context_size = stage_context(&context, artifacts, base == "scratch")?;
    let dockerfile = project.root.join(DOCKERFILE);
    let previous = engine.find_image(sh, reference)?.map(|i| i.id);
    let tag = engine.remover().image(reference, previous);
    engine.build(
        sh,
        target,
        &dockerfile,
        &context,
        reference,
        &recipe.build_args,
    )?;

    let inspect = engine.inspect_image(sh, reference)?;
    let arch = &inspect.architecture;
    if arch != target.arch() {
        drop(tag);
        bail!(
            "{} labelled the {} image `{arch}`: removed it",
            engine.name(),
            target.arch()
        );
    }
    let size = inspect.size;
    if size > budget {
        drop(tag);
        bail!(
            "{reference} is {}, over its size budget of {}: removed it (raise size-budget in \
             [workspace.metadata.xtask.image] if that is intended)",
            report::size(size),
            report::size(budget)
        );
    }
    let image = Image {
        arch: target.arch(),
        base: base.to_owned(),
        reference: reference.to_owned(),
        size,
        context_size,
        id: inspect.id,
        digest: None,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((image, tag))
}

/// Fills the per-architecture build context afresh and returns the size of its files.
fn stage_context(context: &Utf8Path, artifacts: &Built, scratch: bool) -> anyhow::Result<u64> {
    let _ = std::fs::remove_dir_all(context);
    for dir in ["bin", "rootfs", "owned/data"] {
        std::fs::create_dir_all(context.join(dir))
            .with_context(|| format!("creating {context}/{dir}"))?;
    }
    let mut total = 0;
    for file in &artifacts.manifest.files {
        let dest = context.join("bin").join(&file.name);
        total += std::fs::copy(artifacts.dir.join(&file.name), &dest)
            .with_context(|| format!("staging {dest}"))?;
    }
    if scratch {
        let rootfs = context.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/ssl/certs"))?;
        std::fs::write(rootfs.join("etc/passwd"), PASSWD)?;
        std::fs::write(rootfs.join("etc/group"), GROUP)?;
        total += (PASSWD.len() + GROUP.len()) as u64;
        total += std::fs::copy(CA_BUNDLE, rootfs.join(CA_BUNDLE.trim_start_matches('/'))).with_context(|| {
            format!("a scratch image needs a CA bundle and {CA_BUNDLE} is missing: install ca-certificates")
        })?;
    }
    Ok(total)
}

/// The OCI labels, from Cargo.toml and git.
pub struct Labels {
    title: String,
    description: String,
    version: String,
    revision: String,
    created: String,
    source: String,
    licenses: String,
    base: String,
}

impl Labels {
    fn collect(sh: &Shell, project: &Project, base: &str) -> anyhow::Result<Labels> {
        let package = &project.package;
        let (revision, created) = git_revision(sh);
        Ok(Labels {
            title: project.image_name().to_owned(),
            description: package.description.clone().unwrap_or_default(),
            version: package.version.clone(),
            revision,
            created,
            source: package.repository.clone().unwrap_or_default(),
            licenses: package.license.clone().unwrap_or_default(),
            base: base.to_owned(),
        })
    }

    fn build_args(&self) -> Vec<(String, String)> {
        [
            ("TITLE", &self.title),
            ("DESCRIPTION", &self.description),
            ("VERSION", &self.version),
            ("REVISION", &self.revision),
            ("CREATED", &self.created),
            ("SOURCE", &self.source),
            ("LICENSES", &self.licenses),
            ("BASE_NAME", &self.base),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// HEAD's commit (marked `-dirty` when tracked files changed) and its commit time: the
/// commit time rather than the clock keeps rebuilds of one commit identical.
fn git_revision(sh: &Shell) -> (String, String) {
    let head = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read();
    let time = cmd!(sh, "git log -1 --format=%cI")
        .quiet()
        .ignore_stderr()
        .read();
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read();
    match (head, time) {
        (Ok(head), Ok(time)) => {
            let suffix = if dirty.is_ok_and(|d| !d.trim().is_empty()) {
                "-dirty"
            } else {
                ""
            };
            (format!("{}{suffix}", head.trim()), time.trim().to_owned())
        }
        _ => (
            "unknown".to_owned(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ),
    }
}

fn push(
    sh: &Shell,
    engine: &Engine,
    names: &ImageNames,
    images: &mut [Image],
) -> anyhow::Result<()> {
    for image in images.iter_mut() {
        step(format_args!("pushed {}", image.reference), || {
            engine.push(sh, &image.reference)
        })?;
        image.digest = engine.inspect_image(sh, &image.reference)?.digest();
    }
    let members: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    step(format_args!("pushed index {}", names.index), || {
        engine.push_index(sh, &names.index, &members)
    })
}

fn image_table(images: &[Image]) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let digest = i.digest.as_deref().unwrap_or(&i.id);
            vec![
                i.arch.to_owned(),
                i.base.clone(),
                i.reference.clone(),
                report::size(i.size),
                digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                report::seconds(Duration::from_secs_f64(i.seconds)),
            ]
        })
        .collect();
    report::table(
        &["arch", "base", "reference", "size", "digest", "time"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME: &str = include_str!("../../../Dockerfile.runtime");

    fn instructions() -> impl Iterator<Item = &'static str> {
        RUNTIME
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    }

    #[test]
    fn the_runtime_dockerfile_runs_nothing() {
        assert!(
            !instructions().any(|l| l.to_ascii_uppercase().starts_with("RUN ")),
            "no RUN in {DOCKERFILE}"
        );
    }

    #[test]
    fn every_build_argument_passed_is_declared() {
        let declared: Vec<&str> = instructions()
            .filter_map(|l| l.strip_prefix("ARG "))
            .map(|a| a.split('=').next().unwrap_or(a))
            .collect();
        let labels = Labels {
            title: "t".into(),
            description: "d".into(),
            version: "1".into(),
            revision: "r".into(),
            created: "c".into(),
            source: "s".into(),
            licenses: "l".into(),
            base: "scratch".into(),
        };
        let mut passed: Vec<String> = labels.build_args().into_iter().map(|(k, _)| k).collect();
        passed.extend(["BASE".into(), "PORT".into()]);
        for arg in &passed {
            assert!(
                declared.contains(&arg.as_str()),
                "{DOCKERFILE} does not declare ARG {arg}"
            );
        }
        assert_eq!(
            declared.len(),
            passed.len(),
            "declared {declared:?}, passed {passed:?}"
        );
    }

    #[test]
    fn the_image_runs_the_service_as_the_user_of_its_passwd_entry() {
        assert!(instructions().any(|l| l == "USER 65532:65532"));
        assert!(PASSWD.contains(":65532:65532:") && GROUP.contains(":65532:"));
        assert!(instructions().any(|l| l == r#"ENTRYPOINT ["/usr/local/bin/service"]"#));
        assert!(instructions().any(|l| l.starts_with("COPY --chown=65532:65532 owned/ /")));
    }
}
