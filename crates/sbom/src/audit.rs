//! The dependency list embedded in each binary (`tiny-embed` writes it): cargo-auditable's
//! `.dep-v0` section, zlib-compressed JSON in the `auditable-serde` schema.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use object::{Object, ObjectSection};
use serde::Deserialize;

use crate::{Error, Result};

/// The name of the ELF section that holds the list.
pub const SECTION: &str = ".dep-v0";
/// cargo-auditable's own limit on the decompressed data.
const MAX_JSON: u64 = 8 << 20;

/// `VersionInfo` in the `auditable-serde` schema.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// Every crate of the build, indexed by `dependencies`.
    pub packages: Vec<Package>,
}

/// One crate of the list.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Package {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `crates.io`, `local`, `git`, `registry` or another source kind.
    pub source: String,
    /// Whether it ends up in the binary.
    #[serde(default)]
    pub kind: Kind,
    /// Indexes into `packages` of what it depends on.
    #[serde(default)]
    pub dependencies: Vec<usize>,
    /// Whether it is the crate the binary was built from.
    #[serde(default)]
    pub root: bool,
}

/// When a crate is used.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only used to build (build scripts, proc macros): not in the binary.
    Build,
    /// Compiled into the binary.
    #[default]
    Runtime,
}

/// A crate as the embedded data names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrateId {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its source kind, as in [`Package::source`].
    pub source: String,
}

/// The crates compiled into some binaries and what each depends on, runtime only.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Each crate with the crates it depends on.
    pub crates: BTreeMap<CrateId, BTreeSet<CrateId>>,
    /// The crates the binaries were built from.
    pub roots: BTreeSet<CrateId>,
}

impl VersionInfo {
    /// Reads the `.dep-v0` section of an ELF file; `None` when it has none.
    pub fn from_elf(bytes: &[u8]) -> Result<Option<VersionInfo>> {
        let file = object::File::parse(bytes).map_err(|e| Error::NotAnObject(e.to_string()))?;
        let Some(section) = file.section_by_name(SECTION) else {
            return Ok(None);
        };
        let unreadable = |step: &'static str, e: &dyn std::fmt::Display| Error::Section {
            step,
            cause: e.to_string(),
        };
        let compressed = section.data().map_err(|e| unreadable("reading", &e))?;
        let mut json = Vec::new();
        flate2::read::ZlibDecoder::new(compressed)
            .take(MAX_JSON)
            .read_to_end(&mut json)
            .map_err(|e| unreadable("decompressing", &e))?;
        let info: VersionInfo =
            serde_json::from_slice(&json).map_err(|e| unreadable("parsing", &e))?;
        info.check()?;
        Ok(Some(info))
    }

    fn check(&self) -> Result<()> {
        let n = self.packages.len();
        if let Some(p) = self
            .packages
            .iter()
            .find(|p| p.dependencies.iter().any(|&d| d >= n))
        {
            return Err(Error::Corrupt {
                name: p.name.clone(),
                version: p.version.clone(),
            });
        }
        Ok(())
    }
}

impl Package {
    /// The crate as a graph names it.
    pub fn id(&self) -> CrateId {
        CrateId {
            name: self.name.clone(),
            version: self.version.clone(),
            source: self.source.clone(),
        }
    }
}

impl Graph {
    /// The runtime crates of several binaries together; build-only crates and the edges to
    /// them are left out.
    pub fn runtime(infos: &[VersionInfo]) -> Graph {
        let mut graph = Graph::default();
        for info in infos {
            let runtime = |i: usize| info.packages[i].kind == Kind::Runtime;
            for (i, package) in info.packages.iter().enumerate() {
                if !runtime(i) {
                    continue;
                }
                let deps = graph.crates.entry(package.id()).or_default();
                deps.extend(
                    package
                        .dependencies
                        .iter()
                        .filter(|&&d| runtime(d))
                        .map(|&d| info.packages[d].id()),
                );
                if package.root {
                    graph.roots.insert(package.id());
                }
            }
        }
        graph
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A root with a runtime dependency, which has a build-only dependency (a proc macro).
    pub fn fixture() -> VersionInfo {
        serde_json::from_str(
            r#"{"packages":[
                {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"},
                {"name":"libsqlite3-sys","version":"0.35.0","source":"crates.io","dependencies":[0]},
                {"name":"service","version":"0.1.0","source":"local","dependencies":[1,3],"root":true},
                {"name":"tokio","version":"1.45.0","source":"crates.io"}
            ],"format":1}"#,
        )
        .unwrap()
    }

    fn id(name: &str, version: &str, source: &str) -> CrateId {
        CrateId {
            name: name.into(),
            version: version.into(),
            source: source.into(),
        }
    }

    #[test]
    fn the_runtime_graph_leaves_build_only_crates_out() {
        let graph = Graph::runtime(&[fixture(), fixture()]);
        let names: Vec<_> = graph.crates.keys().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["libsqlite3-sys", "service", "tokio"]);
        assert!(graph.crates[&id("libsqlite3-sys", "0.35.0", "crates.io")].is_empty());
        assert_eq!(
            graph.roots.iter().collect::<Vec<_>>(),
            [&id("service", "0.1.0", "local")]
        );
    }

    #[test]
    fn out_of_range_dependencies_are_refused() {
        let mut info = fixture();
        info.packages[1].dependencies.push(9);
        assert!(info.check().is_err());
        assert!(VersionInfo::from_elf(b"not an elf").is_err());
    }
}
