//! The builtin engine: renders a [`Recipe`] and a staged build context as one OCI image per
//! architecture (config, layers, manifest) and a multi-architecture index, in an OCI image
//! layout. A base other than scratch is read from a layout (the base-image cache, or one
//! given as `oci:<dir>:<ref>`); its config is inherited as docker inherits it and our layers
//! go on top of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::bail;
use anyhow::Context;
use camino::Utf8Path;
use oci_spec::image::{
    Arch, Config, Descriptor, History, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageManifest, ImageManifestBuilder, MediaType, Os, PlatformBuilder,
    RootFsBuilder,
};
use serde::{Deserialize, Serialize};

use crate::epoch::Epoch;
use crate::json::{canonical_json, image_index};
use crate::layer::Compression;
use crate::layer::{self, Layer};
use crate::layout::Layout;
use crate::recipe::{Healthcheck, Recipe, RunConfig};
use crate::referrers::Referrer;

/// BuildKit gives an image without a PATH (scratch) this one; so does the builtin engine,
/// so that every engine makes the same config.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config: the OCI fields, plus docker's `config.Healthcheck`, which the OCI spec
/// has no field for but docker, podman and registries keep.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// The OCI configuration.
    pub image: ImageConfiguration,
    /// Docker's `Healthcheck`, which the OCI configuration has no field for.
    pub healthcheck: Option<DockerHealthcheck>,
}

/// `config.Healthcheck` as docker writes it: durations in nanoseconds, zero left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerHealthcheck {
    /// `["CMD", argv...]`, `["CMD-SHELL", line]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Between checks, in nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// How long one check may take, in nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Failures before this are not counted, in nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Consecutive failures before the container is unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&Healthcheck> for DockerHealthcheck {
    fn from(h: &Healthcheck) -> Self {
        let ns = |d: Option<Duration>| d.map_or(0, |d| d.as_nanos() as u64);
        DockerHealthcheck {
            test: h.test.clone(),
            interval: ns(h.interval),
            timeout: ns(h.timeout),
            start_period: ns(h.start_period),
            retries: h.retries.unwrap_or(0),
        }
    }
}

impl ImageConfig {
    /// Reads a configuration blob (OCI, with docker's extra fields).
    pub fn parse(bytes: &[u8]) -> crate::Result<ImageConfig> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let healthcheck = value
            .pointer("/config/Healthcheck")
            .filter(|v| !v.is_null())
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .context("parsing the config's Healthcheck")?;
        Ok(ImageConfig {
            image: serde_json::from_value(value).context("parsing an image config")?,
            healthcheck,
        })
    }

    /// The configuration as canonical JSON, the bytes its digest is taken of.
    pub fn to_bytes(&self) -> crate::Result<Vec<u8>> {
        let mut value = serde_json::to_value(&self.image)?;
        if let (Some(hc), Some(config)) = (&self.healthcheck, value.get_mut("config")) {
            config["Healthcheck"] = serde_json::to_value(hc)?;
        }
        canonical_json(&value)
    }
}

/// A base image read from a layout: its manifest for one platform and its config.
pub struct BaseImage {
    layout: Layout,
    manifest: ImageManifest,
    config: ImageConfig,
}

impl BaseImage {
    /// The image `name` names in `layout`, for `target`'s platform.
    pub fn read(
        layout: Layout,
        name: &str,
        target: crate::platform::Arch,
    ) -> crate::Result<BaseImage> {
        let (_, manifest) = layout.manifest_for(name, target)?;
        let config = ImageConfig::parse(&layout.read_blob(manifest.config().digest().as_ref())?)
            .with_context(|| format!("reading the config of {name}"))?;
        let arch = config.image.architecture().to_string();
        let variant = config.image.variant().as_deref();
        if !target.matches(&arch, variant) {
            let found = [arch.as_str(), variant.unwrap_or_default()].join("/");
            bail!(
                "{name} in {} is for {}, not {}",
                layout.dir,
                found.trim_end_matches('/'),
                target.platform()
            );
        }
        Ok(BaseImage {
            layout,
            manifest,
            config,
        })
    }
}

/// Build settings every architecture shares.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `SOURCE_DATE_EPOCH`: every time in the image.
    pub epoch: Epoch,
    /// How layer blobs are compressed.
    pub compression: Compression,
}

/// One architecture's image, written into a layout.
#[derive(Debug, Clone)]
pub struct Assembled {
    /// The architecture the image is for.
    pub target: crate::platform::Arch,
    /// The manifest, with its platform.
    pub manifest: Descriptor,
    /// The digest of its configuration blob.
    pub config_digest: String,
    /// Uncompressed (the layers' tars) and compressed (the blobs), base included.
    pub size: u64,
    /// The bytes a pull moves: its layer blobs.
    pub compressed_size: u64,
}

/// Writes `target`'s image of `recipe` into `out` from the staged `context`.
pub fn image(
    out: &Layout,
    recipe: &Recipe,
    base: Option<&BaseImage>,
    context: &Utf8Path,
    target: crate::platform::Arch,
    settings: Settings,
) -> crate::Result<Assembled> {
    let created = settings.epoch.rfc3339();
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut diff_ids: Vec<String> = Vec::new();
    let mut history: Vec<History> = Vec::new();
    let (mut size, mut compressed_size) = (0, 0);
    if let Some(base) = base {
        for descriptor in base.manifest.layers() {
            let blob = base.layout.read_blob(descriptor.digest().as_ref())?;
            size += layer::decompress(descriptor.media_type(), &blob)?.len() as u64;
            compressed_size += blob.len() as u64;
            out.put_blob(&blob)?;
            layers.push(descriptor.clone());
        }
        diff_ids.extend(base.config.image.rootfs().diff_ids().iter().cloned());
        history.extend(base.config.image.history().clone().unwrap_or_default());
        if diff_ids.len() != layers.len() {
            bail!(
                "the base image's config lists {} layers and its manifest {}",
                diff_ids.len(),
                layers.len()
            );
        }
    }
    for step in &recipe.copies {
        let tar = layer::copy_tar(context, step, settings.epoch)?;
        let layer = Layer::new(tar, settings.compression)?;
        size += layer.tar.len() as u64;
        compressed_size += layer.blob.len() as u64;
        layers.push(out.put_bytes(settings.compression.media_type(), &layer.blob)?);
        diff_ids.push(layer.diff_id);
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(step.text.clone())
                .comment("cargo xtask image")
                .build()?,
        );
    }

    let inherited = base.map(|b| &b.config);
    let mut image = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(Arch::from(target.architecture()));
    if let Some(variant) = target.variant() {
        image = image.variant(variant.to_owned());
    }
    let config = ImageConfig {
        image: image
            .os(Os::Linux)
            .config(run_config(
                &recipe.config,
                inherited.and_then(|c| c.image.config().as_ref()),
            ))
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids)
                    .build()?,
            )
            .history(history)
            .build()?,
        healthcheck: recipe
            .config
            .healthcheck
            .as_ref()
            .map(DockerHealthcheck::from)
            .or_else(|| inherited.and_then(|c| c.healthcheck.clone())),
    };
    let config_bytes = config.to_bytes()?;
    let config_descriptor = out.put_bytes(MediaType::ImageConfig, &config_bytes)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor.clone())
        .layers(layers)
        .build()?;
    let mut descriptor = out.put_json(MediaType::ImageManifest, &manifest)?;
    let mut platform = PlatformBuilder::default()
        .architecture(Arch::from(target.architecture()))
        .os(Os::Linux);
    if let Some(variant) = target.variant() {
        platform = platform.variant(variant.to_owned());
    }
    descriptor.set_platform(Some(platform.build()?));
    Ok(Assembled {
        target,
        manifest: descriptor,
        config_digest: config_descriptor.digest().to_string(),
        size,
        compressed_size,
    })
}

/// Every regular file of the image `manifest` names in `layout` (base layers included,
/// whiteouts applied), by path.
pub fn image_files(
    layout: &Layout,
    manifest: &Descriptor,
) -> crate::Result<BTreeMap<String, Vec<u8>>> {
    let manifest: ImageManifest = layout.read_json(manifest.digest().as_ref())?;
    let mut files = BTreeMap::new();
    for descriptor in manifest.layers() {
        let blob = layout.read_blob(descriptor.digest().as_ref())?;
        layer::apply_regular_files(
            &mut files,
            &layer::decompress(descriptor.media_type(), &blob)?,
        )?;
    }
    Ok(files)
}

/// What [`publish`] named in the layout.
#[derive(Debug, Clone)]
pub struct Published {
    /// The multi-architecture index named `<tag>`: written for two images or more, none for
    /// a single-platform build.
    pub index: Option<Descriptor>,
    /// The older `<tag>` a single-platform build took out of the layout, because it did not
    /// list the image just built (it would have published a stale image under the tag).
    pub dropped: Option<String>,
}

/// Names each of `images` `<tag>-<arch>` in `out`'s `index.json` and lists the `referrers`
/// (documents attached to the images) untagged. A tag names the set of platforms asked for,
/// never fewer: two images or more get the multi-architecture index over exactly them,
/// named `<tag>`; a single image gets its `<tag>-<arch>` only, and an existing `<tag>` is
/// kept only while it still lists that very image (a rebuild of the same bits), else it is
/// taken out. The blobs nothing names any more stay until `Layout::prune`.
pub fn publish(
    out: &Layout,
    tag: &str,
    images: &[Assembled],
    referrers: &[Referrer],
) -> crate::Result<Published> {
    let mut refs = Vec::new();
    for image in images {
        refs.push((
            format!("{tag}-{}", image.target.as_str()),
            image.manifest.clone(),
        ));
    }
    let mut published = Published {
        index: None,
        dropped: None,
    };
    match images {
        [] => bail!("no image to name `{tag}`"),
        [one] => {
            if let Some(existing) = out.named(tag)?
                && !out.lists(&existing, &one.manifest)?
            {
                out.untag(tag)?;
                published.dropped = Some(tag.to_owned());
            }
        }
        _ => {
            let members: Vec<Descriptor> = images.iter().map(|i| i.manifest.clone()).collect();
            let index = out.put_bytes(MediaType::ImageIndex, &image_index(members)?)?;
            refs.push((tag.to_owned(), index.clone()));
            published.index = Some(index);
        }
    }
    out.tag(refs)?;
    out.attach(referrers)?;
    Ok(published)
}

/// Docker's inheritance: env merged by name, the rest ours where we set it; ENTRYPOINT
/// without a later CMD drops the base's CMD.
fn run_config(ours: &RunConfig, base: Option<&Config>) -> Config {
    let mut config = base.cloned().unwrap_or_default();
    let mut env: Vec<String> = config.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    for (key, value) in &ours.env {
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    config.set_env(Some(env));
    if ours.user.is_some() {
        config.set_user(ours.user.clone());
    }
    if ours.workdir.is_some() {
        config.set_working_dir(ours.workdir.clone());
    } else if config.working_dir().as_deref().is_none_or(str::is_empty) {
        // BuildKit's default, so that every engine makes the same config.
        config.set_working_dir(Some("/".to_owned()));
    }
    if ours.stop_signal.is_some() {
        config.set_stop_signal(ours.stop_signal.clone());
    }
    if ours.entrypoint.is_some() {
        config.set_entrypoint(ours.entrypoint.clone());
    }
    if ours.cmd.is_some() {
        config.set_cmd(ours.cmd.clone());
    } else if ours.entrypoint_resets_cmd {
        config.set_cmd(None);
    }
    let union = |base: &Option<Vec<String>>, ours: &[String]| {
        let mut all = base.clone().unwrap_or_default();
        all.extend(
            ours.iter()
                .filter(|p| !all.contains(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        all.sort();
        (!all.is_empty()).then_some(all)
    };
    config.set_exposed_ports(union(config.exposed_ports(), &ours.exposed_ports));
    config.set_volumes(union(config.volumes(), &ours.volumes));
    let mut labels: BTreeMap<String, String> = config
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.extend(ours.labels.clone());
    config.set_labels((!labels.is_empty()).then(|| labels.into_iter().collect()));
    config
}

/// Writes the image `manifest` names in `layout` as a docker-archive (what `docker save`
/// writes) tagged `repo_tag`: docker before 25 loads no OCI archive, and podman loads both.
/// Layers go in uncompressed, so that any engine reads them whatever their compression.
pub fn docker_archive(
    layout: &Layout,
    manifest: &Descriptor,
    repo_tag: &str,
    dest: &Utf8Path,
) -> crate::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry<'a> {
        config: String,
        repo_tags: [&'a str; 1],
        layers: Vec<String>,
    }
    let manifest: ImageManifest = layout.read_json(manifest.digest().as_ref())?;
    let config_digest = manifest.config().digest().to_string();
    let config = layout.read_blob(&config_digest)?;
    let file = std::fs::File::create(dest).with_context(|| format!("creating {dest}"))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut append = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, name, bytes)?;
        Ok(())
    };
    let config_name = format!("{}.json", hex(&config_digest));
    append(&config_name, &config)?;
    let mut layers = Vec::new();
    for descriptor in manifest.layers() {
        let blob = layout.read_blob(descriptor.digest().as_ref())?;
        let tar = layer::decompress(descriptor.media_type(), &blob)?;
        let name = format!("{}/layer.tar", hex(&layer::sha256_digest(&tar)));
        append(&name, &tar)?;
        layers.push(name);
    }
    let entry = [Entry {
        config: config_name,
        repo_tags: [repo_tag],
        layers,
    }];
    append("manifest.json", &serde_json::to_vec(&entry)?)?;
    tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}
/// Runs `each` for every item on a thread of its own (one architecture per core:
/// compressing layers is most of an image's work) and returns the results in order.
pub fn side_by_side<T: Sync, R: Send, E: Send + From<crate::Error>>(
    items: &[T],
    each: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(|| each(item)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(crate::Error::Other("assembling an image panicked".into()).into())
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use camino::Utf8PathBuf;
    use oci_spec::image::ImageIndex;

    use super::*;
    use crate::layout::ref_name;

    /// A stand-in for an assembled image: a manifest blob named by its content.
    fn assembled(out: &Layout, target: crate::platform::Arch, content: &str) -> Assembled {
        let config = out
            .put_bytes(MediaType::ImageConfig, content.as_bytes())
            .unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .config(config)
            .layers(Vec::new())
            .build()
            .unwrap();
        let mut manifest = out.put_json(MediaType::ImageManifest, &manifest).unwrap();
        manifest.set_platform(Some(
            PlatformBuilder::default()
                .architecture(Arch::from(target.as_str()))
                .os(Os::Linux)
                .build()
                .unwrap(),
        ));
        Assembled {
            target,
            manifest,
            config_digest: String::new(),
            size: 0,
            compressed_size: 0,
        }
    }

    fn names(out: &Layout) -> Vec<String> {
        let index = out.index().unwrap();
        index
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_tag_names_every_platform_built_and_a_single_platform_build_never_shrinks_it() {
        let dir = tempfile::tempdir().unwrap();
        let out =
            Layout::create(&Utf8PathBuf::from_path_buf(dir.path().join("l")).unwrap()).unwrap();
        let (amd, arm) = (crate::platform::Arch::Amd64, crate::platform::Arch::Arm64);
        let both = [assembled(&out, amd, "amd 1"), assembled(&out, arm, "arm 1")];
        let published = publish(&out, "t", &both, &[]).unwrap();
        let index = published.index.unwrap();
        assert_eq!(names(&out), ["t", "t-amd64", "t-arm64"]);
        let listed: ImageIndex = out.read_json(index.digest().as_ref()).unwrap();
        assert_eq!(listed.manifests().len(), 2);

        // The same amd64 image again, alone (`run --target amd64`): `t` still tells the truth.
        let same = publish(&out, "t", &[assembled(&out, amd, "amd 1")], &[]).unwrap();
        assert!(same.index.is_none() && same.dropped.is_none());
        assert_eq!(out.find("t").unwrap().digest(), index.digest());

        // Another tag, one platform: `u-amd64` only, no `u`.
        publish(&out, "u", &[assembled(&out, arm, "arm 1")], &[]).unwrap();
        assert_eq!(names(&out), ["t", "t-amd64", "t-arm64", "u-arm64"]);

        // A changed amd64 image, alone: `t` would publish the old one, so it goes.
        let changed = publish(&out, "t", &[assembled(&out, amd, "amd 2")], &[]).unwrap();
        assert_eq!(changed.dropped.as_deref(), Some("t"));
        assert_eq!(names(&out), ["t-amd64", "t-arm64", "u-arm64"]);
        out.prune().unwrap();
        assert!(!out.blob_path(index.digest().as_ref()).unwrap().exists());

        // Both again: the index of exactly what was built, the same bytes in any order.
        let again = [assembled(&out, arm, "arm 1"), assembled(&out, amd, "amd 1")];
        let rewritten = publish(&out, "t", &again, &[]).unwrap().index.unwrap();
        assert_eq!(rewritten.digest(), index.digest());
    }
}
