//! SOURCE_DATE_EPOCH as the timestamps written into images and documents: every "created"
//! is this instant, so two builds of one commit write the same bytes.
//!
//! The value is parsed once, here, into an [`Epoch`]: whole seconds since 1970 as ASCII
//! digits (reproducible-builds.org's form, what `date +%s` prints), no later than
//! [`Epoch::MAX`]. That bound is the tightest of what the value reaches: a ustar header's
//! mtime (11 octal digits, up to 2242), RFC 3339 in OCI configs and documents (a four-digit
//! year), and clang's `__DATE__`/`__TIME__` (up to 9999).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

/// The variable's name, as the messages give it.
pub const VAR: &str = "SOURCE_DATE_EPOCH";

/// A moment every build of one commit stamps into what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(u64);

/// A `SOURCE_DATE_EPOCH` we cannot use, with the value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{VAR}={0:?} is not a time a build can record: give whole seconds since 1970 in digits, \
     from 0 to {max} ({max_time}), such as `git log -1 --format=%ct` prints, or unset it to \
     use HEAD's commit time",
    max = Epoch::MAX.0,
    max_time = Epoch::MAX.rfc3339()
)]
pub struct BadEpoch(pub String);

impl Epoch {
    /// 1970-01-01T00:00:00Z.
    pub const ZERO: Epoch = Epoch(0);
    /// 2242-03-16T12:56:31Z: the largest mtime a ustar header holds (8^11 - 1).
    pub const MAX: Epoch = Epoch(8_589_934_591);

    /// `seconds` since 1970, if a build can record it.
    pub fn from_seconds(seconds: u64) -> Option<Epoch> {
        (seconds <= Self::MAX.0).then_some(Epoch(seconds))
    }

    /// `SOURCE_DATE_EPOCH` from the environment: `None` when unset.
    pub fn from_env() -> Result<Option<Epoch>, BadEpoch> {
        match std::env::var_os(VAR) {
            None => Ok(None),
            Some(value) => match value.into_string() {
                Ok(value) => value.parse().map(Some),
                Err(value) => Err(BadEpoch(value.to_string_lossy().into_owned())),
            },
        }
    }

    /// Seconds since 1970.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// As RFC 3339 in UTC, to the second.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(self.system_time()).to_string()
    }

    /// As a `SystemTime`.
    pub fn system_time(self) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

impl FromStr for Epoch {
    type Err = BadEpoch;

    /// Digits only, as clang and the reproducible-builds spec read it: no sign, no spaces.
    fn from_str(value: &str) -> Result<Epoch, BadEpoch> {
        let bad = || BadEpoch(value.to_owned());
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        value
            .parse::<u64>()
            .ok()
            .and_then(Epoch::from_seconds)
            .ok_or_else(bad)
    }
}

/// Seconds since 1970, as the variable holds it.
impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_utc_to_the_second() {
        assert_eq!(Epoch::ZERO.rfc3339(), "1970-01-01T00:00:00Z");
        let epoch: Epoch = "1700000000".parse().unwrap();
        assert_eq!(epoch.rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(epoch.to_string(), "1700000000");
        assert_eq!(Epoch::MAX.rfc3339(), "2242-03-16T12:56:31Z");
    }

    #[test]
    fn only_digits_within_what_a_tar_header_holds_are_accepted() {
        for good in ["0", "1700000000", "8589934591", "007"] {
            assert!(good.parse::<Epoch>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-5",
            "+5",
            " 5",
            "5\n",
            "1.5",
            "8589934592",
            "99999999999999",
            "999999999999999999999999",
            "yesterday",
        ] {
            let err = bad.parse::<Epoch>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("SOURCE_DATE_EPOCH={bad:?} is not a time")),
                "{err}"
            );
            assert!(
                err.contains("from 0 to 8589934591") && !err.contains('\n'),
                "{err}"
            );
        }
    }
}
