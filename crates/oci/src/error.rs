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
    /// Anything else, with its whole chain of causes.
    #[error("{0}")]
    Other(String),
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        // An error of ours with no context added keeps its variant; with context, the
        // whole chain is the message.
        if e.chain().count() > 1 {
            return Error::Other(format!("{e:#}"));
        }
        match e.downcast::<Error>() {
            Ok(e) => e,
            Err(e) => Error::Other(format!("{e:#}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Other(e.to_string())
    }
}

/// `anyhow::bail!` for the functions of this crate, which return [`Error`].
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::from(anyhow::anyhow!($($arg)*)))
    };
}
pub(crate) use bail;

impl From<oci_spec::OciSpecError> for Error {
    fn from(e: oci_spec::OciSpecError) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
