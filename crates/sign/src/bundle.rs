//! Sigstore bundles (v0.3) for keyed signing, and the OCI referrer cosign 3 attaches them as.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dsse::{EnvelopeJson, IN_TOTO_PAYLOAD_TYPE};
use crate::error::malformed;
use crate::oci::{OCI_EMPTY_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use crate::{Blob, Descriptor, Digest, Envelope, Error, KeyPair, Manifest, PublicKey, Result};

/// Media type of a v0.3 sigstore bundle (also the referrer's artifact type and layer type).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older spelling of the same version, still read.
const BUNDLE_MEDIA_TYPE_V03_PARAM: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// `_type` of an in-toto v1 statement.
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of the statement cosign 3 signs for an image (`cosign sign` with the
/// new bundle format): a statement about the manifest digest with an empty predicate.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Referrer annotation naming what the bundle holds (`dsse-envelope`).
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Referrer annotation naming the signed statement's predicate type.
pub const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// OCI's creation time annotation.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// A sigstore bundle holding a DSSE envelope signed with a key, for offline verification
/// with that key: its verification material is only the key's hint (no certificate, no
/// transparency log entry, no timestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// `verificationMaterial.publicKey.hint`: [`PublicKey::hint`] of the signing key.
    pub key_hint: String,
    /// The signed envelope.
    pub envelope: Envelope,
}

/// A manifest and the blobs it lists, to push blobs first, then the manifest (by digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The manifest.
    pub manifest: Manifest,
    /// Its config and layer blobs.
    pub blobs: Vec<Blob>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_signature: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<EnvelopeJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyIdentifier>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyIdentifier {
    #[serde(default)]
    hint: String,
}

/// An in-toto statement, as far as verification reads it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    digest: BTreeMap<String, String>,
}

impl Bundle {
    /// Signs `payload` of `payload_type` in a DSSE envelope with `key`.
    pub fn sign(key: &KeyPair, payload_type: &str, payload: &[u8]) -> Bundle {
        Bundle {
            key_hint: key.public_key().hint(),
            envelope: Envelope::sign(payload_type, payload, key, None),
        }
    }

    /// The bundle cosign 3 makes when signing `image` with a key: an in-toto v1 statement
    /// whose only subject is the manifest digest, predicate type
    /// [`COSIGN_SIGN_PREDICATE_TYPE`], empty predicate.
    pub fn sign_image(key: &KeyPair, image: &Digest) -> Bundle {
        let statement = Statement {
            kind: IN_TOTO_STATEMENT_V1.to_owned(),
            subject: vec![Subject {
                name: None,
                digest: BTreeMap::from([("sha256".to_owned(), image.hex().to_owned())]),
            }],
            predicate_type: COSIGN_SIGN_PREDICATE_TYPE.to_owned(),
            predicate: serde_json::Value::Object(serde_json::Map::new()),
        };
        let payload = serde_json::to_vec(&statement).expect("a statement always serialises");
        Bundle::sign(key, IN_TOTO_PAYLOAD_TYPE, &payload)
    }

    /// The bundle as JSON, in the protobuf JSON form sigstore's clients read.
    pub fn to_json(&self) -> Vec<u8> {
        let json = BundleJson {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyIdentifier {
                    hint: self.key_hint.clone(),
                }),
                tlog_entries: Vec::new(),
            },
            message_signature: None,
            dsse_envelope: Some(self.envelope.to_json_struct()),
        };
        serde_json::to_vec(&json).expect("a bundle always serialises")
    }

    /// Parses a v0.3 bundle holding a DSSE envelope and identifying its key by hint (what
    /// [`Bundle::to_json`] and `cosign sign --key` write). Bundles with certificates or
    /// message signatures are refused as [`Error::MalformedDocument`].
    pub fn from_json(bytes: &[u8]) -> Result<Bundle> {
        let json: BundleJson =
            serde_json::from_slice(bytes).map_err(|e| malformed("sigstore bundle", e))?;
        if json.media_type != BUNDLE_MEDIA_TYPE && json.media_type != BUNDLE_MEDIA_TYPE_V03_PARAM {
            return Err(malformed(
                "sigstore bundle",
                format!(
                    "media type {:?}, expected {BUNDLE_MEDIA_TYPE}",
                    json.media_type
                ),
            ));
        }
        let key_hint = json
            .verification_material
            .public_key
            .map(|k| k.hint)
            .ok_or_else(|| {
                malformed(
                    "sigstore bundle",
                    "no public key in its verification material",
                )
            })?;
        let envelope = json
            .dsse_envelope
            .ok_or_else(|| malformed("sigstore bundle", "no DSSE envelope"))?;
        Ok(Bundle {
            key_hint,
            envelope: Envelope::from_json_struct(envelope)?,
        })
    }

    /// Checks the envelope's signature with `key`.
    ///
    /// Errors: [`Error::ForeignKey`] (the hint names another key, or the signature fails and
    /// the hint is empty), [`Error::TamperedPayload`] (the hint names `key` but the
    /// signature fails), [`Error::Unsigned`].
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        let hint = key.hint();
        if !self.key_hint.is_empty() && self.key_hint != hint {
            return Err(Error::ForeignKey);
        }
        match self.envelope.verify(key, None) {
            Err(Error::ForeignKey) if self.key_hint == hint => Err(Error::TamperedPayload),
            other => other,
        }
    }

    /// Checks that the bundle is a signature by `key` of an in-toto statement whose subject
    /// is `image`. Errors: those of [`Bundle::verify`], then [`Error::DigestMismatch`], or
    /// [`Error::MalformedDocument`] for a payload that is no in-toto statement.
    pub fn verify_image(&self, key: &PublicKey, image: &Digest) -> Result<()> {
        self.verify(key)?;
        let statement = self.statement()?;
        let digests: Vec<&String> = statement
            .subject
            .iter()
            .filter_map(|s| s.digest.get("sha256"))
            .collect();
        if digests.iter().any(|d| d.as_str() == image.hex()) {
            return Ok(());
        }
        let signed = digests
            .first()
            .and_then(|d| Digest::parse(&format!("sha256:{d}")).ok())
            .ok_or_else(|| malformed("in-toto statement", "no sha256 subject"))?;
        Err(Error::DigestMismatch {
            expected: image.clone(),
            signed,
        })
    }

    /// The signed statement's predicate type.
    pub fn predicate_type(&self) -> Result<String> {
        Ok(self.statement()?.predicate_type)
    }

    fn statement(&self) -> Result<Statement> {
        if self.envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(malformed(
                "sigstore bundle",
                format!("payload type {:?}", self.envelope.payload_type),
            ));
        }
        serde_json::from_slice(&self.envelope.payload)
            .map_err(|e| malformed("in-toto statement", e))
    }

    /// The OCI referrer of `subject` carrying this bundle, shaped as cosign 3 writes it: an
    /// image manifest with artifact type [`BUNDLE_MEDIA_TYPE`], the empty `{}` config, the
    /// bundle as its one layer, and annotations [`BUNDLE_CONTENT_ANNOTATION`],
    /// [`BUNDLE_PREDICATE_TYPE_ANNOTATION`] and [`CREATED_ANNOTATION`] (`created`, RFC 3339).
    pub fn referrer(&self, subject: &Descriptor, created: &str) -> Result<Artifact> {
        let config = Blob {
            media_type: OCI_EMPTY_MEDIA_TYPE.to_owned(),
            data: b"{}".to_vec(),
        };
        let layer = Blob {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            data: self.to_json(),
        };
        let mut config_descriptor = config.descriptor();
        config_descriptor.artifact_type = Some(BUNDLE_MEDIA_TYPE.to_owned());
        let subject = Descriptor {
            media_type: subject.media_type.clone(),
            size: subject.size,
            digest: subject.digest.clone(),
            annotations: BTreeMap::new(),
            artifact_type: None,
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST_MEDIA_TYPE.to_owned(),
            config: config_descriptor,
            layers: vec![layer.descriptor()],
            annotations: BTreeMap::from([
                (
                    BUNDLE_CONTENT_ANNOTATION.to_owned(),
                    "dsse-envelope".to_owned(),
                ),
                (
                    BUNDLE_PREDICATE_TYPE_ANNOTATION.to_owned(),
                    self.predicate_type()?,
                ),
                (CREATED_ANNOTATION.to_owned(), created.to_owned()),
            ]),
            subject: Some(subject),
            artifact_type: Some(BUNDLE_MEDIA_TYPE.to_owned()),
        };
        Ok(Artifact {
            manifest,
            blobs: vec![config, layer],
        })
    }
}
