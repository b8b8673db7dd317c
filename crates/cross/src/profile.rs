//! The cargo profile images are built with: `release` for what ships, `dev-image` (`--fast`)
//! for iterating. Dev images are told apart by a label and by their tag, so that they never
//! replace a release image and are not pushed by accident.

/// The profile of shipped binaries and images.
pub const RELEASE: &str = "release";
/// The profile `--fast` selects (`[profile.dev-image]` in the root Cargo.toml).
pub const DEV_IMAGE: &str = "dev-image";
/// What `--fast` appends to an image tag: `<version>-dev`, `<version>-dev-<arch>`.
pub const DEV_TAG_SUFFIX: &str = "-dev";

/// The profile `--fast` (or its absence) means.
pub fn of(fast: bool) -> &'static str {
    if fast { DEV_IMAGE } else { RELEASE }
}

/// `tag` with the dev suffix, unless it has it already.
pub fn dev_tag(tag: &str) -> String {
    if tag.ends_with(DEV_TAG_SUFFIX) {
        tag.to_owned()
    } else {
        format!("{tag}{DEV_TAG_SUFFIX}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tags_are_distinct_from_release_tags_and_stable() {
        assert_eq!(dev_tag("0.1.0"), "0.1.0-dev");
        assert_eq!(dev_tag("0.1.0-dev"), "0.1.0-dev");
        assert_eq!(dev_tag("edge"), "edge-dev");
        assert_eq!(of(true), "dev-image");
        assert_eq!(of(false), "release");
    }
}
