//! SLSA v1 provenance for one architecture: an in-toto Statement v1 saying which source,
//! command and toolchain produced which digests. No timestamps beyond SOURCE_DATE_EPOCH and
//! no random ids, so two builds of the same commit give the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use tiny_oci::json::canonical_document;

use crate::Result;

/// Everything one statement says.
pub struct ProvenanceInput {
    /// What was built: the binaries now, the image manifest once images are written.
    pub subjects: Vec<Subject>,
    /// A URI naming how this project builds (see README).
    pub build_type: String,
    /// A URI naming the builder: the xtask at the project's repository.
    pub builder_id: String,
    /// The builder's version.
    pub builder_version: String,
    /// The source it was built from.
    pub source: Source,
    /// The target triple built for.
    pub target: String,
    /// The cargo profile built with.
    pub profile: String,
    /// The command that produced the subjects, one argument per item.
    pub command: Vec<String>,
    /// The instant stamped into what was built.
    pub source_date_epoch: tiny_oci::epoch::Epoch,
    /// The digest of the lock file the build resolved from.
    pub cargo_lock_sha256: String,
    /// The programs that took part.
    pub tools: Vec<Tool>,
}

/// Something built, by name and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// A file name, or an image reference for a manifest.
    pub name: String,
    /// Its SHA-256, in hex.
    pub sha256: String,
}

/// The source a build was made from.
#[derive(Debug, Clone)]
pub struct Source {
    /// `git+https://…`.
    pub uri: String,
    /// The commit's id.
    pub commit: String,
    /// Whether the work tree matched the commit (a dirty tree is not that commit's build).
    pub clean: bool,
}

/// A program that took part in the build, with the version it reports.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The program's name.
    pub name: String,
    /// The version it reports.
    pub version: String,
    /// Where it came from, when it was provisioned (e.g. `pkg:pypi/ziglang@0.13.0`).
    pub uri: Option<String>,
}

type Digest = BTreeMap<&'static str, String>;

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Predicate,
}

#[derive(Serialize, Default)]
struct ResourceDescriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    digest: Digest,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate {
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    build_type: String,
    external_parameters: ExternalParameters,
    internal_parameters: InternalParameters,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
struct ExternalParameters {
    source: ResourceDescriptor,
    target: String,
    profile: String,
    command: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InternalParameters {
    #[serde(rename = "SOURCE_DATE_EPOCH")]
    source_date_epoch: String,
    worktree_clean: bool,
}

#[derive(Serialize)]
struct RunDetails {
    builder: Builder,
}

#[derive(Serialize)]
struct Builder {
    id: String,
    version: BTreeMap<&'static str, String>,
}

fn sha256(value: &str) -> Digest {
    BTreeMap::from([("sha256", value.to_owned())])
}

/// The statement as canonical, indented JSON with a trailing newline.
pub fn render(input: &ProvenanceInput) -> Result<String> {
    let mut subjects: Vec<_> = input.subjects.clone();
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    let source = || ResourceDescriptor {
        uri: Some(input.source.uri.clone()),
        digest: BTreeMap::from([("gitCommit", input.source.commit.clone())]),
        ..Default::default()
    };
    let mut resolved = vec![
        source(),
        ResourceDescriptor {
            name: Some("Cargo.lock".into()),
            digest: sha256(&input.cargo_lock_sha256),
            ..Default::default()
        },
    ];
    resolved.extend(input.tools.iter().map(|tool| ResourceDescriptor {
        name: Some(tool.name.clone()),
        uri: tool.uri.clone(),
        annotations: BTreeMap::from([("version", tool.version.clone())]),
        ..Default::default()
    }));
    let statement = Statement {
        kind: "https://in-toto.io/Statement/v1",
        subject: subjects
            .into_iter()
            .map(|s| ResourceDescriptor {
                name: Some(s.name),
                digest: sha256(&s.sha256),
                ..Default::default()
            })
            .collect(),
        predicate_type: "https://slsa.dev/provenance/v1",
        predicate: Predicate {
            build_definition: BuildDefinition {
                build_type: input.build_type.clone(),
                external_parameters: ExternalParameters {
                    source: source(),
                    target: input.target.clone(),
                    profile: input.profile.clone(),
                    command: input.command.clone(),
                },
                internal_parameters: InternalParameters {
                    source_date_epoch: input.source_date_epoch.to_string(),
                    worktree_clean: input.source.clean,
                },
                resolved_dependencies: resolved,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: input.builder_id.clone(),
                    version: BTreeMap::from([("cargo-xtask", input.builder_version.clone())]),
                },
            },
        },
    };
    Ok(canonical_document(&statement)?)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn input() -> ProvenanceInput {
        ProvenanceInput {
            subjects: vec![
                Subject {
                    name: "service".into(),
                    sha256: "aa".repeat(32),
                },
                Subject {
                    name: "migrate".into(),
                    sha256: "bb".repeat(32),
                },
            ],
            build_type: "https://example.com/build@v1".into(),
            builder_id: "https://example.com/xtask".into(),
            builder_version: "0.1.0".into(),
            source: Source {
                uri: "git+https://example.com/repo".into(),
                commit: "cc".repeat(20),
                clean: true,
            },
            target: "aarch64-unknown-linux-musl".into(),
            profile: "release".into(),
            command: vec!["cargo".into(), "build".into()],
            source_date_epoch: "1700000000".parse().unwrap(),
            cargo_lock_sha256: "dd".repeat(32),
            tools: vec![Tool {
                name: "zig".into(),
                version: "0.13.0".into(),
                uri: Some("pkg:pypi/ziglang@0.13.0".into()),
            }],
        }
    }

    #[test]
    fn a_statement_names_subjects_source_lockfile_and_tools() {
        let text = render(&input()).unwrap();
        assert_eq!(text, render(&input()).unwrap(), "deterministic");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(v["predicateType"], "https://slsa.dev/provenance/v1");
        // Sorted by name, whatever order they came in.
        assert_eq!(v["subject"][0]["name"], "migrate");
        assert_eq!(v["subject"][1]["digest"]["sha256"], "aa".repeat(32));
        let def = &v["predicate"]["buildDefinition"];
        assert_eq!(
            def["externalParameters"]["source"]["digest"]["gitCommit"],
            "cc".repeat(20)
        );
        assert_eq!(def["internalParameters"]["SOURCE_DATE_EPOCH"], "1700000000");
        assert_eq!(def["resolvedDependencies"][1]["name"], "Cargo.lock");
        assert_eq!(
            def["resolvedDependencies"][1]["digest"]["sha256"],
            "dd".repeat(32)
        );
        assert_eq!(
            def["resolvedDependencies"][2]["annotations"]["version"],
            "0.13.0"
        );
        assert_eq!(
            v["predicate"]["runDetails"]["builder"]["id"],
            "https://example.com/xtask"
        );
    }
}
