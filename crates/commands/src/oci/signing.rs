//! What `sign`, `image --push --sign`, `verify --key`, `run` and `smoke-test` share about
//! signatures: reading the keys, signing what a registry holds, printing what was signed.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cargo_metadata::camino::Utf8Path;
use oci_spec::distribution::Reference;
use tiny_oci::auth::Login;
use tiny_oci::registry::{self, Client, SignatureRefused, SignedManifest, VerifiedManifest};
use tiny_sign::{KeyPair, Password, PublicKey};
use xshell::Shell;

use crate::oci::reference::ImageRef;
use crate::report;
use crate::tools::credential_helper::stored_login;

/// The private key at `path`, opened with `COSIGN_PASSWORD` (empty when unset, as cosign
/// reads a key with no terminal to ask on).
pub fn signing_key(path: &Path) -> anyhow::Result<KeyPair> {
    let password = Password::from_env().unwrap_or_default();
    tiny_sign::read_private_key(path, password.as_bytes())
        .with_context(|| format!("signing key {}", path.display()))
}

/// The public key at `path`, to verify signatures with.
pub fn public_key(path: &Path) -> anyhow::Result<PublicKey> {
    tiny_sign::read_public_key(path).with_context(|| format!("public key {}", path.display()))
}

/// Checks every manifest `reference` stands for (each platform's image and the index) in its
/// registry: each must carry a signature by `key` (read from `key_path`) that vouches for
/// it. The first that does not ends the check with one line naming it and the fix.
pub fn require_signatures(
    client: &mut Client,
    reference: &Reference,
    key: &PublicKey,
    key_path: &Path,
) -> anyhow::Result<Vec<VerifiedManifest>> {
    let started = Instant::now();
    let mut verified = Vec::new();
    for verdict in registry::verify_manifests(client, reference, key)? {
        match verdict {
            Ok(manifest) => verified.push(manifest),
            Err(refused) => bail!("{}", refusal(reference, key_path, &refused)),
        }
    }
    eprintln!(
        "  verified the signatures of {reference}: {} manifests signed by {} ({:.2} s)",
        verified.len(),
        key_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(verified)
}

/// Refuses to go on unless the image `digest` in `repository` (`registry/name`, as
/// [`registry::docker_reference`] writes it) and, for an index, each of its images carry a
/// signature by `key` (read from `key_path`). The registry's credentials are the user's
/// stored ones.
pub fn require_signed_image(
    sh: &Shell,
    repository: &str,
    digest: &str,
    key: &PublicKey,
    key_path: &Path,
) -> anyhow::Result<()> {
    let reference: Reference = format!("{repository}@{digest}")
        .parse()
        .with_context(|| format!("`{repository}@{digest}` is not an image reference"))?;
    let mut client = Client::connect(&reference, stored_login(sh, &reference)?)?;
    match require_signatures(&mut client, &reference, key, key_path) {
        Err(e) if matches!(e.downcast_ref(), Some(tiny_oci::Error::NotFound(_))) => bail!(
            "{digest} is not in {repository}, so no signature there vouches for it: push \
             and sign it, or run the image that was signed"
        ),
        other => other.map(drop),
    }
}

/// Refuses to go on unless the engine's `image`, known as `reference`, was pulled from (or
/// pushed to) the registry `reference` names, and the digest the engine recorded there is
/// signed by `key` ([`require_signed_image`]). A local image has no such digest: nothing to
/// check against, so it is refused.
pub fn require_signed_engine_image(
    sh: &Shell,
    reference: &str,
    image: &tiny_engine::inspect::Image,
    key: &PublicKey,
    key_path: &Path,
) -> anyhow::Result<()> {
    let parsed: ImageRef = reference.parse()?;
    let Some(registry) = parsed.registry() else {
        bail!(
            "{reference} names no registry, so there is no signature to check it against: \
             pull the signed image (REGISTRY/NAME:TAG) and test that, or leave out \
             --require-signature"
        );
    };
    let name = reference.split('@').next().unwrap_or(reference);
    let repository = match name.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => name,
    };
    let digest = image
        .repo_digests
        .iter()
        .flatten()
        .find_map(|d| d.split_once('@').filter(|(r, _)| *r == repository))
        .map(|(_, digest)| digest);
    let Some(digest) = digest else {
        bail!(
            "{reference} has no digest from {registry} in the engine (built or loaded here, \
             never pulled), so there is nothing to check its signature against: pull it \
             from {registry} first, or leave out --require-signature"
        );
    };
    require_signed_image(sh, repository, digest, key, key_path)
}

/// The one line a refused signature ends a command with: which manifest, why, and the fix.
pub fn refusal(reference: &Reference, key_path: &Path, refused: &SignatureRefused) -> String {
    let subject = format!("{} {} of {reference}", refused.what, refused.digest);
    let resign = format!("sign it with `cargo xtask sign {reference} --key <private key>`");
    refusal_line(&subject, key_path, &refused.cause, &resign)
}

/// What a refusal says, for `subject`: why its signature by the key at `key_path` does not
/// hold, then `resign`, how to sign it again where it is.
fn refusal_line(subject: &str, key_path: &Path, cause: &tiny_sign::Error, resign: &str) -> String {
    let key = key_path.display();
    match cause {
        tiny_sign::Error::Unsigned => format!("{subject} is not signed: {resign}"),
        tiny_sign::Error::ForeignKey => format!(
            "{subject} is signed by other keys only, none of them {key}: give the public key \
             of the key it was signed with, or {resign} (the private half of {key})"
        ),
        tiny_sign::Error::DigestMismatch { signed, .. } => format!(
            "{subject} was changed after signing: the signature by {key} vouches for {signed}; \
             put back the image that was signed, or {resign} once you trust this one"
        ),
        tiny_sign::Error::TamperedPayload => format!(
            "{subject} has a tampered signature: its signed payload no longer verifies with \
             {key}; {resign}"
        ),
        other => format!("{subject}: its signatures cannot be read ({other}): {resign}"),
    }
}

/// Signs every manifest `reference` stands for in its registry (each platform's image, then
/// the index), reporting the step and how long it took.
pub fn sign(
    reference: &Reference,
    login: Login,
    key: &KeyPair,
) -> anyhow::Result<Vec<SignedManifest>> {
    let started = Instant::now();
    let mut client = Client::connect(reference, login)?;
    let signed = registry::sign_manifests(&mut client, reference, key, &now())?;
    let added = signed.iter().filter(|s| s.signature_added).count();
    eprintln!(
        "  signed {reference}: {} manifests, {added} new signatures ({:.2} s)",
        signed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(signed)
}

/// Signs the image named `name` in the OCI layout at `dir` (each platform's image, then the
/// index) for `reference`'s registry and repository, reporting the step and how long it took.
pub fn sign_layout(
    dir: &Utf8Path,
    name: &str,
    reference: &Reference,
    key: &KeyPair,
) -> anyhow::Result<Vec<SignedManifest>> {
    let started = Instant::now();
    let layout = tiny_oci::layout::Layout::open(dir)?;
    let identity = registry::docker_reference(reference);
    let signed = registry::sign_layout(&layout, name, &identity, key, &now())?;
    let added = signed.iter().filter(|s| s.signature_added).count();
    eprintln!(
        "  signed {name} in {dir} for {identity}: {} manifests, {added} new signatures ({:.2} s)",
        signed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(signed)
}

/// Checks every manifest the image named `name` in the OCI layout at `dir` stands for, as
/// [`require_signatures`] checks a registry's: the first without a signature by `key` (read
/// from `key_path`) ends the check with one line.
pub fn require_layout_signatures(
    dir: &Utf8Path,
    name: &str,
    key: &PublicKey,
    key_path: &Path,
) -> anyhow::Result<Vec<VerifiedManifest>> {
    let started = Instant::now();
    let layout = tiny_oci::layout::Layout::open(dir)?;
    let mut verified = Vec::new();
    for verdict in registry::verify_layout(&layout, name, key)? {
        match verdict {
            Ok(manifest) => verified.push(manifest),
            Err(refused) => bail!("{}", layout_refusal(dir, name, key_path, &refused)),
        }
    }
    eprintln!(
        "  verified the signatures of {name} in {dir}: {} manifests signed by {} ({:.2} s)",
        verified.len(),
        key_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(verified)
}

/// The one line a refused signature in a layout ends a command with.
fn layout_refusal(
    dir: &Utf8Path,
    name: &str,
    key_path: &Path,
    refused: &SignatureRefused,
) -> String {
    let subject = format!("{} {} of {name} in {dir}", refused.what, refused.digest);
    let resign = "build it again with `cargo xtask image --sign --key <private key>`";
    refusal_line(&subject, key_path, &refused.cause, resign)
}

/// Now, as RFC 3339 (a bundle referrer's creation time).
fn now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tiny_oci::epoch::Epoch::from_seconds(seconds)
        .unwrap_or(tiny_oci::epoch::Epoch::MAX)
        .rfc3339()
}

/// What was signed: a table, or JSON.
pub fn print_signed(signed: &[SignedManifest], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = signed
            .iter()
            .map(|s| {
                serde_json::json!({
                    "what": s.what,
                    "digest": s.digest.to_string(),
                    "signature_added": s.signature_added,
                    "bundle_added": s.bundle_added,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let added = |yes: bool| if yes { "added" } else { "already there" }.to_owned();
    let rows: Vec<Vec<String>> = signed
        .iter()
        .map(|s| {
            vec![
                s.what.clone(),
                s.digest.to_string(),
                added(s.signature_added),
                match s.what.ends_with(" provenance") {
                    // The envelope is the signature: no bundle of its own.
                    true => "-".to_owned(),
                    false => added(s.bundle_added),
                },
            ]
        })
        .collect();
    print!(
        "{}",
        report::table(&["signed", "digest", ".sig", "bundle"], &rows)
    );
    Ok(())
}
