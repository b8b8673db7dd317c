//! Pulling one platform of a base image into a cache layout.

use std::collections::HashMap;
use std::path::Path;

use crate::error::ensure;
use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};

use crate::blobstore::BlobStore;
use crate::layout::ref_name;
use std::sync::Arc;

use super::client::*;
use crate::auth::Login;
use crate::progress::Progress;

/// A base image pulled for one platform into the cache layout.
#[derive(Debug, Clone)]
pub struct PulledBase {
    /// The manifest's descriptor in the cache layout (with its platform).
    pub descriptor: Descriptor,
    /// The image's manifest.
    pub manifest: ImageManifest,
    /// The image's configuration.
    pub config: ImageConfiguration,
}

/// The name under which a pulled base is listed in the cache's `index.json`
/// (`org.opencontainers.image.ref.name`): the reference as asked for, and the platform.
pub fn cache_name(reference: &Reference, platform: &Platform) -> String {
    format!("{reference}+{}", platform_name(platform).replace('/', "-"))
}

/// Pulls `reference` for `platform` into the OCI layout `cache` (created if missing): the
/// manifest (chosen from the index when the reference names one), its config and its layers,
/// each checked against its digest. A reference pinned by digest that is already in the
/// cache is served from it without asking the registry. `login` is as for a push. The manifest is listed in the cache's `index.json` under [`cache_name`].
pub fn pull_base(
    reference: &Reference,
    platform: &Platform,
    cache: &Path,
    login: Login,
    progress: Arc<dyn Progress>,
) -> crate::Result<PulledBase> {
    let name = cache_name(reference, platform);
    if reference.digest().is_some()
        && cache.join("index.json").exists()
        && let Some(pulled) = cached_base(&BlobStore::create(cache)?, &name)?
    {
        return Ok(pulled);
    }
    // The registry first: one that cannot be reached leaves no cache behind.
    let mut client = Client::connect(reference, login)?.with_progress(progress);
    let store = BlobStore::create(cache)?;
    let repository = reference.repository();
    let asked = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_owned();
    let mut raw = client.manifest(repository, &asked)?;
    if raw.is_index() {
        let index = ImageIndex::from_reader(raw.bytes.as_slice())
            .with_context(|| format!("the index of {reference}"))?;
        let entry = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| platform_matches(p, platform))
            })
            .with_context(|| {
                let offered: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref().map(platform_name))
                    .collect();
                format!(
                    "{reference} has no image for {}: it offers {}",
                    platform_name(platform),
                    offered.join(", ")
                )
            })?;
        raw = client.manifest(repository, entry.digest().as_ref())?;
    }
    ensure!(
        is_manifest_type(&raw.media_type),
        "{reference} is a {}, not an image manifest or index",
        raw.media_type
    );
    let manifest = ImageManifest::from_reader(raw.bytes.as_slice())
        .with_context(|| format!("the manifest of {reference}"))?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
        if !store.has(blob.digest(), blob.size()) {
            client.fetch_blob(repository, blob, &store)?;
        }
    }
    let config =
        ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())
            .with_context(|| format!("the config of {reference}"))?;
    let actual = platform_of_config(&config)?;
    ensure!(
        platform_matches(&actual, platform),
        "{reference} is built for {}, not {}",
        platform_name(&actual),
        platform_name(platform)
    );
    store.write(&raw.bytes)?;
    let mut descriptor = raw.descriptor()?;
    descriptor.set_platform(Some(actual));
    descriptor.set_annotations(Some(HashMap::from([(
        "org.opencontainers.image.ref.name".to_owned(),
        name.clone(),
    )])));
    // Runs pulling other bases into the same cache change the same index.
    let _lock = store.lock()?;
    let mut index = store.index()?;
    let mut listed = index.manifests().clone();
    listed.retain(|d| ref_name(d) != Some(name.as_str()));
    listed.push(descriptor.clone());
    index.set_manifests(listed);
    store.set_index(&index)?;
    Ok(PulledBase {
        descriptor,
        manifest,
        config,
    })
}

/// A base already in the cache, every blob present and checked.
fn cached_base(store: &BlobStore, name: &str) -> anyhow::Result<Option<PulledBase>> {
    let index = store.index()?;
    let Some(descriptor) = index.manifests().iter().find(|d| ref_name(d) == Some(name)) else {
        return Ok(None);
    };
    let Ok(bytes) = store.read(descriptor.digest()) else {
        return Ok(None);
    };
    let manifest = ImageManifest::from_reader(bytes.as_slice())?;
    let complete = std::iter::once(manifest.config())
        .chain(manifest.layers())
        .all(|b| store.has(b.digest(), b.size()));
    if !complete {
        return Ok(None);
    }
    let config =
        ImageConfiguration::from_reader(store.read(manifest.config().digest())?.as_slice())?;
    Ok(Some(PulledBase {
        descriptor: descriptor.clone(),
        manifest,
        config,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_carry_the_platform() {
        let r: Reference = "127.0.0.1:5000/alpine:3.20".parse().unwrap();
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            cache_name(&r, &p),
            "127.0.0.1:5000/alpine:3.20+linux-arm64-v8"
        );
    }
}
