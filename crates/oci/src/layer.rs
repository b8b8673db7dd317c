//! Reproducible layers: one tar per `COPY` step from the staged build context, with sorted
//! entries, parent folders included, owners and modes from the recipe (normalised
//! otherwise), every mtime at `SOURCE_DATE_EPOCH`, no user or group names, then compressed
//! with a fixed header at a pinned level. The same context gives the same bytes in any
//! folder, on any machine.

use std::collections::BTreeMap;
use std::io::Write;

use crate::error::bail;
use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};

use crate::epoch::Epoch;
use crate::recipe::{CopyStep, Owner};

/// gzip level 6 (zlib's default) with flate2's zlib-rs backend, both pinned by
/// Cargo.lock: another level or library gives other bytes, hence other digests.
const GZIP_LEVEL: u32 = 6;
/// zstd level 3 (its default), single-threaded, with the libzstd vendored by zstd-sys.
const ZSTD_LEVEL: i32 = 3;

/// The compression of layer blobs. gzip is what every registry and engine reads; zstd is
/// smaller and faster to unpack, but docker before 23.0 cannot pull it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip, level 6: readable everywhere
    #[default]
    Gzip,
    /// zstd, level 3: smaller, faster to unpack
    Zstd,
}

impl Compression {
    /// The media type of layer blobs compressed this way.
    pub fn media_type(self) -> oci_spec::image::MediaType {
        match self {
            Compression::Gzip => oci_spec::image::MediaType::ImageLayerGzip,
            Compression::Zstd => oci_spec::image::MediaType::ImageLayerZstd,
        }
    }

    /// Compresses a layer's tar, the same bytes on every machine.
    pub fn compress(self, tar: &[u8]) -> crate::Result<Vec<u8>> {
        match self {
            Compression::Gzip => {
                // No file name, no mtime, "unknown" OS: the header is the same everywhere.
                let mut encoder = flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
                encoder.write_all(tar)?;
                Ok(encoder.finish()?)
            }
            Compression::Zstd => Ok(zstd::bulk::compress(tar, ZSTD_LEVEL)?),
        }
    }
}

/// Decompresses a layer blob of `media_type` (ours or a base's) to its tar.
pub fn decompress(media_type: &oci_spec::image::MediaType, blob: &[u8]) -> crate::Result<Vec<u8>> {
    use oci_spec::image::MediaType;
    let mut out = Vec::new();
    match media_type {
        MediaType::ImageLayerGzip => {
            std::io::copy(&mut flate2::read::GzDecoder::new(blob), &mut out)?;
        }
        MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            std::io::copy(&mut flate2::read::GzDecoder::new(blob), &mut out)?;
        }
        MediaType::ImageLayerZstd => {
            zstd::stream::copy_decode(blob, &mut out)?;
        }
        MediaType::ImageLayer => out.extend_from_slice(blob),
        other => bail!("layers of type {other} are not supported"),
    }
    Ok(out)
}

/// One layer: its tar (what `diff_id` hashes) and its compressed blob.
pub struct Layer {
    /// The uncompressed tar.
    pub tar: Vec<u8>,
    /// The digest of the tar (the config's `diff_ids` entry).
    pub diff_id: String,
    /// The compressed tar, as stored and pushed.
    pub blob: Vec<u8>,
}

impl Layer {
    /// The layer of `tar`, compressed.
    pub fn new(tar: Vec<u8>, compression: Compression) -> crate::Result<Layer> {
        let blob = compression.compress(&tar)?;
        Ok(Layer {
            diff_id: sha256_digest(&tar),
            tar,
            blob,
        })
    }
}

pub use crate::digest::sha256_digest;

/// Applies one layer's tar to `files` (path in the image -> content): regular files are
/// added or replaced, and whiteouts (`.wh.<name>`, `.wh..wh..opq`) remove what lower
/// layers put there. Folders, links and devices are no files of the SBOM.
pub fn apply_regular_files(files: &mut BTreeMap<String, Vec<u8>>, tar: &[u8]) -> crate::Result<()> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().context("reading a layer's tar")? {
        let mut entry = entry.context("reading a layer's tar")?;
        let raw = entry.path().context("a layer entry's path")?.into_owned();
        let path = format!(
            "/{}",
            raw.to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
        );
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if name == ".wh..wh..opq" {
            let prefix = format!("{dir}/");
            files.retain(|p, _| !p.starts_with(&prefix));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let gone = format!("{dir}/{hidden}");
            let under = format!("{gone}/");
            files.retain(|p, _| *p != gone && !p.starts_with(&under));
            continue;
        }
        if entry.header().entry_type().is_file() {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .with_context(|| format!("reading {path} from a layer"))?;
            files.insert(path, bytes);
        } else {
            // A link or folder replaces a file of a lower layer.
            files.remove(&path);
        }
    }
    Ok(())
}

/// One entry of a layer, as it will be in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Utf8PathBuf),
    Symlink(String),
}

/// The tar of one `COPY` step, its sources read from `context`.
pub fn copy_tar(context: &Utf8Path, step: &CopyStep, epoch: Epoch) -> crate::Result<Vec<u8>> {
    let root_owner = Owner { uid: 0, gid: 0 };
    let owner = step.owner.unwrap_or(root_owner);
    // Keyed by path in the image, without the leading `/`: a BTreeMap sorts the entries.
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let dest = step.dest.trim_start_matches('/');
    let into_dir = step.dest.ends_with('/') || step.sources.len() > 1;
    for source in &step.sources {
        let path = context.join(source);
        let meta = std::fs::symlink_metadata(&path).with_context(|| {
            format!(
                "{} names {source}, which is not in the build context",
                step.text
            )
        })?;
        if meta.is_dir() {
            // A folder's contents go into `dest`, which is created (owned as the step says).
            add_dir_entry(&mut entries, dest, owner, step.mode);
            walk(&path, dest, owner, step.mode, &mut entries)?;
        } else {
            let name = path.file_name().context("a source has no file name")?;
            let target = if into_dir {
                join(dest, name)
            } else {
                dest.trim_end_matches('/').to_owned()
            };
            if into_dir {
                add_dir_entry(&mut entries, dest, owner, step.mode);
            }
            entries.insert(target, entry_of(&path, &meta, owner, step.mode)?);
        }
    }
    // Parent folders the steps create: root-owned 0755, as docker makes them.
    let parents: Vec<String> = entries.keys().flat_map(|p| ancestors(p)).collect();
    for parent in parents {
        entries.entry(parent).or_insert(Entry {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
    }
    entries.remove("");
    Ok(write_tar(&entries, epoch)?)
}

fn add_dir_entry(
    entries: &mut BTreeMap<String, Entry>,
    dir: &str,
    owner: Owner,
    mode: Option<u32>,
) {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return;
    }
    entries.entry(dir.to_owned()).or_insert(Entry {
        kind: Kind::Dir,
        mode: mode.unwrap_or(0o755),
        uid: owner.uid,
        gid: owner.gid,
    });
}

fn walk(
    dir: &Utf8Path,
    dest: &str,
    owner: Owner,
    mode: Option<u32>,
    entries: &mut BTreeMap<String, Entry>,
) -> anyhow::Result<()> {
    for item in dir
        .read_dir_utf8()
        .with_context(|| format!("reading {dir}"))?
    {
        let item = item?;
        let meta = std::fs::symlink_metadata(item.path())?;
        let target = join(dest, item.file_name());
        entries.insert(target.clone(), entry_of(item.path(), &meta, owner, mode)?);
        if meta.is_dir() {
            walk(item.path(), &target, owner, mode, entries)?;
        }
    }
    Ok(())
}

fn entry_of(
    path: &Utf8Path,
    meta: &std::fs::Metadata,
    owner: Owner,
    mode: Option<u32>,
) -> anyhow::Result<Entry> {
    use std::os::unix::fs::PermissionsExt;
    let kind = if meta.is_dir() {
        Kind::Dir
    } else if meta.file_type().is_symlink() {
        Kind::Symlink(
            std::fs::read_link(path)?
                .to_str()
                .with_context(|| format!("{path} links to a path that is not UTF-8"))?
                .to_owned(),
        )
    } else if meta.is_file() {
        Kind::File(path.to_owned())
    } else {
        bail!("{path} is neither a file, a folder nor a symlink");
    };
    Ok(Entry {
        mode: mode.unwrap_or_else(|| normalised_mode(&kind, meta.permissions().mode())),
        kind,
        uid: owner.uid,
        gid: owner.gid,
    })
}

/// 0755 for folders, symlinks and anything executable, 0644 otherwise: the checkout's
/// umask must not change the image. The staged context carries the same modes, so docker
/// and podman copy them as they are.
pub fn normalised_mode_of(is_dir: bool, mode: u32) -> u32 {
    if is_dir || mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

fn normalised_mode(kind: &Kind, mode: u32) -> u32 {
    match kind {
        Kind::Symlink(_) => 0o777,
        Kind::Dir => 0o755,
        Kind::File(_) => normalised_mode_of(false, mode),
    }
}

fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `a/b/c` -> `a`, `a/b`.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        out.push(path[..at + i].to_owned());
        at += i + 1;
    }
    out
}

fn write_tar(entries: &BTreeMap<String, Entry>, epoch: Epoch) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(epoch.seconds());
        match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            Kind::File(source) => {
                let bytes = std::fs::read(source).with_context(|| format!("reading {source}"))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, path, bytes.as_slice())?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, target)?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn secs(seconds: u64) -> Epoch {
        Epoch::from_seconds(seconds).unwrap()
    }

    fn context() -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("owned/data")).unwrap();
        std::fs::write(root.join("bin/service"), b"\x7fELF service").unwrap();
        std::fs::set_permissions(
            root.join("bin/service"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(root.join("bin/notes"), b"text").unwrap();
        std::fs::set_permissions(
            root.join("bin/notes"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        (dir, root)
    }

    fn step(sources: &[&str], dest: &str, owner: Option<Owner>) -> CopyStep {
        CopyStep {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            owner,
            mode: None,
            text: "COPY".into(),
            line: 1,
        }
    }

    /// (path, type, mode, uid, gid, mtime, size, uname) of every entry.
    type Listing = Vec<(String, char, u32, u64, u64, u64, u64, String)>;

    fn listing(tar: &[u8]) -> Listing {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    if h.entry_type().is_dir() { 'd' } else { 'f' },
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.size().unwrap(),
                    String::from_utf8_lossy(h.username_bytes().unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_folder_copy_is_sorted_with_parents_normalised_modes_and_fixed_times() {
        let (_tmp, root) = context();
        let tar = copy_tar(
            &root,
            &step(&["bin/"], "/usr/local/bin/", None),
            secs(1_700_000_000),
        )
        .unwrap();
        let names: Vec<_> = listing(&tar)
            .into_iter()
            .map(|(p, t, m, u, g, time, size, uname)| {
                assert_eq!((u, g, time, uname.as_str()), (0, 0, 1_700_000_000, ""));
                (p, t, m, size)
            })
            .collect();
        assert_eq!(
            names,
            [
                ("usr/".into(), 'd', 0o755, 0),
                ("usr/local/".into(), 'd', 0o755, 0),
                ("usr/local/bin/".into(), 'd', 0o755, 0),
                ("usr/local/bin/notes".into(), 'f', 0o644, 4),
                ("usr/local/bin/service".into(), 'f', 0o755, 12),
            ]
        );
    }

    #[test]
    fn chown_and_chmod_apply_to_what_the_step_copies() {
        let (_tmp, root) = context();
        let owner = Some(Owner {
            uid: 65532,
            gid: 65533,
        });
        let tar = copy_tar(&root, &step(&["owned/"], "/", owner), secs(0)).unwrap();
        let l = listing(&tar);
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].0.as_str(), l[0].2, l[0].3, l[0].4),
            ("data/", 0o755, 65532, 65533)
        );

        let mut s = step(&["bin/notes"], "/etc/motd", None);
        s.mode = Some(0o600);
        let l = listing(&copy_tar(&root, &s, secs(0)).unwrap());
        let files: Vec<_> = l.iter().map(|e| (e.0.as_str(), e.2)).collect();
        assert_eq!(files, [("etc/", 0o755), ("etc/motd", 0o600)]);
    }

    #[test]
    fn the_same_context_in_another_folder_gives_the_same_bytes() {
        let (_a, one) = context();
        let (_b, two) = context();
        // Another checkout: other file times and a looser mode on the same content.
        std::fs::set_permissions(
            two.join("bin/notes"),
            std::fs::Permissions::from_mode(0o664),
        )
        .unwrap();
        let s = step(&["bin/"], "/usr/local/bin/", None);
        let (x, y) = (
            copy_tar(&one, &s, secs(5)).unwrap(),
            copy_tar(&two, &s, secs(5)).unwrap(),
        );
        assert_eq!(x, y);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let (lx, ly) = (
                Layer::new(x.clone(), compression).unwrap(),
                Layer::new(y.clone(), compression).unwrap(),
            );
            assert_eq!(lx.blob, ly.blob);
            assert_eq!(decompress(&compression.media_type(), &lx.blob).unwrap(), x);
        }
        assert_ne!(
            copy_tar(&one, &s, secs(6)).unwrap(),
            x,
            "the epoch is in the bytes"
        );
    }

    #[test]
    fn the_gzip_header_has_no_time_or_name() {
        let blob = Compression::Gzip.compress(b"abc").unwrap();
        // magic, method, flags, mtime (4 bytes), extra flags, OS.
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
    }

    #[test]
    fn a_missing_source_names_the_step() {
        let (_tmp, root) = context();
        let err = copy_tar(&root, &step(&["nope/"], "/", None), secs(0)).unwrap_err();
        assert!(err.to_string().contains("nope/"), "{err}");
    }
}
