//! The build context every engine builds `Dockerfile.runtime` from, one per architecture:
//!   bin/     the verified binaries from `cargo xtask build`
//!   rootfs/  what a scratch base lacks (CA bundle, passwd/group entries); empty otherwise
//!   owned/   the /data folder, owned by the service's user
//! and the build arguments it is given. Files carry normalised modes and `SOURCE_DATE_EPOCH`
//! as their mtime, so that docker and podman copy the same metadata the builtin engine writes.

use anyhow::Context;
use cargo_metadata::camino::Utf8Path;

use crate::model::dist::Built;
use crate::model::epoch::Epoch;
use crate::model::project::Project;
use crate::oci::layer::normalised_mode_of;

pub const DOCKERFILE: &str = "Dockerfile.runtime";
/// The service's user and group (65532, distroless' `nonroot`), as `Dockerfile.runtime` sets.
pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
pub const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Fills `context` afresh and returns the size of its files.
pub fn stage(
    context: &Utf8Path,
    artifacts: &Built,
    scratch: bool,
    epoch: Epoch,
) -> anyhow::Result<u64> {
    let _ = std::fs::remove_dir_all(context);
    for dir in ["bin", "rootfs", "owned/data"] {
        std::fs::create_dir_all(context.join(dir))
            .with_context(|| format!("creating {context}/{dir}"))?;
    }
    let mut total = 0;
    for file in &artifacts.manifest.files {
        let dest = context.join("bin").join(&file.name);
        total += std::fs::copy(artifacts.dir.join(&file.name), &dest)
            .with_context(|| format!("staging {dest}"))?;
    }
    if scratch {
        let rootfs = context.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/ssl/certs"))?;
        std::fs::write(rootfs.join("etc/passwd"), PASSWD)?;
        std::fs::write(rootfs.join("etc/group"), GROUP)?;
        total += (PASSWD.len() + GROUP.len()) as u64;
        total += std::fs::copy(CA_BUNDLE, rootfs.join(CA_BUNDLE.trim_start_matches('/'))).with_context(|| {
            format!("a scratch image needs a CA bundle and {CA_BUNDLE} is missing: install ca-certificates")
        })?;
    }
    normalise(context, epoch)?;
    Ok(total)
}

/// Normalised modes and `epoch` as the mtime of everything under `dir`, folders last (adding
/// an entry changes a folder's mtime).
fn normalise(dir: &Utf8Path, epoch: Epoch) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let time = epoch.system_time();
    for entry in dir.read_dir_utf8()? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            normalise(entry.path(), epoch)?;
        }
        let mode = normalised_mode_of(meta.is_dir(), meta.permissions().mode());
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        let file = std::fs::File::open(entry.path())?;
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(time)
                .set_modified(time),
        )
        .with_context(|| format!("setting the time of {}", entry.path()))?;
    }
    Ok(())
}

/// The build arguments `Dockerfile.runtime` declares: OCI labels from Cargo.toml and git,
/// the base, the port and the cargo profile of the binaries.
pub fn build_args(
    project: &Project,
    base: &str,
    revision: Option<&str>,
    epoch: Epoch,
    profile: &str,
) -> Vec<(String, String)> {
    let package = &project.package;
    let created = epoch.rfc3339();
    [
        ("TITLE", project.image_name().to_owned()),
        (
            "DESCRIPTION",
            package.description.clone().unwrap_or_default(),
        ),
        ("VERSION", package.version.clone()),
        ("REVISION", revision.unwrap_or("unknown").to_owned()),
        ("CREATED", created.to_string()),
        ("SOURCE", package.repository.clone().unwrap_or_default()),
        ("LICENSES", package.license.clone().unwrap_or_default()),
        ("BASE_NAME", base.to_owned()),
        ("BASE", base.to_owned()),
        ("PORT", project.settings.image.port.to_string()),
        ("PROFILE", profile.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `Dockerfile.runtime` parsed with `args`.
pub fn recipe(
    project: &Project,
    args: &[(String, String)],
) -> anyhow::Result<crate::model::recipe::Recipe> {
    let path = project.root.join(DOCKERFILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    crate::model::recipe::Recipe::parse(&text, args).context(DOCKERFILE)
}
