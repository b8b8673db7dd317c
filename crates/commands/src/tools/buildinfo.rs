//! The facts provenance records about a build: the source commit, SOURCE_DATE_EPOCH, the
//! Cargo.lock digest and the versions of the tools that compiled and linked.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::model::project::Project;
use crate::tools::toolchain::{self, CSource};
use tiny_cross::dist::sha256;
use tiny_cross::target::Target;
use tiny_oci::epoch::Epoch;
use tiny_sbom::provenance::{Source, Tool};

pub struct BuildInfo {
    pub repository: String,
    pub source: Source,
    pub source_date_epoch: Epoch,
    pub cargo_lock_sha256: String,
    /// rustc and cargo; the C compiler is per target (see `c_compiler`).
    pub tools: Vec<Tool>,
}

impl BuildInfo {
    pub fn gather(sh: &Shell, project: &Project) -> anyhow::Result<BuildInfo> {
        let Some(repository) = project.package.repository.clone() else {
            bail!(
                "package `{}` has no `repository` in Cargo.toml: provenance names the source by it",
                project.package.name
            );
        };
        let commit = git(sh, &["rev-parse", "HEAD"])?;
        let dirty = git(sh, &["status", "--porcelain", "--untracked-files=no"])?;
        let source_date_epoch = match Epoch::from_env()? {
            Some(epoch) => epoch,
            None => crate::tools::git::commit_time(sh).context(
                "git gave no commit time for HEAD: provenance needs the source as a git checkout",
            )?,
        };
        let rustc = cmd!(sh, "rustc -vV")
            .quiet()
            .read()
            .context("`rustc -vV` did not run: install Rust with rustup (https://rustup.rs)")?;
        let cargo = toolchain::cargo();
        let cargo = cmd!(sh, "{cargo} -V")
            .quiet()
            .read()
            .context("`cargo -V` did not run")?;
        Ok(BuildInfo {
            source: Source {
                uri: format!("git+{repository}"),
                commit,
                clean: dirty.is_empty(),
            },
            repository,
            source_date_epoch,
            cargo_lock_sha256: sha256(&project.root.join("Cargo.lock"))?,
            tools: vec![
                Tool {
                    name: "rustc".into(),
                    version: rustc,
                    uri: None,
                },
                Tool {
                    name: "cargo".into(),
                    version: cargo,
                    uri: None,
                },
            ],
        })
    }
}

/// The C compiler a build for `target` used: zig (with its version) or the user's `CC_<target>`.
pub fn c_compiler(sh: &Shell, project: &Project, target: Target) -> anyhow::Result<Tool> {
    Ok(match toolchain::locate_c_compiler(project, target) {
        CSource::UserSet { var, value } => Tool {
            name: var,
            version: value,
            uri: None,
        },
        CSource::Zig(zig) => {
            let version = cmd!(sh, "{zig} version")
                .quiet()
                .read()
                .with_context(|| format!("`{zig} version` did not run"))?;
            // PyPI's `ziglang` package, wherever it lives (`verify`'s rebuild runs the one
            // provisioned here through PATH, and must describe it the same way).
            let provisioned = zig.components().any(|c| c.as_str() == "ziglang");
            Tool {
                name: "zig".into(),
                uri: provisioned.then(|| format!("pkg:pypi/ziglang@{}", project.settings.zig)),
                version,
            }
        }
        CSource::Provisionable | CSource::Missing => {
            bail!("{}", toolchain::missing_c_compiler(project, target))
        }
    })
}

fn git(sh: &Shell, args: &[&str]) -> anyhow::Result<String> {
    let out = cmd!(sh, "git {args...}").quiet().ignore_stderr().read();
    out.map(|s| s.trim().to_owned()).with_context(|| {
        format!(
            "`git {}` failed: provenance needs the source as a git checkout",
            args.join(" ")
        )
    })
}
