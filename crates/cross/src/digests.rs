//! What we already know about files we hashed: their sha256, that they passed the ELF
//! checks, and their gzipped size, reused while a file is unchanged so that a no-op build
//! reads no binary. A file counts as unchanged while its size, mtime, ctime, inode and
//! device are; ctime cannot be set back by hand, and cargo and the staging write new files
//! (new inodes) rather than rewrite old ones.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::dist::{self, FileEntry};

/// The identity of one version of a file, from its metadata.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    /// The file at `path` as it is now.
    pub fn of(path: &Utf8Path) -> crate::Result<Stamp> {
        let meta = path.metadata().with_context(|| format!("reading {path}"))?;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Ok(Stamp {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
        })
    }

    /// When the file last changed, content or metadata: the later of mtime and ctime, in
    /// nanoseconds since the epoch.
    pub fn changed_ns(&self) -> i128 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Known {
    stamp: Stamp,
    sha256: String,
}

/// The cache file's contents: digests by path, gzipped sizes by digest (a staged copy
/// shares the size of its source).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    files: BTreeMap<Utf8PathBuf, Known>,
    gzipped: BTreeMap<String, u64>,
}

/// Digests and gzipped sizes, loaded from and saved to one JSON file.
pub struct Digests {
    path: Utf8PathBuf,
    contents: Contents,
    changed: bool,
}

impl Digests {
    /// Loads the cache; a missing or unreadable one is an empty cache (it is only ever a
    /// shortcut).
    pub fn load(path: &Utf8Path) -> Digests {
        let contents = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Digests {
            path: path.to_owned(),
            contents,
            changed: false,
        }
    }

    /// Writes the cache if anything was learnt, through a temporary file renamed into place.
    pub fn save(&mut self) -> crate::Result<()> {
        if !self.changed {
            return Ok(());
        }
        // Forget files that are gone, so the cache does not grow with every build.
        self.contents.files.retain(|path, _| path.exists());
        let dir = self.path.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let tmp = self
            .path
            .with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&self.contents)?)
            .with_context(|| format!("writing {tmp}"))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("writing {}", self.path))?;
        self.changed = false;
        Ok(())
    }

    /// The file's manifest entry as `name`. On a miss the file is read, given to `check`
    /// (which may refuse it) and hashed; only a file that passed is remembered.
    pub fn entry(
        &mut self,
        path: &Utf8Path,
        name: &str,
        check: impl FnOnce(&[u8]) -> crate::Result<()>,
    ) -> crate::Result<FileEntry> {
        let stamp = Stamp::of(path)?;
        let sha256 = match self.known(path, stamp) {
            Some(sha256) => sha256.to_owned(),
            None => {
                let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
                check(&bytes)?;
                let sha256 = dist::sha256_bytes(&bytes);
                self.remember(path, stamp, &sha256);
                sha256
            }
        };
        Ok(FileEntry {
            name: name.to_owned(),
            size: stamp.size,
            sha256,
        })
    }

    /// Whether `path` still holds the content with this digest, as far as the cache knows
    /// (an unknown file is not vouched for).
    pub fn holds(&self, path: &Utf8Path, sha256: &str) -> bool {
        Stamp::of(path).is_ok_and(|stamp| self.known(path, stamp) == Some(sha256))
    }

    /// Records that `path`, as it is now, has this digest (a copy we just made and hashed).
    pub fn record(&mut self, path: &Utf8Path, sha256: &str) -> crate::Result<()> {
        let stamp = Stamp::of(path)?;
        self.remember(path, stamp, sha256);
        Ok(())
    }

    /// The size of `path` gzipped at the default level, computed once per content.
    pub fn gzip_size(&mut self, path: &Utf8Path, sha256: &str) -> crate::Result<u64> {
        if let Some(&size) = self.contents.gzipped.get(sha256) {
            return Ok(size);
        }
        let size = dist::gzip_size(path)?;
        self.contents.gzipped.insert(sha256.to_owned(), size);
        self.changed = true;
        Ok(size)
    }

    fn known(&self, path: &Utf8Path, stamp: Stamp) -> Option<&str> {
        self.contents
            .files
            .get(path)
            .filter(|known| known.stamp == stamp)
            .map(|known| known.sha256.as_str())
    }

    fn remember(&mut self, path: &Utf8Path, stamp: Stamp, sha256: &str) {
        let known = Known {
            stamp,
            sha256: sha256.to_owned(),
        };
        if self.contents.files.get(path) != Some(&known) {
            self.contents.files.insert(path.to_owned(), known);
            self.changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::scratch_dir;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// The entry for `path`, and whether the file had to be read and checked for it.
    fn entry(digests: &mut Digests, path: &Utf8Path) -> (FileEntry, bool) {
        let read = Cell::new(false);
        let entry = digests
            .entry(path, "bin", |_| {
                read.set(true);
                Ok(())
            })
            .unwrap();
        (entry, read.get())
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_even_after_a_reload() {
        let (_tmp, dir) = scratch_dir();
        let file = dir.join("bin");
        std::fs::write(&file, b"abc").unwrap();
        let cache = dir.join("cache/digests.json");

        let mut digests = Digests::load(&cache);
        let (first, read) = entry(&mut digests, &file);
        assert!(read);
        assert_eq!((first.size, first.sha256.as_str()), (3, ABC));
        digests.save().unwrap();

        let mut digests = Digests::load(&cache);
        let (again, read) = entry(&mut digests, &file);
        assert!(!read, "a hit reads nothing");
        assert_eq!(again, first);
        assert!(digests.holds(&file, ABC));
        assert!(!digests.holds(&file, "0000"));
    }

    #[test]
    fn a_rewritten_or_replaced_file_is_read_again() {
        let (_tmp, dir) = scratch_dir();
        let file = dir.join("bin");
        std::fs::write(&file, b"abc").unwrap();
        let mut digests = Digests::load(&dir.join("digests.json"));
        entry(&mut digests, &file);

        // Same size, new content, in place: the ctime moves whatever the mtime says.
        std::fs::write(&file, b"xyz").unwrap();
        let (rewritten, read) = entry(&mut digests, &file);
        assert!(read);
        assert_ne!(rewritten.sha256, ABC);
        assert!(!digests.holds(&file, ABC));

        // Replaced by another file (a new inode), as cargo and the staging do.
        let other = dir.join("other");
        std::fs::write(&other, b"abc").unwrap();
        std::fs::rename(&other, &file).unwrap();
        let (replaced, read) = entry(&mut digests, &file);
        assert!(read);
        assert_eq!(replaced.sha256, ABC);
    }

    #[test]
    fn a_refused_file_is_not_remembered() {
        let (_tmp, dir) = scratch_dir();
        let file = dir.join("bin");
        std::fs::write(&file, b"abc").unwrap();
        let mut digests = Digests::load(&dir.join("digests.json"));
        let refused = digests.entry(&file, "bin", |_| {
            Err(crate::Error::Other("not an ELF".into()))
        });
        assert!(refused.is_err());
        let (_, read) = entry(&mut digests, &file);
        assert!(read, "the check runs again");
    }

    #[test]
    fn a_broken_cache_is_an_empty_one_and_gzip_sizes_are_kept_by_content() {
        let (_tmp, dir) = scratch_dir();
        let cache = dir.join("digests.json");
        std::fs::write(&cache, b"{ not json").unwrap();
        let file = dir.join("bin");
        std::fs::write(&file, vec![0u8; 4096]).unwrap();
        let mut digests = Digests::load(&cache);
        let (e, read) = entry(&mut digests, &file);
        assert!(read);
        let gz = digests.gzip_size(&file, &e.sha256).unwrap();
        assert!(gz > 0 && gz < 4096, "{gz}");
        digests.save().unwrap();

        // A copy with the same digest gets the size without being compressed again.
        std::fs::remove_file(&file).unwrap();
        let mut digests = Digests::load(&cache);
        assert_eq!(digests.gzip_size(&file, &e.sha256).unwrap(), gz);
    }
}
