//! The few OCI image-spec structures the signature artifacts are made of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// `application/vnd.oci.image.manifest.v1+json`.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.empty.v1+json`: the media type of the `{}` config of artifacts.
pub const OCI_EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// An OCI content descriptor: what a manifest says about one blob or manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its digest.
    pub digest: Digest,
    /// Annotations (omitted when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The artifact type, on descriptors of artifacts (omitted when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with `media_type` and no annotations.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            digest: Digest::of(bytes),
            annotations: BTreeMap::new(),
            artifact_type: None,
        }
    }
}

/// An OCI image manifest, with the OCI 1.1 `subject` and `artifactType` fields. Fields are
/// written in the order go-containerregistry (and so cosign) writes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type (OCI's when a parsed manifest leaves it out).
    #[serde(default = "oci_manifest_media_type")]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations (omitted when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The manifest this one refers to (referrers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// The artifact type (referrers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

fn oci_manifest_media_type() -> String {
    OCI_MANIFEST_MEDIA_TYPE.to_owned()
}

impl Manifest {
    /// The manifest as JSON, the bytes to push and to take the digest of.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// The digest of [`Manifest::to_bytes`].
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }
}

/// A blob to upload before the manifest that lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// Its media type, as its descriptor names it.
    pub media_type: String,
    /// Its content.
    pub data: Vec<u8>,
}

impl Blob {
    /// The blob's digest.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.data)
    }

    /// A descriptor of the blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(&self.media_type, &self.data)
    }
}
