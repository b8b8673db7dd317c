//! `cargo xtask init`: writes what a workspace needs besides its xtask and its image
//! declarations: the `.cargo/` settings (the `xtask` alias, the rustc wrapper, the musl
//! linkers, the C cross compilers) and `Dockerfile.runtime`, this version's, into the
//! workspace root. Nothing is written unless every file can be: a file of the same name that
//! is not ours is named, and left alone.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::write_atomically;
use crate::cli::InitArgs;

/// A file `init` writes: its path under the workspace root, its text, and whether it runs.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

/// The files, as this repository has them (a git or path dependency has the whole
/// repository, so the library reads them from where they are used).
macro_rules! templates {
    ($($path:literal $executable:literal),* $(,)?) => {
        &[$(Template {
            path: $path,
            text: include_str!(concat!("../../../../", $path)),
            executable: $executable,
        }),*]
    };
}

const TEMPLATES: &[Template] = templates![
    ".cargo/config.toml" false,
    ".cargo/rustc-wrapper" true,
    ".cargo/cache/cc" true,
    ".cargo/cache/rustc" true,
    ".cargo/cc/zig" true,
    ".cargo/cc/ar" true,
    ".cargo/cc/x86_64-unknown-linux-musl-cc" true,
    ".cargo/cc/aarch64-unknown-linux-musl-cc" true,
    ".cargo/cc/i686-unknown-linux-musl-cc" true,
    ".cargo/cc/armv7-unknown-linux-musleabihf-cc" true,
    ".cargo/cc/arm-unknown-linux-musleabihf-cc" true,
    ".cargo/cc/riscv64gc-unknown-linux-musl-cc" true,
    ".cargo/cc/powerpc64le-unknown-linux-musl-cc" true,
    ".cargo/cc/loongarch64-unknown-linux-musl-cc" true,
    "Dockerfile.runtime" false,
];

/// The settings file, which may hold settings of the workspace's own.
const CONFIG: &str = ".cargo/config.toml";

/// What `init` does with one file.
#[derive(Debug, PartialEq)]
enum Step {
    /// There is none: write ours.
    Write(String),
    /// It is ours already.
    Keep,
    /// A settings file of the workspace's own, with none of our tables: ours go after its
    /// own (the whole new text).
    Append(String),
}

/// What to do with `template`, given the file at its path (`None`: there is none); an
/// error names what is in the way.
fn plan(path: &str, ours: &str, theirs: Option<&str>) -> anyhow::Result<Step> {
    let Some(theirs) = theirs else {
        return Ok(Step::Write(ours.to_owned()));
    };
    if theirs == ours {
        return Ok(Step::Keep);
    }
    if path != CONFIG {
        bail!(
            "{path} is there already and is not this version's: move it aside and run init again"
        );
    }
    let parse = |text: &str| text.parse::<toml::Table>();
    let existing = parse(theirs).with_context(|| format!("reading {path}"))?;
    let wanted = parse(ours).expect("our own settings parse");
    // Ours are among its settings already, in whatever order and layout.
    if holds(&existing, &wanted) {
        return Ok(Step::Keep);
    }
    let joined = format!("{}\n\n{ours}", theirs.trim_end());
    if parse(&joined).is_ok() {
        return Ok(Step::Append(joined));
    }
    // Ours cannot go after theirs: name the tables both set.
    let mut both = Vec::new();
    for (key, value) in &wanted {
        match (key.as_str(), value, existing.get(key)) {
            ("target", toml::Value::Table(targets), Some(toml::Value::Table(theirs))) => both
                .extend(
                    targets
                        .keys()
                        .filter(|t| theirs.contains_key(*t))
                        .map(|t| format!("[target.{t}]")),
                ),
            ("target", _, _) | (_, _, None) => {}
            _ => both.push(format!("[{key}]")),
        }
    }
    bail!(
        "{path} sets {} of its own, which ours sets too: move it aside, run init again, then add your settings to the new one",
        both.join(", ")
    )
}

/// Whether `have` sets each of `wanted`'s settings to the same value.
fn holds(have: &toml::Table, wanted: &toml::Table) -> bool {
    wanted
        .iter()
        .all(|(key, value)| match (value, have.get(key)) {
            (toml::Value::Table(inner), Some(toml::Value::Table(theirs))) => holds(theirs, inner),
            (value, theirs) => theirs == Some(value),
        })
}

/// Writes `text` to `path` whole, runnable or not.
fn write(path: &Path, text: &str, executable: bool) -> anyhow::Result<()> {
    let dir = path.parent().expect("a file under the workspace root");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(path, text, Some(if executable { 0o755 } else { 0o644 }))
}

impl InitArgs {
    /// Runs `cargo xtask init` in the workspace whose root is `root`; `declared`: whether it
    /// declares images already.
    pub fn run(self, root: &Path, declared: bool) -> anyhow::Result<()> {
        let mut steps: Vec<(&Template, PathBuf, Step)> = Vec::new();
        for template in TEMPLATES {
            let path = root.join(template.path);
            let theirs = match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let step = plan(template.path, template.text, theirs.as_deref())?;
            steps.push((template, path, step));
        }
        let mut kept = 0;
        for (template, path, step) in steps {
            match step {
                Step::Keep => kept += 1,
                Step::Write(text) => {
                    write(&path, &text, template.executable)?;
                    eprintln!("  wrote {}", template.path);
                }
                Step::Append(text) => {
                    write(&path, &text, template.executable)?;
                    eprintln!("  added ours after the settings in {}", template.path);
                }
            }
        }
        if kept > 0 {
            eprintln!("  kept {kept} file(s) that are this version's already");
        }
        if !declared {
            eprintln!(
                "  next: declare your images in Cargo.toml, [workspace.metadata.xtask.images.<name>] (README, Use it in your workspace)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_our_cargo_folder_is_a_template_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut found = Vec::new();
        let mut todo = vec![root.join(".cargo")];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    found.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        found.push("Dockerfile.runtime".into());
        found.sort();
        let mut listed: Vec<String> = TEMPLATES.iter().map(|t| t.path.to_owned()).collect();
        listed.sort();
        assert_eq!(listed, found, "init writes other files than .cargo/ has");
        for template in TEMPLATES {
            let mode = std::fs::metadata(root.join(template.path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111 != 0, template.executable, "{}", template.path);
        }
    }

    #[test]
    fn a_missing_file_is_written_and_ours_is_kept() {
        assert_eq!(
            plan("Dockerfile.runtime", "FROM x\n", None).unwrap(),
            Step::Write("FROM x\n".into())
        );
        assert_eq!(
            plan("Dockerfile.runtime", "FROM x\n", Some("FROM x\n")).unwrap(),
            Step::Keep
        );
        let err = plan(".cargo/cc/ar", "ours\n", Some("theirs\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".cargo/cc/ar is there already"), "{err}");
    }

    #[test]
    fn settings_of_the_workspaces_own_keep_ours_beside_them_or_name_what_clashes() {
        let ours = "[alias]\nxtask = [\"run\"]\n\n[target.x86_64-unknown-linux-musl]\nlinker = \"rust-lld\"\n";
        // None of our tables: ours go after theirs.
        let theirs = "[net]\noffline = true\n[target.x86_64-unknown-linux-gnu]\nlinker = \"cc\"\n";
        let Step::Append(joined) = plan(CONFIG, ours, Some(theirs)).unwrap() else {
            panic!("not appended");
        };
        assert!(
            joined.starts_with(theirs) && joined.ends_with(ours),
            "{joined}"
        );
        // Ours already among theirs, in another order and layout.
        let merged = "[target.x86_64-unknown-linux-musl]\nlinker = 'rust-lld'\n[alias]\nb = 'build'\nxtask = ['run']\n";
        assert_eq!(plan(CONFIG, ours, Some(merged)).unwrap(), Step::Keep);
        // A table of ours with another value: named, nothing written.
        let clash = "[alias]\nxtask = [\"run\", \"-p\", \"tools\"]\n";
        let err = plan(CONFIG, ours, Some(clash)).unwrap_err().to_string();
        assert!(
            err.starts_with(".cargo/config.toml sets [alias] of its own"),
            "{err}"
        );
        let clash = "[target.x86_64-unknown-linux-musl]\nrunner = 'x'\n[build]\njobs = 1\n";
        let err = plan(CONFIG, ours, Some(clash)).unwrap_err().to_string();
        assert!(
            err.contains(" sets [target.x86_64-unknown-linux-musl] of its own"),
            "{err}"
        );
        // Theirs does not parse: said so.
        let err = plan(CONFIG, ours, Some("[alias\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "reading .cargo/config.toml");
    }
}
