//! The workspace a build runs in, as typed values the caller builds from its own
//! configuration, and where the build reports what it is doing.

use camino::{Utf8Path, Utf8PathBuf};

use crate::target::Target;

/// The workspace that is built, and how.
///
/// ```
/// use tiny_cross::workspace::Workspace;
///
/// let ws = Workspace::new("/src/app".into(), "/src/app/target".into(), "0.14.1".into());
/// assert_eq!(ws.work_dir(), "/src/app/target/xtask");
/// assert_eq!(ws.relative("/src/app/target/xtask/zig".as_ref()), "target/xtask/zig");
/// ```
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root (where `Cargo.toml`, `Cargo.lock` and `.cargo/` are).
    pub root: Utf8PathBuf,
    /// Cargo's target directory.
    pub target_dir: Utf8PathBuf,
    /// The zig version provisioned as the C cross compiler (`pip install ziglang==<zig>`).
    pub zig: String,
    /// The targets built by default.
    pub targets: Vec<Target>,
}

impl Workspace {
    /// A workspace at `root` building into `target_dir`, for every target (set `targets`
    /// to the ones it builds by default).
    pub fn new(root: Utf8PathBuf, target_dir: Utf8PathBuf, zig: String) -> Workspace {
        Workspace {
            root,
            target_dir,
            zig,
            targets: Target::ALL.to_vec(),
        }
    }

    /// Where the build keeps its own files (the provisioned zig, records): `<target>/xtask`.
    pub fn work_dir(&self) -> Utf8PathBuf {
        self.target_dir.join("xtask")
    }

    /// `path` relative to the workspace root, for messages.
    pub fn relative<'a>(&self, path: &'a Utf8Path) -> &'a Utf8Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// Where a build says what it is doing that takes a while or changes the machine
/// (provisioning zig, adding a standard library): the caller decides what a terminal shows.
pub trait Progress {
    /// One line about what happens now.
    fn note(&self, line: &str);
}

/// Says nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn note(&self, _line: &str) {}
}
