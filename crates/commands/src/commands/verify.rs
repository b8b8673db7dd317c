//! `cargo xtask verify`: rebuilds HEAD in a clean worktree with a fresh target dir, by running
//! this same xtask there as another machine would (see `OtherMachine`), and compares the binaries and image digests with what is staged
//! (or pushed). On a mismatch it names the first file, or config field, that differs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use nix::sys::stat::{Mode, umask};
use serde::Serialize;
use xshell::{Shell, cmd};

use crate::cli::VerifyArgs;
use crate::interrupt::Undo;
use crate::model::project::Project;
use crate::model::verify::{Outcome, Row, binary_rows};
use crate::oci::arches;
use crate::oci::reference::ImageNames;
use crate::oci::signing;
use crate::report::{self, step};
use crate::tools::cache;
use crate::tools::git;
use crate::tools::process::{self, Io};
use crate::tools::toolchain;
use tiny_cross::dist::{MANIFEST, Manifest, read_staged};
use tiny_cross::target::Target;
use tiny_oci::compare::{self, AttachedDocument, Blobs, Images, Repository};
use tiny_oci::layout::Layout;
use tiny_oci::referrers;
use tiny_oci::registry::Client;

/// The ref name the rebuild's index gets in its own layout.
const REBUILD_TAG: &str = "verify";

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    /// The declared image compared.
    image: String,
    commit: String,
    /// Whether the working tree had uncommitted changes (`--allow-dirty`).
    dirty: bool,
    /// The staged OCI layout, or the registry reference, the images were compared with.
    against: String,
    passed: bool,
    first_difference: Option<String>,
    rows: Vec<Row>,
}

/// Where the expected images are read from.
enum Expected {
    Layout(Layout),
    Registry(Box<Repository>),
}

impl Expected {
    /// What the rebuild is compared with, for messages: `what is staged in <layout>` or
    /// `<reference> in its registry`.
    fn name(&self) -> String {
        match self {
            Expected::Layout(layout) => format!("what is staged in {}", layout.dir),
            Expected::Registry(repository) => {
                format!("{} in its registry", repository.reference)
            }
        }
    }

    fn blobs(&mut self) -> &mut dyn Blobs {
        match self {
            Expected::Layout(layout) => layout,
            Expected::Registry(repository) => repository.as_mut(),
        }
    }
}

impl VerifyArgs {
    /// Every declared image, or those named with `--image`: one rebuild of HEAD's binaries,
    /// then each image rebuilt and compared in turn.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            (self.tag.is_some(), "--tag"),
            (self.layout.is_some(), "--layout"),
            (self.against.is_some(), "--against"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        let images = project.select_one_if(&self.image_names, &given)?;
        let commit = git::head(sh)?;
        let short = &commit[..commit.len().min(12)];
        let dirty = git::is_dirty(sh);
        if dirty && !self.allow_dirty {
            bail!(
                "the working tree has uncommitted changes and verify checks a commit: commit \
                 or stash them, or pass --allow-dirty to compare with a rebuild of HEAD anyway"
            );
        }
        let targets = project.targets(&self.targets);
        // Everything expected is read first, signatures included: a missing build or
        // signature fails before minutes of work.
        // What the user named is checked first: the key, then the registry or layout given
        // (with its signatures); then what a build stages (the binaries, checked for their
        // platform); then the images staged by default.
        let key = self.key.as_deref().map(signing::public_key).transpose()?;
        let expectations = |key| -> anyhow::Result<Vec<_>> {
            let mut expectations = Vec::new();
            for image in &images {
                let project = project.for_image(image);
                let expected = self.expected(sh, &project, &targets, key)?;
                expectations.push((project, expected));
            }
            Ok(expectations)
        };
        let named = self.against.is_some() || self.layout.is_some();
        let named_first = if named {
            Some(expectations(key.as_ref())?)
        } else {
            None
        };
        let staged = dist_manifests(project, &targets, &project.target_dir, "cargo xtask build")?;
        let expectations = match named_first {
            Some(read) => read,
            None => expectations(key.as_ref())?,
        };
        // Said once nothing can be refused any more, so that a refusal stays one line.
        if dirty {
            eprintln!(
                "  the working tree has uncommitted changes: comparing what is staged with a \
                 rebuild of HEAD ({short}) anyway"
            );
        }
        let zstd = expectations
            .iter()
            .flat_map(|(_, (_, images, _))| &images.images)
            .any(|i| compare::uses_zstd(&i.manifest));

        let scratch = scratch_dir()?;
        // Until verify ends: a mismatch is looked into in the rebuild's layout.
        let _removed = cleanup(project, &scratch);
        let rebuild = Rebuild {
            project,
            src: scratch.join("src"),
            target_dir: utf8(scratch.join("target"))?,
            layout: scratch.join("layout"),
            machine: OtherMachine::new(&scratch.join("machine"))?,
        };
        let rebuilt = rebuild.binaries(sh, &commit, &targets)?;
        let mut reports = Vec::new();
        let mut differences = Vec::new();
        for (project, (expected, expected_images, against)) in expectations {
            let rebuilt_images = rebuild.images(sh, &project, &commit, &targets, zstd)?;
            let layout = rebuild.layout_of(&project)?;
            let compared = Compared {
                project: &project,
                staged: &staged,
                rebuilt: &rebuilt,
                layout: &layout,
                commit: &commit,
                dirty,
            };
            let (report, difference) =
                compared.report(expected, &expected_images, &rebuilt_images, against)?;
            if !self.json {
                if images.len() > 1 {
                    println!("{}", project.image_name());
                }
                print!("{}", table(&report.rows));
            }
            differences.extend(difference);
            reports.push(report);
        }
        if self.json {
            // One object for one image; an array for several.
            let out = match &reports[..] {
                [one] => serde_json::to_value(one)?,
                _ => serde_json::to_value(&reports)?,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        if !differences.is_empty() {
            bail!(
                "the rebuild of {short} differs from {}",
                differences.join("; and from ")
            );
        }
        Ok(())
    }

    /// The staged (or pushed) images, and a description of where they are.
    fn expected(
        &self,
        sh: &Shell,
        project: &Project,
        targets: &[Target],
        key: Option<&tiny_sign::PublicKey>,
    ) -> anyhow::Result<(Expected, Images, String)> {
        if let Some(reference) = &self.against {
            let client = Client::connect(reference, self.auth.login(sh, reference)?)?;
            let mut repository = Repository {
                client,
                reference: reference.clone(),
            };
            let images = step(format_args!("read {reference}"), || {
                Ok(Images::from_registry(&mut repository, &arches(targets))?)
            })?;
            if let (Some(key), Some(path)) = (key, &self.key) {
                signing::require_signatures(&mut repository.client, reference, key, path)?;
            }
            let against = reference.to_string();
            return Ok((Expected::Registry(Box::new(repository)), images, against));
        }
        let dir = match &self.layout {
            Some(dir) => dir.clone(),
            None => project.work_dir().join("oci").join(project.image_name()),
        };
        let names = ImageNames::new(
            self.tag.as_deref(),
            None,
            project.image_name(),
            &project.package.version,
        )?;
        let reference: oci_spec::distribution::Reference = names
            .index
            .parse()
            .with_context(|| format!("`{}` is not an image reference", names.index))?;
        let tag = reference.tag().unwrap_or("latest");
        let layout = Layout::open(&dir)
            .with_context(|| format!("no staged images: run `cargo xtask image` first ({dir})"))?;
        let images = Images::from_layout(&layout, tag, &arches(targets))
            .with_context(|| "run `cargo xtask image` (with the same --tag) before verify")?;
        if let (Some(key), Some(path)) = (key, &self.key) {
            let name = match arches(targets).as_slice() {
                [one] => format!("{tag}-{}", one.as_str()),
                _ => tag.to_owned(),
            };
            signing::require_layout_signatures(&dir, &name, key, path)?;
        }
        Ok((Expected::Layout(layout), images, dir.to_string()))
    }
}

/// One image's comparison: what is staged or pushed against the rebuild.
struct Compared<'a> {
    project: &'a Project,
    staged: &'a [Manifest],
    rebuilt: &'a [Manifest],
    /// The rebuild's layout of this image.
    layout: &'a Utf8Path,
    commit: &'a str,
    dirty: bool,
}

impl Compared<'_> {
    /// The report's rows, and the first difference (with what differs from the rebuild).
    fn report(
        &self,
        mut expected: Expected,
        expected_images: &Images,
        rebuilt_images: &Images,
        against: String,
    ) -> anyhow::Result<(Report, Option<String>)> {
        let mut rows = binary_rows(self.staged, self.rebuilt);
        let binaries = rows.len();
        for image in &expected_images.images {
            let got = rebuilt_images.platform(&image.platform);
            rows.push(Row::new(
                format!("image {}", image.platform),
                Some(image.digest.as_ref()),
                got.map(|g| g.digest.as_ref()),
            ));
        }
        for image in &rebuilt_images.images {
            if expected_images.platform(&image.platform).is_none() {
                rows.push(Row::new(
                    format!("image {}", image.platform),
                    None,
                    Some(image.digest.as_ref()),
                ));
            }
        }
        // The documents attached to each image must be the rebuild's, byte for byte.
        let mut rebuilt_layout = Layout::open(self.layout)?;
        let mut documents = Vec::new();
        for image in &expected_images.images {
            let got = rebuilt_images.platform(&image.platform);
            for document in referrers::Kind::ALL {
                let kind = document.name();
                let want = compare::attached_document(expected.blobs(), &image.digest, document)?;
                let have = match got {
                    Some(got) => {
                        compare::attached_document(&mut rebuilt_layout, &got.digest, document)?
                    }
                    None => None,
                };
                rows.push(Row::new(
                    format!("{kind} {}", image.platform),
                    want.as_ref().map(|d| d.digest.as_ref()),
                    have.as_ref().map(|d| d.digest.as_ref()),
                ));
                documents.push(DocumentCheck {
                    kind,
                    platform: image.platform.clone(),
                    want,
                    have,
                });
            }
        }
        // One target is compared image by image: a single-platform build writes no index.
        if expected_images.index.is_some() || rebuilt_images.index.is_some() {
            rows.push(Row::new(
                "index",
                expected_images.index.as_ref().map(AsRef::as_ref),
                rebuilt_images.index.as_ref().map(AsRef::as_ref),
            ));
        }
        let passed = rows.iter().all(|r| r.result == Outcome::Pass);
        let compared = expected.name();
        let difference = match passed {
            true => None,
            false => Some(first_difference(
                &rows,
                binaries,
                &mut expected,
                expected_images,
                rebuilt_images,
                &documents,
                self.layout,
            )?),
        };
        let project = self.project;
        let staged_binaries = format!(
            "the binaries staged in {}",
            project.relative(&project.target_dir.join("dist"))
        );
        let (first_difference, side) = match difference {
            None => (None, None),
            Some((line, Side::Binaries)) => (Some(line), Some(staged_binaries)),
            Some((line, Side::Compared)) => (Some(line), Some(compared)),
        };
        let report = Report {
            image: project.image_name().to_owned(),
            commit: self.commit.to_owned(),
            dirty: self.dirty,
            against,
            passed,
            first_difference,
            rows,
        };
        let difference = match (&report.first_difference, side) {
            (Some(difference), Some(side)) => Some(format!("{side}: {difference}")),
            _ => None,
        };
        Ok((report, difference))
    }
}

/// The clean rebuild: a worktree of the commit, a fresh target dir and a layout of its own,
/// built the way another machine would build it.
struct Rebuild<'a> {
    project: &'a Project,
    src: PathBuf,
    target_dir: Utf8PathBuf,
    layout: PathBuf,
    machine: OtherMachine,
}

/// What the rebuild gets instead of this machine's own: another `HOME`, another
/// `CARGO_HOME` path (its registry sources unpacked there afresh, from the `.crate` files
/// and index this machine already downloaded, offline), an empty zig cache, another time
/// zone and (see `Umask`) another umask. A path, a cached object or a time of this machine
/// that reaches a binary or an image then shows as a difference. The toolchain itself
/// (`RUSTUP_HOME`) stays: its paths are mapped by the rustc wrapper like the cargo home's.
struct OtherMachine {
    home: PathBuf,
    cargo_home: PathBuf,
    zig_cache: PathBuf,
    rustup_home: Utf8PathBuf,
}

impl OtherMachine {
    /// A time zone far from most machines', with no time zone database needed: UTC+13:45.
    const TZ: &'static str = "XTASK-13:45";

    /// Lays out the other machine's folders under `dir` (removed with the scratch folder).
    fn new(dir: &Path) -> anyhow::Result<OtherMachine> {
        let rustup_home = toolchain::tool_home("RUSTUP_HOME", ".rustup")
            .context("neither RUSTUP_HOME nor HOME is set")?;
        let ours = toolchain::tool_home("CARGO_HOME", ".cargo")
            .context("neither CARGO_HOME nor HOME is set")?;
        let machine = OtherMachine {
            home: dir.join("home"),
            cargo_home: dir.join("cargo home"),
            zig_cache: dir.join("zig cache"),
            rustup_home,
        };
        for made in [&machine.home, &machine.zig_cache] {
            std::fs::create_dir_all(made)
                .with_context(|| format!("creating {}", made.display()))?;
        }
        // What was downloaded is shared (read only, offline); what is unpacked is not.
        for shared in ["registry/index", "registry/cache", "git/db"] {
            let from = ours.join(shared);
            if from.is_dir() {
                toolchain::link(&from, &utf8(machine.cargo_home.join(shared))?)?;
            }
        }
        // The user's cargo settings (a mirror, a vendored source), never credentials.
        for config in ["config.toml", "config"] {
            let from = ours.join(config);
            if from.is_file() {
                let to = machine.cargo_home.join(config);
                std::fs::copy(&from, &to).with_context(|| format!("copying {from}"))?;
            }
        }
        Ok(machine)
    }

    fn apply<'a>(&self, command: xshell::Cmd<'a>) -> xshell::Cmd<'a> {
        command
            .env("HOME", &self.home)
            .env("CARGO_HOME", &self.cargo_home)
            .env("CARGO_NET_OFFLINE", "true")
            .env("RUSTUP_HOME", &self.rustup_home)
            .env("ZIG_GLOBAL_CACHE_DIR", &self.zig_cache)
            .env("ZIG_LOCAL_CACHE_DIR", &self.zig_cache)
            .env("TZ", Self::TZ)
            .env_remove("XDG_CACHE_HOME")
            // An independent rebuild: nothing compiled elsewhere (README, Across machines).
            .env_remove(cache::VAR)
            .env_remove("XTASK_RUSTC_WRAPPER")
    }
}

/// Another umask than this process's, for as long as it is held: files the rebuild creates
/// (its checkout, its target dir) get other modes than here. Set back when dropped.
struct Umask(Mode);

impl Umask {
    fn other() -> Umask {
        let strict = Mode::from_bits_truncate(0o077);
        let old = umask(strict);
        if old == strict {
            umask(Mode::from_bits_truncate(0o022));
        }
        Umask(old)
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        umask(self.0);
    }
}

impl Rebuild<'_> {
    /// Checks `commit` out and builds its binaries, as another machine.
    fn binaries(
        &self,
        sh: &Shell,
        commit: &str,
        targets: &[Target],
    ) -> anyhow::Result<Vec<Manifest>> {
        let short = &commit[..commit.len().min(12)];
        // From the checkout on, as another machine: its files get that machine's modes.
        let _umask = Umask::other();
        step(
            format_args!("checked out {short} in {}", self.src.display()),
            || git::add_worktree(sh, &self.src, commit),
        )?;
        let exe = process::own_exe()?;
        let triples = Target::cargo_args(targets);
        let _dir = sh.push_dir(&self.src);
        step(format_args!("rebuilt the binaries of {short}"), || {
            let triples = &triples;
            self.xtask(cmd!(sh, "{exe} build {triples...}"))
        })?;
        dist_manifests(self.project, targets, &self.target_dir, "the rebuild")
    }

    /// The images of `project`'s current image, from the rebuilt binaries, in a layout of
    /// their own.
    fn images(
        &self,
        sh: &Shell,
        project: &Project,
        commit: &str,
        targets: &[Target],
        zstd: bool,
    ) -> anyhow::Result<Images> {
        let short = &commit[..commit.len().min(12)];
        let _umask = Umask::other();
        let exe = process::own_exe()?;
        let triples = Target::cargo_args(targets);
        let compression = if zstd { "zstd" } else { "gzip" };
        let layout = self.layout_of(project)?;
        let name = project.image_name();
        let _dir = sh.push_dir(&self.src);
        step(
            format_args!("rebuilt the images of {name} at {short}"),
            || {
                let triples = &triples;
                let tag = format!("{name}:{REBUILD_TAG}");
                self.xtask(cmd!(
                sh,
                "{exe} image --image {name} --no-load --layout {layout} --tag {tag} --compression {compression} {triples...}"
            ))
            },
        )?;
        let layout = Layout::open(&layout)?;
        Ok(Images::from_layout(&layout, REBUILD_TAG, &arches(targets))?)
    }

    /// Where the rebuild writes the images of `project`'s current image.
    fn layout_of(&self, project: &Project) -> anyhow::Result<Utf8PathBuf> {
        utf8(self.layout.join(project.image_name()))
    }

    /// Runs the xtask in the worktree with its own target dir; what it prints on stdout
    /// (its tables) is not ours to print.
    fn xtask(&self, command: xshell::Cmd<'_>) -> anyhow::Result<()> {
        let command = toolchain::in_other_checkout(self.project, command, &self.target_dir);
        let command = self.machine.apply(command);
        let finished = process::run(command, Io::Capture, Io::Inherit)?;
        if !finished.status.success() {
            bail!("the rebuild failed: its errors are above");
        }
        Ok(())
    }
}

fn dist_manifests(
    project: &Project,
    targets: &[Target],
    target_dir: &Utf8Path,
    made_by: &str,
) -> anyhow::Result<Vec<Manifest>> {
    targets
        .iter()
        .map(|&t| {
            let dir = target_dir.join("dist").join(t.triple());
            if !dir.join(MANIFEST).exists() {
                bail!(
                    "no staged binaries for {t} in {}: run {made_by} first",
                    project.relative(&dir)
                );
            }
            read_staged(&dir).with_context(|| {
                format!("the binaries staged for {t} (run {made_by} to stage them again)")
            })
        })
        .collect()
}

/// A fresh folder under the system's temporary directory.
fn scratch_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("xtask-verify-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes the worktree and the scratch folder however verify ends (an error, Ctrl-C).
fn cleanup(project: &Project, scratch: &Path) -> Undo {
    let root = project.root.as_std_path().to_owned();
    let scratch = scratch.to_owned();
    Undo::new(move || {
        git::remove_worktree(&root, &scratch.join("src"));
        let _ = std::fs::remove_dir_all(&scratch);
    })
}

/// One image's document of one kind, as attached to what is staged and to the rebuild.
struct DocumentCheck {
    kind: &'static str,
    platform: String,
    want: Option<AttachedDocument>,
    have: Option<AttachedDocument>,
}

impl DocumentCheck {
    /// The line naming how it differs, or `None` when both are the same bytes.
    fn difference(&self) -> Option<String> {
        let (kind, platform) = (self.kind, &self.platform);
        match (&self.want, &self.have) {
            (Some(a), Some(b)) if a.digest == b.digest => None,
            (Some(a), Some(b)) => Some(format!(
                "the {kind} attached to {platform} ({}) differs from the rebuild's: {}",
                short_hash(a.digest.as_ref()),
                compare::diff_documents(&a.bytes, &b.bytes)
            )),
            (None, Some(_)) => Some(format!(
                "{platform} has no {kind} attached: build it with `cargo xtask image` (the builtin engine attaches one)"
            )),
            (Some(_), None) => Some(format!("the rebuild attached no {kind} to {platform}")),
            (None, None) => Some(format!(
                "neither {platform} nor its rebuild has a {kind} attached"
            )),
        }
    }
}

fn utf8(path: PathBuf) -> anyhow::Result<Utf8PathBuf> {
    Utf8PathBuf::from_path_buf(path).map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))
}

/// Which side of the comparison a difference is found against: the staged binaries, or the
/// images (layout or registry) compared with.
enum Side {
    Binaries,
    Compared,
}

/// The one line a mismatch ends with: the first image that differs, down to its file or
/// config field; else the first attached document, down to its field; else the first
/// binary (the first `binaries` rows); else the index.
fn first_difference(
    rows: &[Row],
    binaries: usize,
    expected: &mut Expected,
    expected_images: &Images,
    rebuilt_images: &Images,
    documents: &[DocumentCheck],
    layout: &Utf8Path,
) -> anyhow::Result<(String, Side)> {
    for want in &expected_images.images {
        let Some(got) = rebuilt_images.platform(&want.platform) else {
            let line = format!("the rebuild has no {} image", want.platform);
            return Ok((line, Side::Compared));
        };
        if want.digest == got.digest {
            continue;
        }
        let mut rebuilt = Layout::open(layout)?;
        let found = compare::first_difference(
            &want.platform,
            (&want.manifest, expected.blobs()),
            (&got.manifest, &mut rebuilt),
        )?;
        let line = found.unwrap_or_else(|| {
            format!(
                "the {} image differs ({} vs rebuilt {})",
                want.platform, want.digest, got.digest
            )
        });
        return Ok((line, Side::Compared));
    }
    if let Some(line) = documents.iter().find_map(DocumentCheck::difference) {
        return Ok((line, Side::Compared));
    }
    let failed = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.result == Outcome::Fail);
    Ok(match failed {
        Some((n, row)) => {
            let side = if n < binaries {
                Side::Binaries
            } else {
                Side::Compared
            };
            let line = format!(
                "{} differs ({} vs rebuilt {})",
                row.what,
                short_hash(&row.expected),
                short_hash(&row.rebuilt)
            );
            (line, side)
        }
        None => ("nothing differs".to_owned(), Side::Compared),
    })
}

/// `sha256:` and 16 hex digits: enough to tell two digests apart at a glance.
fn short_hash(hash: &str) -> String {
    let (prefix, hex) = hash.split_once(':').unwrap_or(("", hash));
    let hex = &hex[..hex.len().min(16)];
    match prefix {
        "" => hex.to_owned(),
        p => format!("{p}:{hex}"),
    }
}

fn table(rows: &[Row]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.what.clone(),
                short_hash(&r.expected),
                short_hash(&r.rebuilt),
                match r.result {
                    Outcome::Pass => "pass".to_owned(),
                    Outcome::Fail => "FAIL".to_owned(),
                },
            ]
        })
        .collect();
    report::table(&["what", "expected", "rebuilt", "result"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_shortened_with_their_algorithm() {
        assert_eq!(
            short_hash("sha256:0123456789abcdef0123"),
            "sha256:0123456789abcdef"
        );
        assert_eq!(short_hash("0123456789abcdef0123"), "0123456789abcdef");
        assert_eq!(short_hash("missing"), "missing");
    }
}
