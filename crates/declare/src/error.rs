use std::fmt;

/// A declaration that cannot be used: one line that names the table and the key to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Returns early with an [`Error`] formatted like `format!`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::new(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
