//! `cargo xtask image`: one image per architecture from the staged binaries and
//! `Dockerfile.runtime`, written by the builtin engine into an OCI image layout (and loaded
//! into docker or podman), or built by docker or podman; a multi-architecture index when
//! pushing.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use xshell::Shell;

use crate::cli::ImageArgs;
use crate::interrupt::Undo;
use crate::model::choice::BuildEngine;
use crate::model::project::Project;
use crate::oci::arch;
use crate::oci::context::{self, DOCKERFILE};
use crate::oci::reference::ImageNames;
use crate::oci::signing;
use crate::report::{self, step};
use crate::tools::buildinfo::BuildInfo;
use crate::tools::compile;
use crate::tools::credential_helper::stored_login;
use crate::tools::documents::{self, Described};
use crate::tools::{git, probe, writable};
use tiny_cross::dist::Built;
use tiny_cross::profile;
use tiny_cross::target::Target;
use tiny_engine::EngineKind;
use tiny_engine::RunId;
use tiny_engine::{BuildRequest, Engine};
use tiny_oci::assemble::{self, Assembled, BaseImage, Settings};
use tiny_oci::auth::Login;
use tiny_oci::epoch::Epoch;
use tiny_oci::layout::Layout;
use tiny_oci::recipe::{Base, Recipe};
use tiny_oci::referrers::{self, Document, Referrer};
use tiny_oci::registry::{self, Client};
use tiny_sbom::provenance::Subject;

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
    /// The manifest digest: the builtin engine's, or the registry's once pushed.
    pub digest: Option<String>,
    /// The layers as stored in the OCI layout (builtin engine only).
    pub compressed_size: Option<u64>,
    /// Where the builtin engine wrote it.
    pub layout: Option<InLayout>,
    /// The documents attached to it as referrers (builtin engine only).
    pub attached: Vec<Attached>,
    pub seconds: f64,
}

/// A document attached to an image: its `artifactType`, the referrer manifest's digest and
/// the document's.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    pub artifact_type: String,
    pub manifest: String,
    pub document: String,
}

/// An image in the builtin engine's OCI layout.
#[derive(Debug, Clone, Serialize)]
pub struct InLayout {
    pub dir: Utf8PathBuf,
    /// Its ref name in `index.json` (`<tag>-<arch>`).
    pub ref_name: String,
    /// The multi-architecture index's ref name (`<tag>`) and digest; none for a
    /// single-platform build, which names its image `<tag>-<arch>` only.
    pub index: Option<String>,
    pub index_digest: Option<String>,
}

impl ImageArgs {
    /// Every declared image, or those named with `--image`, one after the other.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            (self.tag.is_some(), "--tag"),
            (self.layout.is_some(), "--layout"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        let images = project.select_one_if(&self.image_names, &given)?;
        // Every image goes to the same registry: one login (a password on stdin is read once).
        let mut login = None;
        let mut built = Vec::new();
        // The tags made in an engine: put back as they were unless every image is built.
        let mut made = Vec::new();
        for image in &images {
            let (images, tags) = self.run_one(sh, &project.for_image(image), &mut login)?;
            built.extend(images);
            made.extend(tags);
        }
        crate::interrupt::check()?;
        made.into_iter().for_each(Undo::disarm);
        // One JSON array of every image's architectures.
        if self.json {
            println!("{}", serde_json::to_string_pretty(&built)?);
        }
        Ok(())
    }

    fn run_one(
        &self,
        sh: &Shell,
        project: &Project,
        login: &mut Option<Login>,
    ) -> anyhow::Result<(Vec<Image>, Vec<Undo>)> {
        let declared = &project.image;
        let name = project.image_name();
        let names = ImageNames::new(
            self.tag.as_deref(),
            self.registry.as_deref(),
            name,
            &project.package.version,
        )?;
        let profile = profile::of(self.fast);
        let names = if self.fast { names.dev()? } else { names };
        if self.fast && self.push && !self.allow_dev {
            bail!(
                "refusing to push dev images (--fast: no LTO, larger and slower): build without --fast to ship, or add --allow-dev to push them all the same"
            );
        }
        // The registry, its credentials and the right to push are checked before anything
        // is built; the login (a password on stdin is read once) is kept for the push.
        let push_login = match self.push {
            false => None,
            true => Some(check_push_target(sh, &names, self, login)?),
        };
        if self.sign && !self.push && self.engine != BuildEngine::Builtin {
            let engine = match self.engine {
                BuildEngine::Docker => "docker",
                _ => "podman",
            };
            bail!(
                "--sign without --push signs the builtin engine's OCI layout, and {engine} keeps \
                 its images itself: add --push to sign them in the registry, or build with \
                 --engine builtin"
            );
        }
        // The signing key opens (permissions, password) before anything is built.
        let signing_key = match (&self.key, self.sign) {
            (Some(path), true) => Some(signing::signing_key(path)?),
            _ => None,
        };
        let revision = git::revision(sh);
        if self.push
            && !self.allow_dirty
            && let Some(dirty) = revision
                .as_deref()
                .filter(|r| registry::is_dirty_revision(r))
        {
            bail!("{}", registry::dirty_refusal(dirty));
        }
        let base = match (
            &self.base_image,
            self.base
                .map(tiny_declare::Base::from)
                .unwrap_or(declared.base),
        ) {
            (Some(image), _) => image.to_string(),
            (None, tiny_declare::Base::Scratch) => "scratch".to_owned(),
            (None, tiny_declare::Base::Alpine) => declared.alpine.clone(),
        };
        let budget = project.size_budget(&base);
        let targets = project.targets(&self.targets);
        let epoch = git::source_date_epoch(sh)?;
        let build_args = context::build_args(project, &base, revision.as_deref(), epoch, profile);
        // The builtin engine refuses what it cannot build, before anything is compiled;
        // docker and podman may build what it cannot parse (RUN), and find such a recipe's
        // paths themselves.
        let recipe = match (self.engine, context::recipe(project, &build_args)) {
            (BuildEngine::Builtin, parsed) => Some(parsed?),
            (_, parsed) => parsed.ok(),
        };
        // What the build context will hold is known now: a COPY of anything else fails
        // here, not after the compile.
        if let Some(recipe) = &recipe {
            let contents = context::contents(declared, base == "scratch");
            context::check_sources(recipe, &contents)?;
        }
        if let (BuildEngine::Builtin, Some(recipe)) = (self.engine, &recipe) {
            check_local_base(recipe, &targets)?;
            let dir = layout_dir(project, self);
            writable::check(&dir, "--layout")?;
            Layout::check_writable(&dir).map_err(|e| {
                anyhow::anyhow!(
                    "the OCI layout {dir} cannot be added to: {e:#}; remove {dir}, or give \
                     --layout another folder"
                )
            })?;
        }
        let engine = match self.engine {
            BuildEngine::Builtin => None,
            BuildEngine::Docker | BuildEngine::Podman => {
                let kind = if self.engine == BuildEngine::Docker {
                    EngineKind::Docker
                } else {
                    EngineKind::Podman
                };
                let engine = Engine::detect(sh, Some(kind))?;
                if let Some(notice) = engine.sweep_leftovers(sh)? {
                    eprintln!("  {notice}");
                }
                eprintln!("  engine: {}", engine.describe());
                for &target in &targets {
                    engine.can_build(target)?;
                }
                Some(engine)
            }
        };
        // A missing engine to load into is named before anything is compiled.
        let builder = match (engine, recipe) {
            (Some(engine), _) => Builder::Engine(engine),
            (None, Some(recipe)) => Builder::Builtin(Box::new(recipe)),
            (None, None) => bail!("{DOCKERFILE} was not parsed"),
        };
        // Base images are pulled (or found in the cache) before the build: an unreachable
        // base registry fails in seconds, not after the compile.
        let bases = match &builder {
            Builder::Builtin(recipe) => targets
                .iter()
                .map(|&target| Ok((target, base_image(sh, project, recipe, target)?)))
                .collect::<anyhow::Result<Vec<_>>>()?,
            Builder::Engine(_) => Vec::new(),
        };
        let load_into = match builder {
            Builder::Builtin(_) => load_engines(sh, self)?,
            Builder::Engine(_) => Vec::new(),
        };
        // What provenance records (a `repository` in Cargo.toml, a git checkout, the tools'
        // versions), before building.
        let info = match builder {
            Builder::Builtin(_) => {
                let info = BuildInfo::gather(sh, project)?;
                let names: Vec<&str> = load_into.iter().map(|e| e.name()).collect();
                let load = match names.is_empty() {
                    true => "the OCI layout only".to_owned(),
                    false => format!("loaded into {}", names.join(" and ")),
                };
                eprintln!("  engine: builtin (SOURCE_DATE_EPOCH={epoch}; {load})");
                Some(info)
            }
            Builder::Engine(_) => None,
        };
        let built = compile::build(sh, project, &targets, profile)?;
        // Missing binaries are named by `stage`; what the image does not ship is left out of
        // its documents.
        for artifacts in &built {
            let have: Vec<&str> = artifacts
                .manifest
                .files
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            if let Some(missing) = declared
                .binaries
                .iter()
                .find(|b| !have.contains(&b.as_str()))
            {
                bail!(
                    "{} holds no binary `{missing}` for image {name}: run `cargo xtask build`",
                    artifacts.dir
                );
            }
        }
        let built: Vec<Built> = built.into_iter().map(|b| project.shipped(b)).collect();
        let (contexts, _contexts_removed) = contexts_dir(project)?;
        let dockerfile = contexts.join(DOCKERFILE);
        std::fs::write(&dockerfile, context::dockerfile(project)?)
            .with_context(|| format!("writing {dockerfile}"))?;
        let job = Job {
            project,
            base: &base,
            budget,
            epoch,
            profile,
            contexts,
        };
        let mut images = Vec::new();
        // The tags this image made in an engine (see `run`).
        let mut made = Vec::new();
        match builder {
            Builder::Engine(engine) => {
                let _whole_run = engine.remover().whole_run();
                for artifacts in &built {
                    let reference = names.for_target(artifacts.target);
                    let what = format!("{}: image {reference}", artifacts.target.short());
                    let (image, tag) = step(what, || {
                        job.with_engine(sh, &engine, &build_args, artifacts, &reference)
                    })?;
                    images.push(image);
                    made.push(tag);
                }
                if self.push {
                    push(sh, &engine, &names, &mut images)?;
                }
                if let (Some(key), Some(login)) = (&signing_key, &push_login) {
                    sign_pushed(&names, &images, login, key)?;
                }
            }
            Builder::Builtin(recipe) => {
                let info = info.context("the build's facts were not gathered")?;
                images = job.builtin(sh, &recipe, &info, &built, bases, &names, self)?;
                made = load(sh, &load_into, &job.contexts, &images)?;
                if let Some(login) = &push_login {
                    push_layout(&names, self, login.clone(), &mut images)?;
                }
                match (&signing_key, &push_login) {
                    (Some(key), Some(login)) => sign_pushed(&names, &images, login, key)?,
                    (Some(key), None) => sign_layout(&names, &images, key)?,
                    _ => {}
                }
            }
        }
        if !self.json {
            print!("{}", image_table(&images));
            if let Some(layout) = images.first().and_then(|i| i.layout.as_ref()) {
                let refs: Vec<&str> = images
                    .iter()
                    .filter_map(|i| Some(i.layout.as_ref()?.ref_name.as_str()))
                    .collect();
                let index = match (&layout.index, &layout.index_digest) {
                    (Some(name), Some(digest)) => format!("{name} (index {digest}), "),
                    _ => String::new(),
                };
                println!(
                    "layout {}: {index}{}",
                    project.relative(&layout.dir),
                    refs.join(", ")
                );
            }
            if self.push && images.len() > 1 {
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
        Ok((images, made))
    }
}

enum Builder {
    Builtin(Box<Recipe>),
    Engine(Engine),
}

/// What every architecture's image is built from besides its binaries.
struct Job<'a> {
    project: &'a Project,
    base: &'a str,
    budget: Option<u64>,
    epoch: Epoch,
    /// The cargo profile of the binaries (`--fast`: dev-image).
    profile: &'static str,
    /// This run's build contexts, one folder per architecture.
    contexts: Utf8PathBuf,
}

impl Job<'_> {
    fn context_dir(&self, target: Target) -> Utf8PathBuf {
        self.contexts.join(target.short())
    }

    fn stage(&self, artifacts: &Built) -> anyhow::Result<u64> {
        let context = self.context_dir(artifacts.target);
        let scratch = self.base == "scratch";
        context::stage(
            &context,
            artifacts,
            &self.project.image,
            scratch,
            self.epoch,
        )
    }

    fn check_budget(&self, reference: &str, size: u64) -> anyhow::Result<()> {
        if let Some(budget) = self.budget.filter(|b| size > *b) {
            bail!(
                "{reference} is {}, over its size budget of {}: raise size-budget in \
                 [workspace.metadata.xtask.images.{}] if that is intended",
                report::size(size),
                report::size(budget),
                self.project.image_name()
            );
        }
        Ok(())
    }

    /// The builtin engine: every architecture into the OCI layout, then the index.
    #[allow(clippy::too_many_arguments)]
    fn builtin(
        &self,
        sh: &Shell,
        recipe: &Recipe,
        info: &BuildInfo,
        built: &[Built],
        mut bases: Vec<(Target, Option<BaseImage>)>,
        names: &ImageNames,
        args: &ImageArgs,
    ) -> anyhow::Result<Vec<Image>> {
        if !recipe.unused_args.is_empty() {
            eprintln!(
                "  warning: {DOCKERFILE} declares no ARG {}",
                recipe.unused_args.join(", ")
            );
        }
        let dir = layout_dir(self.project, args);
        // Put back as it was unless every image, document and the index are written.
        let (out, written) = Layout::create_undoable(&dir, || {
            eprintln!("  waiting for another run that is writing {dir}")
        })?;
        let settings = Settings {
            epoch: self.epoch,
            compression: args.compression.into(),
        };
        // Bases were pulled before the build, one at a time (pulls share the cache's
        // index.json); each architecture is assembled on a core of its own: compressing is
        // most of the work.
        let bases = built
            .iter()
            .map(|artifacts| {
                let at = bases.iter().position(|(t, _)| *t == artifacts.target);
                at.map(|i| bases.swap_remove(i).1)
                    .with_context(|| format!("no base image for {}", artifacts.target))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let jobs: Vec<_> = built.iter().zip(&bases).collect();
        let results = assemble::side_by_side(&jobs, |(artifacts, base)| {
            self.assemble(&out, recipe, base.as_ref(), artifacts, names, settings)
        })?;
        let (mut images, assembled): (Vec<Image>, Vec<Assembled>) = results.into_iter().unzip();
        // The documents need the shell (tool versions), so they are composed one
        // architecture after the other.
        let mut referrers = Vec::new();
        for ((image, assembled), artifacts) in images.iter_mut().zip(&assembled).zip(built) {
            let what = format!("{}: sbom and provenance attached", image.arch);
            let attached = step(what, || self.describe(sh, info, &out, artifacts, assembled))?;
            image.attached = attached
                .iter()
                .map(|r| Attached {
                    artifact_type: r
                        .descriptor
                        .artifact_type()
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    manifest: r.descriptor.digest().to_string(),
                    document: r.layer.digest().to_string(),
                })
                .collect();
            referrers.extend(attached);
        }
        let tag = tag_of(&names.index)?;
        let published = assemble::publish(&out, &tag, &assembled, &referrers)?;
        written.disarm();
        crate::interrupt::check()?;
        // Only now: until the index names the new images, the old one needs its blobs.
        out.prune()?;
        if let Some(dropped) = &published.dropped {
            eprintln!(
                "  took the index `{dropped}` out of the layout: it did not list this {} image; \
                 build every target (without --target) to write it again",
                images.first().map_or("", |i| i.arch)
            );
        }
        for image in &mut images {
            image.layout = Some(InLayout {
                dir: dir.clone(),
                ref_name: format!("{tag}-{}", image.arch),
                index: published.index.as_ref().map(|_| tag.clone()),
                index_digest: published.index.as_ref().map(|i| i.digest().to_string()),
            });
        }
        Ok(images)
    }

    /// One architecture's image into the layout `out`.
    fn assemble(
        &self,
        out: &Layout,
        recipe: &Recipe,
        base: Option<&BaseImage>,
        artifacts: &Built,
        names: &ImageNames,
        settings: Settings,
    ) -> anyhow::Result<(Image, Assembled)> {
        let started = Instant::now();
        let target = artifacts.target;
        let reference = names.for_target(target);
        let what = format!("{}: image {reference}", target.short());
        let (image, context_size) = step(what, || {
            let context_size = self.stage(artifacts)?;
            let image = assemble::image(
                out,
                recipe,
                base,
                &self.context_dir(target),
                arch(target),
                settings,
            )?;
            self.check_budget(&reference, image.size)?;
            Ok((image, context_size))
        })?;
        let summary = Image {
            arch: target.short(),
            base: self.base.to_owned(),
            reference,
            size: image.size,
            context_size,
            id: image.config_digest.clone(),
            digest: Some(image.manifest.digest().to_string()),
            compressed_size: Some(image.compressed_size),
            layout: None,
            attached: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok((summary, image))
    }

    /// The SBOM and provenance of one architecture's image, from the files the image holds,
    /// as referrer manifests with the image as their subject.
    fn describe(
        &self,
        sh: &Shell,
        info: &BuildInfo,
        out: &Layout,
        artifacts: &Built,
        assembled: &Assembled,
    ) -> anyhow::Result<Vec<Referrer>> {
        let files = assemble::image_files(out, &assembled.manifest)?;
        let (files, embedded) = documents::image_files(self.project, artifacts, files)?;
        let digest = assembled.manifest.digest();
        let described = Described {
            artifacts,
            embedded: &embedded,
            files,
            // Named by the image's name, not its tag: `verify` rebuilds under a tag of its
            // own and compares the documents byte for byte.
            extra_subjects: vec![Subject {
                name: self.project.image_name().to_owned(),
                sha256: digest.digest().to_owned(),
            }],
            command: documents::command("image", artifacts.target, self.profile),
            profile: self.profile,
        };
        let docs = documents::documents(sh, self.project, info, described)?;
        let created = self.epoch.rfc3339();
        [
            Document {
                kind: referrers::Kind::Sbom,
                title: documents::SBOM_FILE,
                bytes: docs.sbom.into_bytes(),
            },
            Document {
                kind: referrers::Kind::Provenance,
                title: documents::PROVENANCE_FILE,
                bytes: docs.provenance.into_bytes(),
            },
        ]
        .iter()
        .map(|d| Ok(referrers::referrer(&assembled.manifest, d, &created)?))
        .collect()
    }

    /// Docker or podman: stages the context and builds `Dockerfile.runtime`.
    fn with_engine(
        &self,
        sh: &Shell,
        engine: &Engine,
        build_args: &[(String, String)],
        artifacts: &Built,
        reference: &str,
    ) -> anyhow::Result<(Image, Undo)> {
        let started = Instant::now();
        let target = artifacts.target;
        let context_size = self.stage(artifacts)?;
        // The runtime Dockerfile with the image's declaration, as the builtin engine parsed it.
        let dockerfile = self.contexts.join(DOCKERFILE);
        let previous = engine.find_image(sh, reference)?.map(|i| i.id);
        let tag = engine.remover().image(reference, previous);
        engine.build(
            sh,
            &BuildRequest {
                target,
                dockerfile: &dockerfile,
                context: &self.context_dir(target),
                tag: reference,
                build_args,
                epoch: self.epoch.seconds(),
            },
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
        if let Err(e) = self.check_budget(reference, size) {
            drop(tag);
            return Err(e.context("removed it"));
        }
        let image = Image {
            arch: target.short(),
            base: self.base.to_owned(),
            reference: reference.to_owned(),
            size,
            context_size,
            id: inspect.id,
            digest: None,
            compressed_size: None,
            layout: None,
            attached: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok((image, tag))
    }
}

/// The base image for `target`: none for scratch; `oci:<dir>:<ref>` is read from that
/// layout, any other reference from the base-image cache under the target dir.
fn base_image(
    sh: &Shell,
    project: &Project,
    recipe: &Recipe,
    target: Target,
) -> anyhow::Result<Option<BaseImage>> {
    let Base::Image(reference) = &recipe.base else {
        return Ok(None);
    };
    let (layout, name) = match local_base(reference) {
        Some(local) => local?,
        None => {
            let (dir, name) = pull_base(sh, project, reference, target)?;
            (Layout::open(&dir)?, name)
        }
    };
    Ok(Some(BaseImage::read(layout, &name, arch(target))?))
}

/// Fetches the base for `target`'s platform from its registry into the base cache (a
/// base pinned by digest that is cached already is used without the network), and
/// returns the cache and the name it is listed under.
fn pull_base(
    sh: &Shell,
    project: &Project,
    reference: &str,
    target: Target,
) -> anyhow::Result<(Utf8PathBuf, String)> {
    let parsed: oci_spec::distribution::Reference = reference
        .parse()
        .with_context(|| format!("invalid image reference `{reference}`"))?;
    let platform = registry::parse_platform(&target.platform())?;
    let cache = project.base_cache();
    step(
        format_args!("base {reference} for {}", target.platform()),
        || {
            let login = stored_login(sh, &parsed)?;
            registry::pull_base(
                &parsed,
                &platform,
                cache.as_std_path(),
                login,
                report::progress(),
            )
            .with_context(|| format!("pulling base image {reference}"))
        },
    )?;
    Ok((cache, registry::cache_name(&parsed, &platform)))
}

/// A folder of this run's own for its build contexts, so that concurrent runs in one
/// project do not stage into each other's; removed when the run ends, and what killed runs
/// left beside it is removed first.
fn contexts_dir(project: &Project) -> anyhow::Result<(Utf8PathBuf, Undo)> {
    let parent = project.work_dir().join("image");
    if let Ok(entries) = parent.read_dir_utf8() {
        for entry in entries.flatten() {
            let alive = entry
                .file_name()
                .parse::<RunId>()
                .is_ok_and(RunId::is_alive);
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(RunId::current().to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
    let removed = Undo::remove_dir(dir.as_std_path());
    Ok((dir, removed))
}

/// A base image given as `oci:<layout dir>:<ref name>`: its layout, opened, and ref name.
fn local_base(reference: &str) -> Option<anyhow::Result<(Layout, String)>> {
    let rest = reference.strip_prefix("oci:")?;
    Some((|| {
        let (dir, name) = rest.rsplit_once(':').with_context(|| {
            format!("--base-image {reference}: expected oci:<layout dir>:<ref name>")
        })?;
        let layout = Layout::open(Utf8Path::new(dir)).with_context(|| {
            format!(
                "the builtin engine reads base image {reference} from an OCI layout: give \
                 --base-image oci:<dir>:<ref>, or build with --engine docker|podman"
            )
        })?;
        Ok((layout, name.to_owned()))
    })())
}

/// Checks before anything is built that a base image in a local layout has an image for
/// each of `targets`.
fn check_local_base(recipe: &Recipe, targets: &[Target]) -> anyhow::Result<()> {
    let Base::Image(reference) = &recipe.base else {
        return Ok(());
    };
    if let Some(local) = local_base(reference) {
        let (layout, name) = local?;
        for target in targets {
            layout
                .manifest_for(&name, arch(*target))
                .with_context(|| format!("--base-image {reference}"))?;
        }
    }
    Ok(())
}

/// Where the builtin engine writes its OCI layout.
fn layout_dir(project: &Project, args: &ImageArgs) -> Utf8PathBuf {
    match &args.layout {
        Some(dir) => dir.clone(),
        None => project.work_dir().join("oci").join(project.image_name()),
    }
}

/// The tag of `[registry/]name:tag`, the ref name of the index in the layout.
fn tag_of(reference: &str) -> anyhow::Result<String> {
    let parsed: oci_spec::distribution::Reference = reference
        .parse()
        .with_context(|| format!("`{reference}` is not an image reference"))?;
    Ok(parsed.tag().unwrap_or("latest").to_owned())
}

/// The engines to load the builtin engine's images into: those asked for (`--load`), or
/// every one that answers.
fn load_engines(sh: &Shell, args: &ImageArgs) -> anyhow::Result<Vec<Engine>> {
    if args.no_load {
        return Ok(Vec::new());
    }
    if args.load.is_empty() {
        return Ok([EngineKind::Docker, EngineKind::Podman]
            .into_iter()
            .filter_map(|kind| Engine::detect(sh, Some(kind)).ok())
            .collect());
    }
    args.load
        .iter()
        .map(|&kind| Ok(Engine::detect(sh, Some(kind.into()))?))
        .collect()
}

/// Loads every image of the builtin engine into `engines`, through a docker-archive written
/// in this run's own folder `work` (removed with it), and returns the undo of each tag it
/// made.
fn load(
    sh: &Shell,
    engines: &[Engine],
    work: &Utf8Path,
    images: &[Image],
) -> anyhow::Result<Vec<Undo>> {
    let mut made = Vec::new();
    for image in images {
        let Some(in_layout) = &image.layout else {
            continue;
        };
        let out = Layout::open(&in_layout.dir)?;
        let manifest = out.find(&in_layout.ref_name)?;
        let archive = work.join(format!("{}.docker-archive.tar", image.arch));
        assemble::docker_archive(&out, &manifest, &image.reference, &archive)?;
        // podman load unpacks into TMPDIR, and a podman stopped by a signal leaves that
        // behind: give it a folder of this run's.
        let tmp = work.join("tmp");
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {tmp}"))?;
        let _tmp_env = sh.push_env("TMPDIR", &tmp);
        for engine in engines {
            let what = format!("loaded {} into {}", image.reference, engine.name());
            step(what, || {
                let previous = engine.find_image(sh, &image.reference)?.map(|i| i.id);
                made.push(engine.remover().image(&image.reference, previous));
                engine
                    .run(sh, &["load", "--quiet", "--input", archive.as_str()])
                    .with_context(|| {
                        format!("{} could not load {}", engine.name(), image.reference)
                    })
            })?;
        }
    }
    Ok(made)
}

/// The registry of `--push` answers as a registry, takes our credentials and lets us push
/// to the repository; returns the login to push with.
fn check_push_target(
    sh: &Shell,
    names: &ImageNames,
    args: &ImageArgs,
    known: &mut Option<Login>,
) -> anyhow::Result<Login> {
    let Some(registry) = names.registry() else {
        bail!(
            "--push needs a registry: give --registry <host:port> or a --tag that starts with one"
        );
    };
    probe::registry(registry)?;
    let target: oci_spec::distribution::Reference = names
        .index
        .parse()
        .with_context(|| format!("invalid image reference `{}`", names.index))?;
    let login = match known {
        Some(login) => login.clone(),
        None => args.auth.login(sh, &target)?,
    };
    *known = Some(login.clone());
    step(
        format_args!(
            "registry {registry} takes pushes to {}",
            target.repository()
        ),
        || Ok(Client::connect(&target, login.clone())?.check_push(target.repository())?),
    )?;
    Ok(login)
}

/// The builtin engine's images go from its OCI layout straight to the registry: no engine.
/// The index this build wrote as `<tag>`, or, for a single-platform build, its one image
/// as `<tag>-<arch>` alone.
fn push_layout(
    names: &ImageNames,
    args: &ImageArgs,
    login: Login,
    images: &mut [Image],
) -> anyhow::Result<()> {
    let Some(layout) = images.first().and_then(|i| i.layout.clone()) else {
        return Ok(());
    };
    let target: oci_spec::distribution::Reference = names
        .index
        .parse()
        .with_context(|| format!("invalid image reference `{}`", names.index))?;
    let name = layout.index.as_deref().unwrap_or(&layout.ref_name);
    let what = match &layout.index {
        Some(_) => names.index.clone(),
        None => images
            .iter()
            .map(|i| i.reference.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let allow = registry::Allow {
        dev: args.allow_dev,
        dirty: args.allow_dirty,
    };
    let pushed = super::push::push_layout(
        what,
        layout.dir.as_std_path(),
        Some(name),
        &target,
        login,
        allow,
    )?;
    for image in images.iter_mut() {
        let platform = format!("linux/{}", image.arch);
        image.digest = pushed
            .images
            .iter()
            .find(|p| p.platform == platform)
            .map(|p| p.digest.to_string());
    }
    Ok(())
}

fn push(
    sh: &Shell,
    engine: &Engine,
    names: &ImageNames,
    images: &mut [Image],
) -> anyhow::Result<()> {
    for image in images.iter_mut() {
        step(format_args!("pushed {}", image.reference), || {
            Ok(engine.push(sh, &image.reference)?)
        })?;
        image.digest = engine.inspect_image(sh, &image.reference)?.digest();
    }
    // A tag names the platforms asked for, never fewer: one platform gets no index.
    if images.len() < 2 {
        return Ok(());
    }
    let members: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    step(format_args!("pushed index {}", names.index), || {
        Ok(engine.push_index(sh, &names.index, &members)?)
    })
}

/// Signs what was pushed: the index of two images or more (which signs each platform's
/// image too), or the one image.
fn sign_pushed(
    names: &ImageNames,
    images: &[Image],
    login: &Login,
    key: &tiny_sign::KeyPair,
) -> anyhow::Result<()> {
    let reference = match images {
        [one] => one.reference.as_str(),
        _ => names.index.as_str(),
    };
    let reference: oci_spec::distribution::Reference = reference
        .parse()
        .with_context(|| format!("invalid image reference `{reference}`"))?;
    signing::sign(&reference, login.clone(), key)?;
    Ok(())
}

/// Signs what the builtin engine wrote into its OCI layout (the index of two images or
/// more, or the one image) for the registry and repository the images are named for, so
/// `push` carries the signatures with them.
fn sign_layout(
    names: &ImageNames,
    images: &[Image],
    key: &tiny_sign::KeyPair,
) -> anyhow::Result<()> {
    let Some(layout) = images.first().and_then(|i| i.layout.as_ref()) else {
        bail!("the builtin engine wrote no OCI layout to sign in");
    };
    let (name, reference) = match (&layout.index, images) {
        (Some(index), _) => (index.as_str(), names.index.as_str()),
        (None, [one]) => (layout.ref_name.as_str(), one.reference.as_str()),
        (None, _) => bail!("{} holds no index of these images to sign", layout.dir),
    };
    let reference: oci_spec::distribution::Reference = reference
        .parse()
        .with_context(|| format!("invalid image reference `{reference}`"))?;
    signing::sign_layout(&layout.dir, name, &reference, key)?;
    Ok(())
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
    use std::time::Duration;

    use super::*;
    use crate::oci::context::{GROUP, PASSWD};
    use tiny_oci::recipe::{Healthcheck, Owner};

    fn runtime_recipe() -> Recipe {
        let project = Project::load().unwrap();
        let args = context::build_args(
            &project,
            "scratch",
            Some("abc123"),
            "1700000000".parse().unwrap(),
            profile::DEV_IMAGE,
        );
        context::recipe(&project, &args).unwrap()
    }

    #[test]
    fn the_migrate_job_runs_migrate_up_and_serves_nothing() {
        let project = Project::load().unwrap();
        let job = project.select(&["tiny-service-migrate".into()]).unwrap();
        let project = project.for_image(&job[0]);
        let args = context::build_args(&project, "scratch", None, Epoch::ZERO, profile::RELEASE);
        let recipe = context::recipe(&project, &args).unwrap();
        let config = &recipe.config;
        assert_eq!(
            config.entrypoint.as_deref(),
            Some(&["/usr/local/bin/migrate".to_owned()][..])
        );
        assert_eq!(config.cmd.as_deref(), Some(&["up".to_owned()][..]));
        assert!(config.exposed_ports.is_empty());
        assert_eq!(config.healthcheck, None);
        assert_eq!(config.volumes, ["/data"]);
        assert_eq!(
            config.labels["org.opencontainers.image.title"],
            "tiny-service-migrate"
        );
        assert_eq!(
            context::contents(&project.image, true)
                .iter()
                .filter(|p| p.starts_with("bin/"))
                .collect::<Vec<_>>(),
            ["bin/migrate"]
        );
    }

    #[test]
    fn every_build_argument_passed_is_declared_and_lands_in_a_label() {
        let recipe = runtime_recipe();
        assert!(recipe.unused_args.is_empty(), "{:?}", recipe.unused_args);
        let labels = &recipe.config.labels;
        assert_eq!(labels["org.opencontainers.image.title"], "tiny-service");
        assert_eq!(labels["org.opencontainers.image.revision"], "abc123");
        assert_eq!(
            labels["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(labels["org.opencontainers.image.base.name"], "scratch");
        assert_eq!(labels["xtask.profile"], "dev-image");
        assert_eq!(labels.len(), 9);
        assert_eq!(recipe.base, Base::Scratch);
    }

    #[test]
    fn the_runtime_image_copies_the_staged_context_and_runs_as_its_passwd_user() {
        let recipe = runtime_recipe();
        let copies: Vec<_> = recipe
            .copies
            .iter()
            .map(|c| (c.sources.join(" "), c.dest.as_str(), c.owner))
            .collect();
        let service = Some(Owner {
            uid: 65532,
            gid: 65532,
        });
        assert_eq!(
            copies,
            [
                ("rootfs/".into(), "/", None),
                ("bin/".into(), "/usr/local/bin/", None),
                ("owned/".into(), "/", service),
            ]
        );
        let config = &recipe.config;
        assert_eq!(config.user.as_deref(), Some("65532:65532"));
        assert!(PASSWD.contains(":65532:65532:") && GROUP.contains(":65532:"));
        assert_eq!(
            config.entrypoint.as_deref(),
            Some(&["/usr/local/bin/service".to_owned()][..])
        );
        assert_eq!(config.cmd, None);
        assert_eq!(config.exposed_ports, ["8080/tcp"]);
        assert_eq!(config.volumes, ["/data"]);
        assert_eq!(
            config.env,
            [
                ("PORT".into(), "8080".into()),
                ("DATABASE_PATH".into(), "/data/service.db".into())
            ]
        );
        assert_eq!(
            config.healthcheck,
            Some(Healthcheck {
                test: vec![
                    "CMD".into(),
                    "/usr/local/bin/service".into(),
                    "healthcheck".into()
                ],
                interval: Some(Duration::from_secs(10)),
                timeout: Some(Duration::from_secs(3)),
                start_period: Some(Duration::from_secs(5)),
                retries: Some(3),
            })
        );
    }

    #[test]
    fn the_index_is_named_by_the_tag() {
        assert_eq!(tag_of("tiny-service:0.1.0").unwrap(), "0.1.0");
        assert_eq!(tag_of("127.0.0.1:5000/team/svc:edge").unwrap(), "edge");
    }
}
