//! What `<engine> inspect` says, as types: docker and podman share these fields. A field a
//! check relies on is required, so an engine that leaves it out fails the check loudly
//! instead of passing it with a default (a missing `Size` is not an image of 0 bytes).

use std::collections::BTreeMap;

use anyhow::Context;

use crate::error::Result;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// `image inspect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// The image id (`sha256:…`).
    pub id: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v6` for 32-bit ARM; engines leave it out for other architectures.
    #[serde(default)]
    pub variant: Option<String>,
    /// Its size unpacked, in bytes.
    pub size: u64,
    /// What runs.
    pub config: ImageConfig,
    /// `name@sha256:…` for each registry the image was pushed to or pulled from.
    pub repo_digests: Option<Vec<String>>,
}

/// The part of an image's config the checks read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// Absent or empty: root.
    pub user: Option<String>,
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// `LABEL`s.
    pub labels: Option<BTreeMap<String, String>>,
}

impl Image {
    /// The value of the label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// The registry digest (`sha256:…`), once pushed.
    pub fn digest(&self) -> Option<String> {
        self.repo_digests
            .iter()
            .flatten()
            .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_owned()))
    }
}

/// `container inspect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    /// The container id.
    pub id: String,
    /// Whether it runs, and how it ended.
    pub state: ContainerState,
    /// Its labels.
    pub config: ContainerConfig,
}

/// A container's state.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// Whether it runs.
    pub running: bool,
    /// Its exit status, once it stopped.
    pub exit_code: i64,
    /// Its main process on the host, while it runs.
    pub pid: i64,
}

/// The part of a container's config the sweep reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// Its labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `volume inspect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `inspect` prints a JSON list, one entry per name asked for.
pub fn parse_list<T: DeserializeOwned>(json: &str, what: &str) -> Result<Vec<T>> {
    Ok(serde_json::from_str(json).with_context(|| format!("unexpected `{what}` output"))?)
}

/// The single entry of an `inspect` of one name.
pub fn parse_one<T: DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    let mut list: Vec<T> = parse_list(json, what)?;
    crate::error::ensure!(
        list.len() == 1,
        "`{what}` described {} objects, not 1",
        list.len()
    );
    Ok(list.pop().context("empty inspect output")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = r#"[{"Id":"sha256:abc","RepoTags":["svc:1-amd64"],"RepoDigests":["r/svc@sha256:def"],
        "Architecture":"amd64","Os":"linux","Size":4928133,
        "Config":{"User":"65532:65532","Entrypoint":["/usr/local/bin/service"],
                  "Labels":{"org.opencontainers.image.title":"svc"}}}]"#;

    #[test]
    fn an_image_parses_with_what_the_checks_need() {
        let image: Image = parse_one(IMAGE, "image inspect").unwrap();
        assert_eq!(image.architecture, "amd64");
        assert_eq!(image.size, 4928133);
        assert_eq!(image.config.user.as_deref(), Some("65532:65532"));
        assert_eq!(image.label("org.opencontainers.image.title"), Some("svc"));
        assert_eq!(image.digest().as_deref(), Some("sha256:def"));
    }

    #[test]
    fn a_missing_size_or_architecture_is_an_error_not_zero() {
        for field in [r#""Size":4928133,"#, r#""Architecture":"amd64","#] {
            let json = IMAGE.replace(field, "");
            let err = parse_one::<Image>(&json, "image inspect").unwrap_err();
            assert!(
                format!("{err:#}").contains("missing field"),
                "{field}: {err:#}"
            );
        }
        let json = IMAGE.replace("4928133", "\"big\"");
        assert!(parse_one::<Image>(&json, "image inspect").is_err());
    }

    #[test]
    fn null_entrypoint_and_labels_are_absent_not_errors() {
        let json = r#"[{"Id":"x","Architecture":"arm64","Size":1,
            "Config":{"User":"","Entrypoint":null,"Labels":null}}]"#;
        let image: Image = parse_one(json, "image inspect").unwrap();
        assert!(image.config.entrypoint.is_none());
        assert_eq!(image.label("anything"), None);
        assert_eq!(image.digest(), None);
    }

    #[test]
    fn containers_and_volumes_parse() {
        let json = r#"[{"Id":"c1","Name":"/x","State":{"Status":"exited","Running":false,"ExitCode":137,"Pid":0},
            "Config":{"Labels":{"xtask.run":"12-34"}}}]"#;
        let c: Container = parse_one(json, "container inspect").unwrap();
        assert!(!c.state.running);
        assert_eq!(c.state.exit_code, 137);
        assert_eq!(
            c.config
                .labels
                .unwrap()
                .get("xtask.run")
                .map(String::as_str),
            Some("12-34")
        );
        let missing_state = r#"[{"Id":"c1","Config":{"Labels":null}}]"#;
        assert!(parse_one::<Container>(missing_state, "container inspect").is_err());
        let volumes: Vec<Volume> = parse_list(
            r#"[{"Name":"v1","Labels":{"xtask.run":"1-2"}},{"Name":"v2","Labels":null}]"#,
            "volume inspect",
        )
        .unwrap();
        assert_eq!(volumes.len(), 2);
        assert!(volumes[1].labels.is_none());
        assert!(parse_one::<Volume>("[]", "volume inspect").is_err());
    }
}
