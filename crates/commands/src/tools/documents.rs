//! The SBOM and provenance of one target's build, composed from what the binaries embed, what
//! Cargo knows and the build's facts. `cargo xtask sbom` writes them for the staged binaries;
//! the image writer passes the files of the image and its manifest digest instead.

use anyhow::Context;
use xshell::Shell;

use crate::model::project::Project;
use crate::tools::buildinfo::{self, BuildInfo};
use crate::tools::inventory;
use tiny_cross::dist::Built;
use tiny_cross::target::Target;
use tiny_sbom::audit::{Graph, VersionInfo};
use tiny_sbom::provenance::{self, ProvenanceInput, Subject};
use tiny_sbom::spdx::{self as sbom, ImageFile, SbomInput};

/// The documents' file names: in `cargo xtask sbom`'s folder, and the title of the layer
/// that carries each when attached to an image.
pub const SBOM_FILE: &str = "sbom.spdx.json";
pub const PROVENANCE_FILE: &str = "provenance.intoto.json";

/// Where the binaries are in the image (`COPY bin/ /usr/local/bin/` in Dockerfile.runtime).
const BIN_DIR: &str = "/usr/local/bin";

pub struct Documents {
    pub sbom: String,
    pub provenance: String,
    /// Crates in the SBOM (the workspace's own included).
    pub crates: usize,
    /// The C code compiled in, as `name version`.
    pub c_libraries: Vec<String>,
}

/// What one target's documents describe.
pub struct Described<'a> {
    pub artifacts: &'a Built,
    /// The dependency lists embedded in the binaries.
    pub embedded: &'a [VersionInfo],
    /// Every file shipped, with its path in the image.
    pub files: Vec<ImageFile>,
    /// Subjects besides the binaries (the image manifest's digest, once there is one).
    pub extra_subjects: Vec<Subject>,
    /// The command that ran, as [`command`] spells it.
    pub command: Vec<String>,
    /// The cargo profile the binaries were built with.
    pub profile: &'static str,
}

/// The xtask command that produced the subjects, as provenance records it: the command and
/// the options that choose what is built (the target, `--fast`). Where the output went
/// (`--tag`, `--layout`, `--push`, `--no-load`) is left out, so that a rebuild elsewhere
/// (`verify`'s) writes the same document.
pub fn command(name: &str, target: Target, profile: &str) -> Vec<String> {
    let mut command: Vec<String> = ["cargo", "xtask", name, "--target", target.triple()]
        .map(str::to_owned)
        .to_vec();
    if profile == tiny_cross::profile::DEV_IMAGE {
        command.push("--fast".to_owned());
    }
    command
}

/// The staged binaries as files of the image, and the dependency lists they embed. The image
/// writer hands its own list (every file it puts in the image) to `documents` instead.
/// A binary built without one (no `cargo auditable`-style `build.rs`) is described from
/// `Cargo.lock` instead, with a note.
pub fn staged_files(
    project: &Project,
    artifacts: &Built,
) -> anyhow::Result<(Vec<ImageFile>, Vec<VersionInfo>)> {
    let mut files = Vec::new();
    let mut embedded = Vec::new();
    for file in &artifacts.manifest.files {
        let path = artifacts.dir.join(&file.name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        match VersionInfo::from_elf(&bytes).with_context(|| format!("reading {path}"))? {
            Some(info) => embedded.push(info),
            None => {
                eprintln!(
                    "  note: {} carries no dependency list (.dep-v0): its SBOM lists the \
                     dependencies Cargo.lock resolves for {} (to embed one, call \
                     tiny_embed::dependency_list() from the package's build.rs)",
                    file.name, artifacts.target
                );
                embedded.push(project.dependency_list(artifacts.target)?);
            }
        }
        files.push(ImageFile::from_bytes(
            &format!("{BIN_DIR}/{}", file.name),
            &bytes,
            true,
        ));
    }
    Ok((files, embedded))
}

/// An image's files as the SBOM lists them: every regular file, ours (the staged binaries,
/// recognised by their sha256) marked as built. Also the dependency lists our binaries
/// embed.
pub fn image_files(
    project: &Project,
    artifacts: &Built,
    files: std::collections::BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<(Vec<ImageFile>, Vec<VersionInfo>)> {
    let (_, embedded) = staged_files(project, artifacts)?;
    let ours: std::collections::BTreeSet<&str> = artifacts
        .manifest
        .files
        .iter()
        .map(|f| f.sha256.as_str())
        .collect();
    let files = files
        .iter()
        .map(|(path, bytes)| {
            let file = ImageFile::from_bytes(path, bytes, false);
            let built = ours.contains(file.sha256.as_str());
            ImageFile { built, ..file }
        })
        .collect();
    Ok((files, embedded))
}

pub fn documents(
    sh: &Shell,
    project: &Project,
    info: &BuildInfo,
    described: Described,
) -> anyhow::Result<Documents> {
    let artifacts = described.artifacts;
    let target = artifacts.target;
    let graph = Graph::runtime(described.embedded);
    let inventory = inventory::gather(project, target, &graph)?;
    let package = &project.package;
    let repository = info.repository.trim_end_matches('/');
    // The repository's owner (`https://host/<owner>/<name>`) supplies the workspace's crates.
    let owner = repository.rsplit('/').nth(1).unwrap_or(&package.name);
    let mut subjects: Vec<Subject> = artifacts
        .manifest
        .files
        .iter()
        .map(|f| Subject {
            name: f.name.clone(),
            sha256: f.sha256.clone(),
        })
        .collect();
    subjects.extend(described.extra_subjects);
    let input = SbomInput {
        name: format!("{}-{}-{}", package.name, package.version, target.triple()),
        namespace_base: format!("{repository}/spdx"),
        created: info.source_date_epoch.rfc3339(),
        creators: vec![
            format!("Tool: cargo-xtask-{}", env!("CARGO_PKG_VERSION")),
            format!("Organization: {owner}"),
        ],
        local_supplier: format!("Organization: {owner}"),
        graph,
        details: inventory.details,
        c_libraries: inventory.c_libraries,
        files: described.files,
    };
    let mut tools = info.tools.clone();
    tools.push(buildinfo::c_compiler(sh, project, target)?);
    let provenance = provenance::render(&ProvenanceInput {
        subjects,
        build_type: format!("{repository}/xtask/build@v1"),
        builder_id: format!("{repository}/xtask"),
        builder_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: info.source.clone(),
        target: target.triple().to_owned(),
        profile: described.profile.to_owned(),
        command: described.command,
        source_date_epoch: info.source_date_epoch,
        cargo_lock_sha256: info.cargo_lock_sha256.clone(),
        tools,
    })?;
    Ok(Documents {
        sbom: sbom::render(&input)?,
        provenance,
        crates: input.graph.crates.len(),
        c_libraries: input
            .c_libraries
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect(),
    })
}
