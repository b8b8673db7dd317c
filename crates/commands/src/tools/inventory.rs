//! What Cargo knows of the crates in a build: license and authors from `cargo metadata` for
//! one target, checksums from Cargo.lock, and the versions of the C code that `-sys` crates
//! compile in (read from the sources they bundle).

use std::collections::BTreeMap;

use anyhow::Context;
use cargo_metadata::camino::Utf8Path;
use cargo_metadata::{Metadata, MetadataCommand};
use serde::Deserialize;

use crate::model::project::Project;
use crate::tools::toolchain;
use tiny_cross::target::Target;
use tiny_sbom::audit::{CrateId, Graph};
use tiny_sbom::spdx::{CLibrary, CrateDetails};

pub struct Inventory {
    pub details: BTreeMap<CrateId, CrateDetails>,
    pub c_libraries: Vec<CLibrary>,
}

/// Gathers the details of the crates in `graph` for `target`.
pub fn gather(project: &Project, target: Target, graph: &Graph) -> anyhow::Result<Inventory> {
    let metadata = MetadataCommand::new()
        .cargo_path(toolchain::cargo())
        .current_dir(&project.root)
        .other_options(vec![
            "--filter-platform".to_owned(),
            target.triple().to_owned(),
        ])
        .exec()
        .with_context(|| format!("`cargo metadata --filter-platform {target}` failed"))?;
    let lock_path = project.root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {lock_path}: run `cargo generate-lockfile`"))?;
    let checksums = lock_checksums(&lock)?;
    let mut details = BTreeMap::new();
    for package in &metadata.packages {
        let id = crate_id(package);
        if !graph.crates.contains_key(&id) {
            continue;
        }
        let crate_details = CrateDetails {
            license: package.license.clone(),
            sha256: checksums.get(&id).cloned(),
            authors: package.authors.clone(),
        };
        details.insert(id, crate_details);
    }
    if let Some(missing) = graph.crates.keys().find(|id| !details.contains_key(*id)) {
        anyhow::bail!(
            "the staged binaries contain {} {}, which Cargo.lock no longer has: rebuild them with `cargo xtask build`",
            missing.name,
            missing.version
        );
    }
    let c_libraries = c_libraries(&metadata, graph)?;
    Ok(Inventory {
        details,
        c_libraries,
    })
}

/// The source kind as cargo-auditable names it (`tiny-embed` does the same).
fn source_kind(repr: Option<&str>) -> String {
    match repr {
        None => "local".into(),
        Some("registry+https://github.com/rust-lang/crates.io-index") => "crates.io".into(),
        Some(other) => other.split('+').next().unwrap_or(other).into(),
    }
}

#[derive(Deserialize)]
struct Lockfile {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

fn lock_checksums(lock: &str) -> anyhow::Result<BTreeMap<CrateId, String>> {
    let lock: Lockfile = toml::from_str(lock).context("parsing Cargo.lock")?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|p| {
            let id = CrateId {
                name: p.name,
                version: p.version,
                source: source_kind(p.source.as_deref()),
            };
            Some((id, p.checksum?))
        })
        .collect())
}

/// The C code compiled in by the `-sys` crates of the graph, with the versions their bundled
/// sources declare.
fn c_libraries(metadata: &Metadata, graph: &Graph) -> anyhow::Result<Vec<CLibrary>> {
    let mut libraries = Vec::new();
    for package in &metadata.packages {
        let id = crate_id(package);
        if !graph.crates.contains_key(&id) {
            continue;
        }
        let dir = package
            .manifest_path
            .parent()
            .context("a manifest path has no folder")?;
        let features: Vec<&str> = metadata
            .resolve
            .as_ref()
            .and_then(|r| r.nodes.iter().find(|n| n.id == package.id))
            .map(|n| n.features.iter().map(|f| f.as_str()).collect())
            .unwrap_or_default();
        let library = match package.name.as_str() {
            // Without `bundled` it links the system's SQLite, which a static musl build has not.
            "libsqlite3-sys" if features.contains(&"bundled") => {
                let header = read(&dir.join("sqlite3/sqlite3.h"))?;
                let version = sqlite_version(&header)
                    .with_context(|| format!("no SQLITE_VERSION in {dir}/sqlite3/sqlite3.h"))?;
                CLibrary {
                    name: "sqlite".into(),
                    cpe: format!("cpe:2.3:a:sqlite:sqlite:{version}:*:*:*:*:*:*:*"),
                    version,
                    license: "blessing".into(),
                    originator: "Organization: SQLite".into(),
                    homepage: "https://sqlite.org".into(),
                    bundled_in: id,
                }
            }
            "libmimalloc-sys" => {
                let header = mimalloc_header(dir, features.contains(&"v2"));
                let version = mimalloc_version(&read(&header)?)
                    .with_context(|| format!("no MI_MALLOC_VERSION in {header}"))?;
                CLibrary {
                    name: "mimalloc".into(),
                    cpe: format!("cpe:2.3:a:microsoft:mimalloc:{version}:*:*:*:*:*:*:*"),
                    version,
                    license: "MIT".into(),
                    originator: "Organization: Microsoft".into(),
                    homepage: "https://github.com/microsoft/mimalloc".into(),
                    bundled_in: id,
                }
            }
            _ => continue,
        };
        libraries.push(library);
    }
    Ok(libraries)
}

fn read(path: &Utf8Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// libmimalloc-sys bundles mimalloc 2 and 3 side by side (older releases: one copy).
fn mimalloc_header(dir: &Utf8Path, v2: bool) -> cargo_metadata::camino::Utf8PathBuf {
    let versioned = dir
        .join("c_src/mimalloc")
        .join(if v2 { "v2" } else { "v3" })
        .join("include/mimalloc.h");
    if versioned.is_file() {
        versioned
    } else {
        dir.join("c_src/mimalloc/include/mimalloc.h")
    }
}

/// `#define SQLITE_VERSION        "3.50.2"`.
fn sqlite_version(header: &str) -> Option<String> {
    define(header, "SQLITE_VERSION").map(|v| v.trim_matches('"').to_owned())
}

/// `#define MI_MALLOC_VERSION 30302` is 3.3.2 (major, then two digits each of minor and
/// patch); releases before 2.2 used one digit each (`212` is 2.1.2).
fn mimalloc_version(header: &str) -> Option<String> {
    let n: u32 = define(header, "MI_MALLOC_VERSION")?.parse().ok()?;
    let (major, minor, patch) = if n < 1000 {
        (n / 100, n / 10 % 10, n % 10)
    } else {
        (n / 10000, n / 100 % 100, n % 100)
    };
    Some(format!("{major}.{minor}.{patch}"))
}

/// The value of `#define NAME value`, without a trailing comment.
fn define<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "#define" && words.next()? == name).then_some(())?;
        words.next()
    })
}

/// A package as the embedded crate lists name it.
fn crate_id(package: &cargo_metadata::Package) -> CrateId {
    CrateId {
        name: package.name.to_string(),
        version: package.version.to_string(),
        source: source_kind(package.source.as_ref().map(|s| s.repr.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_versions_are_read_from_their_headers() {
        let sqlite =
            "#define SQLITE_VERSION_NUMBER 3050002\n#define SQLITE_VERSION        \"3.50.2\"\n";
        assert_eq!(sqlite_version(sqlite).as_deref(), Some("3.50.2"));
        let mimalloc = "#define MI_MALLOC_VERSION 30302   // major + 2 digits minor\n";
        assert_eq!(mimalloc_version(mimalloc).as_deref(), Some("3.3.2"));
        assert_eq!(
            mimalloc_version("#define MI_MALLOC_VERSION 212").as_deref(),
            Some("2.1.2")
        );
        assert_eq!(sqlite_version("nothing here"), None);
    }

    #[test]
    fn lock_checksums_are_keyed_like_the_embedded_data() {
        let lock = r#"
version = 4

[[package]]
name = "service"
version = "0.1.0"

[[package]]
name = "tokio"
version = "1.45.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "abc"
"#;
        let sums = lock_checksums(lock).unwrap();
        let tokio = CrateId {
            name: "tokio".into(),
            version: "1.45.0".into(),
            source: "crates.io".into(),
        };
        assert_eq!(sums.get(&tokio).map(String::as_str), Some("abc"));
        assert_eq!(sums.len(), 1, "local crates have no checksum");
    }
}
