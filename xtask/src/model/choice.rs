//! The closed sets a user chooses from on the command line and in `Cargo.toml`.

use clap::ValueEnum;
use serde::Deserialize;

/// The container engine that builds, loads and runs images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    Docker,
    Podman,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseKind {
    /// Nothing but the service, its companion and the files it needs
    Scratch,
    /// Alpine Linux, pinned (`alpine` in [workspace.metadata.xtask.image]), for a shell
    Alpine,
}
