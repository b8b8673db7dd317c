//! The one error type of the crate.

/// Everything that can go wrong in this crate. Messages are lower-case one-liners without a
/// trailing period that name the fix where there is one, so a command line can print them
/// after its own context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signal stopped the step (see `tiny_interrupt`); what it made was undone.
    #[error("interrupted")]
    Interrupted,
    /// The engine stopped answering (the daemon went away), as opposed to a command that
    /// failed: nothing further can work, so a caller stops at once.
    #[error("{0}")]
    Unreachable(String),
    /// Anything else, with its whole chain of causes.
    #[error("{0}")]
    Other(String),
}

impl From<tiny_interrupt::Interrupted> for Error {
    fn from(_: tiny_interrupt::Interrupted) -> Error {
        Error::Interrupted
    }
}

impl From<tiny_interrupt::process::Error> for Error {
    fn from(e: tiny_interrupt::process::Error) -> Error {
        match e {
            tiny_interrupt::process::Error::Interrupted => Error::Interrupted,
            e => Error::Other(e.to_string()),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        if e.chain().any(|c| c.is::<tiny_interrupt::Interrupted>()) {
            return Error::Interrupted;
        }
        // An error of ours with no context added keeps its variant; with context, the
        // whole chain is the message.
        if e.chain().count() > 1 {
            return match e.downcast_ref::<Error>() {
                Some(Error::Interrupted) => Error::Interrupted,
                _ => Error::Other(format!("{e:#}")),
            };
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

impl From<ureq::Error> for Error {
    fn from(e: ureq::Error) -> Error {
        Error::Other(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `anyhow::bail!` for the functions of this crate.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(anyhow::anyhow!($($arg)*).into())
    };
}
pub(crate) use bail;

/// `anyhow::ensure!` for the functions of this crate.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(anyhow::anyhow!($($arg)*).into());
        }
    };
}
pub(crate) use ensure;
