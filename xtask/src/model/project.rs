//! The workspace as cargo describes it: the only module that runs `cargo metadata`.

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use cargo_metadata::{MetadataCommand, TargetKind};
use serde::Deserialize;

use tiny_cross::target::Target;

pub struct Project {
    pub root: Utf8PathBuf,
    pub target_dir: Utf8PathBuf,
    /// The shipped crate (`[workspace.metadata.xtask] package`).
    pub package: Package,
    pub settings: Settings,
    /// Every workspace member's `Cargo.toml`.
    pub manifests: Vec<Utf8PathBuf>,
}

pub struct Package {
    pub id: cargo_metadata::PackageId,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    /// Its binary targets, sorted by name.
    pub binaries: Vec<String>,
}

/// `[workspace.metadata.xtask]` in the root `Cargo.toml`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    pub package: String,
    pub targets: Vec<Target>,
    pub zig: String,
    #[serde(default)]
    pub image: ImageSettings,
}

/// `[workspace.metadata.xtask.image]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ImageSettings {
    pub name: Option<String>,
    pub base: crate::model::choice::BaseKind,
    pub alpine: String,
    pub size_budget: SizeBudget,
    pub port: u16,
}

/// `[workspace.metadata.xtask.image.size-budget]`: the largest an image may be.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SizeBudget {
    pub scratch: String,
    /// For any other base (alpine or `--base-image`), the base included.
    pub with_base: String,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            name: None,
            base: crate::model::choice::BaseKind::Scratch,
            alpine: "docker.io/library/alpine:3.20".into(),
            size_budget: SizeBudget {
                scratch: "10 MiB".into(),
                with_base: "24 MiB".into(),
            },
            port: 8080,
        }
    }
}

impl Project {
    /// The targets asked for, or the workspace's defaults, each once, in order.
    pub fn targets(&self, asked: &[Target]) -> Vec<Target> {
        let mut targets = if asked.is_empty() {
            self.settings.targets.clone()
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

    pub fn load() -> anyhow::Result<Project> {
        let meta = MetadataCommand::new()
            .no_deps()
            .exec()
            .context("`cargo metadata` failed: run from inside the workspace")?;
        let settings: Settings =
            serde_json::from_value(meta.workspace_metadata["xtask"].clone())
                .context("reading [workspace.metadata.xtask] in the root Cargo.toml")?;
        let Some(pkg) = meta
            .workspace_packages()
            .into_iter()
            .find(|p| p.name == settings.package)
        else {
            bail!(
                "[workspace.metadata.xtask] package = {:?} is not a workspace member",
                settings.package
            );
        };
        let mut binaries: Vec<String> = pkg
            .targets
            .iter()
            .filter(|t| t.kind.contains(&TargetKind::Bin))
            .map(|t| t.name.clone())
            .collect();
        binaries.sort();
        if binaries.is_empty() {
            bail!("package `{}` has no binaries to ship", pkg.name);
        }
        let package = Package {
            id: pkg.id.clone(),
            name: pkg.name.to_string(),
            version: pkg.version.to_string(),
            description: pkg.description.clone(),
            license: pkg.license.clone(),
            repository: pkg.repository.clone(),
            binaries,
        };
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
            settings,
        })
    }

    /// The largest an image on `base` may be (`size-budget` in [workspace.metadata.xtask.image]).
    pub fn size_budget(&self, base: &str) -> anyhow::Result<u64> {
        let budgets = &self.settings.image.size_budget;
        let budget = if base == "scratch" {
            &budgets.scratch
        } else {
            &budgets.with_base
        };
        crate::report::parse_size(budget).context("[workspace.metadata.xtask.image] size-budget")
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

    /// The image name: `name` in [workspace.metadata.xtask.image], else the package's.
    pub fn image_name(&self) -> &str {
        self.settings
            .image
            .name
            .as_deref()
            .unwrap_or(&self.package.name)
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

    pub fn relative<'a>(&self, path: &'a Utf8Path) -> &'a Utf8Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_settings_parse() {
        let project = Project::load().unwrap();
        assert_eq!(project.package.name, "service");
        assert_eq!(project.package.binaries, ["migrate", "service"]);
        assert_eq!(project.settings.targets, Target::ALL);
        assert!(
            project
                .dist_dir(Target::Aarch64Musl)
                .ends_with("dist/aarch64-unknown-linux-musl")
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = serde_json::from_value::<Settings>(serde_json::json!({
            "package": "service", "targets": ["amd64"], "zig": "0.13.0", "colour": "red"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
