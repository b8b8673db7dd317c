//! The one error type of the crate.

/// Everything that can go wrong in this crate. Messages are lower-case one-liners without a
/// trailing period, so a command line can print them after its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes given as a binary are not an object file.
    #[error("not an object file: {0}")]
    NotAnObject(String),
    /// The embedded dependency list could not be read, decompressed or parsed.
    #[error("{step} the .dep-v0 section: {cause}")]
    Section {
        /// `reading`, `decompressing` or `parsing`.
        step: &'static str,
        /// What failed.
        cause: String,
    },
    /// The embedded dependency list names a dependency it does not hold.
    #[error("the dependency data of {name} {version} is corrupt")]
    Corrupt {
        /// The crate whose entry is wrong.
        name: String,
        /// Its version.
        version: String,
    },
    /// A document could not be written.
    #[error("serialising the SBOM: {0}")]
    Serialise(String),
    /// A document could not be written as JSON.
    #[error(transparent)]
    Json(#[from] tiny_oci::Error),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
