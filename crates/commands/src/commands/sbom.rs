//! `cargo xtask sbom`: an SPDX SBOM and SLSA provenance per target, from the staged binaries
//! (built first if cargo finds them stale, as `image` does).

use anyhow::Context;
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use xshell::Shell;

use super::write_atomically;
use crate::cli::SbomArgs;
use crate::model::project::Project;
use crate::report::{self, step};
use crate::tools::buildinfo::BuildInfo;
use crate::tools::documents::{
    Described, PROVENANCE_FILE, SBOM_FILE, command, documents, staged_files,
};
use crate::tools::{compile, writable};
use tiny_cross::dist::Built;
use tiny_cross::profile;

/// What was written for one target.
#[derive(Debug, Serialize)]
struct Written {
    /// The declared image it describes.
    image: String,
    target: String,
    crates: usize,
    c_libraries: Vec<String>,
    files: usize,
    /// The binaries described.
    binaries: Vec<Utf8PathBuf>,
    sbom: Utf8PathBuf,
    provenance: Utf8PathBuf,
}

impl SbomArgs {
    /// Runs `cargo xtask sbom` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let targets = project.targets(&self.targets);
        // What the documents need besides the binaries, and where they go, before building.
        let info = BuildInfo::gather(sh, project)?;
        let out = self.out.unwrap_or_else(|| project.work_dir().join("sbom"));
        writable::check(&out, "--out")?;
        let images = project.select(&self.image_names)?;
        let built = compile::build(sh, project, &targets, "release")?;
        let mut written = Vec::new();
        for image in &images {
            let project = project.for_image(image);
            let out = out.join(&image.name);
            for artifacts in &built {
                let artifacts = project.shipped(Built {
                    target: artifacts.target,
                    dir: artifacts.dir.clone(),
                    manifest: artifacts.manifest.clone(),
                    elapsed: artifacts.elapsed,
                });
                let what = format!(
                    "{} {}: sbom and provenance",
                    image.name,
                    artifacts.target.short()
                );
                written.push(step(what, || {
                    describe(sh, &project, &info, &artifacts, &out)
                })?);
            }
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&written)?);
        } else {
            let rows: Vec<Vec<String>> = written
                .iter()
                .map(|w| {
                    vec![
                        w.image.clone(),
                        w.target.clone(),
                        w.crates.to_string(),
                        w.c_libraries.join(", "),
                        w.files.to_string(),
                        project.relative(&w.sbom).to_string(),
                        project.relative(&w.provenance).to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                report::table(
                    &[
                        "image",
                        "target",
                        "crates",
                        "C code",
                        "files",
                        "sbom",
                        "provenance"
                    ],
                    &rows
                )
            );
        }
        Ok(())
    }
}

fn describe(
    sh: &Shell,
    project: &Project,
    info: &BuildInfo,
    artifacts: &Built,
    out: &Utf8Path,
) -> anyhow::Result<Written> {
    let (files, embedded) = staged_files(project, artifacts)?;
    let file_count = files.len();
    let described = Described {
        artifacts,
        embedded: &embedded,
        files,
        extra_subjects: Vec::new(),
        command: command("sbom", artifacts.target, profile::RELEASE),
        profile: profile::RELEASE,
    };
    let docs = documents(sh, project, info, described)?;
    let dir = out.join(artifacts.target.triple());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
    let sbom = dir.join(SBOM_FILE);
    let provenance = dir.join(PROVENANCE_FILE);
    write_atomically(sbom.as_std_path(), &docs.sbom, None)?;
    write_atomically(provenance.as_std_path(), &docs.provenance, None)?;
    Ok(Written {
        image: project.image_name().to_owned(),
        target: artifacts.target.triple().to_owned(),
        crates: docs.crates,
        c_libraries: docs.c_libraries,
        files: file_count,
        binaries: artifacts
            .manifest
            .files
            .iter()
            .map(|f| artifacts.dir.join(&f.name))
            .collect(),
        sbom,
        provenance,
    })
}
