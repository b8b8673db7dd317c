//! Cosign's `.sig` image: signatures stored as an image in the signed image's repository,
//! tagged `sha256-<hex>.sig`, one layer per signature.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::malformed;
use crate::oci::{OCI_CONFIG_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use crate::{Blob, Descriptor, Digest, Error, KeyPair, Manifest, PublicKey, Result, SimpleSigning};

/// Media type of a `.sig` layer: the simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature of the layer's payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The tag cosign stores the signatures of `image` under, in the image's own repository:
/// `sha256-<hex>.sig`.
pub fn signature_tag(image: &Digest) -> String {
    format!("sha256-{}.sig", image.hex())
}

/// One signature: a simple-signing payload and its signature, as one `.sig` layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSignature {
    payload: Vec<u8>,
    signature: String,
}

impl ImageSignature {
    /// Signs `payload` with `key`.
    pub fn sign(key: &KeyPair, payload: &SimpleSigning) -> ImageSignature {
        let payload = payload.to_bytes();
        let signature = crate::base64(&key.sign(&payload));
        ImageSignature { payload, signature }
    }

    /// The payload bytes (the layer's content).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The base64 DER signature (the layer's [`SIGNATURE_ANNOTATION`]).
    pub fn signature_base64(&self) -> &str {
        &self.signature
    }

    /// The layer blob to upload.
    pub fn layer(&self) -> Blob {
        Blob {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            data: self.payload.clone(),
        }
    }

    /// The layer's descriptor, signature annotation included.
    pub fn descriptor(&self) -> Descriptor {
        let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &self.payload);
        descriptor
            .annotations
            .insert(SIGNATURE_ANNOTATION.to_owned(), self.signature.clone());
        descriptor
    }
}

/// The `.sig` image of one signed manifest: its layers, to which signatures are added.
///
/// Publishing it: upload each new [`ImageSignature::layer`] and [`SignatureImage::config`],
/// then put [`SignatureImage::manifest`] at [`signature_tag`]. Layers already in the image
/// are already in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureImage {
    media_type: String,
    config_media_type: String,
    layers: Vec<Descriptor>,
}

impl Default for SignatureImage {
    fn default() -> Self {
        SignatureImage::new()
    }
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'static str,
    created: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    history: &'a [History],
    os: &'static str,
    rootfs: RootFs<'a>,
    config: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct History {
    created: &'static str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a Digest>,
}

/// The zero time, as Go writes an unset `time.Time`.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl SignatureImage {
    /// An image without signatures (the start when no `.sig` tag exists yet).
    pub fn new() -> SignatureImage {
        SignatureImage {
            media_type: OCI_MANIFEST_MEDIA_TYPE.to_owned(),
            config_media_type: OCI_CONFIG_MEDIA_TYPE.to_owned(),
            layers: Vec::new(),
        }
    }

    /// The image an existing `.sig` manifest describes (pulled from the registry), keeping
    /// its layers, whoever signed them, and its media types.
    pub fn from_manifest(bytes: &[u8]) -> Result<SignatureImage> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| malformed("signature manifest", e))?;
        Ok(SignatureImage {
            media_type: manifest.media_type,
            config_media_type: manifest.config.media_type,
            layers: manifest.layers,
        })
    }

    /// Adds `signature` unless the image already holds a signature of the same payload that
    /// verifies with `key` (as cosign's duplicate detection does); returns whether it was
    /// added. Signatures by other keys stay beside it.
    pub fn add(&mut self, signature: &ImageSignature, key: &PublicKey) -> bool {
        let descriptor = signature.descriptor();
        let duplicate = self.layers.iter().any(|layer| {
            layer.digest == descriptor.digest
                && layer
                    .annotations
                    .get(SIGNATURE_ANNOTATION)
                    .and_then(|sig| crate::base64_decode(sig).ok())
                    .is_some_and(|sig| key.verify(&signature.payload, &sig).is_ok())
        });
        if !duplicate {
            self.layers.push(descriptor);
        }
        !duplicate
    }

    /// Adds the signatures of `other` this image does not hold yet (the same payload with the
    /// same signature), after its own; returns how many were added. How a `.sig` image
    /// signed elsewhere (an OCI layout) joins the one a registry holds without dropping
    /// other keys' signatures.
    ///
    /// ```
    /// use tiny_sign::{ImageSignature, KeyPair, SignatureImage, SimpleSigning, Digest};
    ///
    /// let digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    /// let payload = SimpleSigning::new("registry.example/app", &digest);
    /// let (ours, theirs) = (KeyPair::generate(), KeyPair::generate());
    /// let mut registry = SignatureImage::new();
    /// registry.add(&ImageSignature::sign(&theirs, &payload), &theirs.public_key());
    /// let mut layout = SignatureImage::new();
    /// layout.add(&ImageSignature::sign(&ours, &payload), &ours.public_key());
    /// assert_eq!(registry.merge(&layout), 1);
    /// assert_eq!(registry.merge(&layout), 0);
    /// assert_eq!(registry.layers().len(), 2);
    /// ```
    pub fn merge(&mut self, other: &SignatureImage) -> usize {
        let mut added = 0;
        for layer in &other.layers {
            let held = self.layers.iter().any(|l| {
                l.digest == layer.digest
                    && l.annotations.get(SIGNATURE_ANNOTATION)
                        == layer.annotations.get(SIGNATURE_ANNOTATION)
            });
            if !held {
                self.layers.push(layer.clone());
                added += 1;
            }
        }
        added
    }

    /// The layers, one per signature, oldest first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The config blob: an empty image config whose `rootfs.diff_ids` list the layers, byte
    /// for byte as go-containerregistry writes it for cosign.
    pub fn config(&self) -> Blob {
        let history: Vec<History> = self
            .layers
            .iter()
            .map(|_| History {
                created: GO_ZERO_TIME,
            })
            .collect();
        let config = Config {
            architecture: "",
            created: GO_ZERO_TIME,
            history: &history,
            os: "",
            rootfs: RootFs {
                kind: "layers",
                diff_ids: self.layers.iter().map(|l| &l.digest).collect(),
            },
            config: BTreeMap::new(),
        };
        Blob {
            media_type: self.config_media_type.clone(),
            data: serde_json::to_vec(&config).expect("a config always serialises"),
        }
    }

    /// The manifest to put at [`signature_tag`].
    pub fn manifest(&self) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: self.media_type.clone(),
            config: self.config().descriptor(),
            layers: self.layers.clone(),
            annotations: BTreeMap::new(),
            subject: None,
            artifact_type: None,
        }
    }

    /// Checks that some layer holds a signature by `key` vouching for `image`. `payloads[i]`
    /// is the content of `layers()[i]`, as fetched. Returns the accepted payload.
    ///
    /// Errors, most telling first when several layers fail: [`Error::DigestMismatch`] (our
    /// key signed another manifest), [`Error::TamperedPayload`], [`Error::ForeignKey`],
    /// [`Error::Unsigned`] (no layers).
    pub fn verify(
        &self,
        key: &PublicKey,
        image: &Digest,
        payloads: &[Vec<u8>],
    ) -> Result<SimpleSigning> {
        if payloads.len() != self.layers.len() {
            return Err(malformed(
                "signature image",
                format!(
                    "{} payloads given for {} layers",
                    payloads.len(),
                    self.layers.len()
                ),
            ));
        }
        let mut worst = Error::Unsigned;
        for (layer, payload) in self.layers.iter().zip(payloads) {
            match verify_signature_layer(layer, payload, key, image) {
                Ok(signed) => return Ok(signed),
                Err(e) => {
                    if rank(&e) > rank(&worst) {
                        worst = e;
                    }
                }
            }
        }
        Err(worst)
    }
}

fn rank(error: &Error) -> u8 {
    match error {
        Error::DigestMismatch { .. } => 5,
        Error::TamperedPayload => 4,
        Error::ForeignKey => 3,
        Error::MalformedDocument { .. } => 2,
        Error::Unsigned => 0,
        _ => 1,
    }
}

/// Checks one `.sig` layer: `payload` is its content, which must match the layer's digest,
/// carry a signature that verifies with `key`, and vouch for `image`.
///
/// Errors: [`Error::TamperedPayload`], [`Error::Unsigned`] (no signature annotation),
/// [`Error::ForeignKey`], [`Error::DigestMismatch`], [`Error::MalformedDocument`].
pub fn verify_signature_layer(
    layer: &Descriptor,
    payload: &[u8],
    key: &PublicKey,
    image: &Digest,
) -> Result<SimpleSigning> {
    if Digest::of(payload) != layer.digest || payload.len() as u64 != layer.size {
        return Err(Error::TamperedPayload);
    }
    let signature = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or(Error::Unsigned)?;
    let signature =
        crate::base64_decode(signature).map_err(|e| malformed("signature annotation", e))?;
    key.verify(payload, &signature)?;
    let signed = SimpleSigning::from_bytes(payload)?;
    signed.check_digest(image)?;
    Ok(signed)
}
