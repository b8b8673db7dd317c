//! `cargo xtask push`: OCI image layouts (what the builtin engine writes) straight to a
//! registry, with no container engine: each declared image's own layout, or one given.

use std::path::{Path, PathBuf};

use anyhow::bail;
use oci_spec::distribution::Reference;
use xshell::Shell;

use crate::cli::PushArgs;
use crate::model::project::Project;
use crate::oci::reference::ImageNames;
use crate::report;
use tiny_oci::registry::{self, Pushed};

impl PushArgs {
    /// Runs `cargo xtask push` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let jobs = self.jobs(project)?;
        // Every layout goes to the same registry: one login (a password on stdin is read once).
        let Some((_, first)) = jobs.first() else {
            bail!("nothing to push")
        };
        let login = self.auth.login(sh, first)?;
        let allow = registry::Allow {
            dev: self.allow_dev,
            dirty: self.allow_dirty,
        };
        let mut documents = Vec::new();
        for (layout, tag) in &jobs {
            let pushed = push_layout(tag, layout, self.name.as_deref(), tag, login.clone(), allow)?;
            if pushed.index.is_none() {
                eprintln!(
                    "  {tag} left as it was: what was pushed has no multi-architecture index (merge per-platform images with `cargo xtask index`)"
                );
            }
            match self.json {
                true => documents.push(json(&pushed)),
                false => print!("{}", table(&pushed)),
            }
        }
        if self.json {
            // One object for the one layout given; an array for the declared images.
            let out = match self.layout {
                Some(_) => documents.remove(0),
                None => serde_json::Value::Array(documents),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Ok(())
    }

    /// Each layout to push and where to: the one given, or each declared image's.
    fn jobs(&self, project: &Project) -> anyhow::Result<Vec<(PathBuf, Reference)>> {
        if let (Some(layout), Some(tag)) = (&self.layout, &self.tag) {
            return Ok(vec![(layout.clone(), tag.clone())]);
        }
        if self.tag.is_none() && self.registry.is_none() {
            bail!(
                "push needs a destination: give --registry <host:port> (every declared image, \
                 or those named by --image), or --tag <registry/name:tag> for one"
            );
        }
        let images = project.select_one_if(&self.image_names, &["--tag"])?;
        images
            .iter()
            .map(|image| {
                let tag = match &self.tag {
                    Some(tag) => tag.clone(),
                    None => ImageNames::new(
                        None,
                        self.registry.as_deref(),
                        &image.name,
                        &project.package.version,
                    )?
                    .index
                    .parse()?,
                };
                let layout = project.work_dir().join("oci").join(&image.name);
                if !layout.join("index.json").exists() {
                    bail!(
                        "no OCI layout for {} at {layout}: build it with `cargo xtask image \
                         --image {}`",
                        image.name,
                        image.name
                    );
                }
                Ok((layout.into_std_path_buf(), tag))
            })
            .collect()
    }
}

/// Pushes the image (or index) named `name` in the layout at `dir` to `tag`, as one step
/// reported as `pushed {what}`, then says what the registry warned of and what was uploaded.
pub fn push_layout(
    what: impl std::fmt::Display,
    dir: &Path,
    name: Option<&str>,
    tag: &Reference,
    login: tiny_oci::auth::Login,
    allow: registry::Allow,
) -> anyhow::Result<Pushed> {
    let pushed = report::step(format!("pushed {what}"), || {
        Ok(registry::push_layout(
            dir,
            name,
            tag,
            login,
            allow,
            report::progress(),
        )?)
    })?;
    pushed.warnings.iter().for_each(|w| eprintln!("  {w}"));
    eprintln!("  {}", pushed.uploads);
    Ok(pushed)
}

fn json(pushed: &Pushed) -> serde_json::Value {
    let images: Vec<serde_json::Value> = pushed
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "platform": i.platform,
                "reference": i.reference.to_string(),
                "digest": i.digest.to_string(),
                "referrers": i.referrers,
            })
        })
        .collect();
    serde_json::json!({
        "index": pushed.index.as_ref().map(|(r, _)| r.to_string()),
        "digest": pushed.index.as_ref().map(|(_, d)| d.to_string()),
        "images": images,
        "uploaded_bytes": pushed.uploads.bytes,
        "uploaded_blobs": pushed.uploads.blobs,
    })
}

fn table(pushed: &Pushed) -> String {
    report::pushed_table(
        pushed
            .images
            .iter()
            .map(|i| (i.platform.clone(), &i.reference, &i.digest)),
        pushed.index.as_ref().map(|(r, d)| (r, d)),
    )
}
