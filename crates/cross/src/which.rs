//! Finding programs on PATH.

use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};

/// The first executable file called `name` in PATH.
pub fn find_on_path(name: &str) -> Option<Utf8PathBuf> {
    find_all_on_path(name).into_iter().next()
}

/// Every executable file called `name` in PATH, in PATH order, each real file once.
pub fn find_all_on_path(name: &str) -> Vec<Utf8PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found: Vec<Utf8PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for candidate in std::env::split_paths(&path)
        .filter_map(|dir| Utf8PathBuf::from_path_buf(dir.join(name)).ok())
    {
        let real = candidate.canonicalize().ok();
        if is_executable(&candidate) && !seen.contains(&real) {
            seen.push(real);
            found.push(candidate);
        }
    }
    found
}

/// Whether `path` is a file with an execute bit.
pub fn is_executable(path: &Utf8Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
