//! What the engine says of an image, checked before any container starts: its platform,
//! user, entrypoint and labels, then the binaries in it, copied out and read as ELF.

use anyhow::{Context, ensure};
use tiny_cross::elf;
use tiny_cross::target::Target;
use tiny_declare as declared;
use tiny_engine::{Resources, inspect};
use xshell::Shell;

/// The labels every image must carry (`org.opencontainers.image.<name>`).
pub const REQUIRED_LABELS: [&str; 6] = [
    "title", "version", "revision", "created", "source", "licenses",
];

/// What `image inspect` says, checked.
pub(crate) struct Facts {
    /// The platform's one-word name (`armv7` for arm/v7), as tags and rows name it.
    pub arch: String,
    pub user: String,
    pub entrypoint: String,
    /// The base it was built on (`org.opencontainers.image.base.name`).
    pub base: String,
    pub size: u64,
}

impl Facts {
    /// The Rust target of the image's platform, if it is one of ours.
    pub fn target(&self) -> Option<Target> {
        self.arch.parse().ok()
    }

    /// The platform as engines name it (`linux/arm/v7`).
    pub fn platform(&self) -> String {
        self.target()
            .map_or_else(|| format!("linux/{}", self.arch), |t| t.platform())
    }
}

pub(crate) fn read_facts(
    image: &inspect::Image,
    expected_arch: Option<&str>,
) -> anyhow::Result<Facts> {
    let arch = Target::from_arch(&image.architecture, image.variant.as_deref())
        .map_or_else(|| image.architecture.clone(), |t| t.short().to_owned());
    if let Some(expected) = expected_arch {
        ensure!(
            arch == expected,
            "the image is for `{arch}`, expected `{expected}`"
        );
    }
    let user = image.config.user.clone().unwrap_or_default();
    let uid = user.split(':').next().unwrap_or_default();
    ensure!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the image runs as root (User {user:?})"
    );
    let entrypoint = image
        .config
        .entrypoint
        .as_ref()
        .and_then(|e| e.first())
        .map(String::as_str)
        .unwrap_or_default();
    ensure!(
        entrypoint.starts_with('/'),
        "no absolute entrypoint (Entrypoint {:?})",
        image.config.entrypoint
    );
    let missing: Vec<&str> = REQUIRED_LABELS
        .into_iter()
        .filter(|l| {
            image
                .label(&format!("org.opencontainers.image.{l}"))
                .is_none_or(str::is_empty)
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "missing OCI labels: {}",
        missing.join(", ")
    );
    Ok(Facts {
        arch,
        user,
        entrypoint: entrypoint.to_owned(),
        // Without the label the strictest budget applies.
        base: image
            .label("org.opencontainers.image.base.name")
            .unwrap_or("scratch")
            .to_owned(),
        size: image.size,
    })
}

/// Copies the entrypoint and every declared binary out of the image and checks each is a
/// static binary for the image's architecture: a mislabelled image would otherwise run under
/// emulation here and fail on real hardware.
pub(crate) fn binary_matches(
    sh: &Shell,
    resources: &Resources,
    reference: &str,
    facts: &Facts,
    declared: &declared::Image,
    copies: &str,
) -> anyhow::Result<String> {
    let platform = &facts.platform();
    let target = facts
        .target()
        .with_context(|| format!("unsupported image architecture `{}`", facts.arch))?;
    let mut paths = vec![facts.entrypoint.clone()];
    for binary in &declared.binaries {
        let path = format!("{}/{binary}", declared::BIN_DIR);
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let dir = sh.create_temp_dir()?;
    let _removed = tiny_interrupt::Undo::remove_dir(dir.path());
    let mut linkage = None;
    for (i, path) in paths.iter().enumerate() {
        let name = format!("{copies}-{i}");
        let local = dir.path().join(format!("binary-{i}"));
        resources.copy_out(&name, platform, reference, path, &local)?;
        let bytes = std::fs::read(&local)?;
        let found = elf::verify(&bytes, target)
            .with_context(|| format!("{path} in this {platform} image"))?;
        linkage.get_or_insert(found);
    }
    Ok(format!(
        "{} {}: {:?} {} executable{}",
        paths.len(),
        if paths.len() == 1 {
            "binary"
        } else {
            "binaries"
        },
        linkage.context("no binary")?,
        target.machine(),
        if paths.len() == 1 { "" } else { "s" }
    ))
}
