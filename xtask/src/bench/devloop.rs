//! The developer's loop: from a one-line change in the service to both images, on the
//! release path (`cargo xtask image`) and on the fast path (`cargo xtask image --fast`),
//! measured in the same run, and the fast path for one `--target`.
//!
//! The edits happen in a git worktree of HEAD under our target dir, built with a target dir
//! of its own that persists between benches (the first bench pays the warm-up builds), so
//! the user's working tree and build caches are never touched. The worktree and the images'
//! layout are removed however the bench ends (Ctrl-C included).

use std::time::Instant;

use anyhow::{Context, bail};
use cargo_metadata::camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use xshell::{Shell, cmd};

use tiny_commands::interrupt::{self, Undo};
use tiny_commands::model::project::Project;
use tiny_commands::report;
use tiny_commands::tools::process::{self, Io};
use tiny_commands::tools::{git, toolchain};
use tiny_cross::dist::read_manifest;
use tiny_cross::profile;
use tiny_cross::target::Target;

/// The file each measured build changes, and the string literal changed in it.
pub const EDITED: &str = "service/src/routes.rs";
const ANCHOR: &str = "\"database unreachable\"";
/// The goal for the fast path against the release path, both targets.
pub const GOAL: f64 = 1.0 / 3.0;

/// What `bench --json` reports under `devloop` (schema in the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devloop {
    /// The machine's cores.
    pub cores: usize,
    /// The file the one-line change is made in.
    pub edit: String,
    /// Building both profiles before anything is timed (long on a first bench only).
    pub warmup_seconds: f64,
    /// Each path's median time from the change to its images in an OCI layout.
    pub runs: Vec<Run>,
    /// Fast path over release path, both targets.
    pub fast_over_release: f64,
    /// The most `fast_over_release` should be.
    pub goal: f64,
    /// Each staged binary's size from either profile.
    pub sizes: Vec<Sizes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub path: ImagePath,
    /// The target triples built.
    pub targets: Vec<String>,
    pub seconds: f64,
    pub rounds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImagePath {
    /// `cargo xtask image`
    Release,
    /// `cargo xtask image --fast`
    Fast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub target: String,
    pub binary: String,
    pub release: u64,
    pub fast: u64,
}

/// The worktree, its persistent target dir and the images' layout.
struct Place {
    src: Utf8PathBuf,
    target_dir: Utf8PathBuf,
    layout: Utf8PathBuf,
}

/// Measures each path `rounds` times, interleaved, and reports the medians.
pub fn measure(sh: &Shell, project: &Project, rounds: usize) -> anyhow::Result<Devloop> {
    let base = project.work_dir().join("devloop");
    let place = Place {
        src: base.join("src"),
        target_dir: base.join("target"),
        layout: base.join("oci"),
    };
    // A worktree a killed bench left is replaced: its files are HEAD's plus one edit.
    git::remove_worktree(project.root.as_std_path(), place.src.as_std_path());
    let _cleanup = {
        let root = project.root.as_std_path().to_owned();
        let (src, layout) = (place.src.clone(), place.layout.clone());
        Undo::new(move || {
            git::remove_worktree(&root, src.as_std_path());
            let _ = std::fs::remove_dir_all(&layout);
        })
    };
    let head = git::head(sh)?;
    git::add_worktree(sh, place.src.as_std_path(), &head)?;
    let original = std::fs::read_to_string(place.src.join(EDITED))
        .with_context(|| format!("reading {EDITED} in the bench's worktree"))?;
    if !original.contains(ANCHOR) {
        bail!("{EDITED} no longer has the string {ANCHOR} the bench edits: update devloop.rs");
    }
    // Different on every build, this bench or an earlier one (the target dir persists).
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut edits = 0;
    let mut edit = || {
        edits += 1;
        let line = format!("\"database unreachable (edit {nonce}-{edits})\"");
        std::fs::write(place.src.join(EDITED), original.replacen(ANCHOR, &line, 1))
            .with_context(|| format!("editing {EDITED} in the bench's worktree"))
    };

    let both = project.targets(&[]);
    let one = vec![Target::X86_64Musl];
    let started = Instant::now();
    if !place.target_dir.exists() {
        seed(sh, project, &place.target_dir, &both)?;
    }
    eprintln!(
        "  warming both profiles in {} (long on a first bench only)",
        project.relative(&place.target_dir)
    );
    for path in [ImagePath::Release, ImagePath::Fast] {
        edit()?;
        image(sh, project, &place, path, &both)?;
    }
    let warmup_seconds = started.elapsed().as_secs_f64();

    let plan = [
        (ImagePath::Release, &both),
        (ImagePath::Fast, &both),
        (ImagePath::Fast, &one),
    ];
    let mut times = vec![Vec::new(); plan.len()];
    for round in 0..rounds {
        for (i, (path, targets)) in plan.iter().enumerate() {
            edit()?;
            let seconds = image(sh, project, &place, *path, targets)?;
            eprintln!(
                "  round {}: change to {} image(s), {path:?} path: {}",
                round + 1,
                targets.len(),
                report::seconds(std::time::Duration::from_secs_f64(seconds))
            );
            times[i].push(seconds);
        }
    }
    let runs: Vec<Run> = plan
        .iter()
        .zip(&mut times)
        .map(|((path, targets), times)| Run {
            path: *path,
            targets: targets.iter().map(|t| t.triple().to_owned()).collect(),
            seconds: super::median(times),
            rounds,
        })
        .collect();
    Ok(Devloop {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        edit: EDITED.to_owned(),
        warmup_seconds,
        fast_over_release: runs[1].seconds / runs[0].seconds,
        runs,
        goal: GOAL,
        sizes: sizes(&place.target_dir, &both)?,
    })
}

/// A first bench starts its target dir from the user's compiled dependencies, so the
/// warm-up rebuilds the workspace's own crates only, not every dependency twice per target.
/// Cargo keys a registry crate's artifacts by package, profile, target and toolchain, never
/// by the workspace's path, so the worktree's cargo finds them fresh (and rebuilds them, as
/// it would anyway, when any of those differ). `cp -a` keeps the mtimes its fingerprints
/// compare; fingerprints are copied last, so an interrupted seed only costs rebuilds.
fn seed(sh: &Shell, project: &Project, dest: &Utf8Path, targets: &[Target]) -> anyhow::Result<()> {
    for target in targets {
        for profile in [profile::RELEASE, profile::DEV_IMAGE] {
            let from = project.target_dir.join(target.triple()).join(profile);
            let to = dest.join(target.triple()).join(profile);
            for part in ["deps", "build", ".fingerprint"] {
                let src = from.join(part);
                if !src.is_dir() {
                    continue;
                }
                std::fs::create_dir_all(&to).with_context(|| format!("creating {to}"))?;
                cmd!(sh, "cp -a --reflink=auto {src} {to}")
                    .quiet()
                    .run()
                    .with_context(|| {
                        format!(
                            "seeding the bench's target dir from {src}: remove {dest} and retry"
                        )
                    })?;
            }
        }
    }
    Ok(())
}

/// Runs `image` (with `--fast` on the fast path) in the worktree, into the bench's layout
/// and no engine, and returns how long it took. It must have compiled the service: a build
/// that found nothing to do would measure nothing.
fn image(
    sh: &Shell,
    project: &Project,
    place: &Place,
    path: ImagePath,
    targets: &[Target],
) -> anyhow::Result<f64> {
    let xtask = process::own_exe()?;
    let triples = Target::cargo_args(targets);
    let layout = &place.layout;
    let name = project.image_name();
    let tag = format!("devloop/{name}:bench");
    let fast = (path == ImagePath::Fast).then_some("--fast");
    let _dir = sh.push_dir(&place.src);
    let command = cmd!(
        sh,
        "{xtask} image --image {name} --no-load --layout {layout} --tag {tag} {fast...} {triples...}"
    )
    .quiet();
    // Each path as its profile declares it: a CARGO_INCREMENTAL of the caller's (CI turns
    // incremental compilation off to save disk) would take the fast path's incremental away.
    let command = toolchain::in_other_checkout(project, command, &place.target_dir)
        .env_remove("CARGO_INCREMENTAL");
    let started = Instant::now();
    let done = process::run(command, Io::Null, Io::Capture)?;
    let seconds = started.elapsed().as_secs_f64();
    interrupt::check()?;
    if !done.status.success() {
        // Its own errors first, then our one line.
        eprint!("{}", done.stderr);
        bail!(
            "`cargo xtask image{}` failed in the bench's worktree {}: see its errors above",
            fast.map(|f| format!(" {f}")).unwrap_or_default(),
            place.src
        );
    }
    if !done.stderr.contains("Compiling service") {
        bail!("the {path:?} path did not recompile the service after an edit of {EDITED}");
    }
    Ok(seconds)
}

fn sizes(target_dir: &Utf8Path, targets: &[Target]) -> anyhow::Result<Vec<Sizes>> {
    let mut sizes = Vec::new();
    for &target in targets {
        let dist = target_dir.join("dist");
        let release = read_manifest(&dist.join(target.triple()))?;
        let fast = read_manifest(&dist.join(profile::DEV_IMAGE).join(target.triple()))?;
        for file in &release.files {
            let Some(dev) = fast.files.iter().find(|f| f.name == file.name) else {
                bail!("the fast build staged no {} for {target}", file.name);
            };
            sizes.push(Sizes {
                target: target.triple().to_owned(),
                binary: file.name.clone(),
                release: file.size,
                fast: dev.size,
            });
        }
    }
    Ok(sizes)
}

/// The figures as tables.
pub fn render(d: &Devloop) -> String {
    let rows: Vec<Vec<String>> = d
        .runs
        .iter()
        .map(|r| {
            vec![
                format!("{:?}", r.path).to_lowercase(),
                r.targets.join(", "),
                format!("{:.1}s", r.seconds),
            ]
        })
        .collect();
    let size_rows: Vec<Vec<String>> = d
        .sizes
        .iter()
        .map(|s| {
            vec![
                s.target.clone(),
                s.binary.clone(),
                report::size(s.release),
                report::size(s.fast),
            ]
        })
        .collect();
    format!(
        "one-line change in {} to images ({} cores, median of {}; warm-up {:.0}s)\n{}\
         fast / release, both targets = {:.2} (target: at most {:.2})\n{}",
        d.edit,
        d.cores,
        d.runs.first().map_or(0, |r| r.rounds),
        d.warmup_seconds,
        report::table(&["path", "targets", "time"], &rows),
        d.fast_over_release,
        d.goal,
        report::table(&["target", "binary", "release", "fast"], &size_rows),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema the README documents, read back from JSON as a consumer would write it.
    #[test]
    fn the_json_schema_is_stable() {
        let json = r#"{
            "cores": 2,
            "edit": "service/src/routes.rs",
            "warmup_seconds": 120.5,
            "runs": [
                {"path": "release", "targets": ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"], "seconds": 40.0, "rounds": 2},
                {"path": "fast", "targets": ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"], "seconds": 8.0, "rounds": 2},
                {"path": "fast", "targets": ["x86_64-unknown-linux-musl"], "seconds": 5.0, "rounds": 2}
            ],
            "fast_over_release": 0.2,
            "goal": 0.3333333333333333,
            "sizes": [{"target": "x86_64-unknown-linux-musl", "binary": "service", "release": 2878992, "fast": 4389168}]
        }"#;
        let d: Devloop = serde_json::from_str(json).unwrap();
        assert_eq!(d.runs[1].path, ImagePath::Fast);
        assert_eq!(d.sizes[0].fast, 4389168);
        let again: Devloop = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(again, d);
        assert!(
            serde_json::from_str::<Devloop>(&json.replace("\"cores\"", "\"kernels\"")).is_err()
        );
        let table = render(&d);
        assert!(
            table.contains("fast / release, both targets = 0.20"),
            "{table}"
        );
    }
}
