//! The one error type of the crate.

/// Everything that can go wrong in this crate, one variant per cause a caller may want to
/// tell apart. Messages are lower-case one-liners without a trailing period, so a command
/// line can print them after its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value could not be written or read as JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// An OCI document that does not hold together (a builder refused it, a field is missing).
    #[error("{0}")]
    Invalid(String),
    /// A `SOURCE_DATE_EPOCH` that a build cannot record.
    #[error(transparent)]
    BadEpoch(#[from] crate::epoch::BadEpoch),
}

impl From<oci_spec::OciSpecError> for Error {
    fn from(e: oci_spec::OciSpecError) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
