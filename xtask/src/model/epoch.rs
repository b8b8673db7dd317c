//! SOURCE_DATE_EPOCH as the timestamps written into images and documents: every "created"
//! is this instant, so two builds of one commit write the same bytes.

use std::time::{Duration, UNIX_EPOCH};

/// `epoch` (seconds since 1970) as RFC 3339 in UTC, to the second.
pub fn rfc3339(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch)).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_epoch_is_utc_to_the_second() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
