//! Image references, parsed by the OCI distribution grammar (`oci_spec`'s `Reference`) at
//! the command line: `<name>:<version>` for the multi-arch index, `<index>-<arch>` per
//! architecture.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use anyhow::bail;
use oci_spec::distribution::{ParseError, Reference};

use tiny_cross::profile;
use tiny_cross::target::Target;

/// An image reference as the user wrote it, checked against the distribution grammar.
/// It reads as the text given (`svc:1`), not the normalised form (`docker.io/library/svc:1`),
/// since that is the name the engine stores it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    text: String,
    parsed: Reference,
}

impl ImageRef {
    /// The registry host, when the reference names one (`127.0.0.1:5000/svc`), as docker
    /// decides: a first component with a dot or a port, or `localhost`.
    pub fn registry(&self) -> Option<&str> {
        let (first, _) = self.text.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }

    /// Whether the reference carries its own tag (`svc:1`, not `svc`, which reads as `svc:latest`).
    pub fn has_tag(&self) -> bool {
        let name = self.text.split('@').next().unwrap_or_default();
        name.rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    }

    pub fn digest(&self) -> Option<&str> {
        self.parsed.digest()
    }
}

impl FromStr for ImageRef {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<ImageRef> {
        match Reference::from_str(text) {
            Ok(parsed) => Ok(ImageRef {
                text: text.to_owned(),
                parsed,
            }),
            Err(e) => bail!("invalid image reference `{text}`: {}", why(text, &e)),
        }
    }
}

/// The parse error, made specific where the grammar's answer is only "invalid format".
fn why(text: &str, error: &ParseError) -> String {
    let hint = if text.trim() != text || text.contains(char::is_whitespace) {
        Some("it contains spaces")
    } else if matches!(error, ParseError::ReferenceInvalidFormat)
        && text.to_ascii_lowercase().parse::<Reference>().is_ok()
    {
        Some("repository names are lower-case")
    } else {
        None
    };
    let expected = "expected `[registry[:port]/]name[:tag][@digest]`, for example `127.0.0.1:5000/tiny-service:0.1.0`";
    match hint {
        Some(hint) => format!("{error}: {hint}; {expected}"),
        None => format!("{error}; {expected}"),
    }
}

impl Deref for ImageRef {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A base image: a reference to pull, or `oci:<layout dir>:<ref name>` for an image in a
/// local OCI layout (what `skopeo copy … oci:<dir>:<ref>` writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    Image(ImageRef),
    Layout { text: String },
}

impl FromStr for BaseRef {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<BaseRef> {
        match text.strip_prefix("oci:") {
            Some(rest) => match rest.rsplit_once(':') {
                Some((dir, name)) if !dir.is_empty() && !name.is_empty() => Ok(BaseRef::Layout {
                    text: text.to_owned(),
                }),
                _ => bail!("invalid base image `{text}`: expected oci:<layout dir>:<ref name>"),
            },
            None => text.parse().map(BaseRef::Image),
        }
    }
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Image(image) => image.fmt(f),
            BaseRef::Layout { text } => f.write_str(text),
        }
    }
}

/// A registry host with an optional port (`127.0.0.1:5000`, `registry.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry(String);

impl FromStr for Registry {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Registry> {
        let host = text.trim_end_matches('/');
        // A registry is what the grammar reads as one in front of a repository.
        let probe = format!("{host}/x");
        let as_registry = Reference::from_str(&probe)
            .ok()
            .and_then(|_| probe.parse::<ImageRef>().ok())
            .is_some_and(|r| r.registry() == Some(host));
        if host.is_empty() || host.contains('/') || !as_registry {
            bail!(
                "invalid registry `{text}`: expected `host[:port]` where the host has a dot or \
                 a port or is `localhost`, for example `127.0.0.1:5000`"
            );
        }
        Ok(Registry(host.to_owned()))
    }
}

impl Deref for Registry {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNames {
    /// The multi-architecture reference, `[registry/]name:tag`.
    pub index: String,
    parsed: ImageRef,
}

impl ImageNames {
    /// From a full `--tag`, or else from `[registry/]name:version`.
    pub fn new(
        tag: Option<&str>,
        registry: Option<&str>,
        name: &str,
        version: &str,
    ) -> anyhow::Result<ImageNames> {
        let tag = tag.map(str::parse::<ImageRef>).transpose()?;
        let registry = registry.map(str::parse::<Registry>).transpose()?;
        let index = match (&tag, &registry) {
            (Some(tag), _) if tag.has_tag() => tag.to_string(),
            (Some(repo), _) if repo.digest().is_none() => format!("{repo}:{version}"),
            (Some(tag), _) => tag.to_string(),
            (None, Some(registry)) => format!("{registry}/{name}:{version}"),
            (None, None) => format!("{name}:{version}"),
        };
        let parsed: ImageRef = index.parse()?;
        if parsed.digest().is_some() {
            bail!("--tag takes a tag, not a digest: {index}");
        }
        if let (Some(_), Some(registry)) = (&tag, &registry)
            && parsed.registry() != Some(registry)
        {
            bail!("--tag {index} and --registry {registry} disagree: give one of them");
        }
        Ok(ImageNames { index, parsed })
    }

    /// The same names for dev images (`image --fast`): the tag gets the dev suffix, so they
    /// never replace a release image.
    pub fn dev(self) -> anyhow::Result<ImageNames> {
        // `new` always gives the index a tag of its own, after the last `/`.
        let Some((repository, tag)) = self
            .index
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
        else {
            bail!("{} has no tag to mark as a dev image", self.index);
        };
        let index = format!("{repository}:{}", profile::dev_tag(tag));
        let parsed: ImageRef = index.parse()?;
        Ok(ImageNames { index, parsed })
    }

    pub fn for_target(&self, target: Target) -> String {
        format!("{}-{}", self.index, target.short())
    }

    /// The registry the index would be pushed to, if it names one.
    pub fn registry(&self) -> Option<&str> {
        self.parsed.registry()
    }
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
        let plain: ImageRef = "team/svc:1".parse().unwrap();
        assert_eq!(plain.registry(), None);
    }

    #[test]
    fn dev_images_get_a_tag_of_their_own() {
        let n = ImageNames::new(None, Some("127.0.0.1:5000"), "svc", "1.0.0")
            .unwrap()
            .dev()
            .unwrap();
        assert_eq!(n.index, "127.0.0.1:5000/svc:1.0.0-dev");
        assert_eq!(
            n.for_target(Target::Aarch64Musl),
            "127.0.0.1:5000/svc:1.0.0-dev-arm64"
        );
        assert_eq!(n.registry(), Some("127.0.0.1:5000"));
        let n = ImageNames::new(Some("team/svc:edge-dev"), None, "x", "1")
            .unwrap()
            .dev()
            .unwrap();
        assert_eq!(n.index, "team/svc:edge-dev");
    }

    #[test]
    fn contradictions_are_refused() {
        let digest = format!("svc@sha256:{}", "a".repeat(64));
        let err = ImageNames::new(Some(&digest), None, "svc", "1").unwrap_err();
        assert!(err.to_string().contains("not a digest"), "{err}");
        let err = ImageNames::new(Some("a.io/svc:1"), Some("b.io"), "svc", "1").unwrap_err();
        assert!(err.to_string().contains("disagree"));
    }

    #[test]
    fn bad_references_say_why_in_one_line() {
        for (text, why) in [
            ("Team/Svc:1", "repository names are lower-case"),
            ("svc:bad tag", "it contains spaces"),
            ("svc:", "invalid reference format"),
            ("", "at least one component"),
            (
                "svc@sha256:0123456789abcdef0123456789abcdef",
                "invalid checksum digest length",
            ),
            (
                "svc@md5:0123456789abcdef0123456789abcdef",
                "unsupported digest algorithm",
            ),
            ("-svc", "invalid reference format"),
        ] {
            let err = text.parse::<ImageRef>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid image reference `{text}`: ")),
                "{err}"
            );
            assert!(err.contains(why), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let r: ImageRef = "127.0.0.1:5000/svc:1".parse().unwrap();
        assert_eq!(
            &*r, "127.0.0.1:5000/svc:1",
            "reads as given, not normalised"
        );
    }

    #[test]
    fn registries_are_hosts_with_an_optional_port() {
        for good in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "registry.example.com",
            "r.io/",
        ] {
            assert!(good.parse::<Registry>().is_ok(), "{good}");
        }
        for bad in [
            "not a registry!!",
            "myregistry",
            "",
            "a.io/team",
            "http://a.io",
            "a.io:port",
        ] {
            let err = bad.parse::<Registry>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid registry `{bad}`: expected `host[:port]`")),
                "{err}"
            );
        }
    }
}
