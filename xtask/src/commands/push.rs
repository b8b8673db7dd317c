//! `cargo xtask push`: an OCI image layout (what the builtin engine writes) straight to a
//! registry, with no container engine.

use xshell::Shell;

use crate::cli::PushArgs;
use crate::model::project::Project;
use crate::report;
use tiny_oci::registry;

impl PushArgs {
    pub fn run(self, sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        let login = self.auth.login(sh, &self.tag)?;
        let allow = registry::Allow {
            dev: self.allow_dev,
            dirty: self.allow_dirty,
        };
        let pushed = report::step(format!("pushed {}", self.tag), || {
            Ok(registry::push_layout(
                &self.layout,
                self.name.as_deref(),
                &self.tag,
                login,
                allow,
                report::progress(),
            )?)
        })?;
        pushed.warnings.iter().for_each(|w| eprintln!("  {w}"));
        let uploads = pushed.uploads;
        eprintln!("  {uploads}");
        if pushed.index.is_none() {
            eprintln!(
                "  {} left as it was: what was pushed has no multi-architecture index (merge per-platform images with `cargo xtask index`)",
                self.tag
            );
        }
        if self.json {
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
            let out = serde_json::json!({
                "index": pushed.index.as_ref().map(|(r, _)| r.to_string()),
                "digest": pushed.index.as_ref().map(|(_, d)| d.to_string()),
                "images": images,
                "uploaded_bytes": uploads.bytes,
                "uploaded_blobs": uploads.blobs,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let mut rows: Vec<Vec<String>> = pushed
                .images
                .iter()
                .map(|i| {
                    vec![
                        i.platform.clone(),
                        i.reference.to_string(),
                        i.digest.to_string(),
                    ]
                })
                .collect();
            if let Some((index, digest)) = &pushed.index {
                rows.push(vec![
                    "index".to_owned(),
                    index.to_string(),
                    digest.to_string(),
                ]);
            }
            print!("{}", report::table(&["platform", "image", "digest"], &rows));
        }
        Ok(())
    }
}
