//! `cargo xtask index`: merges per-architecture images, each pushed by its own machine,
//! into one multi-architecture index in the registry: the members given, or each declared
//! image's `<name>:<version>-<arch>`.

use anyhow::bail;
use oci_spec::distribution::Reference;
use xshell::Shell;

use crate::cli::IndexArgs;
use crate::model::project::Project;
use crate::oci::reference::ImageNames;
use crate::report;
use tiny_oci::registry::{self, MergedIndex};

impl IndexArgs {
    /// Runs `cargo xtask index` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let jobs = self.jobs(project)?;
        let Some((first, _)) = jobs.first() else {
            bail!("nothing to merge")
        };
        // Every index goes to the same registry: one login.
        let login = self.auth.login(sh, first)?;
        let mut documents = Vec::new();
        for (tag, members) in &jobs {
            let merged = report::step(format!("pushed the index {tag}"), || {
                Ok(registry::merge_index(
                    tag,
                    members,
                    login.clone(),
                    report::progress(),
                )?)
            })?;
            match self.json {
                true => documents.push(json(&merged)),
                false => print!("{}", table(&merged)),
            }
        }
        if self.json {
            // One object for the index given; an array for the declared images.
            let out = match self.tag {
                Some(_) => documents.remove(0),
                None => serde_json::Value::Array(documents),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Ok(())
    }

    /// Each index to push and its members.
    fn jobs(&self, project: &Project) -> anyhow::Result<Vec<(Reference, Vec<Reference>)>> {
        if let Some(tag) = &self.tag {
            return Ok(vec![(tag.clone(), self.members.clone())]);
        }
        let targets = project.targets(&self.targets);
        if targets.len() < 2 {
            bail!(
                "an index of one platform: give two --target or more, or leave --target out \
                 for `targets` in [workspace.metadata.xtask]"
            );
        }
        project
            .select(&self.image_names)?
            .iter()
            .map(|image| {
                let names = ImageNames::new(
                    None,
                    self.registry.as_deref(),
                    &image.name,
                    &project.package.version,
                )?;
                let members = targets
                    .iter()
                    .map(|t| Ok(names.for_target(*t).parse()?))
                    .collect::<anyhow::Result<_>>()?;
                Ok((names.index.parse()?, members))
            })
            .collect()
    }
}

fn json(merged: &MergedIndex) -> serde_json::Value {
    let members: Vec<serde_json::Value> = merged
        .members
        .iter()
        .map(|(reference, platform, digest)| {
            serde_json::json!({
                "reference": reference.to_string(),
                "platform": platform,
                "digest": digest.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "index": merged.index.to_string(),
        "digest": merged.digest.to_string(),
        "members": members,
        "mounted_blobs": merged.uploads.mounted,
        "uploaded_bytes": merged.uploads.bytes,
    })
}

fn table(merged: &MergedIndex) -> String {
    report::pushed_table(
        merged
            .members
            .iter()
            .map(|(reference, platform, digest)| (platform.clone(), reference, digest)),
        Some((&merged.index, &merged.digest)),
    )
}
