//! `cargo xtask pull`: fetches a base image for each target's platform into the cache
//! layout the builtin engine builds on, so a later build needs no registry.

use xshell::Shell;

use crate::cli::PullArgs;
use crate::model::project::Project;
use crate::report;
use tiny_oci::registry;

impl PullArgs {
    /// Runs `cargo xtask pull` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let login = self.auth.login(sh, &self.reference)?;
        let cache = project.base_cache();
        let mut rows = Vec::new();
        for target in project.targets(&self.targets) {
            let platform = registry::parse_platform(&target.platform())?;
            let pulled = report::step(
                format!("pulled {} for {}", self.reference, target.platform()),
                || {
                    Ok(registry::pull_base(
                        &self.reference,
                        &platform,
                        cache.as_std_path(),
                        login.clone(),
                        report::progress(),
                    )?)
                },
            )?;
            let size: u64 = pulled.manifest.layers().iter().map(|l| l.size()).sum();
            rows.push(vec![
                // What the image's config says, checked against the platform asked for.
                format!("{}/{}", pulled.config.os(), pulled.config.architecture()),
                pulled.descriptor.digest().to_string(),
                pulled.manifest.layers().len().to_string(),
                report::size(size),
            ]);
        }
        print!(
            "{}",
            report::table(&["platform", "manifest", "layers", "compressed"], &rows)
        );
        println!("cache: {}", project.relative(&cache));
        Ok(())
    }
}
