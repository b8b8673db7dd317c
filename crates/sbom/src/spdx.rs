//! An SPDX 2.3 JSON document for one architecture: the crates compiled into the binaries, the
//! C code bundled by some of them, and the files shipped. Built from values only, so the same
//! inputs give the same bytes: no random UUIDs, and the namespace is a hash of the content.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tiny_oci::json::{canonical_document, canonical_json};

use crate::audit::{CrateId, Graph};
use crate::{Error, Result};

/// Everything one document says.
pub struct SbomInput {
    /// The document's name, e.g. `service-0.1.0-x86_64-unknown-linux-musl`.
    pub name: String,
    /// The namespace's prefix (a URL of the project); the content hash is appended.
    pub namespace_base: String,
    /// RFC 3339, from SOURCE_DATE_EPOCH.
    pub created: String,
    /// SPDX creators: `Tool: …`, `Organization: …`.
    pub creators: Vec<String>,
    /// The supplier of the workspace's own crates (`Organization: …`).
    pub local_supplier: String,
    /// The crates in the binaries (see [`crate::audit`]).
    pub graph: Graph,
    /// What Cargo knows of each crate; a crate missing here gets NOASSERTION.
    pub details: BTreeMap<CrateId, CrateDetails>,
    /// C code compiled into some of the crates.
    pub c_libraries: Vec<CLibrary>,
    /// The files shipped.
    pub files: Vec<ImageFile>,
}

/// What the package manager knows of a crate.
#[derive(Debug, Clone, Default)]
pub struct CrateDetails {
    /// The declared license expression (`license` in Cargo.toml).
    pub license: Option<String>,
    /// The checksum in Cargo.lock (registry crates only).
    pub sha256: Option<String>,
    /// The declared authors.
    pub authors: Vec<String>,
}

/// C code compiled into a crate (bundled SQLite, mimalloc).
#[derive(Debug, Clone)]
pub struct CLibrary {
    /// The library's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its SPDX license expression.
    pub license: String,
    /// `Organization: …`: who wrote it.
    pub originator: String,
    /// Its home page.
    pub homepage: String,
    /// The CPE 2.3 name vulnerability databases use for it.
    pub cpe: String,
    /// The crate whose build compiles it.
    pub bundled_in: CrateId,
}

/// One file as shipped: its path in the image and its digests. SPDX 2.3 requires SHA-1 for
/// files; SHA-256 is what images and the rest of this project use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Absolute path in the image, e.g. `/usr/local/bin/service`.
    pub path: String,
    /// SHA-256 of the contents, in hex.
    pub sha256: String,
    /// SHA-1 of the contents, in hex.
    pub sha1: String,
    /// Built from the workspace's crates (a binary), rather than only shipped beside them.
    pub built: bool,
}

impl ImageFile {
    /// The file at `path` in the image with contents `bytes`.
    pub fn from_bytes(path: &str, bytes: &[u8], built: bool) -> ImageFile {
        ImageFile {
            path: path.to_owned(),
            sha256: format!("{:x}", Sha256::digest(bytes)),
            sha1: format!("{:x}", sha1::Sha1::digest(bytes)),
            built,
        }
    }
}

const NOASSERTION: &str = "NOASSERTION";
const CRATES_IO: &str = "crates.io";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    files: Vec<File>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    supplier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    originator: Option<String>,
    download_location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    homepage: Option<String>,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    license_concluded: &'static str,
    license_declared: String,
    copyright_text: &'static str,
    primary_package_purpose: &'static str,
    external_refs: Vec<ExternalRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    file_name: String,
    checksums: Vec<Checksum>,
    license_concluded: &'static str,
    copyright_text: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// The `pkg:cargo` package URL of a crate.
pub fn purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// An SPDX identifier: letters, digits, `.` and `-` only.
fn spdx_id(kind: &str, name: &str, version: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("SPDXRef-{kind}-{}-{}", clean(name), clean(version))
}

fn crate_ref(id: &CrateId) -> String {
    spdx_id("crate", &id.name, &id.version)
}

/// Cargo still accepts the old `MIT/Apache-2.0` form; SPDX spells it with OR.
fn license_expression(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `Name <mail>` as SPDX's `Person: Name (mail)`.
fn person(author: &str) -> String {
    match author.split_once('<') {
        Some((name, mail)) => format!(
            "Person: {} ({})",
            name.trim(),
            mail.trim_end_matches('>').trim()
        ),
        None => format!("Person: {}", author.trim()),
    }
}

fn crate_package(input: &SbomInput, id: &CrateId) -> Package {
    let details = input.details.get(id).cloned().unwrap_or_default();
    let registry = id.source == CRATES_IO;
    let root = input.graph.roots.contains(id);
    Package {
        spdx_id: crate_ref(id),
        name: id.name.clone(),
        version_info: id.version.clone(),
        supplier: if registry {
            "Organization: crates.io".into()
        } else {
            input.local_supplier.clone()
        },
        originator: details.authors.first().map(|a| person(a)),
        download_location: if registry {
            format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                id.name, id.version
            )
        } else {
            NOASSERTION.into()
        },
        homepage: None,
        files_analyzed: false,
        checksums: details
            .sha256
            .map(|sha| Checksum {
                algorithm: "SHA256",
                checksum_value: sha,
            })
            .into_iter()
            .collect(),
        license_concluded: NOASSERTION,
        license_declared: details
            .license
            .as_deref()
            .map_or(NOASSERTION.into(), license_expression),
        copyright_text: NOASSERTION,
        primary_package_purpose: if root { "APPLICATION" } else { "LIBRARY" },
        external_refs: vec![ExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: purl(&id.name, &id.version),
        }],
    }
}

fn c_package(lib: &CLibrary) -> Package {
    Package {
        spdx_id: spdx_id("c", &lib.name, &lib.version),
        name: lib.name.clone(),
        version_info: lib.version.clone(),
        // It reaches us inside the crate that bundles it.
        supplier: "Organization: crates.io".into(),
        originator: Some(lib.originator.clone()),
        download_location: NOASSERTION.into(),
        homepage: Some(lib.homepage.clone()),
        files_analyzed: false,
        checksums: Vec::new(),
        license_concluded: NOASSERTION,
        license_declared: lib.license.clone(),
        copyright_text: NOASSERTION,
        primary_package_purpose: "LIBRARY",
        external_refs: vec![
            ExternalRef {
                reference_category: "SECURITY",
                reference_type: "cpe23Type",
                reference_locator: lib.cpe.clone(),
            },
            ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: format!("pkg:generic/{}@{}", lib.name, lib.version),
            },
        ],
    }
}

fn relationship(from: &str, kind: &'static str, to: &str) -> Relationship {
    Relationship {
        spdx_element_id: from.to_owned(),
        relationship_type: kind,
        related_spdx_element: to.to_owned(),
    }
}

/// The document as pretty JSON with a trailing newline.
pub fn render(input: &SbomInput) -> Result<String> {
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    for root in &input.graph.roots {
        relationships.push(relationship(
            "SPDXRef-DOCUMENT",
            "DESCRIBES",
            &crate_ref(root),
        ));
    }
    for (id, deps) in &input.graph.crates {
        packages.push(crate_package(input, id));
        for dep in deps {
            relationships.push(relationship(&crate_ref(id), "DEPENDS_ON", &crate_ref(dep)));
        }
    }
    for lib in &input.c_libraries {
        let package = c_package(lib);
        relationships.push(relationship(
            &crate_ref(&lib.bundled_in),
            "CONTAINS",
            &package.spdx_id,
        ));
        packages.push(package);
    }
    let mut files = Vec::new();
    for (i, file) in input.files.iter().enumerate() {
        let file_ref = format!("SPDXRef-File-{i}");
        if file.built {
            for root in &input.graph.roots {
                relationships.push(relationship(&file_ref, "GENERATED_FROM", &crate_ref(root)));
            }
        } else {
            relationships.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", &file_ref));
        }
        files.push(File {
            spdx_id: file_ref,
            file_name: format!(".{}", file.path),
            checksums: vec![
                Checksum {
                    algorithm: "SHA1",
                    checksum_value: file.sha1.clone(),
                },
                Checksum {
                    algorithm: "SHA256",
                    checksum_value: file.sha256.clone(),
                },
            ],
            license_concluded: NOASSERTION,
            copyright_text: NOASSERTION,
        });
    }
    let mut document = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: input.name.clone(),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: input.created.clone(),
            creators: input.creators.clone(),
        },
        packages,
        files,
        relationships,
    };
    // The namespace names this exact content: a hash of the document without it.
    let content = canonical_json(&document).map_err(|e| Error::Serialise(e.to_string()))?;
    document.document_namespace = format!(
        "{}/{}-{:x}",
        input.namespace_base.trim_end_matches('/'),
        input.name,
        Sha256::digest(&content)
    );
    Ok(canonical_document(&document)?)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::audit;

    fn id(name: &str, version: &str, source: &str) -> CrateId {
        CrateId {
            name: name.into(),
            version: version.into(),
            source: source.into(),
        }
    }

    fn input() -> SbomInput {
        let tokio = id("tokio", "1.45.0", "crates.io");
        let sqlite_sys = id("libsqlite3-sys", "0.35.0", "crates.io");
        let details = BTreeMap::from([
            (
                tokio.clone(),
                CrateDetails {
                    license: Some("MIT".into()),
                    sha256: Some("ab".repeat(32)),
                    authors: vec!["Tokio Contributors <team@tokio.rs>".into()],
                },
            ),
            (
                sqlite_sys.clone(),
                CrateDetails {
                    license: Some("MIT/Apache-2.0".into()),
                    sha256: Some("cd".repeat(32)),
                    authors: vec![],
                },
            ),
            // Cargo knows dev-only crates too: they must not appear.
            (
                id("tempfile", "3.0.0", "crates.io"),
                CrateDetails::default(),
            ),
        ]);
        SbomInput {
            name: "service-0.1.0-x86_64-unknown-linux-musl".into(),
            namespace_base: "https://example.com/spdx/".into(),
            created: "2026-01-01T00:00:00Z".into(),
            creators: vec!["Tool: cargo-xtask-0.1.0".into()],
            local_supplier: "Organization: example".into(),
            graph: Graph::runtime(&[audit::tests::fixture()]),
            details,
            c_libraries: vec![CLibrary {
                name: "sqlite".into(),
                version: "3.50.2".into(),
                license: "blessing".into(),
                originator: "Organization: SQLite".into(),
                homepage: "https://sqlite.org".into(),
                cpe: "cpe:2.3:a:sqlite:sqlite:3.50.2:*:*:*:*:*:*:*".into(),
                bundled_in: sqlite_sys,
            }],
            files: vec![ImageFile::from_bytes(
                "/usr/local/bin/service",
                b"abc",
                true,
            )],
        }
    }

    fn json(input: &SbomInput) -> Value {
        serde_json::from_str(&render(input).unwrap()).unwrap()
    }

    fn package_names(doc: &Value) -> Vec<&str> {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        assert_eq!(render(&input()).unwrap(), render(&input()).unwrap());
    }

    #[test]
    fn the_namespace_follows_the_content() {
        let before = json(&input());
        let mut changed = input();
        changed.files[0] = ImageFile::from_bytes("/usr/local/bin/service", b"abd", true);
        let after = json(&changed);
        let ns = |d: &Value| d["documentNamespace"].as_str().unwrap().to_owned();
        assert_ne!(ns(&before), ns(&after));
        assert!(
            ns(&before)
                .starts_with("https://example.com/spdx/service-0.1.0-x86_64-unknown-linux-musl-"),
            "{}",
            ns(&before)
        );
        assert_eq!(ns(&before).rsplit('-').next().unwrap().len(), 64);
    }

    #[test]
    fn only_runtime_crates_and_the_bundled_c_code_are_packages() {
        let doc = json(&input());
        assert_eq!(
            package_names(&doc),
            ["libsqlite3-sys", "service", "tokio", "sqlite"]
        );
    }

    #[test]
    fn crates_carry_purl_checksum_license_and_supplier() {
        let doc = json(&input());
        let tokio = &doc["packages"][2];
        assert_eq!(
            tokio["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/tokio@1.45.0"
        );
        assert_eq!(tokio["externalRefs"][0]["referenceType"], "purl");
        assert_eq!(tokio["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(tokio["checksums"][0]["checksumValue"], "ab".repeat(32));
        assert_eq!(tokio["licenseDeclared"], "MIT");
        assert_eq!(tokio["supplier"], "Organization: crates.io");
        assert_eq!(
            tokio["originator"],
            "Person: Tokio Contributors (team@tokio.rs)"
        );
        let sys = &doc["packages"][0];
        assert_eq!(sys["licenseDeclared"], "MIT OR Apache-2.0");
        let service = &doc["packages"][1];
        assert_eq!(service["supplier"], "Organization: example");
        assert_eq!(service["primaryPackagePurpose"], "APPLICATION");
    }

    #[test]
    fn relationships_describe_the_root_and_its_dependencies() {
        let doc = json(&input());
        let rels: Vec<String> = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["spdxElementId"].as_str().unwrap(),
                    r["relationshipType"].as_str().unwrap(),
                    r["relatedSpdxElement"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            rels,
            [
                "SPDXRef-DOCUMENT DESCRIBES SPDXRef-crate-service-0.1.0",
                "SPDXRef-crate-service-0.1.0 DEPENDS_ON SPDXRef-crate-libsqlite3-sys-0.35.0",
                "SPDXRef-crate-service-0.1.0 DEPENDS_ON SPDXRef-crate-tokio-1.45.0",
                "SPDXRef-crate-libsqlite3-sys-0.35.0 CONTAINS SPDXRef-c-sqlite-3.50.2",
                "SPDXRef-File-0 GENERATED_FROM SPDXRef-crate-service-0.1.0",
            ]
        );
    }

    #[test]
    fn files_are_relative_with_sha1_and_sha256() {
        let doc = json(&input());
        let file = &doc["files"][0];
        assert_eq!(file["fileName"], "./usr/local/bin/service");
        assert_eq!(
            file["checksums"][0]["checksumValue"],
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            file["checksums"][1]["checksumValue"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
