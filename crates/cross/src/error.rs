//! The one error type of the crate.

/// Everything that can go wrong in this crate. Messages are lower-case one-liners without a
/// trailing period (the causes joined by `: `), so a command line can print them after its
/// own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signal stopped the step (see `tiny_interrupt`); what it made was undone.
    #[error("interrupted")]
    Interrupted,
    /// A target triple this crate does not build for.
    #[error("{0}")]
    UnknownTarget(String),
    /// Anything else, with its whole chain of causes.
    #[error("{0}")]
    Other(String),
}

impl From<tiny_interrupt::Interrupted> for Error {
    fn from(_: tiny_interrupt::Interrupted) -> Error {
        Error::Interrupted
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        if e.chain()
            .any(|cause| cause.is::<tiny_interrupt::Interrupted>())
        {
            return Error::Interrupted;
        }
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

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Other(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `anyhow::bail!` for the functions of this crate, whether they return [`Error`] or
/// `anyhow::Error`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(anyhow::anyhow!($($arg)*).into())
    };
}
pub(crate) use bail;
