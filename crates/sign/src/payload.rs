//! Cosign's simple-signing payload: the document a `.sig` layer carries and its signature
//! covers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::malformed;
use crate::{Digest, Error, Result};

/// `critical.type` of a cosign signature payload.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// A simple-signing payload (containers/image's "signature JSON" as cosign writes it): the
/// image manifest digest it vouches for and the reference the signer claims for the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference`: cosign writes the repository (e.g.
    /// `registry.example/team/app`, no tag, no digest) unless told another identity.
    /// Policies (containers/image's `signedIdentity`) compare it with the pulled reference.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional`: cosign's `-a key=value` annotations (written as `null` when empty).
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    critical: Critical,
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: Digest,
}

impl SimpleSigning {
    /// The payload for `manifest_digest` claimed as `docker_reference`, without annotations.
    pub fn new(docker_reference: &str, manifest_digest: &Digest) -> SimpleSigning {
        SimpleSigning {
            docker_reference: docker_reference.to_owned(),
            manifest_digest: manifest_digest.clone(),
            annotations: BTreeMap::new(),
        }
    }

    /// The payload bytes, byte for byte as cosign writes them (Go's `encoding/json`: fields in
    /// declaration order, no spaces, `<`, `>` and `&` escaped), so the same key signs the
    /// same bytes whichever tool signs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let document = Document {
            critical: Critical {
                identity: Identity {
                    docker_reference: self.docker_reference.clone(),
                },
                image: Image {
                    docker_manifest_digest: self.manifest_digest.clone(),
                },
                kind: COSIGN_SIGNATURE_TYPE.to_owned(),
            },
            optional: (!self.annotations.is_empty()).then(|| {
                self.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            }),
        };
        let json = serde_json::to_string(&document).expect("a payload always serialises");
        go_escape(&json).into_bytes()
    }

    /// Parses a payload; refuses one whose `critical.type` is not cosign's.
    pub fn from_bytes(bytes: &[u8]) -> Result<SimpleSigning> {
        let document: Document =
            serde_json::from_slice(bytes).map_err(|e| malformed("simple-signing payload", e))?;
        if document.critical.kind != COSIGN_SIGNATURE_TYPE {
            return Err(malformed(
                "simple-signing payload",
                format!("critical.type is {:?}", document.critical.kind),
            ));
        }
        let annotations = document
            .optional
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
        Ok(SimpleSigning {
            docker_reference: document.critical.identity.docker_reference,
            manifest_digest: document.critical.image.docker_manifest_digest,
            annotations,
        })
    }

    /// Checks that the payload vouches for `expected`.
    pub fn check_digest(&self, expected: &Digest) -> Result<()> {
        if &self.manifest_digest == expected {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                expected: expected.clone(),
                signed: self.manifest_digest.clone(),
            })
        }
    }
}

/// Go's `encoding/json` escapes these in strings (HTML safety); serde_json does not. The
/// structure of the document holds none of them, so replacing them everywhere only touches
/// string contents.
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec";

    #[test]
    fn bytes_match_cosign() {
        // The payload cosign's own tests expect for this reference and digest.
        let payload = SimpleSigning::new(
            "index.docker.io/namespace/image",
            &Digest::parse(DIGEST).unwrap(),
        );
        assert_eq!(
            String::from_utf8(payload.to_bytes()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"index.docker.io/namespace/image"},"image":{"docker-manifest-digest":"sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec"},"type":"cosign container image signature"},"optional":null}"#
        );
        assert_eq!(
            SimpleSigning::from_bytes(&payload.to_bytes()).unwrap(),
            payload
        );
    }

    #[test]
    fn annotations_go_in_optional_sorted_and_escaped() {
        let mut payload = SimpleSigning::new("r.example/a", &Digest::parse(DIGEST).unwrap());
        payload.annotations.insert("z".into(), "1".into());
        payload.annotations.insert("a".into(), "<&>".into());
        let text = String::from_utf8(payload.to_bytes()).unwrap();
        assert!(
            text.ends_with(r#""optional":{"a":"\u003c\u0026\u003e","z":"1"}}"#),
            "{text}"
        );
        assert_eq!(SimpleSigning::from_bytes(text.as_bytes()).unwrap(), payload);
    }

    #[test]
    fn other_payload_types_are_refused() {
        let text = r#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:4aa3054270f7a70b4528f2064ee90961788e1e1518703592ae4463de3b889dec"},"type":"atomic container signature"},"optional":null}"#;
        assert!(matches!(
            SimpleSigning::from_bytes(text.as_bytes()),
            Err(Error::MalformedDocument { .. })
        ));
    }
}
