//! Documents attached to an image as OCI 1.1 referrers: one artifact manifest per document
//! (`artifactType`, the empty config, one layer holding the document, `subject` = the image
//! manifest), and the index that lists an image's referrers, as the referrers API answers it
//! and as the "referrers tag schema" stores it under `sha256-<hex>` for registries without
//! that API. Each artifact manifest (and its descriptor) is marked ours with
//! `xtask.document` = `sbom` | `provenance`, so that an image carries one document of each
//! kind: a newer one replaces ours, other tools' referrers are left alone. Pure: the layout
//! and the registry client store what this builds.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Context;
use oci_spec::image::{
    ANNOTATION_CREATED, ANNOTATION_TITLE, Descriptor, DescriptorBuilder, Digest, ImageIndex,
    ImageManifest, ImageManifestBuilder, MediaType,
};

use crate::digest::sha256_digest;
use crate::json::{canonical_json, empty_index};

/// `artifactType` of an SPDX JSON SBOM.
pub const SBOM_TYPE: &str = "application/spdx+json";
/// `artifactType` of an in-toto statement (SLSA provenance).
pub const PROVENANCE_TYPE: &str = "application/vnd.in-toto+json";
/// The empty config of an artifact manifest (`application/vnd.oci.empty.v1+json`).
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The annotation marking a referrer as ours, with its kind's name as the value.
pub const DOCUMENT_ANNOTATION: &str = "xtask.document";

/// The kinds of document attached to every image; one of each per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SPDX SBOM.
    Sbom,
    /// A SLSA provenance statement.
    Provenance,
}

impl Kind {
    /// Every kind, in the order they are attached.
    pub const ALL: [Kind; 2] = [Kind::Sbom, Kind::Provenance];

    /// The name the annotation, verify's rows and its lines use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sbom => "sbom",
            Kind::Provenance => "provenance",
        }
    }

    /// The artifact type of its manifest.
    pub fn artifact_type(self) -> &'static str {
        match self {
            Kind::Sbom => SBOM_TYPE,
            Kind::Provenance => PROVENANCE_TYPE,
        }
    }

    /// The kind `annotations` mark as ours, or `None` (another tool's, or unmarked).
    pub fn marked(annotations: Option<&HashMap<String, String>>) -> Option<Kind> {
        let value = annotations?.get(DOCUMENT_ANNOTATION)?;
        Kind::ALL.into_iter().find(|k| k.name() == value)
    }

    /// The kind of an artifact manifest of ours.
    pub fn of_manifest(manifest: &ImageManifest) -> Option<Kind> {
        Kind::marked(manifest.annotations().as_ref())
    }

    /// The kind of a listed referrer of ours (its descriptor carries the annotations).
    pub fn of_descriptor(descriptor: &Descriptor) -> Option<Kind> {
        Kind::marked(descriptor.annotations().as_ref())
    }
}

/// A document to attach: its kind and file name (the layer's title, which `oras pull`
/// writes it as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// What the document is.
    pub kind: Kind,
    /// Its title (the layer's file name).
    pub title: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// One referrer: the artifact manifest's bytes and descriptor (with `artifactType` and the
/// manifest's annotations, as the referrers API lists it), the blobs it names, and what it
/// is attached to as which kind.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The artifact manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// The document's layer.
    pub layer: Descriptor,
    /// The document's bytes.
    pub document: Vec<u8>,
    /// What the document is.
    pub kind: Kind,
    /// The image it is about.
    pub subject: Digest,
}

/// What `subject` is set to: the image manifest's media type, digest and size only.
pub fn subject_of(image: &Descriptor) -> Descriptor {
    Descriptor::new(
        image.media_type().clone(),
        image.size(),
        image.digest().clone(),
    )
}

/// The descriptor of the empty config artifact manifests carry.
pub fn empty_config() -> crate::Result<Descriptor> {
    Ok(Descriptor::new(
        MediaType::EmptyJSON,
        EMPTY_CONFIG.len() as u64,
        Digest::from_str(&sha256_digest(EMPTY_CONFIG))?,
    ))
}

/// The artifact manifest attaching `document` to `subject`; its annotations are `created`
/// (RFC 3339, from SOURCE_DATE_EPOCH) and the kind (besides the layer's title), so the
/// same document gives the same digest in every run.
pub fn referrer(
    subject: &Descriptor,
    document: &Document,
    created: &str,
) -> crate::Result<Referrer> {
    let artifact_type = document.kind.artifact_type();
    let layer = DescriptorBuilder::default()
        .media_type(MediaType::from(artifact_type))
        .size(document.bytes.len() as u64)
        .digest(Digest::from_str(&sha256_digest(&document.bytes))?)
        .annotations(HashMap::from([(
            ANNOTATION_TITLE.to_owned(),
            document.title.to_owned(),
        )]))
        .build()?;
    let annotations = HashMap::from([
        (ANNOTATION_CREATED.to_owned(), created.to_owned()),
        (
            DOCUMENT_ANNOTATION.to_owned(),
            document.kind.name().to_owned(),
        ),
    ]);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact_type))
        .config(empty_config()?)
        .layers(vec![layer.clone()])
        .subject(subject_of(subject))
        .annotations(annotations.clone())
        .build()?;
    let bytes = canonical_json(&manifest)?;
    let descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .size(bytes.len() as u64)
        .digest(Digest::from_str(&sha256_digest(&bytes))?)
        .artifact_type(MediaType::from(artifact_type))
        .annotations(annotations)
        .build()?;
    Ok(Referrer {
        manifest: bytes,
        descriptor,
        layer,
        document: document.bytes.clone(),
        kind: document.kind,
        subject: subject.digest().clone(),
    })
}

/// The fallback tag listing the referrers of `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.digest())
}

/// The referrers index with `ours` added to `existing` (what the fallback tag of one
/// subject held, if anything): an entry of ours of the same kind but another digest (an
/// earlier document) is replaced, entries already listed and other tools' entries are left
/// as they are, new ones appended in order. `None` when nothing changes, so an unchanged
/// push writes nothing.
pub fn merge(existing: Option<&ImageIndex>, ours: &[Descriptor]) -> crate::Result<Option<Vec<u8>>> {
    let before: Vec<Descriptor> = existing.map(|i| i.manifests().clone()).unwrap_or_default();
    let mut entries = before.clone();
    for descriptor in ours {
        let kind = Kind::of_descriptor(descriptor);
        entries.retain(|d| {
            d.digest() == descriptor.digest() || kind.is_none() || Kind::of_descriptor(d) != kind
        });
        if !entries.iter().any(|d| d.digest() == descriptor.digest()) {
            entries.push(descriptor.clone());
        }
    }
    let digests = |list: &[Descriptor]| -> Vec<String> {
        list.iter().map(|d| d.digest().to_string()).collect()
    };
    if existing.is_some() && digests(&entries) == digests(&before) {
        return Ok(None);
    }
    Ok(Some(canonical_json(&empty_index(entries)?)?))
}

/// The document an artifact manifest carries: its one layer.
pub fn document_layer(manifest: &ImageManifest) -> crate::Result<&Descriptor> {
    match manifest.layers().as_slice() {
        [layer] => Ok(layer),
        layers => crate::error::bail!(
            "an attached document's manifest has {} layers, not one: attach it again with `cargo xtask image`",
            layers.len()
        ),
    }
}

/// The referrers of `subject` among `entries` (an OCI layout's `index.json`): the untagged
/// artifact manifests whose `subject` is that digest, each read with `read` (other tools'
/// artifacts that are indexes are not read).
pub fn find<E: From<crate::Error>>(
    entries: &[Descriptor],
    subject: &Digest,
    mut read: impl FnMut(&Digest) -> Result<Vec<u8>, E>,
) -> Result<Vec<(Descriptor, ImageManifest)>, E> {
    let mut found = Vec::new();
    let artifacts = entries
        .iter()
        .filter(|d| d.artifact_type().is_some() && *d.media_type() == MediaType::ImageManifest);
    for entry in artifacts {
        let manifest = ImageManifest::from_reader(read(entry.digest())?.as_slice())
            .with_context(|| format!("reading the attached manifest {}", entry.digest()))
            .map_err(|e| E::from(crate::Error::from(e)))?;
        if manifest
            .subject()
            .as_ref()
            .is_some_and(|s| s.digest() == subject)
        {
            found.push((entry.clone(), manifest));
        }
    }
    Ok(found)
}

/// Parses a referrers index (the API's answer or the fallback tag's manifest).
pub fn parse_index(bytes: &[u8]) -> crate::Result<ImageIndex> {
    Ok(ImageIndex::from_reader(bytes).context("parsing a referrers index")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            500,
            Digest::from_str(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        );
        d.set_platform(Some(
            oci_spec::image::PlatformBuilder::default()
                .architecture(oci_spec::image::Arch::Amd64)
                .os(oci_spec::image::Os::Linux)
                .build()
                .unwrap(),
        ));
        d
    }

    fn sbom(text: &str) -> Document {
        Document {
            kind: Kind::Sbom,
            title: "sbom.spdx.json",
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn provenance(text: &str) -> Document {
        Document {
            kind: Kind::Provenance,
            title: "provenance.intoto.json",
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn digests(index: &ImageIndex) -> Vec<Digest> {
        index
            .manifests()
            .iter()
            .map(|d| d.digest().clone())
            .collect()
    }

    #[test]
    fn a_referrer_is_an_artifact_manifest_with_the_empty_config_and_the_subject() {
        let r = referrer(&image(), &sbom("{\"spdx\":1}"), "2024-01-01T00:00:00Z").unwrap();
        let json: serde_json::Value = serde_json::from_slice(&r.manifest).unwrap();
        assert_eq!(json["artifactType"], SBOM_TYPE);
        assert_eq!(
            json["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            json["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            json["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(json["config"]["size"], 2);
        assert_eq!(json["layers"][0]["mediaType"], SBOM_TYPE);
        assert_eq!(
            json["layers"][0]["digest"],
            sha256_digest(b"{\"spdx\":1}").as_str()
        );
        assert_eq!(
            json["layers"][0]["annotations"][ANNOTATION_TITLE],
            "sbom.spdx.json"
        );
        // The subject names the image, without the index entry's platform.
        assert_eq!(
            json["subject"],
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", "a".repeat(64)),
                "size": 500
            })
        );
        assert_eq!(
            json["annotations"][ANNOTATION_CREATED],
            "2024-01-01T00:00:00Z"
        );
        // Marked ours, with its kind, on the manifest and on the descriptor listing it.
        assert_eq!(json["annotations"][DOCUMENT_ANNOTATION], "sbom");
        assert_eq!(Kind::of_descriptor(&r.descriptor), Some(Kind::Sbom));
        let parsed = ImageManifest::from_reader(r.manifest.as_slice()).unwrap();
        assert_eq!(Kind::of_manifest(&parsed), Some(Kind::Sbom));
        assert_eq!((r.kind, &r.subject), (Kind::Sbom, image().digest()));
        // The descriptor is what the referrers API lists.
        assert_eq!(
            r.descriptor.digest().to_string(),
            sha256_digest(&r.manifest)
        );
        assert_eq!(r.descriptor.size(), r.manifest.len() as u64);
        assert_eq!(
            r.descriptor.artifact_type().as_ref().map(|t| t.to_string()),
            Some(SBOM_TYPE.to_owned())
        );
        // Same inputs, same bytes; another document, another manifest.
        let again = referrer(&image(), &sbom("{\"spdx\":1}"), "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(again.manifest, r.manifest);
        let other = referrer(&image(), &sbom("{\"spdx\":2}"), "2024-01-01T00:00:00Z").unwrap();
        assert_ne!(other.descriptor.digest(), r.descriptor.digest());
    }

    #[test]
    fn the_fallback_tag_is_the_digest_with_a_dash() {
        assert_eq!(
            fallback_tag(image().digest()),
            format!("sha256-{}", "a".repeat(64))
        );
    }

    #[test]
    fn the_fallback_index_keeps_one_of_ours_per_kind_and_what_others_attached() {
        let created = "2024-01-01T00:00:00Z";
        let sbom1 = referrer(&image(), &sbom("a"), created).unwrap().descriptor;
        let sbom2 = referrer(&image(), &sbom("b"), created).unwrap().descriptor;
        let prov = referrer(&image(), &provenance("p"), created)
            .unwrap()
            .descriptor;
        // Another tool's SBOM: same artifactType, not marked ours.
        let mut theirs = Descriptor::new(
            MediaType::ImageManifest,
            9,
            Digest::from_str(&format!("sha256:{}", "c".repeat(64))).unwrap(),
        );
        theirs.set_artifact_type(Some(MediaType::from(SBOM_TYPE)));
        // Nothing there yet: ours, in order, each once.
        let first = merge(None, &[sbom1.clone(), prov.clone(), prov.clone()])
            .unwrap()
            .unwrap();
        let index = parse_index(&first).unwrap();
        assert_eq!(
            digests(&index),
            [sbom1.digest().clone(), prov.digest().clone()]
        );
        // Pushed again: nothing changes, nothing to write.
        assert_eq!(
            merge(Some(&index), &[prov.clone(), sbom1.clone()]).unwrap(),
            None
        );
        // The image's SBOM changed: ours is replaced, theirs and the provenance stay.
        let mixed = empty_index(vec![theirs.clone(), sbom1.clone(), prov.clone()]).unwrap();
        let merged = parse_index(
            &merge(Some(&mixed), &[sbom2.clone(), prov.clone()])
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            digests(&merged),
            [
                theirs.digest().clone(),
                prov.digest().clone(),
                sbom2.digest().clone()
            ]
        );
        // The bytes do not depend on a map's order.
        assert_eq!(
            merge(None, &[sbom1.clone(), prov.clone()]).unwrap(),
            merge(None, &[sbom1, prov]).unwrap()
        );
    }

    #[test]
    fn find_reads_artifact_manifests_only_and_matches_the_subject() {
        let ours = referrer(&image(), &sbom("a"), "2024-01-01T00:00:00Z").unwrap();
        // Another tool's referrer that is an index: listed with an artifactType, not read.
        let mut an_index = Descriptor::new(
            MediaType::ImageIndex,
            9,
            Digest::from_str(&format!("sha256:{}", "d".repeat(64))).unwrap(),
        );
        an_index.set_artifact_type(Some(MediaType::from("application/example")));
        let entries = [an_index, ours.descriptor.clone()];
        let read = |d: &Digest| {
            anyhow::ensure!(d == ours.descriptor.digest(), "read {d}");
            Ok::<_, anyhow::Error>(ours.manifest.clone())
        };
        let found = find(&entries, image().digest(), read).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.digest(), ours.descriptor.digest());
        let elsewhere = Digest::from_str(&format!("sha256:{}", "e".repeat(64))).unwrap();
        assert!(find(&entries, &elsewhere, read).unwrap().is_empty());
    }
}
