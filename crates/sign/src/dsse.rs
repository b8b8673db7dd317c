//! DSSE envelopes (Dead Simple Signing Envelope), the wrapper in-toto attestations and
//! sigstore bundles sign statements with.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::error::malformed;
use crate::oci::{OCI_EMPTY_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use crate::{
    Artifact, Blob, CREATED_ANNOTATION, Descriptor, Error, KeyPair, Manifest, PublicKey, Result,
};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of a DSSE envelope (in-toto's attestation envelope): the artifact type and
/// layer media type of [`Envelope::referrer`].
pub const DSSE_ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Referrer annotation naming the predicate type of the in-toto statement an envelope signs.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";

/// DSSE's pre-authentication encoding: what is actually signed,
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in decimal ASCII.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A signed DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is (e.g. [`IN_TOTO_PAYLOAD_TYPE`]); covered by the signatures.
    pub payload_type: String,
    /// The signed bytes.
    pub payload: Vec<u8>,
    /// The signatures over [`pae`] of the two.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// An identifier of the key agreed on with verifiers (optional: not covered by the
    /// signature, only a hint for picking the key).
    pub keyid: Option<String>,
    /// The DER ECDSA signature.
    pub sig: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvelopeJson {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    pub(crate) signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SignatureJson {
    /// Written as `""` when unset (go-securesystemslib does; python securesystemslib requires
    /// the field), omitted inside sigstore bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keyid: Option<String>,
    pub(crate) sig: String,
}

impl Envelope {
    /// Signs `payload` as `payload_type` with `key`; `keyid` is stored beside the signature
    /// when given.
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        key: &KeyPair,
        keyid: Option<&str>,
    ) -> Envelope {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_owned(),
            payload: payload.to_vec(),
            signatures: vec![EnvelopeSignature {
                keyid: keyid.map(str::to_owned),
                sig,
            }],
        }
    }

    /// The envelope as JSON: `payload`, `payloadType`, `signatures` of `keyid` (`""` when
    /// unset) and `sig`, bytes in standard base64.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = self.to_json_struct();
        for s in &mut json.signatures {
            s.keyid.get_or_insert_with(String::new);
        }
        serde_json::to_vec(&json).expect("an envelope always serialises")
    }

    pub(crate) fn to_json_struct(&self) -> EnvelopeJson {
        EnvelopeJson {
            payload: crate::base64(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| SignatureJson {
                    keyid: s.keyid.clone(),
                    sig: crate::base64(&s.sig),
                })
                .collect(),
        }
    }

    /// Parses an envelope; base64 may be standard or URL-safe, padded or not (DSSE allows
    /// either). An empty `keyid` reads as unset.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope> {
        let json: EnvelopeJson =
            serde_json::from_slice(bytes).map_err(|e| malformed("DSSE envelope", e))?;
        Envelope::from_json_struct(json)
    }

    pub(crate) fn from_json_struct(json: EnvelopeJson) -> Result<Envelope> {
        let payload = crate::base64_decode(&json.payload)
            .map_err(|e| malformed("DSSE envelope", format!("payload: {e}")))?;
        let signatures = json
            .signatures
            .into_iter()
            .map(|s| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid.filter(|k| !k.is_empty()),
                    sig: crate::base64_decode(&s.sig)
                        .map_err(|e| malformed("DSSE envelope", format!("sig: {e}")))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Envelope {
            payload_type: json.payload_type,
            payload,
            signatures,
        })
    }

    /// Signs an in-toto statement (JSON bytes) with `key`, naming the key by its
    /// [`PublicKey::hint`] as `keyid`: the envelope in-toto and securesystemslib verify.
    ///
    /// ```
    /// use tiny_sign::{Envelope, KeyPair};
    ///
    /// let key = KeyPair::generate();
    /// let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;
    /// let envelope = Envelope::sign_statement(&key, statement);
    /// envelope.verify(&key.public_key(), Some(&key.public_key().hint()))?;
    /// assert_eq!(envelope.predicate_type()?, "https://slsa.dev/provenance/v1");
    /// # Ok::<(), tiny_sign::Error>(())
    /// ```
    pub fn sign_statement(key: &KeyPair, statement: &[u8]) -> Envelope {
        let keyid = key.public_key().hint();
        Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement, key, Some(&keyid))
    }

    /// The `predicateType` of the in-toto statement the envelope carries.
    pub fn predicate_type(&self) -> Result<String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Statement {
            predicate_type: String,
        }
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(malformed(
                "DSSE envelope",
                format!(
                    "payload type {:?}, not an in-toto statement",
                    self.payload_type
                ),
            ));
        }
        let statement: Statement =
            serde_json::from_slice(&self.payload).map_err(|e| malformed("in-toto statement", e))?;
        Ok(statement.predicate_type)
    }

    /// The OCI referrer of `subject` carrying this envelope: an image manifest with artifact
    /// type [`DSSE_ENVELOPE_MEDIA_TYPE`], the empty `{}` config, the envelope ([`Envelope::to_json`])
    /// as its one layer, and annotations [`PREDICATE_TYPE_ANNOTATION`] and
    /// [`CREATED_ANNOTATION`] (`created`, RFC 3339).
    pub fn referrer(&self, subject: &Descriptor, created: &str) -> Result<Artifact> {
        let config = Blob {
            media_type: OCI_EMPTY_MEDIA_TYPE.to_owned(),
            data: b"{}".to_vec(),
        };
        let layer = Blob {
            media_type: DSSE_ENVELOPE_MEDIA_TYPE.to_owned(),
            data: self.to_json(),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST_MEDIA_TYPE.to_owned(),
            config: config.descriptor(),
            layers: vec![layer.descriptor()],
            annotations: BTreeMap::from([
                (PREDICATE_TYPE_ANNOTATION.to_owned(), self.predicate_type()?),
                (CREATED_ANNOTATION.to_owned(), created.to_owned()),
            ]),
            subject: Some(Descriptor {
                media_type: subject.media_type.clone(),
                size: subject.size,
                digest: subject.digest.clone(),
                annotations: BTreeMap::new(),
                artifact_type: None,
            }),
            artifact_type: Some(DSSE_ENVELOPE_MEDIA_TYPE.to_owned()),
        };
        Ok(Artifact {
            manifest,
            blobs: vec![config, layer],
        })
    }

    /// Checks that some signature verifies with `key`. `keyid`, when given, is the identifier
    /// `key` is known by: a failing signature that names it means the payload (or its type)
    /// was changed after signing.
    ///
    /// Errors: [`Error::Unsigned`] (no signatures), [`Error::TamperedPayload`],
    /// [`Error::ForeignKey`] (signatures by other keys only, or failing ones that name no key).
    pub fn verify(&self, key: &PublicKey, keyid: Option<&str>) -> Result<()> {
        if self.signatures.is_empty() {
            return Err(Error::Unsigned);
        }
        let signed = pae(&self.payload_type, &self.payload);
        let mut tampered = false;
        for s in &self.signatures {
            match key.verify(&signed, &s.sig) {
                Ok(()) => return Ok(()),
                Err(_) => tampered |= keyid.is_some() && s.keyid.as_deref() == keyid,
            }
        }
        Err(if tampered {
            Error::TamperedPayload
        } else {
            Error::ForeignKey
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_specification_example() {
        // The DSSE protocol document's worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = KeyPair::generate();
        let public = key.public_key();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key, Some("k1"));
        let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
        parsed.verify(&public, Some("k1")).unwrap();
        parsed.verify(&public, None).unwrap();

        let mut changed = parsed.clone();
        changed.payload[5] = b'2';
        assert!(matches!(
            changed.verify(&public, Some("k1")),
            Err(Error::TamperedPayload)
        ));
        assert!(matches!(
            changed.verify(&public, None),
            Err(Error::ForeignKey)
        ));
        let mut retyped = parsed.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            retyped.verify(&public, Some("k1")),
            Err(Error::TamperedPayload)
        ));

        let other = KeyPair::generate().public_key();
        assert!(matches!(
            parsed.verify(&other, Some("k2")),
            Err(Error::ForeignKey)
        ));
        let unsigned = Envelope {
            signatures: vec![],
            ..parsed
        };
        assert!(matches!(
            unsigned.verify(&public, None),
            Err(Error::Unsigned)
        ));
    }

    #[test]
    fn keyid_is_written_empty_when_unset() {
        let key = KeyPair::generate();
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &key, None);
        let json: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
        assert_eq!(json["signatures"][0]["keyid"], "");
        assert_eq!(json["payload"], "e30=");
        assert_eq!(json["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(
            Envelope::from_json(&envelope.to_json()).unwrap().signatures[0].keyid,
            None
        );
    }
}
