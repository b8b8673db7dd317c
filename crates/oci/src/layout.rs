//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`): where the
//! builtin engine writes images, what a push reads, and the form the base-image cache takes.
//! `index.json` names each image with `org.opencontainers.image.ref.name`, so
//! `umoci unpack --image <dir>:<ref>` and `skopeo copy oci:<dir>:<ref> ...` find them.

use std::collections::BTreeSet;

use crate::error::bail;
use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, ImageManifest, MediaType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::blobstore::BlobStore;
use crate::json::{canonical_json, empty_index};
use crate::referrers::{self, EMPTY_CONFIG, Referrer};
use tiny_interrupt::Undo;

/// An OCI image layout on disk, with its images named in `index.json`: the named images
/// over the [`BlobStore`] that reads and writes its files.
pub struct Layout {
    /// The layout's directory.
    pub dir: Utf8PathBuf,
    store: BlobStore,
}

impl Layout {
    /// Opens the layout at `dir`, creating an empty one if there is none.
    pub fn create(dir: &Utf8Path) -> crate::Result<Layout> {
        Ok(Layout {
            dir: dir.to_owned(),
            store: BlobStore::create(dir.as_std_path())?,
        })
    }

    /// The layout at `dir`, as it is.
    fn at(dir: &Utf8Path) -> Layout {
        Layout {
            dir: dir.to_owned(),
            store: BlobStore::at(dir.as_std_path()),
        }
    }

    /// The store that reads and writes the layout's files.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Opens an existing layout.
    pub fn open(dir: &Utf8Path) -> crate::Result<Layout> {
        if !dir.join("oci-layout").is_file() || !dir.join("index.json").is_file() {
            bail!("{dir} is not an OCI image layout (no oci-layout or index.json)");
        }
        Ok(Layout::at(dir))
    }

    /// Where the blob of `digest` (`sha256:<hex>`) is stored.
    pub fn blob_path(&self, digest: &str) -> crate::Result<Utf8PathBuf> {
        let path = self.store.blob_path(&sha256(digest)?);
        Utf8PathBuf::from_path_buf(path)
            .map_err(|p| crate::Error::Invalid(format!("{} is not a UTF-8 path", p.display())))
    }

    /// Stores `bytes` under their digest (once) and returns the digest.
    pub fn put_blob(&self, bytes: &[u8]) -> crate::Result<String> {
        Ok(self.store.write(bytes)?.to_string())
    }

    /// Stores a JSON document canonically and describes it.
    pub fn put_json(
        &self,
        media_type: MediaType,
        value: &impl Serialize,
    ) -> crate::Result<Descriptor> {
        let bytes = canonical_json(value)?;
        self.put_bytes(media_type, &bytes)
    }

    /// Stores `bytes` as a blob and returns their descriptor.
    pub fn put_bytes(&self, media_type: MediaType, bytes: &[u8]) -> crate::Result<Descriptor> {
        let digest = self.put_blob(bytes)?;
        Ok(Descriptor::new(
            media_type,
            bytes.len() as u64,
            Digest::try_from(digest.as_str())?,
        ))
    }

    /// A blob's bytes, checked against its digest.
    pub fn read_blob(&self, digest: &str) -> crate::Result<Vec<u8>> {
        self.store.read(&sha256(digest)?)
    }

    /// Reads a blob as JSON.
    pub fn read_json<T: DeserializeOwned>(&self, digest: &str) -> crate::Result<T> {
        let bytes = self.read_blob(digest)?;
        Ok(serde_json::from_slice(&bytes).with_context(|| format!("parsing blob {digest}"))?)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> crate::Result<ImageIndex> {
        self.store.index()
    }

    /// Checks, before anything is built into it, that the layout at `dir` (if there is
    /// one) can be read and added to: its header and `index.json` parse, and every image,
    /// index and referrer `index.json` names is there with its config and layers. Nothing
    /// is written.
    pub fn check_writable(dir: &Utf8Path) -> crate::Result<()> {
        let Ok(meta) = std::fs::metadata(dir) else {
            return Ok(());
        };
        if !meta.is_dir() {
            bail!("{dir} is not a folder");
        }
        let header = dir.join("oci-layout");
        if header.exists() {
            let bytes = std::fs::read(&header).with_context(|| format!("reading {header}"))?;
            serde_json::from_slice::<oci_spec::image::OciLayout>(&bytes)
                .map_err(|e| anyhow::anyhow!("{header} is not an OCI layout header ({e})"))?;
        }
        if !dir.join("index.json").exists() {
            if dir.join("blobs").exists() {
                bail!("{dir} has blobs but no index.json");
            }
            return Ok(());
        }
        let layout = Layout::at(dir);
        let todo: Vec<Descriptor> = layout.index()?.manifests().clone();
        let mut seen = BTreeSet::new();
        let present = |digest: &str, named_by: &str| -> anyhow::Result<()> {
            let path = layout.blob_path(digest)?;
            if !path.is_file() {
                bail!("{path}, which {named_by} names, is missing");
            }
            Ok(())
        };
        let mut todo: Vec<(Descriptor, String)> = todo
            .into_iter()
            .map(|d| (d, "index.json".to_owned()))
            .collect();
        while let Some((d, named_by)) = todo.pop() {
            let digest = d.digest().to_string();
            if !seen.insert(digest.clone()) {
                continue;
            }
            present(&digest, &named_by)?;
            match d.media_type() {
                MediaType::ImageIndex => {
                    let index: ImageIndex = layout.read_json(&digest)?;
                    let named = index
                        .manifests()
                        .iter()
                        .map(|m| (m.clone(), digest.clone()));
                    todo.extend(named);
                }
                MediaType::ImageManifest => {
                    let manifest: ImageManifest = layout.read_json(&digest)?;
                    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
                        present(blob.digest().as_ref(), &digest)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Opens the layout at `dir` as `create` does, for a run that adds to it: unless the
    /// returned undo is disarmed, the layout goes back to what it was (its `index.json`
    /// restored, the blobs this run wrote removed, a layout this run created removed). Call
    /// `prune` only once it is disarmed: the old `index.json` needs its blobs.
    ///
    /// Until then the layout is locked (see [`Lock`](crate::blobstore::Lock)): another
    /// process's run on the same layout waits, so neither removes blobs the other has
    /// written and not yet named. `waiting` is called first if one has to wait.
    pub fn create_undoable(
        dir: &Utf8Path,
        waiting: impl FnOnce(),
    ) -> crate::Result<(Layout, Undo)> {
        let mut before = Before::look(dir);
        let layout = Layout::create(dir)?;
        let lock = layout.store.lock_or_wait(waiting)?;
        // Under the lock: what another run finished before this one began is kept.
        before.contents(dir);
        let undo = Undo::new(move || {
            before.restore();
            drop(lock);
        });
        Ok((layout, undo))
    }

    /// Names each descriptor in `index.json` by its ref name, replacing what had that name.
    pub fn tag(&self, refs: Vec<(String, Descriptor)>) -> crate::Result<()> {
        let _lock = self.store.lock()?;
        let names: BTreeSet<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
        let mut manifests: Vec<Descriptor> = self
            .index()?
            .manifests()
            .iter()
            .filter(|d| ref_name(d).is_none_or(|n| !names.contains(n)))
            .cloned()
            .collect();
        for (name, mut descriptor) in refs {
            let mut annotations = descriptor.annotations().clone().unwrap_or_default();
            annotations.insert(ANNOTATION_REF_NAME.to_owned(), name);
            descriptor.set_annotations(Some(annotations));
            manifests.push(descriptor);
        }
        manifests.sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
        self.write_index(&empty_index(manifests)?)?;
        Ok(())
    }

    /// Removes the name `name` from `index.json` (what it named goes with the next `prune`
    /// unless another name reaches it).
    pub fn untag(&self, name: &str) -> crate::Result<()> {
        let _lock = self.store.lock()?;
        let manifests: Vec<Descriptor> = self
            .index()?
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        self.write_index(&empty_index(manifests)?)
    }

    /// Lists the stored manifest `descriptor` in `index.json` without a name, once (how a
    /// referrer is listed: see [`Layout::attach`]).
    pub fn list(&self, descriptor: Descriptor) -> crate::Result<()> {
        let _lock = self.store.lock()?;
        let mut manifests: Vec<Descriptor> = self.index()?.manifests().clone();
        if manifests
            .iter()
            .any(|d| d.digest() == descriptor.digest() && ref_name(d).is_none())
        {
            return Ok(());
        }
        manifests.push(descriptor);
        self.write_index(&empty_index(manifests)?)
    }

    /// The descriptor `index.json` names `name`, if any.
    pub fn named(&self, name: &str) -> crate::Result<Option<Descriptor>> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .cloned())
    }

    /// Whether `entry` is the image `image`, or an index listing it.
    pub fn lists(&self, entry: &Descriptor, image: &Descriptor) -> crate::Result<bool> {
        if entry.digest() == image.digest() {
            return Ok(true);
        }
        if *entry.media_type() != MediaType::ImageIndex {
            return Ok(false);
        }
        let index: ImageIndex = self.read_json(entry.digest().as_ref())?;
        Ok(index
            .manifests()
            .iter()
            .any(|d| d.digest() == image.digest()))
    }

    /// The descriptor `index.json` names `name`.
    pub fn find(&self, name: &str) -> crate::Result<Descriptor> {
        let index = self.index()?;
        index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = index.manifests().iter().filter_map(ref_name).collect();
                crate::Error::NotFound(format!(
                    "no image named `{name}` in the OCI layout {} (it has: {})",
                    self.dir,
                    known.join(", ")
                ))
            })
    }

    /// The manifest of `name` for `arch`, following an index to that platform's entry.
    pub fn manifest_for(
        &self,
        name: &str,
        arch: crate::platform::Arch,
    ) -> crate::Result<(Descriptor, ImageManifest)> {
        let mut descriptor = self.find(name)?;
        // Indexes may nest (an index.json entry pointing at an image index).
        for _ in 0..4 {
            match descriptor.media_type() {
                MediaType::ImageManifest => {
                    let manifest = self.read_json(descriptor.digest().as_ref())?;
                    return Ok((descriptor, manifest));
                }
                MediaType::Other(t) if t == DOCKER_MANIFEST => {
                    let manifest = self.read_json(descriptor.digest().as_ref())?;
                    return Ok((descriptor, manifest));
                }
                MediaType::ImageIndex => {}
                MediaType::Other(t) if t == DOCKER_LIST => {}
                other => bail!("`{name}` in {} is a {other}, not an image", self.dir),
            }
            let index: ImageIndex = self.read_json(descriptor.digest().as_ref())?;
            descriptor = index
                .manifests()
                .iter()
                .find(|d| {
                    d.platform().as_ref().is_some_and(|p| {
                        arch.matches(&p.architecture().to_string(), p.variant().as_deref())
                            && p.os().to_string() == "linux"
                    })
                })
                .cloned()
                .with_context(|| {
                    format!("`{name}` in {} has no {} image", self.dir, arch.platform())
                })?;
        }
        bail!("`{name}` in {} nests indexes too deeply", self.dir)
    }

    /// Stores each referrer's blobs and lists its manifest, untagged and carrying its
    /// `artifactType`, in `index.json` (how oras's layout store keeps them: a reader finds
    /// the referrers of a digest among those entries by their `subject`). One entry per
    /// digest, sorted; entries whose subject no named image reaches any more (an earlier
    /// build's), and our earlier documents of the same kind for the same subject (the
    /// image is reproducible, its documents may change), are dropped, so `prune` removes
    /// their blobs.
    pub fn attach(&self, referrers: &[Referrer]) -> crate::Result<()> {
        let _lock = self.store.lock()?;
        for r in referrers {
            self.put_blob(EMPTY_CONFIG)?;
            self.put_blob(&r.document)?;
            self.put_blob(&r.manifest)?;
        }
        let index = self.index()?;
        let named: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d).is_some())
            .cloned()
            .collect();
        let reachable = self.reachable_manifests(&named)?;
        let mut untagged: Vec<Descriptor> = Vec::new();
        for d in index.manifests().iter().filter(|d| ref_name(d).is_none()) {
            let manifest: ImageManifest = self.read_json(d.digest().as_ref())?;
            let Some(subject) = manifest.subject().as_ref().map(|s| s.digest()) else {
                continue;
            };
            let alive = reachable.contains(&subject.to_string());
            let kind = referrers::Kind::of_manifest(&manifest);
            let replaced = referrers
                .iter()
                .any(|r| r.subject == *subject && Some(r.kind) == kind);
            if alive && !replaced {
                untagged.push(d.clone());
            }
        }
        untagged.extend(referrers.iter().map(|r| r.descriptor.clone()));
        untagged.sort_by_key(|d| d.digest().to_string());
        untagged.dedup_by_key(|d| d.digest().to_string());
        let mut manifests = named;
        manifests.extend(untagged);
        self.write_index(&empty_index(manifests)?)
    }

    /// The referrers of `subject` listed in `index.json`.
    pub fn referrers(&self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
        referrers::find(self.index()?.manifests(), subject, |d| {
            self.read_blob(d.as_ref())
        })
    }

    /// The digests of the manifests and indexes `from` names, indexes followed.
    fn reachable_manifests(&self, from: &[Descriptor]) -> anyhow::Result<BTreeSet<String>> {
        let mut seen = BTreeSet::new();
        let mut todo = from.to_vec();
        while let Some(d) = todo.pop() {
            if seen.insert(d.digest().to_string()) && *d.media_type() == MediaType::ImageIndex {
                let index: ImageIndex = self.read_json(d.digest().as_ref())?;
                todo.extend(index.manifests().iter().cloned());
            }
        }
        Ok(seen)
    }

    /// Removes blobs nothing in `index.json` reaches (earlier builds' layers).
    /// Waits for the layout's lock (see [`Layout::create_undoable`]).
    pub fn prune(&self) -> crate::Result<()> {
        let _lock = self.store.lock()?;
        let mut keep = BTreeSet::new();
        let mut todo: Vec<Descriptor> = self.index()?.manifests().clone();
        while let Some(d) = todo.pop() {
            let digest = d.digest().to_string();
            if !keep.insert(digest.clone()) {
                continue;
            }
            match d.media_type() {
                MediaType::ImageIndex => {
                    let index: ImageIndex = self.read_json(&digest)?;
                    todo.extend(index.manifests().iter().cloned());
                }
                MediaType::ImageManifest => {
                    let manifest: ImageManifest = self.read_json(&digest)?;
                    todo.push(manifest.config().clone());
                    todo.extend(manifest.layers().iter().cloned());
                }
                _ => {}
            }
        }
        for entry in self.dir.join("blobs/sha256").read_dir_utf8()? {
            let entry = entry?;
            if !keep.contains(&format!("sha256:{}", entry.file_name())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn write_index(&self, index: &ImageIndex) -> crate::Result<()> {
        self.store.set_index(index)
    }
}

/// A `sha256:<hex>` digest, typed.
fn sha256(digest: &str) -> crate::Result<Digest> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|_| Digest::try_from(digest).ok())
        .ok_or_else(|| crate::Error::Invalid(format!("`{digest}` is not a sha256 digest")))
}

/// What a layout held before a run added to it (see `Layout::create_undoable`).
struct Before {
    dir: Utf8PathBuf,
    /// The outermost folder the run creates, if it creates the layout's folder.
    created: Option<Utf8PathBuf>,
    /// Each of these, if it did not exist, is removed.
    existed: BTreeSet<&'static str>,
    index: Option<Vec<u8>>,
    blobs: BTreeSet<String>,
}

impl Before {
    const MADE: [&'static str; 3] = ["oci-layout", "blobs", "blobs/sha256"];

    /// What exists of the layout's folders and files, before anything is made.
    fn look(dir: &Utf8Path) -> Before {
        let created = dir
            .ancestors()
            .take_while(|a| !a.as_str().is_empty() && !a.exists())
            .last()
            .map(Utf8Path::to_owned);
        Before {
            dir: dir.to_owned(),
            created,
            existed: Self::MADE
                .into_iter()
                .filter(|p| dir.join(p).exists())
                .collect(),
            index: None,
            blobs: BTreeSet::new(),
        }
    }

    /// What the layout holds: read under its lock, once it exists.
    fn contents(&mut self, dir: &Utf8Path) {
        if self.created.is_some() {
            return;
        }
        self.index = std::fs::read(dir.join("index.json")).ok();
        self.blobs = dir
            .join("blobs/sha256")
            .read_dir_utf8()
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_owned())
                    .collect()
            })
            .unwrap_or_default();
    }

    fn restore(self) {
        let dir = &self.dir;
        if let Some(created) = &self.created {
            let _ = std::fs::remove_dir_all(created);
            return;
        }
        // The index first: from here on it names only blobs that were there before.
        let index = dir.join("index.json");
        let _ = match &self.index {
            Some(bytes) => BlobStore::at(dir.as_std_path()).write_file("index.json", bytes),
            None => std::fs::remove_file(&index).map_err(Into::into),
        };
        if let Ok(entries) = dir.join("blobs/sha256").read_dir_utf8() {
            for entry in entries.flatten() {
                if !self.blobs.contains(entry.file_name()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for made in Self::MADE
            .iter()
            .rev()
            .filter(|p| !self.existed.contains(*p))
        {
            let path = dir.join(made);
            let _ = match path.is_dir() {
                true => std::fs::remove_dir(&path),
                false => std::fs::remove_file(&path),
            };
        }
    }
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The name `index.json` gives an entry (`org.opencontainers.image.ref.name`).
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An image manifest with no layers and `config` as its config, stored in `layout`.
    fn empty_image(layout: &Layout, config: &[u8]) -> Descriptor {
        let config = layout.put_bytes(MediaType::ImageConfig, config).unwrap();
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .config(config)
            .layers(Vec::new())
            .build()
            .unwrap();
        layout
            .put_json(MediaType::ImageManifest, &manifest)
            .unwrap()
    }

    #[test]
    fn tags_replace_by_name_blobs_dedupe_and_prune_keeps_what_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("layout")).unwrap();
        let layout = Layout::create(&root).unwrap();
        let one = layout.put_bytes(MediaType::ImageLayer, b"one").unwrap();
        let again = layout.put_bytes(MediaType::ImageLayer, b"one").unwrap();
        assert_eq!(one, again);
        let two = layout.put_bytes(MediaType::ImageLayer, b"two").unwrap();
        layout.tag(vec![("a".into(), one.clone())]).unwrap();
        layout
            .tag(vec![("a".into(), two.clone()), ("b".into(), two.clone())])
            .unwrap();
        let names: Vec<_> = layout
            .index()
            .unwrap()
            .manifests()
            .iter()
            .map(|d| (ref_name(d).unwrap().to_owned(), d.digest().to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("a".into(), two.digest().to_string()),
                ("b".into(), two.digest().to_string())
            ]
        );
        layout.prune().unwrap();
        assert!(!layout.blob_path(one.digest().as_ref()).unwrap().exists());
        assert_eq!(layout.read_blob(two.digest().as_ref()).unwrap(), b"two");
        assert!(Layout::open(&root).is_ok());
        assert!(Layout::open(&root.join("blobs")).is_err());
        let err = layout.find("c").unwrap_err().to_string();
        assert!(err.contains("it has: a, b"), "{err}");
    }

    /// Every file under `dir` with its bytes.
    fn files(dir: &Utf8Path) -> BTreeMap<String, Vec<u8>> {
        let mut found = BTreeMap::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(at) = todo.pop() {
            for entry in at.read_dir_utf8().unwrap().flatten() {
                if entry.path().is_dir() {
                    todo.push(entry.path().to_owned());
                } else {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    found.insert(entry.path().as_str().to_owned(), bytes);
                }
            }
        }
        found
    }

    #[test]
    fn a_run_that_fails_leaves_the_layout_as_it_found_it() {
        let dir = tempfile::tempdir().unwrap();
        let parent = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        // No layout yet: a failed run leaves no folder, its parents included.
        let root = parent.join("made/by/the/run");
        {
            let (layout, _undo) = Layout::create_undoable(&root, || {}).unwrap();
            let one = empty_image(&layout, b"{\"one\":1}");
            layout.tag(vec![("a".into(), one)]).unwrap();
        }
        assert!(!parent.join("made").exists());
        // A layout with an image: the failed run's blobs go, and index.json is what it was.
        let root = parent.join("layout");
        let layout = Layout::create(&root).unwrap();
        let one = empty_image(&layout, b"{\"one\":1}");
        layout.tag(vec![("a".into(), one.clone())]).unwrap();
        let before = files(&root);
        {
            let (layout, _undo) = Layout::create_undoable(&root, || {}).unwrap();
            let two = empty_image(&layout, b"{\"two\":2}");
            layout.tag(vec![("a".into(), two)]).unwrap();
            assert_ne!(files(&root), before);
        }
        assert_eq!(files(&root), before);
        Layout::check_writable(&root).unwrap();
        // A run that succeeds keeps what it wrote.
        let (layout, undo) = Layout::create_undoable(&root, || {}).unwrap();
        let two = empty_image(&layout, b"{\"two\":2}");
        layout.tag(vec![("a".into(), two.clone())]).unwrap();
        undo.disarm();
        layout.prune().unwrap();
        assert_eq!(layout.find("a").unwrap().digest(), two.digest());
        assert!(!layout.blob_path(one.digest().as_ref()).unwrap().exists());
    }

    /// Whether another process (util-linux's `flock`) could take the layout's lock now.
    fn free_for_another_process(root: &Utf8Path) -> bool {
        let status = std::process::Command::new("flock")
            .args(["--nonblock", root.as_str(), "true"])
            .status()
            .unwrap();
        status.success()
    }

    #[test]
    fn runs_of_two_processes_on_one_layout_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("layout")).unwrap();
        let layout = Layout::create(&root).unwrap();
        let kept = empty_image(&layout, b"{\"kept\":1}");
        layout.tag(vec![("kept".into(), kept.clone())]).unwrap();
        // Another process holds the lock until its stdin closes.
        let mut other = std::process::Command::new("flock")
            .args([root.as_str(), "sh", "-c", "echo held; cat >/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut held = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(other.stdout.take().unwrap()),
            &mut held,
        )
        .unwrap();
        assert_eq!(held, "held\n");
        let release = other.stdin.take().unwrap();
        let waited = std::cell::Cell::new(false);
        let (layout, undo) = Layout::create_undoable(&root, || {
            waited.set(true);
            drop(release);
        })
        .unwrap();
        assert!(waited.get(), "the run did not see the lock held");
        assert!(other.wait().unwrap().success());
        // While this run is open, another waits for it; its prune, `tag` and `attach` share
        // this run's lock.
        assert!(!free_for_another_process(&root));
        let new = empty_image(&layout, b"{\"new\":2}");
        layout.tag(vec![("new".into(), new.clone())]).unwrap();
        undo.disarm();
        assert!(free_for_another_process(&root));
        layout.prune().unwrap();
        assert_eq!(layout.find("kept").unwrap().digest(), kept.digest());
        assert_eq!(layout.find("new").unwrap().digest(), new.digest());
    }

    #[test]
    fn a_damaged_layout_is_found_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("layout")).unwrap();
        Layout::check_writable(&root).unwrap();
        let layout = Layout::create(&root).unwrap();
        let one = empty_image(&layout, b"{\"one\":1}");
        layout.tag(vec![("a".into(), one.clone())]).unwrap();
        Layout::check_writable(&root).unwrap();
        let manifest: ImageManifest = layout.read_json(one.digest().as_ref()).unwrap();
        std::fs::remove_file(
            layout
                .blob_path(manifest.config().digest().as_ref())
                .unwrap(),
        )
        .unwrap();
        let err = Layout::check_writable(&root).unwrap_err().to_string();
        assert!(err.ends_with("is missing"), "{err}");
        std::fs::write(root.join("index.json"), "").unwrap();
        let err = Layout::check_writable(&root).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{root}/index.json is not an OCI image index (EOF while parsing a value at line 1 column 0)"
            )
        );
    }

    #[test]
    fn referrers_are_listed_once_found_by_subject_and_dropped_with_their_image() {
        use crate::referrers::{self, Document, Kind};
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("layout")).unwrap();
        let layout = Layout::create(&root).unwrap();
        let image = |content: &[u8]| empty_image(&layout, content);
        let old = image(b"{\"old\":1}");
        let sbom = |subject: &Descriptor, text: &str| {
            let document = Document {
                kind: Kind::Sbom,
                title: "sbom.spdx.json",
                bytes: text.as_bytes().to_vec(),
            };
            referrers::referrer(subject, &document, "2024-01-01T00:00:00Z").unwrap()
        };
        let first = sbom(&old, "old sbom");
        layout.tag(vec![("t".into(), old.clone())]).unwrap();
        layout.attach(std::slice::from_ref(&first)).unwrap();
        layout.attach(std::slice::from_ref(&first)).unwrap();
        let entries = layout.index().unwrap().manifests().len();
        assert_eq!(entries, 2, "attached twice, listed once");
        let found = layout.referrers(old.digest()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.digest(), first.descriptor.digest());
        layout.prune().unwrap();
        assert_eq!(
            layout.read_blob(first.layer.digest().as_ref()).unwrap(),
            b"old sbom",
            "prune keeps what a referrer names"
        );
        // The tag moves to a new image: the old image's document goes with it.
        let new = image(b"{\"new\":1}");
        assert!(layout.referrers(new.digest()).unwrap().is_empty());
        let second = sbom(&new, "new sbom");
        layout.tag(vec![("t".into(), new.clone())]).unwrap();
        layout.attach(std::slice::from_ref(&second)).unwrap();
        layout.prune().unwrap();
        assert!(layout.referrers(old.digest()).unwrap().is_empty());
        assert_eq!(layout.referrers(new.digest()).unwrap().len(), 1);
        assert!(
            !layout
                .blob_path(first.layer.digest().as_ref())
                .unwrap()
                .exists()
        );
    }

    #[test]
    fn a_changed_document_replaces_ours_of_its_kind_for_that_image_only() {
        use crate::referrers::{self, Document, Kind};
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().join("layout")).unwrap();
        let layout = Layout::create(&root).unwrap();
        let image = |content: &[u8]| empty_image(&layout, content);
        let (amd, arm) = (image(b"{\"amd\":1}"), image(b"{\"arm\":1}"));
        let attach = |subject: &Descriptor, kind: Kind, text: &str| {
            let document = Document {
                kind,
                title: "document.json",
                bytes: text.as_bytes().to_vec(),
            };
            let r = referrers::referrer(subject, &document, "2024-01-01T00:00:00Z").unwrap();
            layout.attach(std::slice::from_ref(&r)).unwrap();
            r
        };
        layout
            .tag(vec![("a".into(), amd.clone()), ("b".into(), arm.clone())])
            .unwrap();
        attach(&amd, Kind::Sbom, "sbom 1");
        let provenance = attach(&amd, Kind::Provenance, "provenance 1");
        let other_image = attach(&arm, Kind::Sbom, "sbom 1 of arm");
        // The same image, rebuilt by another xtask: its SBOM changes.
        let newer = attach(&amd, Kind::Sbom, "sbom 2");
        let digests = |subject: &Descriptor| -> BTreeSet<String> {
            layout
                .referrers(subject.digest())
                .unwrap()
                .iter()
                .map(|(d, _)| d.digest().to_string())
                .collect()
        };
        assert_eq!(
            digests(&amd),
            BTreeSet::from([
                newer.descriptor.digest().to_string(),
                provenance.descriptor.digest().to_string()
            ])
        );
        assert_eq!(
            digests(&arm),
            BTreeSet::from([other_image.descriptor.digest().to_string()])
        );
        // The listed descriptor carries the mark too, as the referrers API would.
        let listed = layout.index().unwrap();
        let entry = listed
            .manifests()
            .iter()
            .find(|d| d.digest() == newer.descriptor.digest())
            .unwrap();
        assert_eq!(Kind::of_descriptor(entry), Some(Kind::Sbom));
    }
}
