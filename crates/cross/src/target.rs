//! The targets the service ships for, and every name each one goes by.

use std::fmt;
use std::str::FromStr;

/// A Linux musl target this crate builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `x86_64-unknown-linux-musl` (`linux/amd64`).
    X86_64Musl,
    /// `aarch64-unknown-linux-musl` (`linux/arm64`).
    Aarch64Musl,
}

impl Target {
    /// Every target, in the order they are built and listed.
    pub const ALL: [Target; 2] = [Target::X86_64Musl, Target::Aarch64Musl];

    /// The Rust target triple (`cargo --target`, `rustup target add`).
    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64Musl => "x86_64-unknown-linux-musl",
            Target::Aarch64Musl => "aarch64-unknown-linux-musl",
        }
    }

    /// The architecture as OCI and Docker name it (`amd64`, `arm64`).
    pub fn arch(self) -> &'static str {
        match self {
            Target::X86_64Musl => "amd64",
            Target::Aarch64Musl => "arm64",
        }
    }

    /// The architecture as the kernel, `uname -m` and qemu name it.
    pub fn machine(self) -> &'static str {
        match self {
            Target::X86_64Musl => "x86_64",
            Target::Aarch64Musl => "aarch64",
        }
    }

    /// The OCI platform (`docker build --platform`).
    pub fn platform(self) -> String {
        format!("linux/{}", self.arch())
    }

    /// The target as `zig cc -target` spells it.
    pub fn zig_target(self) -> String {
        format!("{}-linux-musl", self.machine())
    }

    /// ELF `e_machine` of this target's executables.
    pub fn elf_machine(self) -> u16 {
        match self {
            Target::X86_64Musl => object::elf::EM_X86_64,
            Target::Aarch64Musl => object::elf::EM_AARCH64,
        }
    }

    /// The name cc-rs reads the C compiler from: `CC_<triple with underscores>`.
    pub fn cc_env(self) -> String {
        format!("CC_{}", self.triple().replace('-', "_"))
    }

    /// The target whose binaries the machine running us executes natively.
    pub fn host() -> Option<Target> {
        Target::from_machine(std::env::consts::ARCH)
    }

    /// The target of a machine name as `uname -m` gives it (`x86_64`, `aarch64`).
    pub fn from_machine(machine: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.machine() == machine)
    }

    /// The target of an image architecture (`amd64`, `arm64`).
    pub fn from_arch(arch: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.arch() == arch)
    }

    /// `--target <triple>` for each of `targets`, as cargo takes them.
    pub fn cargo_args(targets: &[Target]) -> Vec<&'static str> {
        targets
            .iter()
            .flat_map(|t| ["--target", t.triple()])
            .collect()
    }

    /// The supported names, for error messages and help.
    pub fn supported() -> String {
        Target::ALL
            .iter()
            .map(|t| format!("{} ({}, {})", t.triple(), t.arch(), t.machine()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromStr for Target {
    type Err = crate::Error;

    /// Accepts the triple, the OCI arch (`amd64`, `arm64`) or the machine name (`x86_64`,
    /// `aarch64`).
    fn from_str(s: &str) -> crate::Result<Target> {
        let name = s.trim();
        if let Some(t) = Target::ALL
            .into_iter()
            .find(|t| [t.triple(), t.arch(), t.machine()].contains(&name))
        {
            return Ok(t);
        }
        Err(crate::Error::UnknownTarget(format!(
            "unsupported target `{name}`: supported targets are {}",
            Target::supported()
        )))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.triple())
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_target() {
        for (name, target) in [
            ("x86_64-unknown-linux-musl", Target::X86_64Musl),
            ("amd64", Target::X86_64Musl),
            ("x86_64", Target::X86_64Musl),
            ("aarch64-unknown-linux-musl", Target::Aarch64Musl),
            ("arm64", Target::Aarch64Musl),
            ("aarch64", Target::Aarch64Musl),
            (" arm64 ", Target::Aarch64Musl),
        ] {
            assert_eq!(name.parse::<Target>().unwrap(), target, "{name}");
        }
    }

    #[test]
    fn unsupported_targets_are_refused_with_the_list() {
        for name in [
            "riscv64gc-unknown-linux-gnu",
            "nonsense",
            "x86_64-unknown-linux-gnu",
            "",
        ] {
            let err = name.parse::<Target>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unsupported target `{name}`")),
                "{err}"
            );
            assert!(
                err.contains("x86_64-unknown-linux-musl (amd64, x86_64)"),
                "{err}"
            );
            assert!(
                err.contains("aarch64-unknown-linux-musl (arm64, aarch64)"),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn names_for_other_tools() {
        let t = Target::Aarch64Musl;
        assert_eq!(t.platform(), "linux/arm64");
        assert_eq!(t.zig_target(), "aarch64-linux-musl");
        assert_eq!(t.cc_env(), "CC_aarch64_unknown_linux_musl");
        assert_eq!(t.elf_machine(), 183);
        assert_eq!(Target::X86_64Musl.elf_machine(), 62);
        assert_eq!(Target::from_machine("aarch64"), Some(t));
        assert_eq!(Target::from_machine("riscv64"), None);
        assert_eq!(Target::from_arch("arm64"), Some(t));
        assert_eq!(Target::from_arch("riscv64"), None);
    }
}
