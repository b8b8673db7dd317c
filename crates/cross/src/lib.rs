//! Building static binaries for Linux musl targets, the plain values and rules of it:
//!
//! - [`target`]: the targets (triple, architecture, OCI platform, ELF machine, the C cross
//!   compiler's name for it).
//! - [`elf`]: a built binary is a 64-bit ELF executable for its target, statically linked.
//! - [`dist`]: atomic staging of the shipped binaries with a manifest of their digests.
//! - [`cache`]: a shared compilation cache (sccache) for the compiles of one build.
//! - [`digests`]: a cache of file digests keyed by size and change time.
//! - [`fresh`]: the no-op record: whether a previous build of the same command with the same
//!   inputs is still what is on disk.
//! - [`profile`]: the cargo profiles images are built with.
//! - [`qemu`]: whether foreign binaries run through qemu-user, also in containers.
//! - [`toolchain`]: the Rust standard library per target and the C cross compiler (zig,
//!   provisioned when missing), for a [`workspace::Workspace`].
//! - [`which`]: finding programs on PATH.
//!
//! Nothing here knows of images or of a particular workspace.
//!
//! # Example
//!
//! ```
//! use tiny_cross::target::Target;
//!
//! let target: Target = "aarch64-unknown-linux-musl".parse()?;
//! assert_eq!(target.arch(), "arm64");
//! assert_eq!(target.platform(), "linux/arm64");
//! assert_eq!("arm64".parse::<Target>()?, target);
//! // A glibc triple is refused with the list of supported ones.
//! assert!("x86_64-unknown-linux-gnu".parse::<Target>().is_err());
//!
//! // A binary must be a static ELF executable for its target.
//! assert!(tiny_cross::elf::verify(b"#!/bin/sh\n", target).is_err());
//! # Ok::<(), tiny_cross::Error>(())
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod digests;
pub mod dist;
pub mod elf;
mod error;
pub mod fresh;
pub mod profile;
pub mod qemu;
pub mod target;
pub mod toolchain;
pub mod which;
pub mod workspace;

pub use error::{Error, Result};

/// A temporary folder as a UTF-8 path, removed when the returned guard drops (also after a
/// failed assertion).
#[cfg(test)]
fn scratch_dir() -> (tempfile::TempDir, camino::Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, path)
}
