//! Proof that a cargo build would have nothing to do, so that a no-op `cargo xtask build`
//! need not pay for a second cargo run. `cargo run` checking the xtask already costs about
//! as much as a plain no-op `cargo build` of both targets (80-130 ms against 90-150 ms
//! here), so a second cargo run alone broke the 1.5x budget: 1.71x before, 1.04x with
//! this (medians of 15 alternating runs, same session).
//!
//! After a successful build we record every input cargo's freshness check depends on, as
//! the file identities of `digests::Stamp` (size, mtime, ctime, inode, device; ctime cannot
//! be set back by hand), and the outputs as they were left. The next build is skipped only
//! when all of them are identical, so the outputs are exactly what cargo made from exactly
//! these inputs. The inputs (gathered by `tools::compile`) are a superset of what cargo
//! compares: the command and the whole environment, the toolchain, cargo configuration and
//! toolchain files (their absence too), the workspace manifests and `Cargo.lock`, and every
//! local file cargo's dep-info lists for the outputs (sources, `include_str!`, build
//! scripts' `rerun-if-changed`). Registry sources are pinned by `Cargo.lock`, as for cargo.
//! Anything unexpected means "not proven": the build runs.
//!
//! No record is made when an input may have changed while cargo ran: one whose ctime or
//! mtime is later than, or within `MARGIN_NS` before, that of a marker file written just
//! before cargo started. Both times come from the file system's clock (the kernel's coarse
//! one, or a network server's), never from `SystemTime::now()`. Nor when a source is a
//! directory (a build script's `rerun-if-changed=<dir>`): cargo scans all the files under
//! it, but a directory's own times do not move when one of them is edited. The toolchain's
//! standard library folders are watched as directories on purpose: rustup adds and
//! replaces their files, which moves the folder's times, and replaces rustc with them.

use std::collections::BTreeMap;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digests::Stamp;

/// Bumped whenever what a record covers changes, so older records prove nothing.
const FORMAT: u32 = 1;

/// Variables left out of the key: the shell changes them between any two commands, and
/// neither cargo, rustc nor a build script gives them a meaning.
const VOLATILE: [&str; 3] = ["_", "OLDPWD", "SHLVL"];

/// One output of the recorded build: an executable cargo reported, by target and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The target triple.
    pub target: String,
    /// The binary's name.
    pub name: String,
    /// Where cargo wrote it.
    pub path: Utf8PathBuf,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Contents {
    format: u32,
    key: String,
    /// Every input as it was: `None` for a file whose absence matters (a config file cargo
    /// would read if it appeared).
    inputs: BTreeMap<Utf8PathBuf, Option<Stamp>>,
    outputs: Vec<(Output, Stamp)>,
}

/// The key of a build: the command and every environment variable but the volatile ones,
/// hashed.
pub fn key(
    command: &[&str],
    cwd: &Utf8Path,
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> String {
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(name, _)| !VOLATILE.iter().any(|v| name == v))
        .collect();
    vars.sort();
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    put(&FORMAT.to_le_bytes());
    put(cwd.as_str().as_bytes());
    for arg in command {
        put(arg.as_bytes());
    }
    for (name, value) in &vars {
        put(name.as_encoded_bytes());
        put(value.as_encoded_bytes());
    }
    format!("{:x}", hash.finalize())
}

/// A file's identity now: `None` when it does not exist; an error when it cannot be told.
fn identity(path: &Utf8Path) -> crate::Result<Option<Stamp>> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}"))?,
        // Through links: a toolchain or zig reached by a link is watched where it lives.
        Ok(_) => Stamp::of(path).map(Some),
    }
}

/// How long before cargo started an input may have changed and still be taken as changed
/// while it ran: covers the coarse clock file times come from and one that lags a little.
/// An input edited within it costs one more cargo run, never a wrong skip.
pub const MARGIN_NS: i128 = 2_000_000_000;

/// When a build started, by the file system's clock, less `MARGIN_NS`.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    ns: i128,
}

impl Started {
    /// The start given by a file written just before the build, as `Stamp::changed_ns`.
    fn from_marker(marker_ns: i128) -> Started {
        Started {
            ns: marker_ns - MARGIN_NS,
        }
    }

    /// Whether a file last changed at `changed_ns` may have changed after the build started.
    fn may_follow(self, changed_ns: i128) -> bool {
        changed_ns >= self.ns
    }
}

/// How many records are kept, one per key: the same build started from environments that
/// differ (the xtask run by hand, through `cargo run`, or by the bench) each keeps its own
/// and they do not invalidate one another's.
const KEPT: usize = 8;

/// The record of the last successful build with one key.
pub struct Record {
    path: Utf8PathBuf,
    key: String,
}

impl Record {
    /// The record for `key` among those kept in `dir`.
    pub fn at(dir: &Utf8Path, key: &str) -> Record {
        Record {
            path: dir.join(format!("{}.json", &key[..key.len().min(32)])),
            key: key.to_owned(),
        }
    }

    /// The outputs of the recorded build, if there is one and nothing it recorded has
    /// changed since.
    pub fn fresh(&self) -> Option<Vec<Output>> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let contents: Contents = serde_json::from_str(&text).ok()?;
        if contents.format != FORMAT || contents.key != self.key {
            return None;
        }
        for (path, then) in &contents.inputs {
            if identity(path).ok()? != *then {
                return None;
            }
        }
        for (output, then) in &contents.outputs {
            if identity(&output.path).ok()? != Some(*then) {
                return None;
            }
        }
        Some(contents.outputs.into_iter().map(|(o, _)| o).collect())
    }

    /// Forgets the recorded build: done before a build runs, so that a failed or
    /// interrupted one leaves no record behind.
    pub fn forget(&self) -> crate::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.path))?
            }
            _ => Ok(()),
        }
    }

    /// Forgets the recorded build and tells when the next one starts, by the time of a
    /// marker file written now: call it just before running cargo.
    pub fn start(&self) -> crate::Result<Started> {
        self.forget()?;
        let dir = self.path.parent().context("record path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        // One per process: a concurrent build must not move ours.
        let marker = dir.join(format!("started-{}", std::process::id()));
        std::fs::write(&marker, "").with_context(|| format!("writing {marker}"))?;
        let stamp = Stamp::of(&marker);
        let _ = std::fs::remove_file(&marker);
        Ok(Started::from_marker(stamp?.changed_ns()))
    }

    /// Records a successful build that started at `started`, with its inputs: `watched`
    /// may be absent (config and toolchain files cargo would read if they appeared),
    /// `sources` must exist. Nothing is recorded (and `false` returned) when a source is
    /// missing or a directory, or an input may have changed after the build started: cargo
    /// may have read it either way, so the outputs prove nothing about it as it is now.
    pub fn save(
        &self,
        started: Started,
        watched: &[Utf8PathBuf],
        sources: &[Utf8PathBuf],
        outputs: &[Output],
    ) -> crate::Result<bool> {
        if sources.iter().any(|path| path.is_dir()) {
            return Ok(false);
        }
        let mut contents = Contents {
            format: FORMAT,
            key: self.key.clone(),
            inputs: BTreeMap::new(),
            outputs: Vec::new(),
        };
        let required = sources.iter().map(|p| (p, true));
        for (path, required) in watched.iter().map(|p| (p, false)).chain(required) {
            let stamp = identity(path)?;
            if (required && stamp.is_none())
                || stamp.is_some_and(|s| started.may_follow(s.changed_ns()))
            {
                return Ok(false);
            }
            contents.inputs.insert(path.clone(), stamp);
        }
        for output in outputs {
            let stamp = Stamp::of(&output.path)?;
            contents.outputs.push((output.clone(), stamp));
        }
        let dir = self.path.parent().context("record path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let tmp = self
            .path
            .with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&contents)?)
            .with_context(|| format!("writing {tmp}"))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("writing {}", self.path))?;
        prune(dir);
        Ok(true)
    }
}

/// Removes the oldest records beyond `KEPT`.
fn prune(dir: &Utf8Path) {
    let Ok(entries) = dir.read_dir_utf8() else {
        return;
    };
    let mut records: Vec<_> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.into_path())))
        .collect();
    records.sort();
    let excess = records.len().saturating_sub(KEPT);
    for (_, path) in records.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

/// The files a cargo dep-info file (`<output>.d`, Makefile syntax: `output: input...`,
/// spaces escaped with a backslash) lists as inputs. `None` for anything this parser does
/// not expect, such as a relative path (`build.dep-info-basedir`) or another escape: no
/// record is made then.
pub fn dep_info_inputs(text: &str) -> Option<Vec<Utf8PathBuf>> {
    let mut inputs = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut word = String::new();
        let mut chars = split_rule(line)?.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.next()? == ' ' => word.push(' '),
                '\\' => return None,
                ' ' => take_path(&mut word, &mut inputs)?,
                c => word.push(c),
            }
        }
        take_path(&mut word, &mut inputs)?;
    }
    (!inputs.is_empty()).then_some(inputs)
}

fn take_path(word: &mut String, inputs: &mut Vec<Utf8PathBuf>) -> Option<()> {
    if word.is_empty() {
        return Some(());
    }
    if !word.starts_with('/') {
        return None;
    }
    inputs.push(Utf8PathBuf::from(std::mem::take(word)));
    Some(())
}

/// The part of a dep-info rule after `output:`, skipping escaped characters in the output.
fn split_rule(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => return Some(&line[i + 1..]),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scratch_dir;

    /// A recorded build over `src/lib.rs` (a source), `config.toml` (watched, absent) and
    /// `out/bin` (the output).
    fn recorded(dir: &Utf8Path) -> Record {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(dir.join("out/bin"), "binary").unwrap();
        let started = long_after(&dir.join("out/bin"));
        let key = key(&["build"], dir, vars(&[("A", "1")]));
        let record = Record::at(&dir.join("records"), &key);
        let saved = record
            .save(
                started,
                &[dir.join("config.toml")],
                &[dir.join("src/lib.rs")],
                &[output(dir)],
            )
            .unwrap();
        assert!(saved);
        record
    }

    /// A start well past the margin after `path` was last written (by its file time).
    fn long_after(path: &Utf8Path) -> Started {
        Started::from_marker(Stamp::of(path).unwrap().changed_ns() + MARGIN_NS + 1)
    }

    fn output(dir: &Utf8Path) -> Output {
        Output {
            target: "x86_64-unknown-linux-musl".into(),
            name: "bin".into(),
            path: dir.join("out/bin"),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        pairs.iter().map(|(n, v)| (n.into(), v.into())).collect()
    }

    #[test]
    fn an_unchanged_build_is_fresh_with_its_outputs() {
        let (_tmp, dir) = scratch_dir();
        let record = recorded(&dir);
        assert_eq!(record.fresh(), Some(vec![output(&dir)]));
    }

    #[test]
    fn any_change_to_an_input_or_an_output_is_not_fresh() {
        type Change = (&'static str, fn(&Utf8Path));
        let changes: [Change; 6] = [
            ("edited source", |d| {
                std::fs::write(d.join("src/lib.rs"), "fn b() {}").unwrap()
            }),
            ("same bytes rewritten (new ctime)", |d| {
                std::fs::write(d.join("src/lib.rs"), "fn a() {}").unwrap()
            }),
            ("removed source", |d| {
                std::fs::remove_file(d.join("src/lib.rs")).unwrap()
            }),
            ("watched file appeared", |d| {
                std::fs::write(d.join("config.toml"), "").unwrap()
            }),
            ("output replaced", |d| {
                std::fs::remove_file(d.join("out/bin")).unwrap();
                std::fs::write(d.join("out/bin"), "binary").unwrap();
            }),
            ("record from an older format", |d| {
                let path =
                    Record::at(&d.join("records"), &key(&["build"], d, vars(&[("A", "1")]))).path;
                let text = std::fs::read_to_string(&path).unwrap();
                let old = text.replace(&format!("\"format\":{FORMAT}"), "\"format\":0");
                assert_ne!(old, text);
                std::fs::write(path, old).unwrap();
            }),
        ];
        for (what, change) in changes {
            let (_tmp, dir) = scratch_dir();
            let record = recorded(&dir);
            // ctime has the file system's granularity: make sure a rewrite moves it.
            std::thread::sleep(Duration::from_millis(20));
            change(&dir);
            assert_eq!(record.fresh(), None, "{what}");
        }
    }

    #[test]
    fn each_key_keeps_its_own_record_and_only_the_latest_are_kept() {
        let (_tmp, dir) = scratch_dir();
        let first = recorded(&dir);
        let records = dir.join("records");
        let out = output(&dir);
        let later = long_after(&out.path);
        for i in 0..KEPT {
            let other = Record::at(&records, &format!("other-{i}"));
            assert!(
                other
                    .save(later, &[], &[], std::slice::from_ref(&out))
                    .unwrap()
            );
            assert_eq!(other.fresh(), Some(vec![out.clone()]));
            if i == 0 {
                assert_eq!(
                    first.fresh(),
                    Some(vec![out.clone()]),
                    "one did not replace the other"
                );
            }
        }
        assert_eq!(first.fresh(), None, "the oldest was not pruned");
        assert_eq!(records.read_dir().unwrap().count(), KEPT);
    }

    #[test]
    fn the_key_covers_the_command_and_every_variable_but_the_shells_own() {
        let cwd = Utf8Path::new("/w");
        let base = key(
            &["build", "--release"],
            cwd,
            vars(&[("A", "1"), ("_", "x")]),
        );
        assert_eq!(
            base,
            key(
                &["build", "--release"],
                cwd,
                vars(&[("_", "y"), ("A", "1"), ("SHLVL", "3")])
            )
        );
        for other in [
            key(&["build"], cwd, vars(&[("A", "1")])),
            key(
                &["build", "--release"],
                Utf8Path::new("/v"),
                vars(&[("A", "1")]),
            ),
            key(&["build", "--release"], cwd, vars(&[("A", "2")])),
            key(
                &["build", "--release"],
                cwd,
                vars(&[("A", "1"), ("RUSTFLAGS", "")]),
            ),
            // No ambiguity between where one argument ends and the next begins.
            key(&["build--", "release"], cwd, vars(&[("A", "1")])),
        ] {
            assert_ne!(other, base);
        }
    }

    #[test]
    fn a_build_is_not_recorded_when_a_source_changed_while_it_ran_or_is_missing() {
        let (_tmp, dir) = scratch_dir();
        let src = dir.join("lib.rs");
        let watched = dir.join("config.toml");
        let out = output(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(&out.path, "").unwrap();
        let record = Record::at(&dir.join("records"), "k");
        let later = long_after(&out.path);
        let save = |started, watched: &[Utf8PathBuf], sources: &[Utf8PathBuf]| {
            record
                .save(started, watched, sources, std::slice::from_ref(&out))
                .unwrap()
        };

        // Written just before the build started, by the file system's own clock: within
        // the margin, so it may have been read either way.
        std::fs::write(&src, "").unwrap();
        let started = record.start().unwrap();
        assert!(!save(started, &[], std::slice::from_ref(&src)), "source");
        std::fs::write(&watched, "").unwrap();
        assert!(!save(later, std::slice::from_ref(&watched), &[]), "watched");
        assert!(!save(later, &[], &[dir.join("gone.rs")]), "missing");
        assert_eq!(record.fresh(), None);
        assert!(save(long_after(&watched), &[watched], &[src]));
        let left: Vec<_> = dir.join("records").read_dir_utf8().unwrap().collect();
        assert_eq!(left.len(), 1, "the start marker was left: {left:?}");
    }

    #[test]
    fn a_change_up_to_the_margin_before_the_start_counts_as_during_the_build() {
        let marker = 100 * 1_000_000_000;
        let started = Started::from_marker(marker);
        for changed in [marker + 1, marker, marker - 1, marker - MARGIN_NS] {
            assert!(started.may_follow(changed), "{changed}");
        }
        for changed in [marker - MARGIN_NS - 1, 0] {
            assert!(!started.may_follow(changed), "{changed}");
        }
    }

    #[test]
    fn a_build_watching_a_directory_is_not_recorded() {
        let (_tmp, dir) = scratch_dir();
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("assets/a.txt"), "a").unwrap();
        std::fs::write(dir.join("lib.rs"), "").unwrap();
        let out = output(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(&out.path, "").unwrap();
        let record = Record::at(&dir.join("records"), "k");
        let later = long_after(&out.path);
        // A build script's `rerun-if-changed=assets` lands in dep-info as the folder.
        let sources = [dir.join("lib.rs"), dir.join("assets")];
        let saved = record.save(later, &[], &sources, std::slice::from_ref(&out));
        assert!(!saved.unwrap());
        assert_eq!(record.fresh(), None);
        let saved = record.save(later, &[], &sources[..1], &[out]);
        assert!(saved.unwrap(), "the same build without the folder");
    }

    #[test]
    fn dep_info_lists_absolute_inputs_and_refuses_what_it_does_not_expect() {
        let text = "/t/release/service: /w/Cargo.lock /w/my\\ dir/src/lib.rs /w/src/main.rs\n\n\
                    /t/release/service.exe: /w/src/main.rs\n";
        assert_eq!(
            dep_info_inputs(text).unwrap(),
            [
                "/w/Cargo.lock",
                "/w/my dir/src/lib.rs",
                "/w/src/main.rs",
                "/w/src/main.rs"
            ]
            .map(Utf8PathBuf::from)
        );
        assert_eq!(
            dep_info_inputs("/t/a\\ b: /w/x.rs"),
            Some(vec!["/w/x.rs".into()])
        );
        for odd in [
            "service: src/main.rs",
            "/t/service: /w/a\\tb.rs",
            "/t/service /w/main.rs",
            "",
            "/t/service:",
        ] {
            assert_eq!(dep_info_inputs(odd), None, "{odd:?}");
        }
    }
}
