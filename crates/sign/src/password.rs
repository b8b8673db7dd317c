//! Key passwords, from where cosign takes them: an environment variable or standard input.

use std::fmt;
use std::io::Read;

use zeroize::Zeroizing;

/// The variable cosign reads a key's password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// A key password, wiped from memory when dropped and never printed.
///
/// ```
/// let password = tiny_sign::Password::from_reader(&b"correct horse\n"[..])?;
/// assert_eq!(password.as_bytes(), b"correct horse");
/// assert_eq!(format!("{password:?}"), "Password(..)");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Password(Zeroizing<String>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// A password given as text.
    pub fn new(text: String) -> Password {
        Password(Zeroizing::new(text))
    }

    /// Everything `reader` holds, less one trailing line break (`echo pw |` adds one).
    pub fn from_reader(mut reader: impl Read) -> std::io::Result<Password> {
        let mut text = Zeroizing::new(String::new());
        reader.read_to_string(&mut text)?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        Ok(Password::new(line.to_owned()))
    }

    /// [`PASSWORD_ENV`]'s value, when it is set.
    pub fn from_env() -> Option<Password> {
        std::env::var(PASSWORD_ENV).ok().map(Password::new)
    }

    /// The password's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}
