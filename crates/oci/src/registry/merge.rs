//! Merging single-platform images pushed from several machines into one index.

use crate::error::bail;
use crate::error::ensure;
use anyhow::Context;
use oci_spec::distribution::Reference;
use oci_spec::image::{Digest, ImageConfiguration, ImageManifest, Platform};

use std::sync::Arc;

use super::client::*;
use super::push::*;
use crate::auth::Login;
use crate::progress::Progress;

/// One image in the registry, ready to be listed in an index.
#[derive(Debug, Clone)]
pub struct Member {
    /// The reference it was read from.
    pub reference: Reference,
    /// Its manifest, as stored.
    pub manifest: RawManifest,
    /// Its platform, from its config.
    pub platform: Platform,
    /// Its config and layer blobs.
    pub blobs: Vec<Digest>,
}

/// Reads a single-platform image: its manifest and, from its config, its platform. An index
/// is refused: a member must be one architecture's image.
pub fn read_member(client: &mut Client, reference: &Reference) -> crate::Result<Member> {
    let asked = reference.digest().or(reference.tag()).unwrap_or("latest");
    let manifest = client.manifest(reference.repository(), asked)?;
    ensure!(
        !manifest.is_index(),
        "{reference} is itself an index: name each architecture's image (e.g. <tag>-amd64)"
    );
    let parsed = ImageManifest::from_reader(manifest.bytes.as_slice())
        .with_context(|| format!("the manifest of {reference}"))?;
    let bytes = client.blob_bytes(reference.repository(), parsed.config().digest())?;
    let config = ImageConfiguration::from_reader(bytes.as_slice())
        .with_context(|| format!("the config of {reference}"))?;
    let blobs = std::iter::once(parsed.config())
        .chain(parsed.layers())
        .map(|d| d.digest().clone())
        .collect();
    Ok(Member {
        reference: reference.clone(),
        manifest,
        platform: platform_of_config(&config)?,
        blobs,
    })
}

/// Makes `member` present in `repository` (blobs mounted from the member's repository, or
/// copied when the registry will not mount them, then its manifest put by digest) when it
/// lives in another repository of the registry.
pub fn copy_member(client: &mut Client, member: &Member, repository: &str) -> crate::Result<()> {
    let from = member.reference.repository();
    if from == repository {
        return Ok(());
    }
    for digest in &member.blobs {
        client.place_blob(repository, digest, Some(from), Source::Repository(from))?;
    }
    client.put_manifest(
        repository,
        member.manifest.digest.as_ref(),
        &member.manifest,
    )?;
    Ok(copy_referrers(
        client,
        &member.manifest.digest,
        from,
        repository,
    )?)
}

/// The index `merge_index` pushed.
#[derive(Debug, Clone)]
pub struct MergedIndex {
    /// The tag the index was pushed as.
    pub index: Reference,
    /// The digest of the index.
    pub digest: Digest,
    /// Each member with the platform its config declares, in the index's order.
    pub members: Vec<(Reference, String, Digest)>,
    /// Blobs of members in other repositories, mounted or copied into the index's.
    pub uploads: Uploads,
}

/// Pushes to `target` (a tag) an OCI image index over `members`, images already in the
/// same registry, one per platform: the cross-machine merge, after each CI runner pushed its
/// own architecture. Each platform (os, architecture, variant) is read from the member's
/// config. Refused, each in one line: a member that is itself an index, two members with
/// the same platform, a member on another registry. Members in another repository of the
/// registry are mounted into the target's first. The entries are ordered by platform, so
/// the index digest does not depend on the order the members are given in.
pub fn merge_index(
    target: &Reference,
    members: &[Reference],
    login: Login,
    progress: Arc<dyn Progress>,
) -> crate::Result<MergedIndex> {
    let tag = target
        .tag()
        .filter(|_| target.digest().is_none())
        .with_context(|| format!("the index needs a tag, not a digest: {target}"))?;
    for member in members {
        ensure!(
            member.resolve_registry() == target.resolve_registry(),
            "{member} is not on {}, the registry of {target}: push each architecture's image there first",
            target.registry()
        );
    }
    let mut client = Client::connect(target, login)?.with_progress(progress);
    let mut read = Vec::new();
    for reference in members {
        let member = read_member(&mut client, reference)?;
        if let Some(other) = read
            .iter()
            .find(|m: &&Member| m.platform == member.platform)
        {
            bail!(
                "{} and {reference} are both {}: give one image per platform",
                other.reference,
                platform_name(&member.platform)
            );
        }
        read.push(member);
    }
    read.sort_by_key(|m| platform_name(&m.platform));
    let mut entries = Vec::new();
    for member in &read {
        copy_member(&mut client, member, target.repository())?;
        let mut entry = member.manifest.descriptor()?;
        entry.set_platform(Some(member.platform.clone()));
        entries.push(entry);
    }
    let index = index_document(entries)?;
    let digest = client.put_manifest(target.repository(), tag, &index)?;
    Ok(MergedIndex {
        index: target.clone(),
        digest,
        uploads: client.uploads(),
        members: read
            .into_iter()
            .map(|m| {
                let platform = platform_name(&m.platform);
                (m.reference, platform, m.manifest.digest)
            })
            .collect(),
    })
}
