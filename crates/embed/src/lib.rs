//! Embeds the list of crates compiled into a package's binaries, in cargo-auditable's
//! format: a `.dep-v0` ELF section holding zlib-compressed JSON (the `auditable-serde`
//! schema), which syft, trivy, grype, osv-scanner and `cargo audit bin` read, and from which
//! `cargo xtask image` writes each image's SBOM. Called from the package's `build.rs`
//! ([`dependency_list`]).
//!
//! Done from a build script rather than a rustc wrapper so that a plain `cargo build` and
//! `cargo xtask build` embed the same data and produce the same bits. The section is linked
//! in as an object file of its own: it is not allocated, so the linker never discards it, and
//! no linker-specific flag is needed (rust-lld, or cc for host builds).

#![warn(missing_docs)]

use std::cmp::min;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use object::write::{Object, StandardSegment, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, FileFlags, SectionFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};
use serde::{Deserialize, Serialize};

/// From a package's build script: embeds the list of the crates its binaries are built
/// from, for the target being built, and tells cargo to link it into every binary of the
/// package and when to run the script again. On a target that is not Linux ELF it does
/// nothing (a developer's macOS build, say).
///
/// ```no_run
/// // build.rs
/// fn main() -> anyhow::Result<()> {
///     tiny_embed::dependency_list()
/// }
/// ```
pub fn dependency_list() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).with_context(|| format!("cargo did not set {name}"));
    let target_features = env("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let Some(architecture) = elf_architecture(
        &env("CARGO_CFG_TARGET_OS")?,
        &env("CARGO_CFG_TARGET_ARCH")?,
        &target_features.split(',').collect(),
    ) else {
        // Only Linux ELF targets ship; other hosts (a developer's macOS) build without it.
        return Ok(());
    };
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let features: Vec<String> = env("CARGO_CFG_FEATURE")
        .unwrap_or_default()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let metadata = metadata(&env("CARGO")?, &manifest_dir, &env("TARGET")?, &features)?;
    // The list changes with the lock file (every package, version and source) and with this
    // package's manifest (its dependencies and their kinds). Not with the workspace's
    // Cargo.toml: it also holds the profiles and `[workspace.metadata]`, and a rerun here
    // relinks every binary (fat LTO) for an edit that changes nothing embedded. A change
    // there that adds or removes a package (`[workspace.dependencies]`, `[patch]`) changes
    // Cargo.lock too; one that only switches on an optional package the lock file already
    // holds (a feature) is not seen until the next change of these, and `cargo xtask verify`,
    // which builds from scratch, reports it.
    for input in [
        metadata.workspace_root.join("Cargo.lock"),
        manifest_dir.join("Cargo.toml"),
    ] {
        println!("cargo::rerun-if-changed={}", input.display());
    }
    let json = serde_json::to_string(&version_info(&metadata)?)?;
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(json.as_bytes(), 7);
    let endianness = match env("CARGO_CFG_TARGET_ENDIAN")?.as_str() {
        "big" => Endianness::Big,
        _ => Endianness::Little,
    };
    let object = section_object(architecture, endianness, &compressed)?;
    let path = PathBuf::from(env("OUT_DIR")?).join("dep-v0.o");
    std::fs::write(&path, object).with_context(|| format!("writing {}", path.display()))?;
    println!("cargo::rustc-link-arg-bins={}", path.display());
    Ok(())
}

/// The ELF machine of a Linux target, and the header flags its linker compares across
/// objects: RISC-V and LoongArch objects carry their float ABI there, and the linker refuses
/// to mix ours with the target's if they differ (the same flags rustc and cargo-auditable
/// write; the other machines need none).
///
/// ```
/// use std::collections::HashSet;
/// use object::Architecture;
///
/// let riscv = HashSet::from(["m", "a", "f", "d", "c"]);
/// // RVC and the double-float ABI, as rustc's own objects say.
/// assert_eq!(
///     tiny_embed::elf_architecture("linux", "riscv64", &riscv),
///     Some((Architecture::Riscv64, 0x5))
/// );
/// assert_eq!(tiny_embed::elf_architecture("macos", "aarch64", &HashSet::new()), None);
/// ```
pub fn elf_architecture(
    os: &str,
    arch: &str,
    features: &HashSet<&str>,
) -> Option<(Architecture, u32)> {
    use object::elf;
    let float = |double: u32, single: u32, soft: u32| match () {
        () if features.contains("d") => double,
        () if features.contains("f") => single,
        () => soft,
    };
    let architecture = match (os, arch) {
        ("linux", "x86_64") => (Architecture::X86_64, 0),
        ("linux", "aarch64") => (Architecture::Aarch64, 0),
        ("linux", "x86") => (Architecture::I386, 0),
        ("linux", "arm") => (Architecture::Arm, 0),
        ("linux", "powerpc64") => (Architecture::PowerPc64, 0),
        ("linux", "riscv64") => {
            let compressed = match features.contains("c") {
                true => elf::EF_RISCV_RVC,
                false => 0,
            };
            let abi = float(
                elf::EF_RISCV_FLOAT_ABI_DOUBLE,
                elf::EF_RISCV_FLOAT_ABI_SINGLE,
                elf::EF_RISCV_FLOAT_ABI_SOFT,
            );
            (Architecture::Riscv64, compressed | abi)
        }
        ("linux", "loongarch64") => {
            let abi = float(
                elf::EF_LARCH_ABI_DOUBLE_FLOAT,
                elf::EF_LARCH_ABI_SINGLE_FLOAT,
                elf::EF_LARCH_ABI_SOFT_FLOAT,
            );
            (Architecture::LoongArch64, elf::EF_LARCH_OBJABI_V1 | abi)
        }
        _ => return None,
    };
    Some(architecture)
}

/// The resolve graph for this target and these features, as cargo-auditable asks for it.
fn metadata(
    cargo: &str,
    manifest_dir: &Path,
    target: &str,
    features: &[String],
) -> anyhow::Result<Metadata> {
    let mut args: Vec<String> = ["metadata", "--format-version", "1", "--manifest-path"]
        .map(str::to_owned)
        .to_vec();
    args.push(manifest_dir.join("Cargo.toml").display().to_string());
    args.extend(["--filter-platform".to_owned(), target.to_owned()]);
    let named: Vec<&str> = features
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "default")
        .collect();
    if named.len() == features.len() {
        args.push("--no-default-features".to_owned());
    }
    if !named.is_empty() {
        args.extend(["--features".to_owned(), named.join(",")]);
    }
    let run = |extra: &[&str]| {
        Command::new(cargo)
            .args(&args)
            .args(extra)
            .output()
            .context("running `cargo metadata`")
    };
    // Offline first: the build has fetched every crate it compiles. The resolve also names
    // dev-dependencies, which a plain `cargo build` does not fetch; only then go online.
    let offline = run(&["--offline"])?;
    let output = if offline.status.success() {
        offline
    } else {
        run(&[])?
    };
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing `cargo metadata` output")
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    resolve: Resolve,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    source: Option<String>,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
    root: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKindInfo>,
}

#[derive(Deserialize)]
struct DepKindInfo {
    kind: Option<String>,
}

/// How a crate is used, weakest first: a runtime dependency of a build dependency is a build
/// dependency, and dev-only crates are left out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dev,
    Build,
    Runtime,
}

fn strongest(kinds: &[DepKindInfo]) -> Kind {
    kinds
        .iter()
        .map(|k| match k.kind.as_deref() {
            Some("dev") => Kind::Dev,
            Some("build") => Kind::Build,
            _ => Kind::Runtime,
        })
        .max()
        .unwrap_or(Kind::Runtime)
}

/// `VersionInfo` of the `auditable-serde` schema (format 1). Fields holding their default are
/// left out, as cargo-auditable does.
#[derive(Serialize)]
struct VersionInfo {
    packages: Vec<AuditPackage>,
    format: u32,
}

#[derive(Serialize)]
struct AuditPackage {
    name: String,
    version: String,
    source: String,
    #[serde(skip_serializing_if = "is_runtime")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    root: bool,
}

fn is_runtime(kind: &&str) -> bool {
    *kind == "runtime"
}

fn version_info(metadata: &Metadata) -> anyhow::Result<VersionInfo> {
    let root = metadata
        .resolve
        .root
        .as_deref()
        .context("`cargo metadata` named no root package")?;
    let nodes: HashMap<&str, &Node> = metadata
        .resolve
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n))
        .collect();
    let proc_macros: HashSet<&str> = metadata
        .packages
        .iter()
        // Registry packages also list their tests and benches: the library target decides.
        .filter(|p| {
            p.targets
                .iter()
                .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
        })
        .map(|p| p.id.as_str())
        .collect();
    // Breadth-first from the root, raising each crate to the strongest way it is reached.
    let mut kinds: HashMap<&str, Kind> = HashMap::from([(root, Kind::Runtime)]);
    let mut queue = vec![root];
    while let Some(id) = queue.pop() {
        let parent = kinds[id];
        let node = nodes.get(id).context("a resolve node is missing")?;
        for dep in &node.deps {
            let mut kind = min(strongest(&dep.dep_kinds), parent);
            if proc_macros.contains(dep.pkg.as_str()) {
                kind = min(kind, Kind::Build);
            }
            if kinds.get(dep.pkg.as_str()).is_none_or(|&seen| kind > seen) {
                kinds.insert(&dep.pkg, kind);
                queue.push(&dep.pkg);
            }
        }
    }
    // Sorted by name, version and id: the same bytes on every build.
    let mut packages: BTreeMap<(&str, &str, &str), (&Package, Kind)> = BTreeMap::new();
    for package in &metadata.packages {
        match kinds.get(package.id.as_str()) {
            Some(&kind) if kind != Kind::Dev => {
                let key = (&*package.name, &*package.version, &*package.id);
                packages.insert(key, (package, kind));
            }
            _ => {}
        }
    }
    let index: HashMap<&str, usize> = packages
        .values()
        .enumerate()
        .map(|(i, (p, _))| (p.id.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (package, kind) in packages.values() {
        let node = nodes
            .get(package.id.as_str())
            .context("a resolve node is missing")?;
        let mut dependencies: Vec<usize> = node
            .deps
            .iter()
            .filter(|d| strongest(&d.dep_kinds) != Kind::Dev)
            .filter_map(|d| index.get(d.pkg.as_str()).copied())
            .collect();
        dependencies.sort_unstable();
        dependencies.dedup();
        out.push(AuditPackage {
            name: package.name.clone(),
            version: package.version.clone(),
            source: source(package.source.as_deref()),
            kind: if *kind == Kind::Build {
                "build"
            } else {
                "runtime"
            },
            dependencies,
            root: package.id == root,
        });
    }
    Ok(VersionInfo {
        packages: out,
        format: 1,
    })
}

fn source(source: Option<&str>) -> String {
    match source {
        None => "local".into(),
        Some("registry+https://github.com/rust-lang/crates.io-index") => "crates.io".into(),
        Some(other) => other.split('+').next().unwrap_or(other).into(),
    }
}

/// A relocatable ELF object with one non-allocated `.dep-v0` section.
fn section_object(
    (architecture, e_flags): (Architecture, u32),
    endianness: Endianness,
    contents: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut file = Object::new(BinaryFormat::Elf, architecture, endianness);
    file.flags = FileFlags::Elf {
        os_abi: object::elf::ELFOSABI_NONE,
        abi_version: 0,
        e_flags,
    };
    let section = file.add_section(
        file.segment_name(StandardSegment::Data).to_vec(),
        b".dep-v0".to_vec(),
        SectionKind::ReadOnlyData,
    );
    // Not SHF_ALLOC: the data is not loaded at run time, and the linker keeps such sections.
    file.section_mut(section).flags = SectionFlags::Elf { sh_flags: 0 };
    let offset = file.append_section_data(section, contents, 1);
    // The symbol cargo-auditable defines, for tools that look it up.
    file.add_symbol(Symbol {
        name: b"AUDITABLE_VERSION_INFO".to_vec(),
        value: offset,
        size: contents.len() as u64,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
    file.write().context("writing the .dep-v0 object")
}
