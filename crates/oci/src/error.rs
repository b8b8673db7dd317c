//! The one error type of the crate.

/// Everything that can go wrong in this crate, one variant per cause a caller may want to
/// tell apart. Messages are lower-case one-liners without a trailing period (the causes
/// joined by `: `), so a command line can print them after its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value could not be written or read as JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// An OCI document or layout that does not hold together (a builder refused it, a field
    /// is missing, a blob does not match its digest).
    #[error("{0}")]
    Invalid(String),
    /// A `SOURCE_DATE_EPOCH` that a build cannot record.
    #[error(transparent)]
    BadEpoch(#[from] crate::epoch::BadEpoch),
    /// The registry refused the credentials, or there were none where it wants some.
    #[error("{0}")]
    Unauthorized(String),
    /// The registry has no such repository, tag, manifest or blob.
    #[error("{0}")]
    NotFound(String),
    /// The registry could not be reached (no connection, unknown host).
    #[error("{0}")]
    Unreachable(String),
    /// The registry stopped answering: a deadline passed with no data moving.
    #[error("{0}")]
    Stalled(String),
    /// The registry answered with another HTTP error.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(String),
    /// A signature is missing, made with another key, or does not match what it signs (a
    /// [`tiny_sign::Error`] was the cause).
    #[error("{0}")]
    Signature(String),
    /// A signal stopped the step (see `tiny_interrupt`); what it made was undone.
    #[error("interrupted")]
    Interrupted,
    /// Anything else, with its whole chain of causes.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The same kind of error with another message (the whole chain of context), when the
    /// kind carries one.
    fn with_message(&self, message: String) -> Error {
        match self {
            Error::Invalid(_) => Error::Invalid(message),
            Error::Unauthorized(_) => Error::Unauthorized(message),
            Error::NotFound(_) => Error::NotFound(message),
            Error::Unreachable(_) => Error::Unreachable(message),
            Error::Stalled(_) => Error::Stalled(message),
            Error::Refused(_) => Error::Refused(message),
            Error::Io(_) => Error::Io(message),
            Error::Signature(_) => Error::Signature(message),
            Error::Interrupted => Error::Interrupted,
            _ => Error::Other(message),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        if e.chain()
            .any(|cause| cause.is::<tiny_interrupt::Interrupted>())
        {
            return Error::Interrupted;
        }
        // An error of ours with no context added is returned as it is; with context, it
        // keeps its kind and the whole chain is the message.
        if e.chain().count() == 1 {
            return match e.downcast::<Error>() {
                Ok(e) => e,
                Err(e) if e.is::<std::io::Error>() => Error::Io(format!("{e:#}")),
                Err(e) if e.is::<tiny_sign::Error>() => Error::Signature(format!("{e:#}")),
                Err(e) => Error::Other(format!("{e:#}")),
            };
        }
        let message = format!("{e:#}");
        if let Some(ours) = e.chain().find_map(|c| c.downcast_ref::<Error>()) {
            return ours.with_message(message);
        }
        if e.chain().any(|c| c.is::<tiny_sign::Error>()) {
            return Error::Signature(message);
        }
        if e.chain().any(|c| c.is::<std::io::Error>()) {
            return Error::Io(message);
        }
        Error::Other(message)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e.to_string())
    }
}

impl From<tiny_interrupt::Interrupted> for Error {
    fn from(_: tiny_interrupt::Interrupted) -> Error {
        Error::Interrupted
    }
}

/// `anyhow::bail!` for the functions of this crate, whether they return [`Error`] or
/// `anyhow::Error`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(anyhow::anyhow!($($arg)*).into())
    };
}
pub(crate) use bail;

/// `anyhow::ensure!` for the functions of this crate, whether they return [`Error`] or
/// `anyhow::Error`.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::error::bail!($($arg)*);
        }
    };
}
pub(crate) use ensure;

impl From<oci_spec::OciSpecError> for Error {
    fn from(e: oci_spec::OciSpecError) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn context_keeps_the_kind_and_adds_to_the_message() {
        let e: anyhow::Result<()> = Err(Error::NotFound("no tag 1.0".into()).into());
        let e = Error::from(e.context("pulling base").unwrap_err());
        assert!(matches!(&e, Error::NotFound(m) if m == "pulling base: no tag 1.0"));
        let e = Error::from(anyhow::Error::from(tiny_interrupt::Interrupted).context("push"));
        assert!(matches!(e, Error::Interrupted));
    }
}
