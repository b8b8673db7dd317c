//! `cargo xtask build`: cross-compile, verify and stage the service's binaries per target.

use xshell::Shell;

use crate::cli::BuildArgs;
use crate::model::project::Project;
use crate::report;
use crate::tools::compile;
use tiny_cross::digests::Digests;
use tiny_cross::dist::Built;
use tiny_cross::profile;

impl BuildArgs {
    /// Runs `cargo xtask build` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let targets = project.targets(&self.targets);
        let profile = match self.fast {
            true => profile::DEV_IMAGE,
            false => &self.profile,
        };
        let built = compile::build(sh, project, &targets, profile)?;
        if self.json {
            let manifests: Vec<_> = built.iter().map(|b| (&b.dir, &b.manifest)).collect();
            println!("{}", serde_json::to_string_pretty(&manifests)?);
        } else {
            print!("{}", artifact_table(project, &built)?);
        }
        Ok(())
    }
}

fn artifact_table(project: &Project, built: &[Built]) -> anyhow::Result<String> {
    // Compressing every binary would cost more than the rest of a no-op build.
    let mut digests = Digests::load(&project.digest_cache());
    let mut rows = Vec::new();
    for b in built {
        for file in &b.manifest.files {
            rows.push(vec![
                b.target.triple().to_owned(),
                file.name.clone(),
                report::size(file.size),
                report::size(digests.gzip_size(&b.dir.join(&file.name), &file.sha256)?),
                file.sha256[..12].to_owned(),
                report::seconds(b.elapsed),
                project.relative(&b.dir.join(&file.name)).to_string(),
            ]);
        }
    }
    digests.save()?;
    Ok(report::table(
        &[
            "target", "binary", "size", "gzipped", "sha256", "time", "path",
        ],
        &rows,
    ))
}
