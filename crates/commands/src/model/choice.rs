//! The closed sets a user chooses from on the command line and in `Cargo.toml`.

use clap::ValueEnum;

/// The container engine that builds, loads and runs images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Each value's name says what it is: a doc comment would be clap's help for the value.
#[allow(missing_docs)]
pub enum EngineKind {
    Docker,
    Podman,
}

/// What an image is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaseKind {
    /// Nothing but the service, its companion and the files it needs
    Scratch,
    /// Alpine Linux, pinned (`alpine` of the image's table in Cargo.toml), for a shell
    Alpine,
}

impl From<EngineKind> for tiny_engine::EngineKind {
    fn from(e: EngineKind) -> tiny_engine::EngineKind {
        match e {
            EngineKind::Docker => tiny_engine::EngineKind::Docker,
            EngineKind::Podman => tiny_engine::EngineKind::Podman,
        }
    }
}

impl From<BaseKind> for tiny_declare::Base {
    fn from(b: BaseKind) -> tiny_declare::Base {
        match b {
            BaseKind::Scratch => tiny_declare::Base::Scratch,
            BaseKind::Alpine => tiny_declare::Base::Alpine,
        }
    }
}

/// The compression of layer blobs. gzip is what every registry and engine reads; zstd is
/// smaller and faster to unpack, but docker before 23.0 cannot pull it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Compression {
    #[default]
    #[allow(missing_docs)]
    Gzip,
    #[allow(missing_docs)]
    Zstd,
}

impl From<Compression> for tiny_oci::layer::Compression {
    fn from(c: Compression) -> tiny_oci::layer::Compression {
        match c {
            Compression::Gzip => tiny_oci::layer::Compression::Gzip,
            Compression::Zstd => tiny_oci::layer::Compression::Zstd,
        }
    }
}

/// What builds images: the builtin OCI writer, or a container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum BuildEngine {
    /// Writes the images itself, with no daemon: reproducible digests
    #[default]
    Builtin,
    #[allow(missing_docs)]
    Docker,
    #[allow(missing_docs)]
    Podman,
}
