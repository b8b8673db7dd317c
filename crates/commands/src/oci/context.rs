//! The build context every engine builds `Dockerfile.runtime` from, one per architecture:
//!   bin/     the verified binaries from `cargo xtask build`
//!   rootfs/  what a scratch base lacks (CA bundle, passwd/group entries); empty otherwise
//!   owned/   the image's declared volumes, owned by its user
//! and the build arguments it is given. Files carry normalised modes and `SOURCE_DATE_EPOCH`
//! as their mtime, so that docker and podman copy the same metadata the builtin engine writes.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use cargo_metadata::camino::Utf8Path;

use crate::model::project::Project;
use tiny_cross::dist::Built;
use tiny_declare::{Image, Role};
use tiny_oci::epoch::Epoch;
use tiny_oci::layer::normalised_mode_of;
use tiny_oci::recipe::Recipe;

/// The runtime Dockerfile at the workspace's root, unless an image declares another.
pub const DOCKERFILE: &str = "Dockerfile.runtime";
/// The service's user and group (65532, distroless' `nonroot`), as `Dockerfile.runtime` sets.
pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
/// The groups of the service's user, as `Dockerfile.runtime` sets.
pub const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The folders every context has.
const FOLDERS: [&str; 3] = ["bin", "rootfs", "owned"];
/// What `rootfs/` holds for a scratch base.
const SCRATCH_FILES: [&str; 3] = [
    "etc/passwd",
    "etc/group",
    "etc/ssl/certs/ca-certificates.crt",
];

/// What `stage` will put in a context, as paths relative to it (each folder listed too),
/// known before anything is built: the image's binaries in `bin/`, its volumes in `owned/`,
/// and for a scratch base the files it lacks in `rootfs/`.
pub fn contents(image: &Image, scratch: bool) -> BTreeSet<String> {
    let mut files: Vec<String> = FOLDERS.iter().map(|f| (*f).to_owned()).collect();
    files.extend(image.binaries.iter().map(|b| format!("bin/{b}")));
    files.extend(image.volumes.iter().map(|v| owned(v)));
    if scratch {
        files.extend(SCRATCH_FILES.iter().map(|f| format!("rootfs/{f}")));
    }
    let mut all = BTreeSet::new();
    for file in files {
        let mut at = 0;
        while let Some(i) = file[at..].find('/') {
            all.insert(file[..at + i].to_owned());
            at += i + 1;
        }
        all.insert(file);
    }
    all
}

/// Checks every `COPY` source of `recipe` against what the context will hold (see
/// `contents`), so that a wrong path is refused before anything is built.
pub fn check_sources(recipe: &Recipe, contents: &BTreeSet<String>) -> anyhow::Result<()> {
    for step in &recipe.copies {
        for source in &step.sources {
            let path: Vec<&str> = source
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            if !path.is_empty() && !contents.contains(&path.join("/")) {
                let top: Vec<&str> = FOLDERS
                    .iter()
                    .map(|f| f.split('/').next().unwrap_or(f))
                    .collect();
                bail!(
                    "{DOCKERFILE} line {}: `{}` copies {source}, which the build context does \
                     not hold (it holds {}/ only, as the file's header says): correct the path",
                    step.line,
                    step.text,
                    top.join("/, ")
                );
            }
        }
    }
    Ok(())
}

/// Where a volume's folder is staged: `owned/<path>`.
fn owned(volume: &Utf8Path) -> String {
    format!("owned/{}", volume.as_str().trim_matches('/'))
}

/// Fills `context` afresh with what `image` ships and returns the size of its files.
pub fn stage(
    context: &Utf8Path,
    artifacts: &Built,
    image: &Image,
    scratch: bool,
    epoch: Epoch,
) -> anyhow::Result<u64> {
    let _ = std::fs::remove_dir_all(context);
    let volumes = image.volumes.iter().map(|v| owned(v));
    for dir in FOLDERS.iter().map(|f| (*f).to_owned()).chain(volumes) {
        std::fs::create_dir_all(context.join(&dir))
            .with_context(|| format!("creating {context}/{dir}"))?;
    }
    let mut total = 0;
    for name in &image.binaries {
        if !artifacts.manifest.files.iter().any(|f| &f.name == name) {
            bail!(
                "{} holds no binary `{name}` for image {}: run `cargo xtask build`",
                artifacts.dir,
                image.name
            );
        }
    }
    let shipped = artifacts
        .manifest
        .files
        .iter()
        .filter(|f| image.binaries.contains(&f.name));
    for file in shipped {
        let dest = context.join("bin").join(&file.name);
        total += std::fs::copy(artifacts.dir.join(&file.name), &dest)
            .with_context(|| format!("staging {dest}"))?;
    }
    if scratch {
        let rootfs = context.join("rootfs");
        let [passwd, group, ca_bundle] = SCRATCH_FILES.map(|f| rootfs.join(f));
        std::fs::create_dir_all(rootfs.join("etc/ssl/certs"))?;
        std::fs::write(passwd, PASSWD)?;
        std::fs::write(group, GROUP)?;
        total += (PASSWD.len() + GROUP.len()) as u64;
        total += std::fs::copy(CA_BUNDLE, ca_bundle).with_context(|| {
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
/// the base and the cargo profile of the binaries.
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
        ("PROFILE", profile.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The current image's runtime Dockerfile followed by what its declaration says (see
/// [`declared`]): the text every engine builds.
pub fn dockerfile(project: &Project) -> anyhow::Result<String> {
    let image = &project.image;
    let path = project.root.join(&image.dockerfile);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {path} (dockerfile of [workspace.metadata.xtask.images.{}])",
            image.name
        )
    })?;
    Ok(format!("{}\n{}", text.trim_end(), declared(image)))
}

/// The instructions an image's declaration adds to its runtime Dockerfile: environment,
/// port, volumes, health check, entrypoint and arguments.
pub fn declared(image: &Image) -> String {
    let json = |words: &[String]| serde_json::to_string(words).unwrap_or_default();
    let mut out = format!(
        "\n# From [workspace.metadata.xtask.images.{}] in Cargo.toml\n",
        image.name
    );
    let mut env: Vec<(String, String)> = Vec::new();
    if let Role::Service { port, port_env, .. } = &image.role {
        env.push((port_env.clone(), port.to_string()));
    }
    env.extend(image.env.clone());
    for (key, value) in env {
        let value = serde_json::to_string(&value)
            .unwrap_or_default()
            .replace('$', "\\$");
        out.push_str(&format!("ENV {key}={value}\n"));
    }
    if let Some(port) = image.port() {
        out.push_str(&format!("EXPOSE {port}\n"));
    }
    if !image.volumes.is_empty() {
        let volumes: Vec<String> = image.volumes.iter().map(ToString::to_string).collect();
        out.push_str(&format!("VOLUME {}\n", json(&volumes)));
    }
    if let Some(check) = &image.healthcheck {
        out.push_str(&format!(
            "HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD {}\n",
            json(&check.to_vec())
        ));
    }
    out.push_str(&format!(
        "ENTRYPOINT {}\n",
        json(&[image.entrypoint.program.to_string()])
    ));
    if !image.entrypoint.args.is_empty() {
        out.push_str(&format!("CMD {}\n", json(&image.entrypoint.args)));
    }
    out
}

/// The current image's Dockerfile (see [`dockerfile`]) parsed with `args`.
pub fn recipe(project: &Project, args: &[(String, String)]) -> anyhow::Result<Recipe> {
    let text = dockerfile(project)?;
    Recipe::parse(&text, args).with_context(|| project.image.dockerfile.to_string())
}

#[cfg(test)]
mod tests {
    use cargo_metadata::camino::Utf8PathBuf;

    use super::*;
    use tiny_cross::dist::{FileEntry, Manifest};
    use tiny_cross::target::Target;

    /// An image of `binaries` (of the package `p`) with a `/data` volume.
    fn image(binaries: &[&str]) -> Image {
        let members = tiny_declare::Members::new([(
            "p".to_owned(),
            vec!["migrate".to_owned(), "service".to_owned()],
        )]);
        let xtask = serde_json::json!({"images": {"i": {
            "package": "p", "binaries": binaries, "entrypoint": binaries[0], "volumes": ["/data"]
        }}});
        tiny_declare::images(&xtask, &members).unwrap().remove(0)
    }

    /// Every path under `dir`, relative to it.
    fn walk(dir: &Utf8Path, prefix: &str, into: &mut BTreeSet<String>) {
        for entry in dir.read_dir_utf8().unwrap().flatten() {
            let path = format!("{prefix}{}", entry.file_name());
            if entry.path().is_dir() {
                walk(entry.path(), &format!("{path}/"), into);
            }
            into.insert(path);
        }
    }

    #[test]
    fn what_is_staged_is_what_the_recipe_is_checked_against() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).unwrap();
        let dist = root.join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        let binaries = vec!["migrate".to_owned(), "service".to_owned()];
        for b in &binaries {
            std::fs::write(dist.join(b), b).unwrap();
        }
        let built = Built {
            target: Target::X86_64Musl,
            dir: dist,
            manifest: Manifest {
                package: "p".into(),
                version: "1".into(),
                target: Target::X86_64Musl.triple().into(),
                files: binaries
                    .iter()
                    .map(|b| FileEntry {
                        name: b.clone(),
                        size: 0,
                        sha256: String::new(),
                    })
                    .collect(),
            },
            elapsed: std::time::Duration::ZERO,
        };
        for scratch in [true, false] {
            let context = root.join(format!("context-{scratch}"));
            let image = image(&["migrate", "service"]);
            stage(&context, &built, &image, scratch, Epoch::ZERO).unwrap();
            let mut staged = BTreeSet::new();
            walk(&context, "", &mut staged);
            assert_eq!(staged, contents(&image, scratch), "scratch: {scratch}");
        }
    }

    #[test]
    fn a_copy_of_what_the_context_lacks_is_refused_with_its_line() {
        let recipe = |copies: &str| {
            let text = format!("FROM scratch\n{copies}");
            Recipe::parse(&text, &[]).unwrap()
        };
        let held = contents(&image(&["service"]), true);
        for good in [
            "COPY rootfs/ /\nCOPY bin/ /usr/local/bin/",
            "COPY ./bin/service /s",
            "COPY . /all",
            "COPY rootfs/etc/passwd owned/data /x/",
        ] {
            check_sources(&recipe(good), &held).unwrap();
        }
        let err = check_sources(&recipe("COPY bin/ /b/\n\nCOPY nope/ /x/"), &held)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Dockerfile.runtime line 4: `COPY nope/ /x/` copies nope/, which the build context \
             does not hold (it holds bin/, rootfs/, owned/ only, as the file's header says): \
             correct the path"
        );
        let alpine = contents(&image(&["service"]), false);
        assert!(check_sources(&recipe("COPY rootfs/etc/passwd /etc/"), &alpine).is_err());
        assert!(check_sources(&recipe("COPY bin/migrate /m"), &held).is_err());
    }
}
