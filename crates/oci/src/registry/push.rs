//! Pushing an OCI layout's images, indexes and referrers to a registry.

use std::path::Path;
use std::str::FromStr;

use crate::error::bail;
use crate::error::ensure;
use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};

use crate::blobstore::{BlobStore, sha256_digest};
use crate::layout::ref_name;
use std::sync::Arc;

use super::client::*;
use crate::auth::Login;
use crate::progress::Progress;
use crate::referrers;

/// One architecture's image as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `linux/amd64`.
    pub platform: String,
    /// `<registry>/<name>:<tag>-<arch>`.
    pub reference: Reference,
    /// The digest of its manifest.
    pub digest: Digest,
    /// The documents attached to it (referrers) that were pushed with it.
    pub referrers: usize,
}

/// What `push_layout` did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Each platform's image.
    pub images: Vec<PushedImage>,
    /// `<registry>/<name>:<tag>` and the index's digest; none when what was pushed is one
    /// platform's image (or images the layout lists without an index): `<tag>` is left as
    /// it was.
    pub index: Option<(Reference, Digest)>,
    /// What was uploaded, and what the registry had already.
    pub uploads: Uploads,
    /// One line each about what was pushed all the same (`--allow-dirty`).
    pub warnings: Vec<String>,
}

/// What `push_layout` pushes despite its labels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Images labelled as dev-image builds (`image --fast`).
    pub dev: bool,
    /// Images whose revision label ends in `-dirty` (built from uncommitted changes).
    pub dirty: bool,
}

/// Pushes the images of the OCI layout at `layout` to `target`'s repository: each
/// architecture's manifest as `<tag>-<arch>`, then, when what is pushed is a
/// multi-architecture index, the index as `<tag>` (only after all its manifests; the
/// layout's own index blob, so its digest is kept). What is pushed is `name` (a ref name in
/// the layout: an index, or one image) when given, else the index named like the tag, else
/// the images named `<tag>-<arch>`, else the one index the layout holds. A single image
/// never writes `<tag>`: a tag names the platforms asked for, never fewer. Blobs the
/// registry already has are not sent again (HEAD first); a layer of a base image on the
/// same registry, named by the manifest's `org.opencontainers.image.base.name` annotation,
/// is mounted from the base's repository. `login` holds the credential (from
/// `--username`/`--password-stdin`, or stored for the registry), or where none was found. Dev images and images built from uncommitted changes are refused unless
/// `allow` says otherwise. `Pushed::uploads` counts the blob bytes actually uploaded.
pub fn push_layout(
    layout: &Path,
    name: Option<&str>,
    target: &Reference,
    login: Login,
    allow: Allow,
    progress: Arc<dyn Progress>,
) -> crate::Result<Pushed> {
    let tag = target
        .tag()
        .filter(|_| target.digest().is_none())
        .with_context(|| format!("push to a tag, not a digest: {target}"))?;
    let store = BlobStore::open(layout)?;
    let (index, manifests) = layout_images(&store, name, tag)?;
    let warnings = check_labels(&store, &manifests, allow)?;
    let mut client = Client::connect(target, login)?.with_progress(progress);
    let repository = target.repository();
    let mut images = Vec::new();
    for descriptor in &manifests {
        let bytes = store.read(descriptor.digest())?;
        let manifest = ImageManifest::from_reader(bytes.as_slice())
            .with_context(|| format!("manifest {} in the layout", descriptor.digest()))?;
        let platform = match descriptor.platform() {
            Some(p) => p.clone(),
            None => platform_of_config(&ImageConfiguration::from_reader(
                store.read(manifest.config().digest())?.as_slice(),
            )?)?,
        };
        let mount_from = base_repository(&manifest, client.host());
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            client.ensure_blob(
                repository,
                blob.digest(),
                &store.blob_path(blob.digest()),
                mount_from.as_deref(),
            )?;
        }
        let arch = crate::platform::Arch::of(
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| platform.architecture().to_string());
        let arch_tag = format!("{tag}-{arch}");
        let raw = RawManifest {
            media_type: descriptor.media_type().to_string(),
            digest: descriptor.digest().clone(),
            bytes,
        };
        let digest = client.put_manifest(repository, &arch_tag, &raw)?;
        let attached = push_attached(&mut client, &store, repository, &digest)?;
        images.push(PushedImage {
            referrers: attached,
            platform: platform_name(&platform),
            reference: Reference::with_tag(
                target.registry().to_owned(),
                repository.to_owned(),
                arch_tag,
            ),
            digest,
        });
    }
    let index = match index {
        Some(index) => {
            let digest = client.put_manifest(repository, tag, &index)?;
            push_attached(&mut client, &store, repository, &digest)?;
            Some((target.clone(), digest))
        }
        None => None,
    };
    Ok(Pushed {
        images,
        index,
        uploads: client.uploads(),
        warnings,
    })
}

/// Pushes what the layout attaches to `subject`: its cosign signatures (the manifest the
/// layout names `sha256-<hex>.sig`, under that tag) and its referrers (their blobs, then
/// each manifest by digest, with what is attached to them in turn), listed for it (the
/// fallback tag where the registry has no referrers API). Returns how many referrers.
fn push_attached(
    client: &mut Client,
    store: &BlobStore,
    repository: &str,
    subject: &Digest,
) -> anyhow::Result<usize> {
    let index = store.index()?;
    let sig_tag = format!("{}-{}.sig", subject.algorithm(), subject.digest());
    if let Some(sig) = index
        .manifests()
        .iter()
        .find(|d| ref_name(d) == Some(&sig_tag))
    {
        push_signatures(client, store, repository, sig, &sig_tag)?;
    }
    let found = referrers::find(index.manifests(), subject, |d| store.read(d))?;
    let mut attached = Vec::new();
    for (entry, _) in found {
        push_manifest(client, store, repository, &entry, entry.digest().as_ref())?;
        push_attached(client, store, repository, entry.digest())?;
        attached.push(entry);
    }
    client.list_referrers(repository, subject, &attached)?;
    Ok(attached.len())
}

/// Pushes the layout's `.sig` image `entry` as `tag`, merged with what the registry holds
/// there: other keys' signatures stay, and nothing is put when each of ours is there.
fn push_signatures(
    client: &mut Client,
    store: &BlobStore,
    repository: &str,
    entry: &Descriptor,
    tag: &str,
) -> anyhow::Result<()> {
    let Some(there) = client.manifest_if_exists(repository, tag)? else {
        return push_manifest(client, store, repository, entry, tag);
    };
    if there.digest == *entry.digest() {
        return Ok(());
    }
    let mut merged = tiny_sign::SignatureImage::from_manifest(&there.bytes)
        .with_context(|| format!("the signatures at {repository}:{tag}"))?;
    let ours = tiny_sign::SignatureImage::from_manifest(&store.read(entry.digest())?)
        .with_context(|| format!("the signatures {tag} in the layout"))?;
    if merged.merge(&ours) == 0 {
        return Ok(());
    }
    for layer in ours.layers() {
        let digest = Digest::from_str(layer.digest.as_str())?;
        client.ensure_blob(repository, &digest, &store.blob_path(&digest), None)?;
    }
    client.put_blob(repository, &merged.config().data)?;
    let bytes = merged.manifest().to_bytes();
    let raw = RawManifest {
        media_type: merged.manifest().media_type,
        digest: sha256_digest(&bytes)?,
        bytes,
    };
    client.put_manifest(repository, tag, &raw)?;
    Ok(())
}

/// Pushes the layout's manifest `entry` (its config and layers first) as `reference`.
fn push_manifest(
    client: &mut Client,
    store: &BlobStore,
    repository: &str,
    entry: &Descriptor,
    reference: &str,
) -> anyhow::Result<()> {
    let bytes = store.read(entry.digest())?;
    let manifest = ImageManifest::from_reader(bytes.as_slice())
        .with_context(|| format!("manifest {} in the layout", entry.digest()))?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        client.ensure_blob(
            repository,
            blob.digest(),
            &store.blob_path(blob.digest()),
            None,
        )?;
    }
    let raw = RawManifest {
        media_type: entry.media_type().to_string(),
        digest: entry.digest().clone(),
        bytes,
    };
    client.put_manifest(repository, reference, &raw)?;
    Ok(())
}

/// Copies the referrers of `subject` from repository `from` to `to` of the same registry
/// (blobs mounted or copied, manifests put by digest) and lists them there.
pub(super) fn copy_referrers(
    client: &mut Client,
    subject: &Digest,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    let mut listed = Vec::new();
    for found in client.referrer_manifests(from, subject)? {
        let manifest = &found.manifest;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            client.place_blob(to, blob.digest(), Some(from), Source::Repository(from))?;
        }
        client.put_manifest(to, found.descriptor.digest().as_ref(), &found.raw)?;
        listed.push(found.descriptor);
    }
    Ok(client.list_referrers(to, subject, &listed)?)
}

/// The image label naming the cargo profile an image's binaries were built with: an image
/// labelled with any profile but `release` is a dev build, which [`push_layout`] refuses
/// unless [`Allow::dev`] lets it through.
pub const PROFILE_LABEL: &str = "xtask.profile";

/// Whether an image with this value of [`PROFILE_LABEL`] (if any) may be pushed without being
/// forced: only release images, and images from before the label existed.
pub fn is_release(label: Option<&str>) -> bool {
    label.is_none_or(|value| value == "release")
}

/// The label `image` writes the source revision in (`-dirty` when the tree had changes).
const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Fails on the first image labelled as built with a profile other than release
/// (`image --fast`: for local iteration, not for a registry), or from uncommitted changes
/// (no commit rebuilds it), unless `allow` lets them through; returns a warning line for
/// each such image let through.
fn check_labels(
    store: &BlobStore,
    manifests: &[Descriptor],
    allow: Allow,
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    for descriptor in manifests {
        let manifest = ImageManifest::from_reader(store.read(descriptor.digest())?.as_slice())
            .with_context(|| format!("manifest {} in the layout", descriptor.digest()))?;
        let config =
            ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())
                .with_context(|| format!("config {} in the layout", manifest.config().digest()))?;
        let labels = config.config().as_ref().and_then(|c| c.labels().as_ref());
        let label = |name: &str| labels.and_then(|l| l.get(name)).map(String::as_str);
        let profile = label(PROFILE_LABEL);
        if !allow.dev && !is_release(profile) {
            bail!(
                "refusing to push a dev image ({}={}, from `image --fast`): rebuild without --fast to ship, or add --allow-dev to push it all the same",
                PROFILE_LABEL,
                profile.unwrap_or_default()
            );
        }
        if let Some(revision) = label(REVISION_LABEL).filter(|r| is_dirty_revision(r)) {
            if !allow.dirty {
                bail!("{}", dirty_refusal(revision));
            }
            warnings.push(format!(
                "warning: pushing {} built from uncommitted changes ({REVISION_LABEL}={revision}): no commit rebuilds it and `verify` cannot check it",
                descriptor.digest()
            ));
        }
    }
    Ok(warnings)
}

/// Whether a revision (`git describe`-like, as `image` labels it) names uncommitted changes.
pub fn is_dirty_revision(revision: &str) -> bool {
    revision.ends_with("-dirty")
}

/// The one line refusing to push a build of uncommitted changes.
pub fn dirty_refusal(revision: &str) -> String {
    format!(
        "refusing to push an image built from uncommitted changes ({REVISION_LABEL}={revision}): no commit rebuilds it; commit and build again, or add --allow-dirty to push it all the same"
    )
}

/// What to push from a layout's `index.json`, when no ref name is given: the index named
/// like the tag; else the images named `<tag>-<arch>` (a single-platform build's); else
/// the one index the layout holds; else, with no index at all, the images it lists. More
/// than one index and none named like the tag is refused, naming them and `--ref`.
fn pick(top: &ImageIndex, tag: &str) -> anyhow::Result<Pick> {
    let indexes: Vec<&Descriptor> = top
        .manifests()
        .iter()
        .filter(|d| is_index_type(d.media_type().as_ref()))
        .collect();
    if let Some(index) = indexes.iter().find(|d| ref_name(d) == Some(tag)) {
        return Ok(Pick::Index(Box::new((*index).clone())));
    }
    let images: Vec<&Descriptor> = top
        .manifests()
        .iter()
        // Documents attached to the images are pushed with them, not as images.
        .filter(|d| is_manifest_type(d.media_type().as_ref()) && d.artifact_type().is_none())
        .collect();
    let per_platform: Vec<Descriptor> = images
        .iter()
        .filter(|d| {
            let arch = d.platform().as_ref().and_then(|p| {
                crate::platform::Arch::of(&p.architecture().to_string(), p.variant().as_deref())
            });
            arch.is_some_and(|a| ref_name(d) == Some(&format!("{tag}-{a}")))
        })
        .map(|d| (*d).clone())
        .collect();
    if !per_platform.is_empty() {
        return Ok(Pick::Images(per_platform));
    }
    match indexes.as_slice() {
        [one] => Ok(Pick::Index(Box::new((*one).clone()))),
        [] => Ok(Pick::Images(images.into_iter().cloned().collect())),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|d| match ref_name(d) {
                    Some(n) => format!("`{n}`"),
                    None => d.digest().to_string(),
                })
                .collect();
            bail!(
                "the OCI layout lists {} image indexes ({}) and none is named `{tag}` like the tag: pick one with --ref <name>",
                several.len(),
                names.join(", ")
            )
        }
    }
}

/// What [`pick`] chose.
#[derive(Debug)]
enum Pick {
    Index(Box<Descriptor>),
    Images(Vec<Descriptor>),
}

/// The index to push (if any) and the image manifests to push, from a layout's
/// `index.json`: `name` when given, else [`pick`]'s choice.
fn layout_images(
    store: &BlobStore,
    name: Option<&str>,
    tag: &str,
) -> anyhow::Result<(Option<RawManifest>, Vec<Descriptor>)> {
    let top = store.index()?;
    let root = store.root().display();
    let picked = match name {
        Some(name) => {
            let found = top.manifests().iter().find(|d| ref_name(d) == Some(name));
            match found {
                Some(d) if is_index_type(d.media_type().as_ref()) => {
                    Pick::Index(Box::new(d.clone()))
                }
                Some(d) if is_manifest_type(d.media_type().as_ref()) => {
                    Pick::Images(vec![d.clone()])
                }
                Some(d) => bail!(
                    "`{name}` in the OCI layout {root} is a {}, not an image or an index",
                    d.media_type()
                ),
                None => {
                    let known: Vec<&str> = top.manifests().iter().filter_map(ref_name).collect();
                    bail!(
                        "the OCI layout {root} names nothing `{name}` (it has: {}): build it with `cargo xtask image`",
                        known.join(", ")
                    )
                }
            }
        }
        None => pick(&top, tag).with_context(|| format!("pushing the OCI layout {root}"))?,
    };
    let (index, manifests) = match picked {
        Pick::Index(one) => {
            let bytes = store.read(one.digest())?;
            let index = ImageIndex::from_reader(bytes.as_slice())
                .with_context(|| format!("image index {} in the layout", one.digest()))?;
            let raw = RawManifest {
                media_type: one.media_type().to_string(),
                digest: one.digest().clone(),
                bytes,
            };
            (Some(raw), index.manifests().clone())
        }
        Pick::Images(images) => (None, images),
    };
    ensure!(
        !manifests.is_empty(),
        "the OCI layout {root} holds no image: build one first"
    );
    for d in &manifests {
        ensure!(
            is_manifest_type(d.media_type().as_ref()),
            "the layout's index lists {} of type {}: only image manifests can be pushed under an index",
            d.digest(),
            d.media_type()
        );
    }
    if index.is_none() {
        // Each goes to `<tag>-<arch>`: two of one platform would overwrite each other.
        let mut seen: Vec<(String, &str)> = Vec::new();
        for d in &manifests {
            let platform = match d.platform() {
                Some(p) => platform_name(p),
                None => {
                    let manifest = ImageManifest::from_reader(store.read(d.digest())?.as_slice())?;
                    let config = ImageConfiguration::from_reader(
                        store.read(manifest.config().digest())?.as_slice(),
                    )?;
                    platform_name(&platform_of_config(&config)?)
                }
            };
            let name = ref_name(d).unwrap_or("(unnamed)");
            if let Some((_, other)) = seen.iter().find(|(p, _)| *p == platform) {
                bail!(
                    "the OCI layout {root} lists two {platform} images (`{other}`, `{name}`): pick one with --ref <name>"
                );
            }
            seen.push((platform, name));
        }
    }
    Ok((index, manifests))
}

/// The multi-architecture index over `manifests`, written once by the one index writer
/// (the bytes `image` writes for the same manifests): these bytes are what is pushed.
pub fn index_document(manifests: Vec<Descriptor>) -> crate::Result<RawManifest> {
    let bytes = crate::json::image_index(manifests)?;
    Ok(RawManifest {
        media_type: MediaType::ImageIndex.to_string(),
        digest: sha256_digest(&bytes)?,
        bytes,
    })
}

/// The repository of the manifest's base image when it lives on `host` (for mounts).
pub(super) fn base_repository(manifest: &ImageManifest, host: &str) -> Option<String> {
    let name = manifest
        .annotations()
        .as_ref()?
        .get("org.opencontainers.image.base.name")?;
    let base = Reference::from_str(name).ok()?;
    (base.resolve_registry() == host).then(|| base.repository().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_release_images_push_unforced() {
        assert!(is_release(None));
        assert!(is_release(Some("release")));
        assert!(!is_release(Some("dev-image")));
        assert!(!is_release(Some("")));
    }

    #[test]
    fn an_index_document_is_stable_and_names_its_type() {
        let d = Descriptor::new(
            MediaType::ImageManifest,
            7,
            Digest::from_str(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        );
        let one = index_document(vec![d.clone()]).unwrap();
        let two = index_document(vec![d]).unwrap();
        assert_eq!(one.digest, two.digest);
        assert!(one.is_index());
        let text = String::from_utf8(one.bytes).unwrap();
        assert!(
            text.contains(r#""mediaType":"application/vnd.oci.image.index.v1+json""#),
            "{text}"
        );
    }

    #[test]
    fn layers_of_a_base_on_the_same_registry_are_mounted_from_its_repository() {
        let manifest = |base: &str| -> ImageManifest {
            serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": format!("sha256:{}", "b".repeat(64)),
                    "size": 2
                },
                "layers": [],
                "annotations": {"org.opencontainers.image.base.name": base}
            }))
            .unwrap()
        };
        let same = manifest("127.0.0.1:5000/library/alpine:3.20");
        assert_eq!(
            base_repository(&same, "127.0.0.1:5000").as_deref(),
            Some("library/alpine")
        );
        assert_eq!(base_repository(&same, "127.0.0.1:5001"), None);
        assert_eq!(
            base_repository(&manifest("not a reference"), "127.0.0.1:5000"),
            None
        );
    }

    #[test]
    fn dev_and_dirty_images_are_refused_unless_allowed_and_release_or_unlabelled_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::create(dir.path()).unwrap();
        let image = |labels: serde_json::Value| -> Descriptor {
            let config = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": []}
            });
            let config = serde_json::to_vec(&config).unwrap();
            let config_digest = store.write(&config).unwrap();
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest.to_string(),
                    "size": config.len()
                },
                "layers": []
            }))
            .unwrap();
            let digest = store.write(&manifest).unwrap();
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest.to_string(),
                "size": manifest.len()
            }))
            .unwrap()
        };
        let release = image(serde_json::json!({"xtask.profile": "release"}));
        let unlabelled = image(serde_json::json!({"org.opencontainers.image.title": "t"}));
        let dev = image(serde_json::json!({"xtask.profile": "dev-image"}));
        let dirty = image(serde_json::json!({REVISION_LABEL: "abc123-dirty"}));
        let none = Allow::default();
        let warnings = check_labels(&store, &[release.clone(), unlabelled], none).unwrap();
        assert!(warnings.is_empty());
        let err = check_labels(&store, &[release.clone(), dev.clone()], none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to push a dev image (xtask.profile=dev-image")
                && err.contains("--allow-dev")
                && !err.contains('\n'),
            "{err}"
        );
        let dev_ok = Allow {
            dev: true,
            dirty: false,
        };
        assert!(check_labels(&store, &[dev], dev_ok).unwrap().is_empty());
        let err = check_labels(&store, &[release, dirty.clone()], none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to push an image built from uncommitted changes (org.opencontainers.image.revision=abc123-dirty)")
                && err.contains("--allow-dirty")
                && !err.contains('\n'),
            "{err}"
        );
        let dirty_ok = Allow {
            dev: false,
            dirty: true,
        };
        let warnings = check_labels(&store, &[dirty], dirty_ok).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("warning: pushing sha256:")
                && warnings[0].contains("abc123-dirty"),
            "{warnings:?}"
        );
    }

    #[test]
    fn push_picks_the_index_named_like_the_tag_else_its_per_platform_images_else_the_only_index() {
        let entry = |digest: char, media: MediaType, name: &str, arch: Option<&str>| {
            let mut d = Descriptor::new(
                media,
                1,
                Digest::from_str(&format!("sha256:{}", digest.to_string().repeat(64))).unwrap(),
            );
            d.set_annotations(Some(
                [(
                    oci_spec::image::ANNOTATION_REF_NAME.to_owned(),
                    name.to_owned(),
                )]
                .into(),
            ));
            if let Some(arch) = arch {
                d.set_platform(Some(parse_platform(&format!("linux/{arch}")).unwrap()));
            }
            d
        };
        let release = entry('a', MediaType::ImageIndex, "0.1.0", None);
        let ci = entry('b', MediaType::ImageIndex, "ci", None);
        let amd = entry('c', MediaType::ImageManifest, "0.1.0-amd64", Some("amd64"));
        let ci_arm = entry('d', MediaType::ImageManifest, "pr-arm64", Some("arm64"));
        let top = |entries: Vec<Descriptor>| crate::json::empty_index(entries).unwrap();
        let both = top(vec![
            release.clone(),
            ci.clone(),
            amd.clone(),
            ci_arm.clone(),
        ]);
        let digest = |p: Pick| match p {
            Pick::Index(d) => vec![d.digest().to_string()],
            Pick::Images(list) => list.iter().map(|d| d.digest().to_string()).collect(),
        };
        assert_eq!(
            digest(pick(&both, "ci").unwrap()),
            [ci.digest().to_string()]
        );
        assert_eq!(
            digest(pick(&both, "pr").unwrap()),
            [ci_arm.digest().to_string()],
            "a single-platform build's image, alone"
        );
        let err = pick(&both, "prod").unwrap_err().to_string();
        assert_eq!(
            err,
            "the OCI layout lists 2 image indexes (`0.1.0`, `ci`) and none is named `prod` like the tag: pick one with --ref <name>"
        );
        let one = top(vec![release.clone(), amd.clone()]);
        assert_eq!(
            digest(pick(&one, "prod").unwrap()),
            [release.digest().to_string()]
        );
        let none = top(vec![amd.clone()]);
        assert_eq!(
            digest(pick(&none, "prod").unwrap()),
            [amd.digest().to_string()]
        );
    }
}
