//! The one error type of the crate.

use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong in this crate, one variant per cause a caller may want to tell
/// apart (and a person may need to act on differently).
///
/// Messages are lower-case one-liners without a trailing period, so a command line can print
/// them after its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The password does not open the encrypted private key (or the key file was altered: the
    /// cipher is authenticated and cannot tell the two apart).
    #[error(
        "wrong password for the encrypted private key: give the one it was made with in COSIGN_PASSWORD"
    )]
    WrongPassword,
    /// A public key was given where a private key is needed (for signing).
    #[error("this is a public key; signing needs the private key")]
    PublicKeyGiven,
    /// A private key was given where a public key is expected (for verifying).
    #[error("this is a private key; verifying needs the public key")]
    PrivateKeyGiven,
    /// A well-formed key of a kind this crate does not sign or verify with: only ECDSA on the
    /// NIST P-256 curve is supported (cosign's default).
    #[error("unsupported key type {0}: only ECDSA P-256 keys are supported")]
    UnsupportedKey(String),
    /// The text is not a PEM block of a key, or its contents do not decode.
    #[error("malformed PEM: {0}")]
    MalformedPem(String),
    /// The encrypted private key uses a key derivation or cipher this crate refuses (only
    /// scrypt with go-securesystemslib's three parameter sets and NaCl secretbox are read).
    #[error("unsupported private key encryption: {0}")]
    UnsupportedEncryption(String),
    /// The private key file can be read or written by users other than its owner.
    #[error(
        "private key {} is accessible by other users (mode {mode:o}): chmod 600 it",
        path.display()
    )]
    KeyReadableByOthers {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file would be overwritten.
    #[error("refusing to overwrite {}: move it away or write the new key pair elsewhere", path.display())]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key file's metadata could not be read.
    // Said in the message, not chained as a source: a chain printer would say it twice.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A string is not a `sha256:<64 lower-case hex digits>` digest.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// A manifest, payload, bundle or envelope is not the JSON document it should be.
    #[error("malformed {what}: {reason}")]
    MalformedDocument {
        /// Which kind of document.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing that could carry a signature was found (no layer, no DSSE signature).
    #[error("not signed: no signature found")]
    Unsigned,
    /// No signature verifies with the given public key: it was made with another key (or, when
    /// nothing names the key, the payload was changed after signing).
    #[error("not signed by this key: the signature does not verify with the given public key")]
    ForeignKey,
    /// The signed content was changed after signing: its bytes no longer match their digest,
    /// or a signature that names this key no longer verifies.
    #[error("tampered: the signed payload was changed after signing")]
    TamperedPayload,
    /// A valid signature by this key, but for another image manifest (the manifest was replaced
    /// after signing, or the signature was copied from another image).
    #[error("signature is for {signed}, not for {expected}")]
    DigestMismatch {
        /// The digest being verified.
        expected: Digest,
        /// The digest the signature vouches for.
        signed: Digest,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::MalformedDocument {
        what,
        reason: reason.to_string(),
    }
}
