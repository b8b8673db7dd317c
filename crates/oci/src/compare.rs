//! Comparing two builds of the same images: where their digests come from (an OCI layout or a
//! registry), and, when they differ, the first file (or config field) that makes them differ.

use std::collections::BTreeMap;
use std::io::Read;

use crate::error::bail;
use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::layer::decompress;
use crate::layout::Layout;
use crate::platform::Arch;
use crate::referrers::{self, Kind};
use crate::registry::{self, Client};

/// Where one side's blobs and attached documents are read from.
pub trait Blobs {
    /// The bytes of the blob `digest`.
    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>>;
    /// The referrer manifests of `subject`, with their descriptors.
    fn attached(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>>;
}

impl Blobs for Layout {
    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>> {
        self.read_blob(digest.as_ref())
    }

    fn attached(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
        self.referrers(subject)
    }
}

/// A repository of a registry.
pub struct Repository {
    /// The client of its registry.
    pub client: Client,
    /// The repository, and the tag or digest compared.
    pub reference: Reference,
}

impl Blobs for Repository {
    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>> {
        self.client.blob_bytes(self.reference.repository(), digest)
    }

    /// Through the referrers API, or the fallback tag where the registry has none.
    fn attached(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
        let repository = self.reference.repository().to_owned();
        Ok(self
            .client
            .referrer_manifests(&repository, subject)?
            .into_iter()
            .map(|found| (found.descriptor, found.manifest))
            .collect())
    }
}

/// A document attached to an image: its `artifactType`, the digest of its bytes, the bytes.
#[derive(Debug, Clone)]
pub struct AttachedDocument {
    /// The document's manifest digest.
    pub digest: Digest,
    /// The document itself.
    pub bytes: Vec<u8>,
}

/// Our document of `kind` attached to `subject` (other tools' referrers are ignored), or
/// `None`; an error when several of ours are, since which one counts would be arbitrary.
pub fn attached_document(
    blobs: &mut dyn Blobs,
    subject: &Digest,
    kind: Kind,
) -> crate::Result<Option<AttachedDocument>> {
    let attached = blobs.attached(subject)?;
    let ours: Vec<&(Descriptor, ImageManifest)> = attached
        .iter()
        .filter(|(_, manifest)| Kind::of_manifest(manifest) == Some(kind))
        .collect();
    let manifest = match ours.as_slice() {
        [] => return Ok(None),
        [(_, manifest)] => manifest,
        several => {
            let digests: Vec<String> = several
                .iter()
                .map(|(d, _)| d.digest().to_string())
                .collect();
            bail!(
                "{} {} documents are attached to {subject} ({}): keep one, by attaching it again with `cargo xtask image` (a layout) or deleting the others from the registry",
                several.len(),
                kind.name(),
                digests.join(", ")
            );
        }
    };
    let layer = referrers::document_layer(manifest)?;
    Ok(Some(AttachedDocument {
        digest: layer.digest().clone(),
        bytes: blobs.blob(layer.digest())?,
    }))
}

/// Where two versions of a JSON document first differ (`packages[3].versionInfo is "1" vs
/// "2"`), or that they are written differently when their values are equal.
pub fn diff_documents(expected: &[u8], rebuilt: &[u8]) -> String {
    match (
        serde_json::from_slice::<Value>(expected),
        serde_json::from_slice::<Value>(rebuilt),
    ) {
        (Ok(a), Ok(b)) => first_json_difference("", &a, &b)
            .unwrap_or_else(|| "the same values, written differently".to_owned()),
        _ => "not JSON on one side".to_owned(),
    }
}

/// What one build made for the targets compared: the multi-architecture index (for two
/// targets or more) and each platform's manifest.
#[derive(Debug, Clone)]
pub struct Images {
    /// The index's digest; none when one target is compared (a single-platform build
    /// writes no index).
    pub index: Option<Digest>,
    /// By platform (`linux/amd64`), in the index's order.
    pub images: Vec<PlatformImage>,
}

/// One platform's image of an [`Images`].
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// `linux/amd64`.
    pub platform: String,
    /// The digest of its manifest.
    pub digest: Digest,
    /// Its manifest.
    pub manifest: ImageManifest,
}

impl Images {
    /// What `image --tag <..:tag>` wrote in `layout` for `targets`: the index named `tag`
    /// and its images, or for one target the image named `<tag>-<arch>`.
    pub fn from_layout(layout: &Layout, tag: &str, targets: &[Arch]) -> crate::Result<Images> {
        if let [one] = targets {
            let descriptor = layout.find(&format!("{tag}-{}", one.as_str()))?;
            return Ok(Images {
                index: None,
                images: vec![PlatformImage {
                    platform: one.platform(),
                    digest: descriptor.digest().clone(),
                    manifest: layout.read_json(descriptor.digest().as_ref())?,
                }],
            });
        }
        let descriptor = layout.named(tag)?.with_context(|| {
            format!(
                "the OCI layout {} has no index `{tag}` (a single-platform `image --target` names its image `{tag}-<arch>` only): build every target with `cargo xtask image`, or compare one with --target",
                layout.dir
            )
        })?;
        let index: ImageIndex = layout.read_json(descriptor.digest().as_ref())?;
        let mut images = Vec::new();
        for entry in index.manifests() {
            let Some(platform) = entry.platform() else {
                continue;
            };
            images.push(PlatformImage {
                platform: registry::platform_name(platform),
                digest: entry.digest().clone(),
                manifest: layout.read_json(entry.digest().as_ref())?,
            });
        }
        Ok(Images {
            index: Some(descriptor.digest().clone()),
            images,
        })
    }

    /// What `repository.reference` names in its registry, for `targets`: a
    /// multi-architecture index and its images; for one target, that platform's image (the
    /// reference may name it alone, e.g. `<tag>-amd64`).
    pub fn from_registry(repository: &mut Repository, targets: &[Arch]) -> crate::Result<Images> {
        let reference = repository.reference.clone();
        let name = reference.repository().to_owned();
        let asked = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_owned();
        let raw = repository.client.manifest(&name, &asked)?;
        if !raw.is_index() {
            let [one] = targets else {
                bail!(
                    "{reference} is one image, not a multi-architecture index: give the index's tag, or compare that image alone with --target <arch>"
                );
            };
            let member = registry::read_member(&mut repository.client, &reference)?;
            let platform = registry::platform_name(&member.platform);
            if platform != one.platform() {
                bail!(
                    "{reference} is a {platform} image, not {}: give --target for its platform",
                    one.platform()
                );
            }
            return Ok(Images {
                index: None,
                images: vec![PlatformImage {
                    platform,
                    digest: raw.digest,
                    manifest: ImageManifest::from_reader(raw.bytes.as_slice())
                        .with_context(|| format!("the manifest of {reference}"))?,
                }],
            });
        }
        let index = ImageIndex::from_reader(raw.bytes.as_slice())
            .with_context(|| format!("the index {reference}"))?;
        let mut images = Vec::new();
        for entry in index.manifests() {
            let Some(platform) = entry.platform() else {
                continue;
            };
            let platform = registry::platform_name(platform);
            if let [one] = targets
                && platform != one.platform()
            {
                continue;
            }
            let manifest = repository.client.manifest(&name, entry.digest().as_ref())?;
            images.push(PlatformImage {
                platform,
                digest: manifest.digest.clone(),
                manifest: ImageManifest::from_reader(manifest.bytes.as_slice())
                    .with_context(|| format!("the {} manifest of {reference}", entry.digest()))?,
            });
        }
        if let [one] = targets {
            if images.is_empty() {
                bail!("the index {reference} lists no {} image", one.platform());
            }
            // One platform is compared: the index, which lists others, is not.
            return Ok(Images {
                index: None,
                images,
            });
        }
        Ok(Images {
            index: Some(raw.digest),
            images,
        })
    }

    /// The image for `platform` (`linux/amd64`), if there is one.
    pub fn platform(&self, platform: &str) -> Option<&PlatformImage> {
        self.images.iter().find(|i| i.platform == platform)
    }
}

/// The first thing that differs between two images of one platform: a file in a layer
/// (layers walked in order), a layer only one side has, or a config field. `None` when
/// their layers and config are the same.
pub fn first_difference(
    platform: &str,
    expected: (&ImageManifest, &mut dyn Blobs),
    rebuilt: (&ImageManifest, &mut dyn Blobs),
) -> crate::Result<Option<String>> {
    let (want, want_blobs) = expected;
    let (got, got_blobs) = rebuilt;
    // A new commit moves SOURCE_DATE_EPOCH, so every mtime differs: a file whose content
    // differs, in any layer, is the news; metadata only when no content differs.
    let mut metadata_only = None;
    for (n, (a, b)) in want.layers().iter().zip(got.layers()).enumerate() {
        if a.digest() == b.digest() {
            continue;
        }
        let read = |blobs: &mut dyn Blobs, d: &Descriptor| {
            let blob = blobs.blob(d.digest())?;
            decompress(d.media_type(), &blob)
        };
        let a_tar = read(want_blobs, a)?;
        let b_tar = read(got_blobs, b)?;
        let found = diff_tars(&a_tar, &b_tar)?;
        let content = found.as_ref().is_some_and(FileDifference::is_content);
        let what = match found {
            Some(difference) => difference.to_string(),
            None if a.media_type() != b.media_type() => {
                format!(
                    "the same files, compressed as {} vs {}",
                    a.media_type(),
                    b.media_type()
                )
            }
            None => "the same files, compressed differently".to_owned(),
        };
        let line = format!("layer {} of {platform} ({}): {what}", n + 1, a.digest());
        if content {
            return Ok(Some(line));
        }
        metadata_only.get_or_insert(line);
    }
    if metadata_only.is_some() {
        return Ok(metadata_only);
    }
    if want.layers().len() != got.layers().len() {
        return Ok(Some(format!(
            "{platform} has {} layers, the rebuild {}",
            want.layers().len(),
            got.layers().len()
        )));
    }
    if want.config().digest() != got.config().digest() {
        let a = want_blobs.blob(want.config().digest())?;
        let b = got_blobs.blob(got.config().digest())?;
        let what = diff_configs(&a, &b)?.unwrap_or_else(|| "written differently".to_owned());
        return Ok(Some(format!(
            "config of {platform} ({}): {what}",
            want.config().digest()
        )));
    }
    let (a, b) = (json(want)?, json(got)?);
    Ok(first_json_difference("", &a, &b).map(|d| format!("manifest of {platform}: {d}")))
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(value)?)
}

/// One entry of a layer's tar, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    size: u64,
    sha256: String,
}

/// How a file differs between two tars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDifference {
    /// The path in the image.
    pub path: String,
    /// How the file differs.
    pub what: Difference,
}

/// How one file differs between two images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Same kind and metadata, other bytes.
    Content {
        /// A digest of the expected file's content.
        expected: String,
        /// A digest of the rebuilt file's content.
        rebuilt: String,
    },
    /// A header field differs.
    Field {
        /// Which field (`mode`, `uid`, `link target`, ...).
        field: &'static str,
        /// Its value in the expected image.
        expected: String,
        /// Its value in the rebuilt image.
        rebuilt: String,
    },
    /// The file is only in the expected image.
    OnlyExpected,
    /// The file is only in the rebuilt image.
    OnlyRebuilt,
    /// The same entries in another order.
    Order,
}

impl FileDifference {
    /// Whether the file's bytes, type or presence differ (not only its mode, owner or time).
    pub fn is_content(&self) -> bool {
        match &self.what {
            Difference::Content { .. } | Difference::OnlyExpected | Difference::OnlyRebuilt => true,
            Difference::Field { field, .. } => *field == "type",
            Difference::Order => false,
        }
    }
}

impl std::fmt::Display for FileDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = &self.path;
        match &self.what {
            Difference::Content { expected, rebuilt } => write!(
                f,
                "{path} differs (sha256 {} vs {})",
                short(expected),
                short(rebuilt)
            ),
            Difference::Field {
                field,
                expected,
                rebuilt,
            } => write!(f, "{path} differs in {field} ({expected} vs {rebuilt})"),
            Difference::OnlyExpected => write!(f, "{path} is missing from the rebuild"),
            Difference::OnlyRebuilt => write!(f, "{path} is only in the rebuild"),
            Difference::Order => write!(f, "the same entries in another order, from {path}"),
        }
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

/// The first entry, in the expected tar's order, that differs in the rebuilt one: content,
/// type, mode, owner, mtime or link target, or present on one side only.
pub fn diff_tars(expected: &[u8], rebuilt: &[u8]) -> crate::Result<Option<FileDifference>> {
    let a = entries(expected).context("reading the expected layer")?;
    let b = entries(rebuilt).context("reading the rebuilt layer")?;
    let rebuilt_by_path: BTreeMap<&str, &Entry> = b.iter().map(|(p, e)| (p.as_str(), e)).collect();
    let expected_paths: BTreeMap<&str, ()> = a.iter().map(|(p, _)| (p.as_str(), ())).collect();
    let mut metadata_only = None;
    for (path, want) in &a {
        let what = match rebuilt_by_path.get(path.as_str()) {
            None => Difference::OnlyExpected,
            Some(got) => match entry_difference(want, got) {
                Some(what) => what,
                None => continue,
            },
        };
        let found = FileDifference {
            path: path.clone(),
            what,
        };
        if found.is_content() {
            return Ok(Some(found));
        }
        metadata_only.get_or_insert(found);
    }
    if let Some((path, _)) = b
        .iter()
        .find(|(p, _)| !expected_paths.contains_key(p.as_str()))
    {
        return Ok(Some(FileDifference {
            path: path.clone(),
            what: Difference::OnlyRebuilt,
        }));
    }
    if metadata_only.is_some() {
        return Ok(metadata_only);
    }
    let first_moved = a.iter().zip(&b).find(|(x, y)| x.0 != y.0);
    Ok(first_moved.map(|(x, _)| FileDifference {
        path: x.0.clone(),
        what: Difference::Order,
    }))
}

fn entry_difference(want: &Entry, got: &Entry) -> Option<Difference> {
    if want.kind != got.kind {
        return Some(field("type", want.kind, got.kind));
    }
    if want.sha256 != got.sha256 {
        return Some(Difference::Content {
            expected: want.sha256.clone(),
            rebuilt: got.sha256.clone(),
        });
    }
    let fields: [(&'static str, String, String); 5] = [
        (
            "mode",
            format!("{:o}", want.mode),
            format!("{:o}", got.mode),
        ),
        ("uid", want.uid.to_string(), got.uid.to_string()),
        ("gid", want.gid.to_string(), got.gid.to_string()),
        ("mtime", want.mtime.to_string(), got.mtime.to_string()),
        (
            "link target",
            want.link.clone().unwrap_or_default(),
            got.link.clone().unwrap_or_default(),
        ),
    ];
    fields
        .into_iter()
        .find(|(_, a, b)| a != b)
        .map(|(name, a, b)| field(name, a, b))
}

fn field(name: &'static str, a: impl ToString, b: impl ToString) -> Difference {
    Difference::Field {
        field: name,
        expected: a.to_string(),
        rebuilt: b.to_string(),
    }
}

/// Every entry of a tar in its order, keyed by its absolute path in the image.
fn entries(tar: &[u8]) -> anyhow::Result<Vec<(String, Entry)>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = format!("/{}", path.trim_start_matches("./").trim_matches('/'));
        let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 1 << 14];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            _ => '?',
        };
        out.push((
            path,
            Entry {
                kind,
                mode: header.mode()? & 0o7777,
                uid: header.uid()?,
                gid: header.gid()?,
                mtime: header.mtime()?,
                link,
                size: header.size()?,
                sha256: format!("{:x}", hasher.finalize()),
            },
        ));
    }
    Ok(out)
}

/// The first field (a JSON path such as `config.Labels.org.opencontainers.image.revision`)
/// in which two image configs differ.
pub fn diff_configs(expected: &[u8], rebuilt: &[u8]) -> crate::Result<Option<String>> {
    let parse = |bytes: &[u8], side: &str| -> anyhow::Result<Value> {
        let config = ImageConfiguration::from_reader(bytes)
            .with_context(|| format!("parsing the {side} image config"))?;
        json(&config)
    };
    let (a, b) = (parse(expected, "expected")?, parse(rebuilt, "rebuilt")?);
    Ok(first_json_difference("", &a, &b))
}

/// The first difference between two JSON documents, objects walked in key order.
fn first_json_difference(at: &str, a: &Value, b: &Value) -> Option<String> {
    let here = |at: &str| if at.is_empty() { "the document" } else { at }.to_owned();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(a), Some(b)) => first_json_difference(&path, a, b),
                    (Some(a), None) => Some(format!("{path} is {a} vs absent")),
                    (None, Some(b)) => Some(format!("{path} is absent vs {b}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (a, b))| first_json_difference(&format!("{at}[{i}]"), a, b)),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{} is {a} vs {b}", here(at))),
    }
}

/// The layer media types of a manifest say which compression the build used.
pub fn uses_zstd(manifest: &ImageManifest) -> bool {
    manifest
        .layers()
        .iter()
        .any(|l| *l.media_type() == MediaType::ImageLayerZstd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, mode, mtime, content)` files, sorted as given.
    fn tar_of(files: &[(&str, u32, u64, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode, mtime, content) in files {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_mtime(*mtime);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, path, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    struct Memory(BTreeMap<String, Vec<u8>>);

    impl Blobs for Memory {
        fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>> {
            Ok(self
                .0
                .get(digest.as_ref())
                .cloned()
                .context("no such blob")?)
        }

        /// Every stored artifact manifest whose subject is `subject`.
        fn attached(
            &mut self,
            subject: &Digest,
        ) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
            Ok(self
                .0
                .iter()
                .filter_map(|(digest, bytes)| {
                    let manifest = ImageManifest::from_reader(bytes.as_slice()).ok()?;
                    (manifest.subject().as_ref()?.digest() == subject).then(|| {
                        let mut d = Descriptor::new(
                            MediaType::ImageManifest,
                            bytes.len() as u64,
                            Digest::try_from(digest.as_str()).unwrap(),
                        );
                        d.set_artifact_type(manifest.artifact_type().clone());
                        (d, manifest)
                    })
                })
                .collect())
        }
    }

    #[test]
    fn attached_documents_are_found_by_type_and_their_first_difference_named() {
        use crate::referrers::{self, Document, SBOM_TYPE};
        let mut blobs = Memory(BTreeMap::new());
        let image = store(&mut blobs, b"{}".to_vec(), MediaType::ImageManifest);
        let sbom = br#"{"packages":[{"name":"a","versionInfo":"1"}]}"#.to_vec();
        let referrer = referrers::referrer(
            &image,
            &Document {
                kind: Kind::Sbom,
                title: "sbom.spdx.json",
                bytes: sbom.clone(),
            },
            "2024-01-01T00:00:00Z",
        )
        .unwrap();
        store(&mut blobs, sbom.clone(), MediaType::Other(SBOM_TYPE.into()));
        store(
            &mut blobs,
            referrer.manifest.clone(),
            MediaType::ImageManifest,
        );
        // Another tool's SBOM (same artifactType, not marked ours) is not read.
        let mut theirs: Value = serde_json::from_slice(
            &referrers::referrer(
                &image,
                &Document {
                    kind: Kind::Sbom,
                    title: "sbom.spdx.json",
                    bytes: b"{}".to_vec(),
                },
                "2024-01-01T00:00:00Z",
            )
            .unwrap()
            .manifest,
        )
        .unwrap();
        theirs["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(referrers::DOCUMENT_ANNOTATION);
        store(
            &mut blobs,
            serde_json::to_vec(&theirs).unwrap(),
            MediaType::ImageManifest,
        );
        let found = attached_document(&mut blobs, image.digest(), Kind::Sbom)
            .unwrap()
            .unwrap();
        assert_eq!(found.bytes, sbom);
        assert_eq!(found.digest, *referrer.layer.digest());
        assert!(
            attached_document(&mut blobs, image.digest(), Kind::Provenance)
                .unwrap()
                .is_none()
        );
        // Two of ours of one kind: no arbitrary pick, one line naming both.
        let second = referrers::referrer(
            &image,
            &Document {
                kind: Kind::Sbom,
                title: "sbom.spdx.json",
                bytes: b"{\"other\":1}".to_vec(),
            },
            "2024-01-01T00:00:00Z",
        )
        .unwrap();
        store(
            &mut blobs,
            second.manifest.clone(),
            MediaType::ImageManifest,
        );
        let err = attached_document(&mut blobs, image.digest(), Kind::Sbom)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("2 sbom documents are attached to"), "{err}");
        assert!(err.contains(second.descriptor.digest().as_ref()), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let tampered = br#"{"packages":[{"name":"a","versionInfo":"2"}]}"#;
        assert_eq!(
            diff_documents(&sbom, tampered),
            r#"packages[0].versionInfo is "1" vs "2""#
        );
        assert_eq!(
            diff_documents(&sbom, br#"{"packages": [{"versionInfo":"1","name":"a"}]}"#),
            "the same values, written differently"
        );
    }

    fn store(blobs: &mut Memory, bytes: Vec<u8>, media_type: MediaType) -> Descriptor {
        let digest = crate::layer::sha256_digest(&bytes);
        let descriptor = Descriptor::new(
            media_type,
            bytes.len() as u64,
            Digest::try_from(digest.as_str()).unwrap(),
        );
        blobs.0.insert(digest, bytes);
        descriptor
    }

    fn config(user: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": user, "Labels": {"a": "1"}},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap()
    }

    fn manifest(blobs: &mut Memory, layers: Vec<Vec<u8>>, user: &str) -> ImageManifest {
        let config = store(blobs, config(user), MediaType::ImageConfig);
        let layers = layers
            .into_iter()
            .map(|tar| {
                let gz = crate::layer::Compression::Gzip.compress(&tar).unwrap();
                store(blobs, gz, MediaType::ImageLayerGzip)
            })
            .collect::<Vec<_>>();
        oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .unwrap()
    }

    const BIN: &str = "usr/local/bin/service";

    #[test]
    fn the_first_differing_file_is_named_with_both_hashes() {
        let a = tar_of(&[("etc/passwd", 0o644, 7, b"root"), (BIN, 0o755, 7, b"one")]);
        let b = tar_of(&[("etc/passwd", 0o644, 7, b"root"), (BIN, 0o755, 7, b"two")]);
        let d = diff_tars(&a, &b).unwrap().unwrap();
        assert_eq!(d.path, "/usr/local/bin/service");
        let text = d.to_string();
        // sha256("one") and sha256("two"), shortened.
        assert_eq!(
            text,
            "/usr/local/bin/service differs (sha256 7692c3ad3540 vs 3fc4ccfe7458)"
        );
        assert_eq!(diff_tars(&a, &a).unwrap(), None);
    }

    #[test]
    fn modes_times_and_missing_files_are_differences_too() {
        let a = tar_of(&[(BIN, 0o755, 7, b"x")]);
        let mode = tar_of(&[(BIN, 0o700, 7, b"x")]);
        let time = tar_of(&[(BIN, 0o755, 8, b"x")]);
        let more = tar_of(&[
            (BIN, 0o755, 7, b"x"),
            ("usr/local/bin/migrate", 0o755, 7, b"m"),
        ]);
        let none = tar_of(&[]);
        let text = |b: &[u8]| diff_tars(&a, b).unwrap().unwrap().to_string();
        assert_eq!(
            text(&mode),
            "/usr/local/bin/service differs in mode (755 vs 700)"
        );
        assert_eq!(
            text(&time),
            "/usr/local/bin/service differs in mtime (7 vs 8)"
        );
        assert_eq!(text(&more), "/usr/local/bin/migrate is only in the rebuild");
        assert_eq!(
            text(&none),
            "/usr/local/bin/service is missing from the rebuild"
        );
        let swapped = tar_of(&[("b", 0o644, 7, b""), ("a", 0o644, 7, b"")]);
        let sorted = tar_of(&[("a", 0o644, 7, b""), ("b", 0o644, 7, b"")]);
        assert_eq!(
            diff_tars(&sorted, &swapped).unwrap().unwrap().what,
            Difference::Order
        );
    }

    #[test]
    fn the_layer_and_platform_of_the_first_difference_are_named() {
        let passwd = tar_of(&[("etc/passwd", 0o644, 7, b"root")]);
        let mut expected = Memory(BTreeMap::new());
        let mut rebuilt = Memory(BTreeMap::new());
        let a = manifest(
            &mut expected,
            vec![passwd.clone(), tar_of(&[(BIN, 0o755, 7, b"one")])],
            "app",
        );
        let b = manifest(
            &mut rebuilt,
            vec![passwd, tar_of(&[(BIN, 0o755, 7, b"two")])],
            "app",
        );
        let found = first_difference("linux/amd64", (&a, &mut expected), (&b, &mut rebuilt))
            .unwrap()
            .unwrap();
        let layer = a.layers()[1].digest().to_string();
        assert_eq!(
            found,
            format!(
                "layer 2 of linux/amd64 ({layer}): /usr/local/bin/service differs (sha256 7692c3ad3540 vs 3fc4ccfe7458)"
            )
        );
        let mut copy = Memory(expected.0.clone());
        let same = first_difference("linux/amd64", (&a, &mut expected), (&a, &mut copy));
        assert_eq!(same.unwrap(), None);
    }

    #[test]
    fn a_changed_file_is_named_before_times_that_all_moved() {
        // A new commit: every mtime moved, and in the second layer one binary changed.
        let old = [
            tar_of(&[("etc/passwd", 0o644, 7, b"root")]),
            tar_of(&[
                ("usr/local/bin/migrate", 0o755, 7, b"m"),
                (BIN, 0o755, 7, b"one"),
            ]),
        ];
        let new = [
            tar_of(&[("etc/passwd", 0o644, 9, b"root")]),
            tar_of(&[
                ("usr/local/bin/migrate", 0o755, 9, b"m"),
                (BIN, 0o755, 9, b"two"),
            ]),
        ];
        assert_eq!(
            diff_tars(&old[1], &new[1]).unwrap().unwrap().to_string(),
            "/usr/local/bin/service differs (sha256 7692c3ad3540 vs 3fc4ccfe7458)"
        );
        let mut expected = Memory(BTreeMap::new());
        let mut rebuilt = Memory(BTreeMap::new());
        let a = manifest(&mut expected, old.to_vec(), "app");
        let b = manifest(&mut rebuilt, new.to_vec(), "app");
        let found = first_difference("linux/amd64", (&a, &mut expected), (&b, &mut rebuilt))
            .unwrap()
            .unwrap();
        assert!(
            found.starts_with("layer 2 of linux/amd64 (")
                && found.ends_with(
                    "): /usr/local/bin/service differs (sha256 7692c3ad3540 vs 3fc4ccfe7458)"
                ),
            "{found}"
        );
        // With no content change the first time difference is named.
        let c = manifest(&mut rebuilt, vec![new[0].clone(), old[1].clone()], "app");
        let found = first_difference("linux/amd64", (&a, &mut expected), (&c, &mut rebuilt))
            .unwrap()
            .unwrap();
        assert!(
            found.ends_with("/etc/passwd differs in mtime (7 vs 9)"),
            "{found}"
        );
    }

    #[test]
    fn a_config_difference_names_the_field() {
        let layer = tar_of(&[(BIN, 0o755, 7, b"one")]);
        let mut expected = Memory(BTreeMap::new());
        let mut rebuilt = Memory(BTreeMap::new());
        let a = manifest(&mut expected, vec![layer.clone()], "app");
        let b = manifest(&mut rebuilt, vec![layer], "root");
        let found = first_difference("linux/arm64", (&a, &mut expected), (&b, &mut rebuilt))
            .unwrap()
            .unwrap();
        let digest = a.config().digest().to_string();
        assert_eq!(
            found,
            format!("config of linux/arm64 ({digest}): config.User is \"app\" vs \"root\"")
        );
        assert_eq!(diff_configs(&config("app"), &config("app")).unwrap(), None);
    }
}
