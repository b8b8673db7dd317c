//! Staging verified binaries under `<target dir>/dist/<triple>/`, all or nothing.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::elf;
use crate::error::bail;
use crate::target::Target;
use tiny_interrupt::{self as interrupt, Undo};

/// The name of the manifest in a dist folder.
pub const MANIFEST: &str = "manifest.json";

/// `manifest.json` in a dist folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The package the binaries were built from.
    pub package: String,
    /// Its version.
    pub version: String,
    /// The target triple.
    pub target: String,
    /// The staged files.
    pub files: Vec<FileEntry>,
}

/// One staged file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name in the folder.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, in hex.
    pub sha256: String,
}

/// One target's staged, verified binaries.
pub struct Built {
    /// The target built for.
    pub target: Target,
    /// The dist folder.
    pub dir: Utf8PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// How long building and staging took.
    pub elapsed: Duration,
}

/// A folder being filled next to its final place; removed on drop (or at a second Ctrl-C)
/// unless committed.
pub struct Staging {
    path: Utf8PathBuf,
    dest: Utf8PathBuf,
    removal: Option<Undo>,
}

impl Staging {
    /// Starts a fresh staging folder for `dest`, clearing what earlier interrupted runs
    /// (killed too hard to clean up) left beside it.
    pub fn new(dest: &Utf8Path) -> crate::Result<Staging> {
        let parent = dest.parent().context("dist folder has no parent")?;
        std::fs::create_dir_all(parent).with_context(|| format!("creating {parent}"))?;
        let name = dest.file_name().context("dist folder has no name")?;
        for entry in parent.read_dir_utf8()?.flatten() {
            if entry.file_name().starts_with(&format!(".{name}.")) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let path = parent.join(format!(".{name}.staging-{}", std::process::id()));
        let removal = Undo::remove_dir(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {path}"))?;
        Ok(Staging {
            path,
            dest: dest.to_owned(),
            removal: Some(removal),
        })
    }

    #[cfg(test)]
    /// The folder being filled.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Copies `src` in as `name` and returns its manifest entry.
    pub fn add(&self, src: &Utf8Path, name: &str) -> crate::Result<FileEntry> {
        let dest = self.path.join(name);
        std::fs::copy(src, &dest).with_context(|| format!("copying {src} to {dest}"))?;
        Ok(FileEntry {
            name: name.to_owned(),
            size: dest.metadata()?.len(),
            sha256: sha256(&dest)?,
        })
    }

    /// Writes the manifest and swaps the folder into place. The old folder is moved aside
    /// first, so at any instant `dest` is either the old complete set or the new one.
    pub fn commit(mut self, manifest: &Manifest) -> crate::Result<Utf8PathBuf> {
        let json = serde_json::to_string_pretty(manifest)? + "\n";
        std::fs::write(self.path.join(MANIFEST), json)?;
        interrupt::check()?;
        let old = self.path.with_file_name(format!(
            ".{}.old-{}",
            self.dest.file_name().unwrap_or("dist"),
            std::process::id()
        ));
        if self.dest.exists() {
            std::fs::rename(&self.dest, &old)
                .with_context(|| format!("moving {} aside", self.dest))?;
        }
        std::fs::rename(&self.path, &self.dest)
            .with_context(|| format!("moving the staged files to {}", self.dest))?;
        if let Some(removal) = self.removal.take() {
            removal.disarm();
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(self.dest.clone())
    }
}

/// The manifest of the dist folder `dir`, as written when it was staged.
pub fn read_manifest(dir: &Utf8Path) -> crate::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?)
}

/// The manifest of a dist folder with each file's size and sha256 as the file is now: what
/// would ship, even if something changed it after staging. Each file must still pass
/// [`elf::verify`] for the manifest's target, so a binary of another target copied or renamed
/// into the folder (an arm/v6 one among the arm/v7 ones, say) is refused, not shipped.
pub fn read_staged(dir: &Utf8Path) -> crate::Result<Manifest> {
    let mut manifest = read_manifest(dir)?;
    let target: Target = manifest.target.parse()?;
    for file in &mut manifest.files {
        let path = dir.join(&file.name);
        if !path.exists() {
            bail!("{path} is listed in {MANIFEST} but missing");
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        if let Err(e) = elf::verify(&bytes, target) {
            bail!("refusing {path}: {e}");
        }
        file.size = bytes.len() as u64;
        file.sha256 = sha256_bytes(&bytes);
    }
    Ok(manifest)
}

/// The size of a file after gzip at the default level: what a registry stores and sends.
pub fn gzip_size(path: &Utf8Path) -> crate::Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut encoder = flate2::read::GzEncoder::new(file, flate2::Compression::default());
    Ok(std::io::copy(&mut encoder, &mut std::io::sink())?)
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The SHA-256 of the file at `path`, in hex.
pub fn sha256(path: &Utf8Path) -> crate::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch_dir;

    fn manifest(files: Vec<FileEntry>) -> Manifest {
        Manifest {
            package: "p".into(),
            version: "1".into(),
            target: "t".into(),
            files,
        }
    }

    #[test]
    fn a_commit_replaces_the_folder_whole() {
        let (_tmp, root) = scratch_dir();
        let src = root.join("bin");
        std::fs::write(&src, b"abc").unwrap();
        let dest = root.join("dist/t");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("stale"), b"old").unwrap();

        let staging = Staging::new(&dest).unwrap();
        let entry = staging.add(&src, "service").unwrap();
        assert_eq!(entry.size, 3);
        assert_eq!(
            entry.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut staged = manifest(vec![entry.clone()]);
        staged.target = "armv7-unknown-linux-musleabihf".into();
        staging.commit(&staged).unwrap();

        assert!(!dest.join("stale").exists());
        assert_eq!(read_manifest(&dest).unwrap(), staged);
        // What is read back is checked as it is now, not as the manifest says it was.
        std::fs::write(dest.join("service"), b"abd").unwrap();
        let err = read_staged(&dest).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("refusing {dest}/service: not a 32-bit ELF executable")
        );
        assert_eq!(read_manifest(&dest).unwrap(), staged);
        let leftovers: Vec<_> = root.join("dist").read_dir().unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the final folder remains");
    }

    #[test]
    fn an_abandoned_staging_leaves_nothing_and_the_old_folder_intact() {
        let (_tmp, root) = scratch_dir();
        let dest = root.join("dist/t");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("service"), b"old").unwrap();
        // What a SIGKILLed run leaves behind is cleared by the next one.
        std::fs::create_dir_all(root.join("dist/.t.staging-1")).unwrap();
        {
            let staging = Staging::new(&dest).unwrap();
            assert!(!root.join("dist/.t.staging-1").exists());
            std::fs::write(staging.path().join("service"), b"half").unwrap();
        }
        let names: Vec<_> = root
            .join("dist")
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["t"]);
        assert_eq!(std::fs::read(dest.join("service")).unwrap(), b"old");
    }
}
