//! Signing images in a registry the way cosign does, and checking those signatures: the
//! `sha256-<hex>.sig` image (cosign's simple signing, read by cosign, containers/image,
//! Kyverno and policy-controller) and a sigstore bundle referrer (cosign 3's default), for
//! each platform manifest of an index and for the index itself. The documents are
//! [`tiny_sign`]'s; this module moves them.

use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest, ImageIndex, ImageManifest, MediaType,
};
use tiny_sign::{
    BUNDLE_MEDIA_TYPE, Bundle, DSSE_ENVELOPE_MEDIA_TYPE, Envelope, ImageSignature, KeyPair,
    PublicKey, SignatureImage, SimpleSigning, signature_tag,
};

use crate::layout::Layout;
use crate::referrers::{Kind, document_layer};

use super::client::{Client, RawManifest, is_index_type};
use crate::error::bail;

/// What signing did to one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The signed manifest's digest.
    pub digest: Digest,
    /// `os/arch` of a platform's image, `index` for an index, `image` for a manifest signed
    /// on its own; `<os/arch> sbom` for an image's SBOM referrer (signed as an artifact of
    /// its own) and `<os/arch> provenance` for the DSSE envelope of its provenance (`digest`
    /// is then the envelope referrer's, `signature_added` whether it was attached now).
    pub what: String,
    /// Whether a layer was added to its `.sig` image (`false`: this key's signature of
    /// this manifest was there already).
    pub signature_added: bool,
    /// Whether a bundle referrer was pushed (`false`: the same bundle was attached already).
    pub bundle_added: bool,
}

/// Where signatures are read and written: a repository of a registry
/// ([`RegistryRepository`]) or an OCI layout ([`LayoutStore`]). The signing and checking
/// code is written once over it, so a layout holds the same artifacts a registry would
/// (`.sig` images under their `sha256-<hex>.sig` names, referrers listed for their subject)
/// and `push` carries them unchanged.
pub trait SignatureStore {
    /// The manifest named `tag` (a tag, or a ref name in a layout), if there is one.
    fn tagged(&mut self, tag: &str) -> crate::Result<Option<Vec<u8>>>;
    /// A blob's bytes.
    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>>;
    /// Stores a blob.
    fn put_blob(&mut self, data: &[u8]) -> crate::Result<()>;
    /// Stores a manifest, named `tag` when given (else by digest only).
    fn put_manifest(&mut self, tag: Option<&str>, manifest: &RawManifest) -> crate::Result<()>;
    /// The referrers of `subject`: each listed descriptor with its manifest.
    fn referrers(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>>;
    /// Lists the stored manifest `listed` as a referrer of `subject`.
    fn list_referrer(&mut self, subject: &Digest, listed: Descriptor) -> crate::Result<()>;
}

/// A repository of a registry, as a [`SignatureStore`].
pub struct RegistryRepository<'a> {
    /// The registry's client.
    pub client: &'a mut Client,
    /// The repository (`team/app`).
    pub repository: &'a str,
}

impl SignatureStore for RegistryRepository<'_> {
    fn tagged(&mut self, tag: &str) -> crate::Result<Option<Vec<u8>>> {
        Ok(self
            .client
            .manifest_if_exists(self.repository, tag)?
            .map(|raw| raw.bytes))
    }

    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>> {
        self.client.blob_bytes(self.repository, digest)
    }

    fn put_blob(&mut self, data: &[u8]) -> crate::Result<()> {
        self.client.put_blob(self.repository, data).map(drop)
    }

    fn put_manifest(&mut self, tag: Option<&str>, manifest: &RawManifest) -> crate::Result<()> {
        let reference = tag.unwrap_or(manifest.digest.as_ref());
        self.client
            .put_manifest(self.repository, reference, manifest)
            .map(drop)
    }

    fn referrers(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
        Ok(self
            .client
            .referrer_manifests(self.repository, subject)?
            .into_iter()
            .map(|r| (r.descriptor, r.manifest))
            .collect())
    }

    fn list_referrer(&mut self, subject: &Digest, listed: Descriptor) -> crate::Result<()> {
        self.client
            .list_referrers(self.repository, subject, &[listed])
    }
}

/// An OCI layout, as a [`SignatureStore`]: `.sig` images are named in its `index.json`,
/// referrers listed there untagged (as the builtin engine lists the SBOM and provenance).
pub struct LayoutStore<'a>(pub &'a Layout);

impl SignatureStore for LayoutStore<'_> {
    fn tagged(&mut self, tag: &str) -> crate::Result<Option<Vec<u8>>> {
        match self.0.named(tag)? {
            Some(d) => Ok(Some(self.0.store().read(d.digest())?)),
            None => Ok(None),
        }
    }

    fn blob(&mut self, digest: &Digest) -> crate::Result<Vec<u8>> {
        self.0.store().read(digest)
    }

    fn put_blob(&mut self, data: &[u8]) -> crate::Result<()> {
        self.0.store().write(data).map(drop)
    }

    fn put_manifest(&mut self, tag: Option<&str>, manifest: &RawManifest) -> crate::Result<()> {
        let digest = self.0.store().write(&manifest.bytes)?;
        if let Some(tag) = tag {
            let descriptor = Descriptor::new(
                MediaType::from(manifest.media_type.as_str()),
                manifest.bytes.len() as u64,
                digest,
            );
            self.0.tag(vec![(tag.to_owned(), descriptor)])?;
        }
        Ok(())
    }

    fn referrers(&mut self, subject: &Digest) -> crate::Result<Vec<(Descriptor, ImageManifest)>> {
        self.0.referrers(subject)
    }

    fn list_referrer(&mut self, _subject: &Digest, listed: Descriptor) -> crate::Result<()> {
        self.0.list(listed)
    }
}

/// The manifests `reference` stands for, each with what it is: an index's image manifests
/// (by platform), then the index; or the one image manifest.
pub fn signable_manifests(
    client: &mut Client,
    reference: &Reference,
) -> crate::Result<Vec<(Descriptor, String)>> {
    let asked = reference.digest().or(reference.tag()).unwrap_or("latest");
    let top = client.manifest(reference.repository(), asked)?;
    manifests_of(top.descriptor()?, &top.bytes, &reference.to_string())
}

/// The manifests the layout's image named `name` stands for, as [`signable_manifests`]
/// lists a registry's.
pub fn layout_signable_manifests(
    layout: &Layout,
    name: &str,
) -> crate::Result<Vec<(Descriptor, String)>> {
    let top = layout.find(name)?;
    let bytes = layout.store().read(top.digest())?;
    let top = Descriptor::new(top.media_type().clone(), top.size(), top.digest().clone());
    manifests_of(top, &bytes, name)
}

fn manifests_of(
    top: Descriptor,
    bytes: &[u8],
    named: &str,
) -> crate::Result<Vec<(Descriptor, String)>> {
    let mut found = Vec::new();
    if is_index_type(top.media_type().as_ref()) {
        let index = ImageIndex::from_reader(bytes).with_context(|| format!("the index {named}"))?;
        for entry in index.manifests() {
            let what = match entry.platform() {
                Some(p) => format!("{}/{}", p.os(), p.architecture()),
                None => "image".to_owned(),
            };
            found.push((entry.clone(), what));
        }
        found.push((top, "index".to_owned()));
    } else {
        found.push((top, "image".to_owned()));
    }
    Ok(found)
}

/// The identity a signature claims for images of `reference`: its registry and repository
/// (`registry.example/team/app`, no tag or digest), as cosign writes it and containers/image's
/// `matchRepository` compares it.
pub fn docker_reference(reference: &Reference) -> String {
    format!(
        "{}/{}",
        reference.resolve_registry(),
        reference.repository()
    )
}

/// Signs every manifest `reference` stands for ([`signable_manifests`]) with `key`: for each,
/// its `.sig` image gets this key's simple-signing layer (merged with what the tag holds:
/// other keys' signatures stay, the same signature is not added twice) and a sigstore bundle
/// referrer is attached unless the same one is. `created` (RFC 3339) is the bundle
/// referrer's creation time.
///
/// What is attached to each platform's image is signed too: the SBOM referrer gets a `.sig`
/// and a bundle of its own (as `cosign sign` signs an attachment), and the provenance
/// statement is attached again as a DSSE envelope signed with `key` (artifact type
/// [`tiny_sign::DSSE_ENVELOPE_MEDIA_TYPE`], the key named by its hint), which in-toto's
/// tools verify.
///
/// The right to push is checked before anything is pushed, so a registry that refuses pushes
/// leaves nothing behind. The platform images are signed at the same time, one thread and
/// connection each (the registry's round trips, not the signing, take the time), and the
/// index after them: an index is never signed while one of its images is not.
///
/// ```no_run
/// # fn main() -> tiny_oci::Result<()> {
/// use tiny_oci::auth::Login;
/// use tiny_oci::registry::{Client, sign_manifests};
///
/// let reference = "127.0.0.1:5000/team/app:1.0".parse().unwrap();
/// let mut client = Client::connect(&reference, Login::default())?;
/// let key = tiny_sign::KeyPair::generate();
/// for signed in sign_manifests(&mut client, &reference, &key, "2025-01-01T00:00:00Z")? {
///     println!("{} {} new: {}", signed.what, signed.digest, signed.signature_added);
/// }
/// # Ok(()) }
/// ```
pub fn sign_manifests(
    client: &mut Client,
    reference: &Reference,
    key: &KeyPair,
    created: &str,
) -> crate::Result<Vec<SignedManifest>> {
    let repository = reference.repository();
    let manifests = signable_manifests(client, reference)?;
    client.check_push(repository)?;
    let identity = docker_reference(reference);
    let (indexes, images): (Vec<_>, Vec<_>) =
        manifests.into_iter().partition(|(_, what)| what == "index");
    let signed_images: Vec<crate::Result<Vec<SignedManifest>>> = std::thread::scope(|scope| {
        let threads: Vec<_> = images
            .into_iter()
            .map(|(descriptor, what)| {
                let mut client = client.fork();
                let identity = &identity;
                scope.spawn(move || {
                    let mut store = RegistryRepository {
                        client: &mut client,
                        repository,
                    };
                    sign_manifest(&mut store, identity, descriptor, what, key, created)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut signed = Vec::new();
    for one in signed_images {
        signed.extend(one?);
    }
    let mut store = RegistryRepository { client, repository };
    signed.extend(sign_in(&mut store, indexes, &identity, key, created)?);
    Ok(signed)
}

/// Signs the image named `name` in `layout` as [`sign_manifests`] signs a registry's, with
/// the signatures claiming `identity` (the registry and repository it is to be pushed to,
/// see [`docker_reference`]): the `.sig` images are named `sha256-<hex>.sig` in its
/// `index.json`, the bundles and the signed provenance listed there as referrers, so
/// [`push_layout`](super::push_layout) carries them to the registry.
///
/// ```no_run
/// # fn main() -> tiny_oci::Result<()> {
/// use tiny_oci::layout::Layout;
/// use tiny_oci::registry::sign_layout;
///
/// let layout = Layout::open(camino::Utf8Path::new("target/oci/app"))?;
/// let key = tiny_sign::KeyPair::generate();
/// let signed = sign_layout(&layout, "1.0", "registry.example/team/app", &key, "2025-01-01T00:00:00Z")?;
/// println!("{} manifests signed", signed.len());
/// # Ok(()) }
/// ```
pub fn sign_layout(
    layout: &Layout,
    name: &str,
    identity: &str,
    key: &KeyPair,
    created: &str,
) -> crate::Result<Vec<SignedManifest>> {
    let manifests = layout_signable_manifests(layout, name)?;
    sign_in(&mut LayoutStore(layout), manifests, identity, key, created)
}

fn sign_in(
    store: &mut impl SignatureStore,
    manifests: Vec<(Descriptor, String)>,
    identity: &str,
    key: &KeyPair,
    created: &str,
) -> crate::Result<Vec<SignedManifest>> {
    let mut signed = Vec::new();
    for (descriptor, what) in manifests {
        signed.extend(sign_manifest(
            store, identity, descriptor, what, key, created,
        )?);
    }
    Ok(signed)
}

/// Signs one manifest and, for a platform's image, what is attached to it: the manifest's
/// row first, then its attachments'.
fn sign_manifest(
    store: &mut impl SignatureStore,
    identity: &str,
    descriptor: Descriptor,
    what: String,
    key: &KeyPair,
    created: &str,
) -> crate::Result<Vec<SignedManifest>> {
    let (signature_added, bundle_added) = sign_one(store, identity, &descriptor, key, created)
        .with_context(|| format!("signing {what} {}", descriptor.digest()))?;
    let attached = match what.as_str() {
        "index" => Vec::new(),
        _ => sign_attached(store, identity, &descriptor, &what, key, created)?,
    };
    let mut signed = vec![SignedManifest {
        digest: descriptor.digest().clone(),
        what,
        signature_added,
        bundle_added,
    }];
    signed.extend(attached);
    Ok(signed)
}

fn sign_digest(digest: &Digest) -> anyhow::Result<tiny_sign::Digest> {
    Ok(tiny_sign::Digest::parse(digest.as_ref())?)
}

fn sign_one(
    store: &mut impl SignatureStore,
    identity: &str,
    subject: &Descriptor,
    key: &KeyPair,
    created: &str,
) -> anyhow::Result<(bool, bool)> {
    let digest = sign_digest(subject.digest())?;
    let public = key.public_key();

    let signature = ImageSignature::sign(key, &SimpleSigning::new(identity, &digest));
    let tag = signature_tag(&digest);
    let mut sigs = match store.tagged(&tag)? {
        Some(bytes) => SignatureImage::from_manifest(&bytes)
            .with_context(|| format!("the signatures at {tag}"))?,
        None => SignatureImage::new(),
    };
    let signature_added = sigs.add(&signature, &public);
    if signature_added {
        store.put_blob(signature.payload())?;
        store.put_blob(&sigs.config().data)?;
        let manifest = sigs.manifest();
        put(store, Some(&tag), &manifest)?;
    }

    let bundle = Bundle::sign_image(key, &digest);
    let artifact = bundle.referrer(&sign_descriptor(subject)?, created)?;
    let bundle_added = attach(store, subject.digest(), &artifact)?;
    Ok((signature_added, bundle_added))
}

fn sign_descriptor(subject: &Descriptor) -> anyhow::Result<tiny_sign::Descriptor> {
    Ok(tiny_sign::Descriptor {
        media_type: subject.media_type().to_string(),
        size: subject.size(),
        digest: sign_digest(subject.digest())?,
        annotations: Default::default(),
        artifact_type: None,
    })
}

/// Attaches `artifact` as a referrer of `subject` unless a referrer with the same document
/// (layer) is attached already; returns whether it was attached now.
fn attach(
    store: &mut impl SignatureStore,
    subject: &Digest,
    artifact: &tiny_sign::Artifact,
) -> anyhow::Result<bool> {
    let layer = &artifact.manifest.layers[0].digest;
    let attached = store.referrers(subject)?.into_iter().any(|(_, manifest)| {
        manifest
            .layers()
            .iter()
            .any(|l| l.digest().as_ref() == layer.as_str())
    });
    if attached {
        return Ok(false);
    }
    for blob in &artifact.blobs {
        store.put_blob(&blob.data)?;
    }
    let raw = put(store, None, &artifact.manifest)?;
    let artifact_type = artifact
        .manifest
        .artifact_type
        .clone()
        .context("a referrer without an artifact type")?;
    let listed: Descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(raw.digest.clone())
        .size(raw.bytes.len() as u64)
        .artifact_type(MediaType::from(artifact_type.as_str()))
        .annotations(
            artifact
                .manifest
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()?;
    store.list_referrer(subject, listed)?;
    Ok(true)
}

/// Signs what is attached to the image `subject` (see [`sign_manifests`]): its SBOM
/// referrer as an artifact of its own (a `.sig` and a bundle for the referrer manifest's
/// digest, as `cosign sign` does for an attachment), and its provenance statement again as
/// a DSSE envelope signed with `key` (in-toto's attestation format), attached beside it.
fn sign_attached(
    store: &mut impl SignatureStore,
    identity: &str,
    subject: &Descriptor,
    what: &str,
    key: &KeyPair,
    created: &str,
) -> anyhow::Result<Vec<SignedManifest>> {
    let mut signed = Vec::new();
    for (descriptor, manifest) in store.referrers(subject.digest())? {
        match Kind::of_manifest(&manifest) {
            Some(Kind::Sbom) => {
                let (signature_added, bundle_added) =
                    sign_one(store, identity, &descriptor, key, created)
                        .with_context(|| format!("signing the sbom of {what}"))?;
                signed.push(SignedManifest {
                    digest: descriptor.digest().clone(),
                    what: format!("{what} sbom"),
                    signature_added,
                    bundle_added,
                });
            }
            Some(Kind::Provenance) => {
                let layer = document_layer(&manifest)?;
                let statement = store.blob(layer.digest())?;
                let envelope = Envelope::sign_statement(key, &statement);
                let artifact = envelope.referrer(&sign_descriptor(subject)?, created)?;
                let added = attach(store, subject.digest(), &artifact)
                    .with_context(|| format!("attaching the signed provenance of {what}"))?;
                signed.push(SignedManifest {
                    digest: artifact.manifest.digest().as_str().parse()?,
                    what: format!("{what} provenance"),
                    signature_added: added,
                    bundle_added: false,
                });
            }
            None => {}
        }
    }
    Ok(signed)
}

fn put(
    store: &mut impl SignatureStore,
    tag: Option<&str>,
    manifest: &tiny_sign::Manifest,
) -> anyhow::Result<RawManifest> {
    let bytes = manifest.to_bytes();
    let raw = RawManifest {
        media_type: manifest.media_type.clone(),
        digest: crate::blobstore::sha256_digest(&bytes)?,
        bytes,
    };
    store.put_manifest(tag, &raw)?;
    Ok(raw)
}

/// What [`verify_manifest`] found for one manifest whose signatures hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// `os/arch`, `index` or `image`, as in [`SignedManifest::what`].
    pub what: String,
    /// The identity the accepted `.sig` signature claims (`critical.identity.docker-reference`).
    pub docker_reference: String,
    /// How many bundle referrers by the key vouch for it too.
    pub bundles: usize,
}

/// A manifest whose signatures do not hold: none at all, other keys' only, or ours over
/// other bytes. `cause` says which ([`tiny_sign::Error::Unsigned`],
/// [`tiny_sign::Error::ForeignKey`], [`tiny_sign::Error::TamperedPayload`],
/// [`tiny_sign::Error::DigestMismatch`], or a malformed signature document).
#[derive(Debug, thiserror::Error)]
#[error("{what} {digest}: {cause}")]
pub struct SignatureRefused {
    /// The manifest's digest.
    pub digest: Digest,
    /// `os/arch`, `index` or `image`, as in [`SignedManifest::what`].
    pub what: String,
    /// Why it is refused.
    #[source]
    pub cause: tiny_sign::Error,
}

/// One manifest's verdict: its signatures hold, or why they do not. The outer
/// [`crate::Result`] of the functions returning it is for the registry (unreachable,
/// refused), the verdict for the signatures.
pub type Verdict = Result<VerifiedManifest, SignatureRefused>;

/// Checks that `subject` in `repository` carries a `.sig` signature by `key` that vouches for
/// its digest, and that every sigstore bundle referrer signed by `key` (its key hint names
/// it) verifies and names the digest, as every DSSE envelope referrer (the signed
/// provenance) whose signature names the key. Bundles and envelopes by other keys are not
/// ours to judge and are skipped.
///
/// The verdict is [`SignatureRefused`] with [`tiny_sign::Error::Unsigned`] when there is no
/// `.sig` image, [`tiny_sign::Error::ForeignKey`] when only other keys signed, and
/// [`tiny_sign::Error::TamperedPayload`] or [`tiny_sign::Error::DigestMismatch`] when the
/// key's signature is over other bytes (the manifest was replaced after signing).
pub fn verify_manifest(
    store: &mut impl SignatureStore,
    subject: &Descriptor,
    what: &str,
    key: &PublicKey,
) -> crate::Result<Verdict> {
    let refused = |cause: tiny_sign::Error| SignatureRefused {
        digest: subject.digest().clone(),
        what: what.to_owned(),
        cause,
    };
    let digest = sign_digest(subject.digest())?;
    let tag = signature_tag(&digest);
    let Some(bytes) = store.tagged(&tag)? else {
        return Ok(Err(refused(tiny_sign::Error::Unsigned)));
    };
    let sigs = match SignatureImage::from_manifest(&bytes) {
        Ok(sigs) => sigs,
        Err(e) => return Ok(Err(refused(e))),
    };
    let mut payloads = Vec::new();
    for layer in sigs.layers() {
        let layer_digest: Digest = layer
            .digest
            .as_str()
            .parse()
            .with_context(|| format!("a layer of {tag}"))?;
        payloads.push(store.blob(&layer_digest)?);
    }
    let signed = match sigs.verify(key, &digest, &payloads) {
        Ok(signed) => signed,
        Err(e) => return Ok(Err(refused(e))),
    };
    let hint = key.hint();
    let mut bundles = 0;
    for (_, manifest) in store.referrers(subject.digest())? {
        let artifact_type = manifest.artifact_type().as_ref().map(|t| t.to_string());
        let Some(layer) = manifest.layers().first() else {
            continue;
        };
        if artifact_type.as_deref() == Some(DSSE_ENVELOPE_MEDIA_TYPE) {
            // A signed attestation (the provenance): one that names this key must verify.
            let bytes = store.blob(layer.digest())?;
            let checked = Envelope::from_json(&bytes).and_then(|envelope| {
                match envelope
                    .signatures
                    .iter()
                    .any(|s| s.keyid.as_deref() == Some(&hint))
                {
                    true => envelope.verify(key, Some(&hint)),
                    false => Ok(()),
                }
            });
            if let Err(e) = checked {
                return Ok(Err(refused(e)));
            }
            continue;
        }
        if artifact_type.as_deref() != Some(BUNDLE_MEDIA_TYPE) {
            continue;
        }
        let bytes = store.blob(layer.digest())?;
        let bundle = match Bundle::from_json(&bytes) {
            Ok(bundle) => bundle,
            Err(e) => return Ok(Err(refused(e))),
        };
        if bundle.key_hint != hint {
            continue;
        }
        if let Err(e) = bundle.verify_image(key, &digest) {
            return Ok(Err(refused(e)));
        }
        bundles += 1;
    }
    Ok(Ok(VerifiedManifest {
        digest: subject.digest().clone(),
        what: what.to_owned(),
        docker_reference: signed.docker_reference,
        bundles,
    }))
}

/// Checks every manifest `reference` stands for ([`signable_manifests`]: each platform's
/// image, then the index) with [`verify_manifest`], and returns every verdict, so a caller
/// can name each manifest that fails.
///
/// ```no_run
/// # fn main() -> tiny_oci::Result<()> {
/// use tiny_oci::auth::Login;
/// use tiny_oci::registry::{Client, verify_manifests};
///
/// let reference = "127.0.0.1:5000/team/app:1.0".parse().unwrap();
/// let mut client = Client::connect(&reference, Login::default())?;
/// let key = tiny_sign::PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----...").unwrap();
/// for verdict in verify_manifests(&mut client, &reference, &key)? {
///     match verdict {
///         Ok(signed) => println!("{} {} signed as {}", signed.what, signed.digest, signed.docker_reference),
///         Err(refused) => println!("refused: {refused}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub fn verify_manifests(
    client: &mut Client,
    reference: &Reference,
    key: &PublicKey,
) -> crate::Result<Vec<Verdict>> {
    let manifests = signable_manifests(client, reference)?;
    let mut store = RegistryRepository {
        client,
        repository: reference.repository(),
    };
    verify_in(&mut store, &manifests, &reference.to_string(), key)
}

/// Checks the image named `name` in `layout` as [`verify_manifests`] checks a registry's:
/// the signatures [`sign_layout`] stored there.
///
/// ```no_run
/// # fn main() -> tiny_oci::Result<()> {
/// use tiny_oci::layout::Layout;
/// use tiny_oci::registry::verify_layout;
///
/// let layout = Layout::open(camino::Utf8Path::new("target/oci/app"))?;
/// let key = tiny_sign::PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----...").unwrap();
/// let refused = verify_layout(&layout, "1.0", &key)?.into_iter().filter(|v| v.is_err()).count();
/// println!("{refused} manifests refused");
/// # Ok(()) }
/// ```
pub fn verify_layout(layout: &Layout, name: &str, key: &PublicKey) -> crate::Result<Vec<Verdict>> {
    let manifests = layout_signable_manifests(layout, name)?;
    verify_in(&mut LayoutStore(layout), &manifests, name, key)
}

fn verify_in(
    store: &mut impl SignatureStore,
    manifests: &[(Descriptor, String)],
    named: &str,
    key: &PublicKey,
) -> crate::Result<Vec<Verdict>> {
    if manifests.is_empty() {
        bail!("{named} lists no manifests to verify");
    }
    manifests
        .iter()
        .map(|(descriptor, what)| verify_manifest(store, descriptor, what, key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout with one image named `1.0` (a config and no layers): enough to sign.
    fn layout_with_image(dir: &std::path::Path) -> (Layout, Descriptor) {
        let dir = camino::Utf8Path::from_path(dir).unwrap();
        let layout = Layout::create(dir).unwrap();
        let config = layout
            .put_bytes(
                MediaType::ImageConfig,
                br#"{"architecture":"amd64","os":"linux"}"#,
            )
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [],
        });
        let image = layout
            .put_json(MediaType::ImageManifest, &manifest)
            .unwrap();
        layout.tag(vec![("1.0".to_owned(), image.clone())]).unwrap();
        (layout, image)
    }

    #[test]
    fn a_layout_holds_the_signatures_and_verifies_them_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, image) = layout_with_image(dir.path());
        let key = KeyPair::generate();
        let created = "2025-01-01T00:00:00Z";
        let signed = sign_layout(&layout, "1.0", "127.0.0.1:5000/app", &key, created).unwrap();
        assert_eq!(signed.len(), 1);
        assert!(signed[0].signature_added && signed[0].bundle_added);
        let tag = signature_tag(&sign_digest(image.digest()).unwrap());
        assert!(layout.named(&tag).unwrap().is_some(), "{tag} is not named");
        assert_eq!(layout.referrers(image.digest()).unwrap().len(), 1);
        Layout::check_writable(&layout.dir).unwrap();

        // Signing again adds nothing; another key's signature joins ours.
        let again = sign_layout(&layout, "1.0", "127.0.0.1:5000/app", &key, created).unwrap();
        assert!(!again[0].signature_added && !again[0].bundle_added);
        let other = KeyPair::generate();
        sign_layout(&layout, "1.0", "127.0.0.1:5000/app", &other, created).unwrap();
        for k in [&key, &other] {
            let verdicts = verify_layout(&layout, "1.0", &k.public_key()).unwrap();
            let verified = verdicts[0].as_ref().unwrap();
            assert_eq!(verified.docker_reference, "127.0.0.1:5000/app");
            assert_eq!(verified.bundles, 1);
        }
        let stranger = KeyPair::generate().public_key();
        let refused = verify_layout(&layout, "1.0", &stranger).unwrap();
        assert!(matches!(
            refused[0].as_ref().unwrap_err().cause,
            tiny_sign::Error::ForeignKey
        ));
    }

    #[test]
    fn an_unsigned_layout_is_refused_as_unsigned() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = layout_with_image(dir.path());
        let key = KeyPair::generate().public_key();
        let refused = verify_layout(&layout, "1.0", &key).unwrap();
        assert!(matches!(
            refused[0].as_ref().unwrap_err().cause,
            tiny_sign::Error::Unsigned
        ));
    }
}
