//! `cargo xtask index`: merges per-architecture images, each pushed by its own machine,
//! into one multi-architecture index in the registry.

use xshell::Shell;

use crate::cli::IndexArgs;
use crate::model::project::Project;
use crate::report;
use tiny_oci::registry;

impl IndexArgs {
    pub fn run(self, sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        let login = self.auth.login(sh, &self.tag)?;
        let merged = report::step(format!("pushed the index {}", self.tag), || {
            Ok(registry::merge_index(
                &self.tag,
                &self.members,
                login,
                report::progress(),
            )?)
        })?;
        if self.json {
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
            let out = serde_json::json!({
                "index": merged.index.to_string(),
                "digest": merged.digest.to_string(),
                "members": members,
                "mounted_blobs": merged.uploads.mounted,
                "uploaded_bytes": merged.uploads.bytes,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let mut rows: Vec<Vec<String>> = merged
                .members
                .iter()
                .map(|(reference, platform, digest)| {
                    vec![platform.clone(), reference.to_string(), digest.to_string()]
                })
                .collect();
            rows.push(vec![
                "index".to_owned(),
                merged.index.to_string(),
                merged.digest.to_string(),
            ]);
            print!("{}", report::table(&["platform", "image", "digest"], &rows));
        }
        Ok(())
    }
}
