//! Content addresses.

use sha2::{Digest, Sha256};

/// The OCI digest of `bytes`: `sha256:` and the hex of their SHA-256.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}
