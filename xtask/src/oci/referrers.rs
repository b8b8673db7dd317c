//! Documents attached to an image as OCI 1.1 referrers: one artifact manifest per document
//! (`artifactType`, the empty config, one layer holding the document, `subject` = the image
//! manifest), and the index that lists an image's referrers, as the referrers API answers it
//! and as the "referrers tag schema" stores it under `sha256-<hex>` for registries without
//! that API. Pure: the layout and the registry client store what this builds.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use anyhow::Context;
use oci_spec::image::{
    ANNOTATION_CREATED, ANNOTATION_TITLE, Descriptor, DescriptorBuilder, Digest, ImageIndex,
    ImageManifest, ImageManifestBuilder, MediaType,
};

use crate::oci::json::{canonical_json, empty_index};
use crate::oci::layer::sha256_digest;

/// `artifactType` of an SPDX JSON SBOM.
pub const SBOM_TYPE: &str = "application/spdx+json";
/// `artifactType` of an in-toto statement (SLSA provenance).
pub const PROVENANCE_TYPE: &str = "application/vnd.in-toto+json";
/// The empty config of an artifact manifest (`application/vnd.oci.empty.v1+json`).
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// A document to attach: its type and file name (the layer's title, which `oras pull`
/// writes it as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub artifact_type: &'static str,
    pub title: &'static str,
    pub bytes: Vec<u8>,
}

/// One referrer: the artifact manifest's bytes and descriptor (with `artifactType` and the
/// manifest's annotations, as the referrers API lists it), and the blobs it names.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub manifest: Vec<u8>,
    pub descriptor: Descriptor,
    pub layer: Descriptor,
    pub document: Vec<u8>,
}

/// What `subject` is set to: the image manifest's media type, digest and size only.
pub fn subject_of(image: &Descriptor) -> Descriptor {
    Descriptor::new(
        image.media_type().clone(),
        image.size(),
        image.digest().clone(),
    )
}

pub fn empty_config() -> anyhow::Result<Descriptor> {
    Ok(Descriptor::new(
        MediaType::EmptyJSON,
        EMPTY_CONFIG.len() as u64,
        Digest::from_str(&sha256_digest(EMPTY_CONFIG))?,
    ))
}

/// The artifact manifest attaching `document` to `subject`; `created` (RFC 3339, from
/// SOURCE_DATE_EPOCH) is its only annotation besides the layer's title, so the same
/// document gives the same digest in every run.
pub fn referrer(
    subject: &Descriptor,
    document: &Document,
    created: &str,
) -> anyhow::Result<Referrer> {
    let layer = DescriptorBuilder::default()
        .media_type(MediaType::from(document.artifact_type))
        .size(document.bytes.len() as u64)
        .digest(Digest::from_str(&sha256_digest(&document.bytes))?)
        .annotations(HashMap::from([(
            ANNOTATION_TITLE.to_owned(),
            document.title.to_owned(),
        )]))
        .build()?;
    let annotations = HashMap::from([(ANNOTATION_CREATED.to_owned(), created.to_owned())]);
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(document.artifact_type))
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
        .artifact_type(MediaType::from(document.artifact_type))
        .annotations(annotations)
        .build()?;
    Ok(Referrer {
        manifest: bytes,
        descriptor,
        layer,
        document: document.bytes.clone(),
    })
}

/// The fallback tag listing the referrers of `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.digest())
}

/// The referrers index with `ours` added to `existing` (what the fallback tag held, if
/// anything): entries already listed (by digest) are left as they are, new ones appended
/// in order. `None` when nothing is new, so an unchanged push writes nothing.
pub fn merge(
    existing: Option<&ImageIndex>,
    ours: &[Descriptor],
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut entries: Vec<Descriptor> = existing.map(|i| i.manifests().clone()).unwrap_or_default();
    let mut seen: BTreeSet<String> = entries.iter().map(|d| d.digest().to_string()).collect();
    let before = entries.len();
    for descriptor in ours {
        if seen.insert(descriptor.digest().to_string()) {
            entries.push(descriptor.clone());
        }
    }
    if existing.is_some() && entries.len() == before {
        return Ok(None);
    }
    Ok(Some(canonical_json(&empty_index(entries)?)?))
}

/// The document an artifact manifest carries: its one layer.
pub fn document_layer(manifest: &ImageManifest) -> anyhow::Result<&Descriptor> {
    match manifest.layers().as_slice() {
        [layer] => Ok(layer),
        layers => anyhow::bail!(
            "an attached document's manifest has {} layers, not one: attach it again with `cargo xtask image`",
            layers.len()
        ),
    }
}

/// The referrers of `subject` among `entries` (an OCI layout's `index.json`): the untagged
/// artifact manifests whose `subject` is that digest, each read with `read`.
pub fn find(
    entries: &[Descriptor],
    subject: &Digest,
    mut read: impl FnMut(&Digest) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<(Descriptor, ImageManifest)>> {
    let mut found = Vec::new();
    for entry in entries.iter().filter(|d| d.artifact_type().is_some()) {
        let manifest = ImageManifest::from_reader(read(entry.digest())?.as_slice())
            .with_context(|| format!("reading the attached manifest {}", entry.digest()))?;
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
pub fn parse_index(bytes: &[u8]) -> anyhow::Result<ImageIndex> {
    ImageIndex::from_reader(bytes).context("parsing a referrers index")
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
            artifact_type: SBOM_TYPE,
            title: "sbom.spdx.json",
            bytes: text.as_bytes().to_vec(),
        }
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
    fn the_fallback_index_merges_by_digest_and_keeps_what_others_attached() {
        let created = "2024-01-01T00:00:00Z";
        let a = referrer(&image(), &sbom("a"), created).unwrap().descriptor;
        let b = referrer(&image(), &sbom("b"), created).unwrap().descriptor;
        let theirs = Descriptor::new(
            MediaType::ImageManifest,
            9,
            Digest::from_str(&format!("sha256:{}", "c".repeat(64))).unwrap(),
        );
        // Nothing there yet: ours, in order.
        let first = merge(None, &[a.clone(), b.clone(), a.clone()])
            .unwrap()
            .unwrap();
        let index = parse_index(&first).unwrap();
        let digests: Vec<_> = index
            .manifests()
            .iter()
            .map(|d| d.digest().clone())
            .collect();
        assert_eq!(digests, [a.digest().clone(), b.digest().clone()]);
        // Pushed again: nothing new, nothing to write.
        assert_eq!(merge(Some(&index), &[b.clone(), a.clone()]).unwrap(), None);
        // Someone else's referrer stays, ours are added once.
        let mixed = empty_index(vec![theirs.clone(), a.clone()]).unwrap();
        let merged = parse_index(
            &merge(Some(&mixed), &[a.clone(), b.clone()])
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let digests: Vec<_> = merged
            .manifests()
            .iter()
            .map(|d| d.digest().clone())
            .collect();
        assert_eq!(
            digests,
            [
                theirs.digest().clone(),
                a.digest().clone(),
                b.digest().clone()
            ]
        );
        // The bytes do not depend on a map's order.
        assert_eq!(
            merge(None, &[a.clone(), b.clone()]).unwrap(),
            merge(None, &[a, b]).unwrap()
        );
    }
}
