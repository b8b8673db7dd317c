//! An OCI image layout on disk as a content-addressed store: the one reader and writer of
//! a layout's files (`oci-layout`, `index.json`, `blobs/`), under the builtin engine's
//! [`Layout`](crate::layout::Layout), what the registry client pushes from and what it
//! pulls base images into. Every blob read or written is checked against its digest; files
//! appear atomically (written aside, then renamed).

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::error::bail;
use crate::error::ensure;
use anyhow::Context;
use oci_spec::image::{Digest, ImageIndex, OciLayoutBuilder};
use sha2::{Digest as _, Sha256};

use crate::json::{canonical_json, empty_index};

/// An OCI image layout opened as a content-addressed store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// The right to change a layout's `index.json` and remove its blobs: while one process
/// holds it, another that asks for it waits (an advisory `flock` on the layout's folder).
/// Asked for again by the process that holds it, it is shared, not waited for, so a
/// change made under a held lock can call functions that lock themselves. Released when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Lock(#[allow(dead_code)] Arc<File>);

impl BlobStore {
    /// An existing layout (it has an `oci-layout` file).
    pub fn open(root: &Path) -> crate::Result<BlobStore> {
        ensure!(
            root.join("oci-layout").is_file(),
            "{} is not an OCI image layout (no oci-layout file): build the image first",
            root.display()
        );
        Ok(BlobStore {
            root: root.to_owned(),
        })
    }

    /// The layout at `root`, as it is: for callers that checked it themselves.
    pub(crate) fn at(root: &Path) -> BlobStore {
        BlobStore {
            root: root.to_owned(),
        }
    }

    /// The layout at `root`, made empty if it does not exist yet.
    pub fn create(root: &Path) -> crate::Result<BlobStore> {
        let store = BlobStore {
            root: root.to_owned(),
        };
        std::fs::create_dir_all(root.join("blobs/sha256"))
            .with_context(|| format!("creating the OCI layout {}", root.display()))?;
        if !root.join("oci-layout").is_file() {
            let header = OciLayoutBuilder::default()
                .image_layout_version("1.0.0")
                .build()?;
            store.write_file("oci-layout", &canonical_json(&header)?)?;
        }
        if !root.join("index.json").is_file() {
            store.set_index(&empty_index(Vec::new())?)?;
        }
        Ok(store)
    }

    /// Locks the layout for a change (see [`Lock`]), waiting as long as another process
    /// holds it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = tiny_oci::blobstore::BlobStore::create(dir.path())?;
    /// let held = store.lock()?;
    /// let again = store.lock()?; // the same process: shared, not waited for
    /// # drop((held, again));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(&self) -> crate::Result<Lock> {
        self.lock_or_wait(|| {})
    }

    /// As [`BlobStore::lock`], calling `waiting` first if another process holds the lock.
    pub fn lock_or_wait(&self, waiting: impl FnOnce()) -> crate::Result<Lock> {
        static HELD: Mutex<BTreeMap<PathBuf, Weak<File>>> = Mutex::new(BTreeMap::new());
        let locking = || format!("locking the OCI layout {}", self.root.display());
        let key = std::fs::canonicalize(&self.root).with_context(locking)?;
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(Lock(file));
        }
        let file = File::open(&key).with_context(locking)?;
        // Polled rather than blocked on, so that a signal ends the wait like any other step.
        let mut waiting = Some(waiting);
        let taken =
            tiny_interrupt::wait_until(Duration::from_secs(24 * 3600), || match file.try_lock() {
                Ok(()) => Ok(Some(())),
                Err(TryLockError::WouldBlock) => {
                    if let Some(tell) = waiting.take() {
                        tell();
                    }
                    Ok(None)
                }
                Err(TryLockError::Error(e)) => Err(crate::Error::from(
                    anyhow::Error::from(e).context(locking()),
                )),
            })?;
        ensure!(
            taken.is_some(),
            "{}: another process has held it for a day",
            locking()
        );
        let file = Arc::new(file);
        held.retain(|_, f| f.strong_count() > 0);
        held.insert(key, Arc::downgrade(&file));
        Ok(Lock(file))
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> crate::Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            crate::Error::Invalid(format!(
                "{} is not an OCI image index ({e})",
                path.display()
            ))
        })
    }

    /// Replaces the layout's `index.json` (atomically).
    pub fn set_index(&self, index: &ImageIndex) -> crate::Result<()> {
        Ok(self.write_file("index.json", &canonical_json(index)?)?)
    }

    /// Where the blob of `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// Whether the blob is present with the expected size (its content is checked on read).
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.len() == size)
    }

    /// The blob's bytes, checked against its digest.
    pub fn read(&self, digest: &Digest) -> crate::Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("the OCI layout has no blob {digest} ({})", path.display()))?;
        let actual = sha256_digest(&bytes)?;
        ensure!(
            actual == *digest,
            "blob {} is corrupt (its content hashes to {actual}): rebuild the layout",
            path.display()
        );
        Ok(bytes)
    }

    /// Writes bytes as a blob (once: a blob already there is kept) and returns their digest.
    pub fn write(&self, bytes: &[u8]) -> crate::Result<Digest> {
        let digest = sha256_digest(bytes)?;
        if !self.has(&digest, bytes.len() as u64) {
            let path = self.blob_path(&digest);
            let name = path
                .strip_prefix(&self.root)
                .context("a blob outside the layout")?;
            self.write_file(&name.to_string_lossy(), bytes)?;
        }
        Ok(digest)
    }

    /// Streams a blob in, refusing it unless its size and sha256 match.
    pub fn write_from(
        &self,
        digest: &Digest,
        size: u64,
        mut reader: impl Read,
    ) -> crate::Result<()> {
        ensure_sha256(digest)?;
        let path = self.blob_path(digest);
        let partial = path.with_extension("partial");
        let mut file =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut buffer = vec![0u8; 64 * 1024];
        let result = (|| -> anyhow::Result<()> {
            loop {
                tiny_interrupt::check()?;
                let n = reader.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                file.write_all(&buffer[..n])?;
                written += n as u64;
            }
            file.sync_all()?;
            let actual = Digest::from_str(&format!("sha256:{:x}", hasher.finalize()))?;
            if actual != *digest || written != size {
                bail!(
                    "blob {digest} arrived as {written} bytes hashing to {actual} (expected {size} bytes): the registry sent corrupt data"
                );
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(std::fs::rename(&partial, &path)
                .with_context(|| format!("storing {}", path.display()))?),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e.into())
            }
        }
    }

    /// Writes beside the file and renames over it: a reader never sees half a file.
    pub(crate) fn write_file(&self, relative: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.root.join(relative);
        // Unique per write: architectures are assembled side by side and share blobs.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}-{n}",
            name.as_deref().unwrap_or("blob"),
            std::process::id()
        ));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// The sha256 digest of `bytes`, typed.
pub fn sha256_digest(bytes: &[u8]) -> crate::Result<Digest> {
    Ok(Digest::from_str(&crate::digest::sha256_digest(bytes))?)
}

fn ensure_sha256(digest: &Digest) -> anyhow::Result<()> {
    ensure!(
        digest.algorithm().as_ref() == "sha256",
        "digest {digest} uses {}, and only sha256 is supported",
        digest.algorithm()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::create(&dir.path().join("layout")).unwrap();
        assert!(BlobStore::open(store.root()).is_ok());
        assert!(store.index().unwrap().manifests().is_empty());
        let digest = store.write(b"hello").unwrap();
        assert_eq!(
            digest.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(store.has(&digest, 5));
        assert!(!store.has(&digest, 6));
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        std::fs::write(store.blob_path(&digest), b"hellO").unwrap();
        assert!(
            store
                .read(&digest)
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
        let wrong = store.write_from(&digest, 5, &b"world"[..]).unwrap_err();
        assert!(wrong.to_string().contains("corrupt data"), "{wrong}");
        assert!(!store.blob_path(&digest).with_extension("partial").exists());
        assert!(BlobStore::open(dir.path()).is_err());
    }
}
