//! The workspace as cargo describes it: the only module that runs `cargo metadata`.

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use cargo_metadata::{MetadataCommand, TargetKind};
use serde::Deserialize;

use tiny_cross::dist::Built;
use tiny_cross::target::{Selection, Target};

use tiny_sbom::audit::VersionInfo;

use tiny_declare::{self as images, Image, Members};

/// The workspace the commands act on, as `cargo metadata` and its `Cargo.toml` declare it.
#[derive(Clone)]
pub struct Project {
    /// The workspace's root folder.
    pub root: Utf8PathBuf,
    /// Cargo's target directory.
    pub target_dir: Utf8PathBuf,
    /// The package of the image a command is acting on.
    pub package: Package,
    /// Every package a declared image ships, sorted by name: what `build` compiles and
    /// stages (their binaries side by side, so no two may share a name).
    pub packages: Vec<Package>,
    /// `[workspace.metadata.xtask]`, less the image declarations.
    pub settings: Settings,
    /// Every declared image, sorted by name.
    pub images: Vec<Image>,
    /// The image a command is acting on (see [`Project::for_image`]); the first by default.
    pub image: Image,
    /// Every workspace member's `Cargo.toml`.
    pub manifests: Vec<Utf8PathBuf>,
}

/// A workspace package whose binaries an image ships, as its `Cargo.toml` describes it.
#[derive(Clone)]
pub struct Package {
    /// Cargo's id of the package.
    pub id: cargo_metadata::PackageId,
    /// Its name.
    pub name: String,
    /// Its version: the images' tag.
    pub version: String,
    /// Its description (an image label).
    pub description: Option<String>,
    /// Its SPDX license expression (an image label and the SBOM's).
    pub license: Option<String>,
    /// Its repository (an image label and the provenance's).
    pub repository: Option<String>,
    /// Its binary targets, sorted by name.
    pub binaries: Vec<String>,
}

/// `[workspace.metadata.xtask]` in the root `Cargo.toml`; `images` and `image-defaults` are
/// read by [`tiny_declare`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// The targets built when none is asked for.
    pub targets: Vec<Target>,
    /// The zig release provisioned as the C cross compiler when none is on PATH.
    pub zig: String,
    #[serde(default, rename = "images")]
    _images: serde::de::IgnoredAny,
    #[serde(default, rename = "image-defaults")]
    _image_defaults: serde::de::IgnoredAny,
}

/// The workspace's metadata, without its dependencies.
fn metadata() -> anyhow::Result<cargo_metadata::Metadata> {
    MetadataCommand::new()
        .no_deps()
        .exec()
        .context("`cargo metadata` failed: run from inside the workspace")
}

/// The root of the workspace the command runs in, whatever it declares, and whether it
/// declares any image.
pub fn workspace_root() -> anyhow::Result<(Utf8PathBuf, bool)> {
    let meta = metadata()?;
    let declared = meta.workspace_metadata["xtask"]["images"]
        .as_object()
        .is_some_and(|images| !images.is_empty());
    Ok((meta.workspace_root, declared))
}

impl Project {
    /// The targets asked for, or the workspace's defaults, each once, in order.
    pub fn targets(&self, asked: &[Selection]) -> Vec<Target> {
        if asked.is_empty() {
            let defaults: Vec<Selection> =
                self.settings.targets.iter().map(|&t| t.into()).collect();
            return Selection::expand(&defaults);
        }
        Selection::expand(asked)
    }

    /// Reads the workspace the current directory is in, its declared images checked.
    pub fn load() -> anyhow::Result<Project> {
        let meta = metadata()?;
        let xtask = &meta.workspace_metadata["xtask"];
        // The image declarations first: they name the old keys' replacements.
        let images =
            images::images(xtask, &members(&meta)).context("reading the root Cargo.toml")?;
        let settings: Settings = serde_json::from_value(xtask.clone())
            .context("reading [workspace.metadata.xtask] in the root Cargo.toml")?;
        let Some(first) = images.first().cloned() else {
            bail!("no images declared: add a [workspace.metadata.xtask.images.<name>] table");
        };
        let mut packages = Vec::new();
        for image in &images {
            if packages.iter().any(|p: &Package| p.name == image.package) {
                continue;
            }
            let Some(pkg) = meta
                .workspace_packages()
                .into_iter()
                .find(|p| p.name == image.package)
            else {
                bail!("package `{}` is not a workspace member", image.package);
            };
            let mut binaries: Vec<String> = pkg
                .targets
                .iter()
                .filter(|t| t.kind.contains(&TargetKind::Bin))
                .map(|t| t.name.clone())
                .collect();
            binaries.sort();
            packages.push(Package {
                id: pkg.id.clone(),
                name: pkg.name.to_string(),
                version: pkg.version.to_string(),
                description: pkg.description.clone(),
                license: pkg.license.clone(),
                repository: pkg.repository.clone(),
                binaries,
            });
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        shared_binary(&packages)?;
        let package = package_of(&packages, &first);
        let manifests = meta
            .workspace_packages()
            .iter()
            .map(|p| p.manifest_path.clone())
            .collect();
        Ok(Project {
            manifests,
            root: meta.workspace_root,
            target_dir: meta.target_directory,
            package,
            packages,
            settings,
            images,
            image: first,
        })
    }

    /// The largest the current image may be on `base` (`size-budget` of its table), if it
    /// has a budget there.
    pub fn size_budget(&self, base: &str) -> Option<u64> {
        let kind = match base {
            "scratch" => images::Base::Scratch,
            _ => images::Base::Alpine,
        };
        self.image.size_budget(kind)
    }

    /// The same project acting on the image `image`.
    pub fn for_image(&self, image: &Image) -> Project {
        Project {
            image: image.clone(),
            package: package_of(&self.packages, image),
            ..self.clone()
        }
    }

    /// The declared images named in `asked`, in the order asked; every one when `asked` is
    /// empty.
    pub fn select(&self, asked: &[String]) -> anyhow::Result<Vec<Image>> {
        if asked.is_empty() {
            return Ok(self.images.clone());
        }
        let mut chosen: Vec<Image> = Vec::new();
        for name in asked {
            let Some(image) = self.images.iter().find(|i| &i.name == name) else {
                bail!(
                    "--image {name}: no such image in [workspace.metadata.xtask.images] \
                     (declared: {})",
                    self.image_names().join(", ")
                );
            };
            if !chosen.iter().any(|c| c.name == image.name) {
                chosen.push(image.clone());
            }
        }
        Ok(chosen)
    }

    /// What of `built` the current image ships: its binaries only.
    pub fn shipped(&self, built: Built) -> Built {
        let mut manifest = built.manifest;
        manifest
            .files
            .retain(|f| self.image.binaries.contains(&f.name));
        Built { manifest, ..built }
    }

    /// Like [`Project::select`], but options that name one image (`--tag`, `--layout`,
    /// `--against`: `given` lists those given) keep only the first declared image when no
    /// `--image` says which.
    pub fn select_one_if(&self, asked: &[String], given: &[&str]) -> anyhow::Result<Vec<Image>> {
        let mut images = self.select(asked)?;
        if let Some(flag) = given.first().filter(|_| images.len() > 1) {
            if !asked.is_empty() {
                bail!(
                    "{flag} names one image and --image names {}: give one --image",
                    images.len()
                );
            }
            images.truncate(1);
        }
        Ok(images)
    }

    /// The names of the declared images.
    pub fn image_names(&self) -> Vec<&str> {
        self.images.iter().map(|i| i.name.as_str()).collect()
    }

    /// Where `cargo xtask build` stages one target's verified binaries.
    pub fn dist_dir(&self, target: Target) -> Utf8PathBuf {
        self.target_dir.join("dist").join(target.triple())
    }

    /// Where binaries built with `profile` are staged: release ones in [`Self::dist_dir`],
    /// any other profile's in `dist/<profile>/<triple>`, so a dev build never replaces them.
    pub fn profile_dist_dir(&self, profile: &str, target: Target) -> Utf8PathBuf {
        if profile == tiny_cross::profile::RELEASE {
            self.dist_dir(target)
        } else {
            self.target_dir
                .join("dist")
                .join(profile)
                .join(target.triple())
        }
    }

    /// The current image's name: its table's.
    pub fn image_name(&self) -> &str {
        &self.image.name
    }

    /// The package's runtime dependencies for `target` as cargo resolves them (`Cargo.lock`),
    /// in the shape of an embedded `.dep-v0` list: what an SBOM lists for a binary built
    /// without one.
    pub fn dependency_list(&self, target: Target) -> anyhow::Result<VersionInfo> {
        let meta = MetadataCommand::new()
            .current_dir(&self.root)
            .other_options(vec![
                "--filter-platform".to_owned(),
                target.triple().to_owned(),
            ])
            .exec()
            .context("`cargo metadata` failed while listing the dependencies")?;
        let resolve = meta
            .resolve
            .as_ref()
            .context("cargo metadata resolved nothing")?;
        let nodes: std::collections::HashMap<_, _> =
            resolve.nodes.iter().map(|n| (&n.id, n)).collect();
        let mut order = vec![&self.package.id];
        let mut at = 0;
        while let Some(id) = order.get(at).copied() {
            at += 1;
            for dep in nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or_default() {
                let runtime = dep
                    .dep_kinds
                    .iter()
                    .any(|k| k.kind == cargo_metadata::DependencyKind::Normal);
                if runtime && !order.contains(&&dep.pkg) {
                    order.push(&dep.pkg);
                }
            }
        }
        let index = |id: &cargo_metadata::PackageId| order.iter().position(|o| *o == id);
        let packages = order
            .iter()
            .map(|id| {
                let pkg = &meta[id];
                let source = match &pkg.source {
                    None => "local",
                    Some(s) if s.is_crates_io() => "crates.io",
                    Some(s) if s.repr.starts_with("git+") => "git",
                    Some(_) => "registry",
                };
                let dependencies: Vec<usize> = nodes
                    .get(id)
                    .map(|n| n.deps.iter().filter_map(|d| index(&d.pkg)).collect())
                    .unwrap_or_default();
                serde_json::json!({
                    "name": pkg.name.to_string(),
                    "version": pkg.version.to_string(),
                    "source": source,
                    "dependencies": dependencies,
                    "root": *id == &self.package.id,
                })
            })
            .collect::<Vec<_>>();
        serde_json::from_value(serde_json::json!({ "packages": packages }))
            .context("listing the dependencies")
    }

    /// Scratch space of the xtask itself: provisioned tools, wrappers, image contexts.
    pub fn work_dir(&self) -> Utf8PathBuf {
        self.target_dir.join("xtask")
    }

    /// What `cargo xtask build` knows about the binaries it hashed (see `model::digests`).
    pub fn digest_cache(&self) -> Utf8PathBuf {
        self.work_dir().join("digests.json")
    }

    /// The OCI image layout base images are pulled into and the builtin engine reads them
    /// from.
    pub fn base_cache(&self) -> Utf8PathBuf {
        self.work_dir().join("oci").join("bases")
    }

    /// `path` relative to the workspace's root, when it is inside it (for messages).
    pub fn relative<'a>(&self, path: &'a Utf8Path) -> &'a Utf8Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// The package `image` ships, among those every image ships.
fn package_of(packages: &[Package], image: &Image) -> Package {
    packages
        .iter()
        .find(|p| p.name == image.package)
        .cloned()
        .unwrap_or_else(|| unreachable!("every image's package is loaded"))
}

/// Refuses two shipped packages with a binary of the same name: each target's binaries are
/// staged side by side, and an image finds its own by name.
fn shared_binary(packages: &[Package]) -> anyhow::Result<()> {
    for (i, a) in packages.iter().enumerate() {
        for b in &packages[i + 1..] {
            if let Some(name) = a.binaries.iter().find(|n| b.binaries.contains(n)) {
                bail!(
                    "packages `{}` and `{}` both have a binary `{name}`, and declared images ship \
                     both: rename one of them (`[[bin]] name` in its Cargo.toml)",
                    a.name,
                    b.name
                );
            }
        }
    }
    Ok(())
}

/// The workspace's packages and their binaries, as cargo reports them.
fn members(meta: &cargo_metadata::Metadata) -> Members {
    Members::new(meta.workspace_packages().into_iter().map(|p| {
        let bins = p
            .targets
            .iter()
            .filter(|t| t.kind.contains(&TargetKind::Bin))
            .map(|t| t.name.clone());
        (p.name.to_string(), bins.collect())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_settings_parse() {
        let project = Project::load().unwrap();
        assert_eq!(project.package.name, "service");
        assert_eq!(project.package.binaries, ["migrate", "service"]);
        assert_eq!(
            project.image_names(),
            ["tiny-service", "tiny-service-migrate"]
        );
        assert_eq!(project.image.name, "tiny-service");
        assert_eq!(
            project.settings.targets,
            [Target::X86_64Musl, Target::Aarch64Musl]
        );
        assert!(
            project
                .dist_dir(Target::Aarch64Musl)
                .ends_with("dist/aarch64-unknown-linux-musl")
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = serde_json::from_value::<Settings>(serde_json::json!({
            "targets": ["amd64"], "zig": "0.13.0", "colour": "red"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    fn package(name: &str, binaries: &[&str]) -> Package {
        Package {
            id: cargo_metadata::PackageId {
                repr: format!("path+file:///w/{name}#0.1.0"),
            },
            name: name.into(),
            version: "0.1.0".into(),
            description: None,
            license: None,
            repository: None,
            binaries: binaries.iter().map(|b| (*b).to_owned()).collect(),
        }
    }

    #[test]
    fn packages_shipped_side_by_side_may_not_share_a_binary_name() {
        let api = package("api", &["api", "migrate"]);
        let worker = package("worker", &["worker"]);
        shared_binary(&[api.clone(), worker]).unwrap();
        let err = shared_binary(&[api, package("jobs", &["jobs", "migrate"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("packages `api` and `jobs` both have a binary `migrate`"),
            "{err}"
        );
        assert!(err.contains("[[bin]] name"), "{err}");
    }
}
