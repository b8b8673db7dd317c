//! Cosign-compatible signing of container images, as data.
//!
//! This crate makes and checks what cosign, skopeo, podman, CRI-O, Kyverno and sigstore's
//! policy-controller read, without any registry I/O: the caller moves the bytes.
//!
//! - **Keys** ([`KeyPair`], [`PublicKey`]): ECDSA P-256, the public key as PEM, the private
//!   key encrypted in cosign's own format (scrypt + NaCl secretbox, PEM type
//!   `ENCRYPTED SIGSTORE PRIVATE KEY`); plain PKCS#8 and SEC1 PEM keys are read too.
//! - **Simple signing** ([`SimpleSigning`], [`ImageSignature`], [`SignatureImage`]): the
//!   payload cosign signs for an image manifest digest, and the `sha256-<hex>.sig` image that
//!   stores one layer per signature with the signature in the
//!   `dev.cosignproject.cosign/signature` annotation.
//! - **Sigstore bundles** ([`Bundle`]): the v0.3 bundle cosign 3 attaches to an image as an
//!   OCI referrer, holding a DSSE envelope over an in-toto statement about the digest.
//! - **DSSE** ([`Envelope`]): in-toto's signing envelope, for provenance statements.
//!
//! Each check fails with its own [`Error`] variant: [`Error::Unsigned`],
//! [`Error::ForeignKey`], [`Error::TamperedPayload`], [`Error::DigestMismatch`].
//!
//! # Example
//!
//! ```
//! use tiny_sign::{Bundle, Digest, ImageSignature, KeyPair, PublicKey, SignatureImage,
//!                 SimpleSigning, signature_tag};
//!
//! // Keys: what `cosign generate-key-pair` writes (cosign.key, cosign.pub).
//! let key = KeyPair::generate();
//! let cosign_key = key.to_encrypted_pem(b"correct horse");
//! let cosign_pub = key.public_key().to_pem();
//! assert!(cosign_key.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
//!
//! // Signing loads the key back with its password.
//! let key = KeyPair::from_pem(cosign_key.as_bytes(), b"correct horse")?;
//! let image = Digest::of(b"the image manifest bytes");
//! let signature = ImageSignature::sign(&key, &SimpleSigning::new("registry.example/app", &image));
//!
//! // The `.sig` image: start empty (or from the manifest at the tag), add, publish.
//! let mut sigs = SignatureImage::new();
//! assert!(sigs.add(&signature, &key.public_key()));
//! assert!(!sigs.add(&signature, &key.public_key()), "signing again adds nothing");
//! let tag = signature_tag(&image);
//! let manifest = sigs.manifest().to_bytes();
//! assert!(tag.starts_with("sha256-") && tag.ends_with(".sig"));
//!
//! // A verifier holding only cosign.pub.
//! let public = PublicKey::from_pem(cosign_pub.as_bytes())?;
//! let pulled = SignatureImage::from_manifest(&manifest)?;
//! let payloads = vec![signature.payload().to_vec()];
//! let signed = pulled.verify(&public, &image, &payloads)?;
//! assert_eq!(signed.docker_reference, "registry.example/app");
//! let other = Digest::of(b"another manifest");
//! assert!(matches!(
//!     pulled.verify(&public, &other, &payloads),
//!     Err(tiny_sign::Error::DigestMismatch { .. })
//! ));
//!
//! // The same signature as cosign 3 attaches it: a bundle in a referrer of the image.
//! let bundle = Bundle::sign_image(&key, &image);
//! bundle.verify_image(&public, &image)?;
//! # Ok::<(), tiny_sign::Error>(())
//! ```
//!
//! Reading a key file, check its permissions first with [`check_private_key_permissions`].

#![warn(missing_docs)]

mod bundle;
mod digest;
mod dsse;
mod encrypted;
mod error;
mod keys;
mod oci;
mod password;
mod payload;
mod sig_image;

pub use bundle::{
    Artifact, BUNDLE_CONTENT_ANNOTATION, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_TYPE_ANNOTATION,
    Bundle, COSIGN_SIGN_PREDICATE_TYPE, CREATED_ANNOTATION, IN_TOTO_STATEMENT_V1,
};
pub use digest::Digest;
pub use dsse::{
    DSSE_ENVELOPE_MEDIA_TYPE, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION, pae,
};
pub use error::{Error, Result};
pub use keys::{
    COSIGN_PRIVATE_KEY_PEM, KeyPair, PublicKey, SIGSTORE_PRIVATE_KEY_PEM,
    check_private_key_permissions, read_private_key, read_public_key, write_key_files,
};
pub use oci::{
    Blob, Descriptor, Manifest, OCI_CONFIG_MEDIA_TYPE, OCI_EMPTY_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
};
pub use password::{PASSWORD_ENV, Password};
pub use payload::{COSIGN_SIGNATURE_TYPE, SimpleSigning};
pub use sig_image::{
    ImageSignature, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureImage, signature_tag,
    verify_signature_layer,
};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Standard padded base64, as Go's `encoding/json` writes `[]byte` and cosign writes
/// signatures.
fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Reads base64 in any of its common spellings (DSSE allows standard or URL-safe).
fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
}
