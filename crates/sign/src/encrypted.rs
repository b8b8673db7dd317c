//! Password encryption of private keys in go-securesystemslib's `encrypted` format, which
//! cosign uses for its key files: scrypt derives a 32-byte key from the password and a random
//! 32-byte salt, NaCl secretbox (XSalsa20-Poly1305) seals the PKCS#8 DER with a random
//! 24-byte nonce, and the parameters travel with the ciphertext as JSON.

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The scrypt parameter sets go-securesystemslib reads ("legacy", "standard", "OWASP"), as
/// `(log2 N, r, p)`. Anything else is refused before deriving, so a doctored file cannot make
/// the reader spend unbounded memory or time.
const ACCEPTED: [(u8, u32, u32); 3] = [(15, 8, 1), (16, 8, 1), (17, 8, 1)];
/// What new keys are encrypted with: the "legacy" set (N = 32768), the one every cosign
/// release, old or new, and the containers/image copy of its loader can read.
const WRITTEN: (u8, u32, u32) = ACCEPTED[0];

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

fn derive(password: &[u8], salt: &[u8], (log_n, r, p): (u8, u32, u32)) -> Zeroizing<[u8; KEY_LEN]> {
    let params = scrypt::Params::new(log_n, r, p, KEY_LEN).expect("accepted scrypt parameters");
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(password, salt, &params, key.as_mut()).expect("32 is a valid output length");
    key
}

/// Seals `plaintext` under `password`; returns the JSON document.
pub(crate) fn encrypt(plaintext: &[u8], password: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let key = derive(password, &salt, WRITTEN);
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_ref()));
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("secretbox sealing cannot fail");
    let sealed = Sealed {
        kdf: Kdf {
            name: KDF_NAME.to_owned(),
            params: KdfParams {
                n: 1 << WRITTEN.0,
                r: WRITTEN.1,
                p: WRITTEN.2,
            },
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: CIPHER_NAME.to_owned(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    serde_json::to_vec(&sealed).expect("the sealed document always serialises")
}

/// Opens a JSON document written by [`encrypt`] (or by go-securesystemslib).
pub(crate) fn decrypt(document: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let sealed: Sealed = serde_json::from_slice(document)
        .map_err(|e| Error::MalformedPem(format!("encrypted key document: {e}")))?;
    if sealed.kdf.name != KDF_NAME {
        return Err(Error::UnsupportedEncryption(format!(
            "key derivation {:?}",
            sealed.kdf.name
        )));
    }
    if sealed.cipher.name != CIPHER_NAME {
        return Err(Error::UnsupportedEncryption(format!(
            "cipher {:?}",
            sealed.cipher.name
        )));
    }
    let KdfParams { n, r, p } = sealed.kdf.params;
    let params = ACCEPTED
        .into_iter()
        .find(|&(log_n, pr, pp)| n == 1 << log_n && r == pr && p == pp)
        .ok_or_else(|| {
            Error::UnsupportedEncryption(format!("scrypt parameters N={n} r={r} p={p}"))
        })?;
    if sealed.cipher.nonce.len() != NONCE_LEN {
        return Err(Error::MalformedPem(format!(
            "encrypted key nonce of {} bytes, expected {NONCE_LEN}",
            sealed.cipher.nonce.len()
        )));
    }
    let key = derive(password, &sealed.kdf.salt, params);
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(
            Nonce::from_slice(&sealed.cipher.nonce),
            sealed.ciphertext.as_slice(),
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::WrongPassword)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors published with go-securesystemslib's `encrypted` package: the plaintext
    // "reallyimportant" under the password "supersecret".
    const GO_LEGACY: &str = r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}"#;
    const GO_STANDARD: &str = r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}"#;
    const GO_UNSUPPORTED: &str = r#"{"kdf":{"name":"scrypt","params":{"N":99,"r":99,"p":99},"salt":"cZFcQJdwPhPyhU1R4qkl0qVOIjZd4V/7LYYAavq166k="},"cipher":{"name":"nacl/secretbox","nonce":"7vhRS7j0hEPBWV05skAdgLj81AkGeE7U"},"ciphertext":"6WYU/YSXVbYzl/NzaeAzmjLyfFhOOjLc0d8/GFV0aBFdJvyCcXc="}"#;

    #[test]
    fn decrypts_go_securesystemslib_vectors() {
        let plain = decrypt(GO_LEGACY.as_bytes(), b"supersecret").unwrap();
        assert_eq!(plain.as_slice(), b"reallyimportant");
        // This one holds the JSON encoding of the bytes (go's `encrypted.Marshal`).
        let plain = decrypt(GO_STANDARD.as_bytes(), b"supersecret").unwrap();
        assert_eq!(plain.as_slice(), br#""cmVhbGx5aW1wb3J0YW50""#);
    }

    #[test]
    fn wrong_password_is_told_apart() {
        assert!(matches!(
            decrypt(GO_LEGACY.as_bytes(), b"supersecreT"),
            Err(Error::WrongPassword)
        ));
    }

    #[test]
    fn unknown_scrypt_parameters_are_refused_before_deriving() {
        assert!(matches!(
            decrypt(GO_UNSUPPORTED.as_bytes(), b"supersecret"),
            Err(Error::UnsupportedEncryption(_))
        ));
    }

    #[test]
    fn round_trip_uses_the_legacy_parameters() {
        let sealed = encrypt(b"secret bytes", b"pw");
        let text = String::from_utf8(sealed.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":""#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""cipher":{"name":"nacl/secretbox","nonce":""#),
            "{text}"
        );
        assert_eq!(decrypt(&sealed, b"pw").unwrap().as_slice(), b"secret bytes");
        assert!(matches!(decrypt(&sealed, b""), Err(Error::WrongPassword)));
    }
}
