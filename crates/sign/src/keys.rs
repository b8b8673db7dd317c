//! ECDSA P-256 key pairs: generation, cosign's encrypted key files, PEM, signing.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    PrivateKeyInfo,
};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result, encrypted};

/// PEM type of the private keys cosign writes today.
pub const SIGSTORE_PRIVATE_KEY_PEM: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM type of the private keys older cosign releases wrote; still read.
pub const COSIGN_PRIVATE_KEY_PEM: &str = "ENCRYPTED COSIGN PRIVATE KEY";

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A signing key: an ECDSA key on the NIST P-256 curve, signing with SHA-256, as cosign
/// generates by default.
///
/// Signatures are deterministic (RFC 6979): the same key signing the same payload gives the
/// same bytes, so signing again is recognisably a repeat.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new random key pair (from the operating system's random source).
    pub fn generate() -> KeyPair {
        KeyPair {
            signing: SigningKey::random(&mut OsRng),
        }
    }

    /// Reads a private key from PEM text: cosign's encrypted key (`ENCRYPTED SIGSTORE PRIVATE
    /// KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY`) opened with `password`, or an
    /// unencrypted PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (the password is then unused).
    ///
    /// Errors: [`Error::WrongPassword`], [`Error::PublicKeyGiven`] for a `PUBLIC KEY`,
    /// [`Error::UnsupportedKey`] for RSA, Ed25519, other curves or other PEM types,
    /// [`Error::MalformedPem`] for text that does not decode, and
    /// [`Error::UnsupportedEncryption`] for encryption parameters cosign never writes.
    pub fn from_pem(text: &[u8], password: &[u8]) -> Result<KeyPair> {
        let (label, der) = decode_pem(text)?;
        let der = zeroize::Zeroizing::new(der);
        let signing = match label.as_str() {
            SIGSTORE_PRIVATE_KEY_PEM | COSIGN_PRIVATE_KEY_PEM => {
                let pkcs8 = encrypted::decrypt(&der, password)?;
                from_pkcs8(&pkcs8)?
            }
            "PRIVATE KEY" => from_pkcs8(&der)?,
            "EC PRIVATE KEY" => from_sec1(&der)?,
            "PUBLIC KEY" => return Err(Error::PublicKeyGiven),
            "RSA PRIVATE KEY" => return Err(Error::UnsupportedKey("RSA".to_owned())),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::UnsupportedKey(
                    "PKCS#8 encrypted with a password (openssl's format; use cosign's or a plain one)"
                        .to_owned(),
                ));
            }
            other => return Err(Error::UnsupportedKey(format!("PEM type {other:?}"))),
        };
        Ok(KeyPair { signing })
    }

    /// The private key encrypted with `password` in cosign's format (PEM type
    /// [`SIGSTORE_PRIVATE_KEY_PEM`]): the PKCS#8 DER sealed with NaCl secretbox under a key
    /// scrypt derives from the password (N = 32768, r = 8, p = 1) and a random salt. cosign,
    /// and tools built on its loader (skopeo, podman), read it.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> String {
        let pkcs8 = self
            .signing
            .to_pkcs8_der()
            .expect("a P-256 key always encodes as PKCS#8");
        let sealed = encrypted::encrypt(pkcs8.as_bytes(), password);
        pem::encode_string(SIGSTORE_PRIVATE_KEY_PEM, LineEnding::LF, &sealed)
            .expect("a short PEM always encodes")
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            verifying: *self.signing.verifying_key(),
        }
    }

    /// Signs `message` (hashed with SHA-256); returns the ASN.1 DER signature, the form cosign
    /// stores (base64) in its signature annotation and sigstore in its bundles.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.signing.sign(message);
        let der: DerSignature = signature.to_der();
        der.as_bytes().to_vec()
    }
}

fn decode_pem(text: &[u8]) -> Result<(String, Vec<u8>)> {
    // Like Go's pem.Decode, skip anything before the block (a comment, a blank line).
    let start = find(text, b"-----BEGIN ")
        .ok_or_else(|| Error::MalformedPem("no PEM block (-----BEGIN ...) found".to_owned()))?;
    let (label, der) =
        pem::decode_vec(&text[start..]).map_err(|e| Error::MalformedPem(e.to_string()))?;
    Ok((label.to_owned(), der))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.34" => "ECDSA P-384".to_owned(),
        "1.3.132.0.35" => "ECDSA P-521".to_owned(),
        "1.3.132.0.10" => "ECDSA secp256k1".to_owned(),
        other => format!("ECDSA on curve {other}"),
    }
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "RSA".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => format!("algorithm {other}"),
    }
}

/// Checks that a PKCS#8 or SPKI algorithm identifier names ECDSA P-256.
fn check_algorithm(oid: ObjectIdentifier, curve: Option<ObjectIdentifier>) -> Result<()> {
    if oid != EC_PUBLIC_KEY {
        return Err(Error::UnsupportedKey(algorithm_name(oid)));
    }
    match curve {
        Some(P256) => Ok(()),
        Some(other) => Err(Error::UnsupportedKey(curve_name(other))),
        None => Err(Error::UnsupportedKey(
            "ECDSA without a named curve".to_owned(),
        )),
    }
}

fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
    let info = PrivateKeyInfo::try_from(der)
        .map_err(|e| Error::MalformedPem(format!("PKCS#8 private key: {e}")))?;
    check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())?;
    SigningKey::from_pkcs8_der(der)
        .map_err(|e| Error::MalformedPem(format!("PKCS#8 private key: {e}")))
}

fn from_sec1(der: &[u8]) -> Result<SigningKey> {
    let key = sec1::EcPrivateKey::try_from(der)
        .map_err(|e| Error::MalformedPem(format!("EC private key: {e}")))?;
    match key.parameters.and_then(|p| p.named_curve()) {
        Some(P256) | None => {}
        Some(other) => return Err(Error::UnsupportedKey(curve_name(other))),
    }
    let secret = p256::SecretKey::from_sec1_der(der)
        .map_err(|e| Error::MalformedPem(format!("EC private key: {e}")))?;
    Ok(SigningKey::from(secret))
}

/// A verifying key: the public half of a [`KeyPair`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    verifying: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.hint()).finish()
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM block (SubjectPublicKeyInfo), as `cosign generate-key-pair`
    /// and [`PublicKey::to_pem`] write it.
    ///
    /// Errors: [`Error::PrivateKeyGiven`] for any private key PEM type,
    /// [`Error::UnsupportedKey`] for a key that is not ECDSA P-256, and
    /// [`Error::MalformedPem`].
    pub fn from_pem(text: &[u8]) -> Result<PublicKey> {
        let (label, der) = decode_pem(text)?;
        if label.contains("PRIVATE KEY") {
            return Err(Error::PrivateKeyGiven);
        }
        if label != "PUBLIC KEY" {
            return Err(Error::UnsupportedKey(format!("PEM type {label:?}")));
        }
        let info = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| Error::MalformedPem(format!("public key: {e}")))?;
        check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())?;
        let verifying = VerifyingKey::from_public_key_der(&der)
            .map_err(|e| Error::MalformedPem(format!("public key: {e}")))?;
        Ok(PublicKey { verifying })
    }

    /// The key as a `PUBLIC KEY` PEM block (SubjectPublicKeyInfo, LF line endings).
    pub fn to_pem(&self) -> String {
        self.verifying
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key always encodes")
    }

    /// The key's DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> Vec<u8> {
        self.verifying
            .to_public_key_der()
            .expect("a P-256 key always encodes")
            .into_vec()
    }

    /// The key's hint: base64 of the SHA-256 of its DER SubjectPublicKeyInfo, the value cosign
    /// puts in a sigstore bundle's `verificationMaterial.publicKey.hint`. It names the key; it
    /// proves nothing.
    pub fn hint(&self) -> String {
        crate::base64(&Sha256::digest(self.to_der()))
    }

    /// Checks an ASN.1 DER ECDSA signature of `message` (hashed with SHA-256).
    ///
    /// Errors: [`Error::ForeignKey`] when the signature does not verify (made with another key
    /// or over other bytes: ECDSA cannot tell which), [`Error::MalformedDocument`] when it is
    /// not a DER signature at all.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let signature =
            Signature::from_der(signature).map_err(|e| crate::error::malformed("signature", e))?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| Error::ForeignKey)
    }
}

/// Refuses a private key file that users other than its owner may read, write or run (any
/// group or other permission bit set, as ssh refuses them). Call it before reading a key file;
/// [`KeyPair::from_pem`] takes bytes and does not look at files. On non-Unix systems it only
/// checks that the file exists.
pub fn check_private_key_permissions(path: &Path) -> Result<()> {
    let metadata = std::fs::metadata(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyReadableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    Ok(())
}

/// Writes `key` as cosign's key pair files: `<prefix>.key`, encrypted with `password` in
/// cosign's format and readable by its owner only (mode 0600, set when the file is created),
/// and `<prefix>.pub`, the public key PEM. Returns the two paths.
///
/// Refuses with [`Error::KeyFileExists`] when either file exists, before writing anything;
/// if the public key cannot be written, the private key just written is removed again.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let prefix = dir.path().join("cosign");
/// let key = tiny_sign::KeyPair::generate();
/// let (private, public) = tiny_sign::write_key_files(&key, &prefix, b"pw")?;
/// assert_eq!(tiny_sign::read_private_key(&private, b"pw")?.public_key(), key.public_key());
/// assert_eq!(tiny_sign::read_public_key(&public)?, key.public_key());
/// assert!(matches!(
///     tiny_sign::write_key_files(&key, &prefix, b"pw"),
///     Err(tiny_sign::Error::KeyFileExists { .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_key_files(
    key: &KeyPair,
    prefix: &Path,
    password: &[u8],
) -> Result<(PathBuf, PathBuf)> {
    let with = |extension: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(extension);
        PathBuf::from(name)
    };
    let (private, public) = (with(".key"), with(".pub"));
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(Error::KeyFileExists { path: path.clone() });
        }
    }
    write_new(&private, key.to_encrypted_pem(password).as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, key.public_key().to_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok((private, public))
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let io = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => Error::KeyFileExists {
            path: path.to_owned(),
        },
        _ => Error::Io {
            path: path.to_owned(),
            error,
        },
    };
    let mut file = options.open(path).map_err(io)?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

/// Reads a private key file for signing: [`Error::PublicKeyGiven`] for a public key file,
/// then [`check_private_key_permissions`], then [`KeyPair::from_pem`] with `password`.
pub fn read_private_key(path: &Path, password: &[u8]) -> Result<KeyPair> {
    let text = zeroize::Zeroizing::new(std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })?);
    if decode_pem(&text).is_ok_and(|(label, _)| label == "PUBLIC KEY") {
        return Err(Error::PublicKeyGiven);
    }
    check_private_key_permissions(path)?;
    KeyPair::from_pem(&text, password)
}

/// Reads a public key file ([`PublicKey::from_pem`]).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })?;
    PublicKey::from_pem(&text)
}
