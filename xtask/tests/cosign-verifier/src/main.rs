//! `cosign-verifier <image reference> <public key PEM file>`: checks, with sigstore's Rust
//! implementation of cosign verification and nothing else, that the image in a plain-HTTP
//! registry carries a `.sig` signature (cosign's simple-signing format) made with the key.
//! Offline: no Rekor, no Fulcio, no TUF. Exits 0 and prints `verified` when one does, 1 with
//! the reason otherwise.

use std::process::ExitCode;

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, verify_constraints};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use sigstore::trust::ManualTrustRoot;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match verify().await {
        Ok(count) => {
            println!("verified: {count} .sig signature layer(s) checked");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("refused: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn verify() -> Result<usize, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, key] = args.as_slice() else {
        return Err("usage: cosign-verifier <image reference> <public key PEM file>".into());
    };
    let image: OciReference = image.parse().map_err(|e| format!("reference: {e}"))?;
    let key = std::fs::read(key).map_err(|e| format!("reading the key: {e}"))?;
    let trust = ManualTrustRoot::default();
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .with_trust_repository(&trust)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &image)
        .await
        .map_err(|e| e.to_string())?;
    // The simple-signing layers of the `.sig` tag (a bundle referrer's layer holds a DSSE
    // envelope instead): the format checked here.
    let layers: Vec<_> = layers
        .into_iter()
        .filter(|l| {
            serde_json::from_slice::<serde_json::Value>(&l.raw_data)
                .is_ok_and(|v| v.get("critical").is_some())
        })
        .collect();
    if layers.is_empty() {
        return Err("no .sig signature layers for this image".into());
    }
    let verifier = PublicKeyVerifier::try_from(key.as_slice()).map_err(|e| e.to_string())?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter())
        .map_err(|e| format!("{} constraint(s) unsatisfied", e.unsatisfied_constraints.len()))?;
    Ok(layers.len())
}
