//! Image references: `<name>:<version>` for the multi-arch index, `<index>-<arch>` per
//! architecture.

use anyhow::bail;

use crate::model::target::Target;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNames {
    /// The multi-architecture reference, `[registry/]name:tag`.
    pub index: String,
}

impl ImageNames {
    /// From a full `--tag`, or else from `[registry/]name:version`.
    pub fn new(
        tag: Option<&str>,
        registry: Option<&str>,
        name: &str,
        version: &str,
    ) -> anyhow::Result<ImageNames> {
        let index = match tag {
            Some(tag) if has_tag(tag) => tag.to_owned(),
            Some(repo) => format!("{repo}:{version}"),
            None => match registry {
                Some(registry) => format!("{}/{name}:{version}", registry.trim_end_matches('/')),
                None => format!("{name}:{version}"),
            },
        };
        if index.contains('@') {
            bail!("--tag takes a tag, not a digest: {index}");
        }
        if tag.is_some()
            && registry.is_some()
            && registry_of(&index) != registry.map(|r| r.trim_end_matches('/'))
        {
            bail!(
                "--tag {index} and --registry {} disagree: give one of them",
                registry.unwrap_or_default()
            );
        }
        Ok(ImageNames { index })
    }

    pub fn for_target(&self, target: Target) -> String {
        format!("{}-{}", self.index, target.arch())
    }

    /// The registry the index would be pushed to, if it names one.
    pub fn registry(&self) -> Option<&str> {
        registry_of(&self.index)
    }
}

/// Whether the last path component carries a `:tag` (a registry's `:port` does not count).
fn has_tag(reference: &str) -> bool {
    reference
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

/// The registry host of a reference, as docker decides it: the first component, when it
/// has a dot or a port or is `localhost`.
pub fn registry_of(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_cargo_toml() {
        let n = ImageNames::new(None, None, "svc", "1.2.3").unwrap();
        assert_eq!(n.index, "svc:1.2.3");
        assert_eq!(n.for_target(Target::Aarch64Musl), "svc:1.2.3-arm64");
        assert_eq!(n.registry(), None);
    }

    #[test]
    fn a_registry_prefixes_the_name() {
        let n = ImageNames::new(None, Some("127.0.0.1:5000/"), "svc", "1.0.0").unwrap();
        assert_eq!(n.index, "127.0.0.1:5000/svc:1.0.0");
        assert_eq!(
            n.for_target(Target::X86_64Musl),
            "127.0.0.1:5000/svc:1.0.0-amd64"
        );
        assert_eq!(n.registry(), Some("127.0.0.1:5000"));
    }

    #[test]
    fn a_full_tag_wins_and_a_bare_repository_gets_the_version() {
        let n =
            ImageNames::new(Some("localhost:5000/team/svc:edge"), None, "svc", "1.0.0").unwrap();
        assert_eq!(n.index, "localhost:5000/team/svc:edge");
        assert_eq!(n.registry(), Some("localhost:5000"));
        let n = ImageNames::new(Some("127.0.0.1:5000/svc"), None, "x", "2.0.0").unwrap();
        assert_eq!(n.index, "127.0.0.1:5000/svc:2.0.0");
        assert_eq!(registry_of("team/svc:1"), None);
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(ImageNames::new(Some("svc@sha256:abc"), None, "svc", "1").is_err());
        let err = ImageNames::new(Some("a.io/svc:1"), Some("b.io"), "svc", "1").unwrap_err();
        assert!(err.to_string().contains("disagree"));
    }
}
