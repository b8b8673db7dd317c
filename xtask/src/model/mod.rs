//! Plain values and the rules over them: targets, project settings, artifacts, ELF checks,
//! the embedded dependency data, SBOM and provenance documents.
//! Nothing here runs a process or imports from the layers above.

pub mod audit;
pub mod choice;
pub mod digests;
pub mod dist;
pub mod elf;
pub mod epoch;
pub mod fresh;
// Declared images: not wired into the commands yet.
#[allow(dead_code)]
pub mod images;
pub mod profile;
pub mod project;
pub mod provenance;
pub mod recipe;
pub mod run;
pub mod sbom;
pub mod target;
pub mod verify;

/// A temporary folder as a UTF-8 path, removed when the returned guard drops (also after a
/// failed assertion).
#[cfg(test)]
pub fn scratch_dir() -> (tempfile::TempDir, cargo_metadata::camino::Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = cargo_metadata::camino::Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, path)
}
