//! `cargo xtask push`: an OCI image layout (what the builtin engine writes) straight to a
//! registry, with no container engine.

use xshell::Shell;

use crate::cli::PushArgs;
use crate::model::project::Project;
use crate::oci::registry;
use crate::report;

impl PushArgs {
    pub fn run(self, sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        let login = self.auth.login(sh, &self.tag)?;
        let pushed = report::step(format!("pushed {}", self.tag), || {
            registry::push_layout(&self.layout, None, &self.tag, login, self.allow_dev)
        })?;
        let uploads = pushed.uploads;
        eprintln!("  {uploads}");
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
                "index": pushed.index.to_string(),
                "digest": pushed.index_digest.to_string(),
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
            rows.push(vec![
                "index".to_owned(),
                pushed.index.to_string(),
                pushed.index_digest.to_string(),
            ]);
            print!("{}", report::table(&["platform", "image", "digest"], &rows));
        }
        Ok(())
    }
}
