//! The targets the service ships for, and every name each one goes by.

use std::fmt;
use std::str::FromStr;

/// A Linux musl target this crate builds for: every Linux platform Rust ships a musl
/// standard library for that container images are published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `x86_64-unknown-linux-musl` (`linux/amd64`).
    X86_64Musl,
    /// `aarch64-unknown-linux-musl` (`linux/arm64`).
    Aarch64Musl,
    /// `armv7-unknown-linux-musleabihf` (`linux/arm/v7`: ARMv7-A, VFPv3-D16, hard float).
    Armv7Musleabihf,
    /// `arm-unknown-linux-musleabihf` (`linux/arm/v6`: ARMv6, VFPv2, hard float).
    ArmMusleabihf,
    /// `i686-unknown-linux-musl` (`linux/386`).
    I686Musl,
    /// `riscv64gc-unknown-linux-musl` (`linux/riscv64`, double-float ABI).
    Riscv64gcMusl,
    /// `powerpc64le-unknown-linux-musl` (`linux/ppc64le`, ELFv2 ABI).
    Powerpc64leMusl,
    /// `loongarch64-unknown-linux-musl` (`linux/loong64`, double-float ABI).
    Loongarch64Musl,
}

/// The float ABI and ELF flags a target's binaries must carry: what [`crate::elf::verify`]
/// checks beyond the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// Nothing to check beyond the machine (x86-64, aarch64, i386).
    Plain,
    /// ARM EABI version 5, hard float (`EF_ARM_ABI_FLOAT_HARD`), for at least this
    /// architecture version (`Tag_CPU_arch` of `.ARM.attributes`: 6 for v6, 10 for v7) and
    /// below the next one.
    ArmHardFloat {
        /// The lowest `Tag_CPU_arch` allowed.
        min_cpu_arch: u8,
        /// The highest `Tag_CPU_arch` allowed.
        max_cpu_arch: u8,
    },
    /// RISC-V double-float ABI (`EF_RISCV_FLOAT_ABI_DOUBLE`).
    RiscvDouble,
    /// 64-bit PowerPC ELFv2 ABI (`e_flags` 2).
    Ppc64ElfV2,
    /// LoongArch double-float ABI (`EF_LARCH_ABI_DOUBLE_FLOAT`).
    LoongArchDouble,
}

impl Target {
    /// Every target, in the order they are built and listed.
    pub const ALL: [Target; 8] = [
        Target::X86_64Musl,
        Target::Aarch64Musl,
        Target::Armv7Musleabihf,
        Target::ArmMusleabihf,
        Target::I686Musl,
        Target::Riscv64gcMusl,
        Target::Powerpc64leMusl,
        Target::Loongarch64Musl,
    ];

    /// The Rust target triple (`cargo --target`, `rustup target add`).
    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64Musl => "x86_64-unknown-linux-musl",
            Target::Aarch64Musl => "aarch64-unknown-linux-musl",
            Target::Armv7Musleabihf => "armv7-unknown-linux-musleabihf",
            Target::ArmMusleabihf => "arm-unknown-linux-musleabihf",
            Target::I686Musl => "i686-unknown-linux-musl",
            Target::Riscv64gcMusl => "riscv64gc-unknown-linux-musl",
            Target::Powerpc64leMusl => "powerpc64le-unknown-linux-musl",
            Target::Loongarch64Musl => "loongarch64-unknown-linux-musl",
        }
    }

    /// The architecture as OCI and Docker name it (`amd64`, `arm64`, `arm`, `386`, ...).
    pub fn arch(self) -> &'static str {
        match self {
            Target::X86_64Musl => "amd64",
            Target::Aarch64Musl => "arm64",
            Target::Armv7Musleabihf | Target::ArmMusleabihf => "arm",
            Target::I686Musl => "386",
            Target::Riscv64gcMusl => "riscv64",
            Target::Powerpc64leMusl => "ppc64le",
            Target::Loongarch64Musl => "loong64",
        }
    }

    /// The OCI platform variant (`v7`, `v6`), where the architecture has several.
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Target::Armv7Musleabihf => Some("v7"),
            Target::ArmMusleabihf => Some("v6"),
            _ => None,
        }
    }

    /// The short name Docker gives the platform, and a name in tags and folders:
    /// `amd64`, `arm64`, `arm/v7` is `armv7`, `arm/v6` is `armv6`, `386`, ...
    pub fn short(self) -> &'static str {
        match self {
            Target::Armv7Musleabihf => "armv7",
            Target::ArmMusleabihf => "armv6",
            other => other.arch(),
        }
    }

    /// The architecture as the kernel and `uname -m` name it (`x86_64`, `armv7l`, ...).
    pub fn machine(self) -> &'static str {
        match self {
            Target::X86_64Musl => "x86_64",
            Target::Aarch64Musl => "aarch64",
            Target::Armv7Musleabihf => "armv7l",
            Target::ArmMusleabihf => "armv6l",
            Target::I686Musl => "i686",
            Target::Riscv64gcMusl => "riscv64",
            Target::Powerpc64leMusl => "ppc64le",
            Target::Loongarch64Musl => "loongarch64",
        }
    }

    /// The architecture as qemu-user names its binary (`qemu-<name>-static`) and its
    /// binfmt_misc entry (`qemu-<name>`).
    pub fn qemu(self) -> &'static str {
        match self {
            Target::Armv7Musleabihf | Target::ArmMusleabihf => "arm",
            Target::I686Musl => "i386",
            other => other.machine(),
        }
    }

    /// The OCI platform (`docker build --platform`): `linux/amd64`, `linux/arm/v7`.
    pub fn platform(self) -> String {
        match self.variant() {
            Some(variant) => format!("linux/{}/{variant}", self.arch()),
            None => format!("linux/{}", self.arch()),
        }
    }

    /// The target as `zig cc -target` spells it.
    pub fn zig_target(self) -> &'static str {
        match self {
            Target::X86_64Musl => "x86_64-linux-musl",
            Target::Aarch64Musl => "aarch64-linux-musl",
            Target::Armv7Musleabihf | Target::ArmMusleabihf => "arm-linux-musleabihf",
            Target::I686Musl => "x86-linux-musl",
            Target::Riscv64gcMusl => "riscv64-linux-musl",
            Target::Powerpc64leMusl => "powerpc64le-linux-musl",
            Target::Loongarch64Musl => "loongarch64-linux-musl",
        }
    }

    /// The `-mcpu` zig needs to compile C for the ABI and CPU baseline of Rust's target
    /// (zig reads `-march` values as CPU names, so cc-rs's `-march=armv7-a` does not
    /// work): ARMv7-A with VFPv3-D16 and Thumb-2, ARMv6 with VFPv2, Pentium 4 (SSE2),
    /// RV64GC, POWER8. `None`: zig's default for the target is Rust's.
    pub fn zig_cpu(self) -> Option<&'static str> {
        match self {
            Target::Armv7Musleabihf => Some("generic+v7a+vfp3-d32+thumb2-neon"),
            Target::ArmMusleabihf => Some("generic+v6+strict_align+vfp2-d32"),
            Target::I686Musl => Some("pentium4"),
            Target::Riscv64gcMusl => Some("generic_rv64+m+a+f+d+c"),
            Target::Powerpc64leMusl => Some("pwr8"),
            Target::X86_64Musl | Target::Aarch64Musl | Target::Loongarch64Musl => None,
        }
    }

    /// ELF `e_machine` of this target's executables.
    pub fn elf_machine(self) -> u16 {
        match self {
            Target::X86_64Musl => object::elf::EM_X86_64,
            Target::Aarch64Musl => object::elf::EM_AARCH64,
            Target::Armv7Musleabihf | Target::ArmMusleabihf => object::elf::EM_ARM,
            Target::I686Musl => object::elf::EM_386,
            Target::Riscv64gcMusl => object::elf::EM_RISCV,
            Target::Powerpc64leMusl => object::elf::EM_PPC64,
            Target::Loongarch64Musl => object::elf::EM_LOONGARCH,
        }
    }

    /// Whether the target's executables are 64-bit ELF (else 32-bit).
    pub fn is_64_bit(self) -> bool {
        !matches!(
            self,
            Target::Armv7Musleabihf | Target::ArmMusleabihf | Target::I686Musl
        )
    }

    /// The ABI flags the target's executables carry.
    pub fn abi(self) -> Abi {
        match self {
            Target::X86_64Musl | Target::Aarch64Musl | Target::I686Musl => Abi::Plain,
            // Tag_CPU_arch: 10 is v7; 6, 7 and 9 are v6, v6KZ and v6K (8, v6T2, has Thumb-2).
            Target::Armv7Musleabihf => Abi::ArmHardFloat {
                min_cpu_arch: 10,
                max_cpu_arch: 10,
            },
            Target::ArmMusleabihf => Abi::ArmHardFloat {
                min_cpu_arch: 6,
                max_cpu_arch: 9,
            },
            Target::Riscv64gcMusl => Abi::RiscvDouble,
            Target::Powerpc64leMusl => Abi::Ppc64ElfV2,
            Target::Loongarch64Musl => Abi::LoongArchDouble,
        }
    }

    /// Whether Rust links the target's executables dynamically unless asked for
    /// `+crt-static` (riscv64gc and loongarch64 musl).
    pub fn needs_crt_static(self) -> bool {
        matches!(self, Target::Riscv64gcMusl | Target::Loongarch64Musl)
    }

    /// The name cc-rs reads the C compiler from: `CC_<triple with underscores>`.
    pub fn cc_env(self) -> String {
        format!("CC_{}", self.triple().replace('-', "_"))
    }

    /// The target whose binaries the machine running us executes natively.
    pub fn host() -> Option<Target> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Target::X86_64Musl),
            "aarch64" => Some(Target::Aarch64Musl),
            "riscv64" => Some(Target::Riscv64gcMusl),
            "loongarch64" => Some(Target::Loongarch64Musl),
            _ => None,
        }
    }

    /// Whether the machine running us executes this target's binaries without emulation:
    /// its own, and 32-bit x86 on x86-64.
    pub fn runs_natively(self) -> bool {
        let host = Target::host();
        host == Some(self) || (self == Target::I686Musl && host == Some(Target::X86_64Musl))
    }

    /// The target of a machine name as `uname -m` gives it (`x86_64`, `aarch64`).
    pub fn from_machine(machine: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.machine() == machine)
    }

    /// The target of an image architecture and variant (`amd64`, `arm` with `v7`); `arm`
    /// without a variant is `v7`, as Docker takes it.
    pub fn from_arch(arch: &str, variant: Option<&str>) -> Option<Target> {
        let variant = match (arch, variant) {
            ("arm", None | Some("")) => Some("v7"),
            (_, Some("")) => None,
            (_, v) => v,
        };
        Target::ALL
            .into_iter()
            .find(|t| t.arch() == arch && t.variant() == variant)
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
            .map(|t| format!("{} ({})", t.triple(), t.names()[1..].join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every name `--target` takes for this target: the triple, the platform without
    /// `linux/` (`arm/v7`), its short name (`armv7`) and the machine (`armv7l`).
    fn names(self) -> Vec<String> {
        let mut names = vec![self.triple().to_owned()];
        for name in [
            self.platform()["linux/".len()..].to_owned(),
            self.short().to_owned(),
            self.machine().to_owned(),
        ] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// One `--target` value: a target, or `all` of them.
///
/// ```
/// use tiny_cross::target::{Selection, Target};
///
/// let asked: Vec<Selection> = vec!["arm/v7".parse()?, "all".parse()?];
/// assert_eq!(Selection::expand(&asked)[..2], [Target::Armv7Musleabihf, Target::X86_64Musl]);
/// assert_eq!(Selection::expand(&asked).len(), Target::ALL.len());
/// # Ok::<(), tiny_cross::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// One target.
    One(Target),
    /// Every supported target ([`Target::ALL`]).
    All,
}

impl Selection {
    /// The targets selected, each once, in the order asked.
    pub fn expand(asked: &[Selection]) -> Vec<Target> {
        let mut targets: Vec<Target> = Vec::new();
        for selection in asked {
            let more = match selection {
                Selection::One(t) => vec![*t],
                Selection::All => Target::ALL.to_vec(),
            };
            for t in more {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        targets
    }
}

impl FromStr for Selection {
    type Err = crate::Error;

    /// `all`, or any name of a target ([`Target`]'s `FromStr`).
    fn from_str(s: &str) -> crate::Result<Selection> {
        match s.trim() {
            "all" => Ok(Selection::All),
            name => name.parse().map(Selection::One),
        }
    }
}

impl From<Target> for Selection {
    fn from(target: Target) -> Selection {
        Selection::One(target)
    }
}

impl FromStr for Target {
    type Err = crate::Error;

    /// Accepts the triple, the platform as Docker names it without `linux/` (`amd64`,
    /// `arm/v7`, `386`, with `linux/` too), the short name (`armv7`) or the machine name
    /// (`x86_64`, `armv7l`); `arm` alone is `arm/v7`, as Docker takes it.
    fn from_str(s: &str) -> crate::Result<Target> {
        let name = s.trim();
        let name = name.strip_prefix("linux/").unwrap_or(name);
        let name = if name == "arm" { "arm/v7" } else { name };
        if let Some(t) = Target::ALL
            .into_iter()
            .find(|t| t.names().iter().any(|n| n == name))
        {
            return Ok(t);
        }
        Err(crate::Error::UnknownTarget(format!(
            "unsupported target `{name}`: supported targets are {}, or `all`",
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
            ("arm/v7", Target::Armv7Musleabihf),
            ("linux/arm/v7", Target::Armv7Musleabihf),
            ("arm", Target::Armv7Musleabihf),
            ("armv7", Target::Armv7Musleabihf),
            ("armv7-unknown-linux-musleabihf", Target::Armv7Musleabihf),
            ("arm/v6", Target::ArmMusleabihf),
            ("armv6", Target::ArmMusleabihf),
            ("arm-unknown-linux-musleabihf", Target::ArmMusleabihf),
            ("386", Target::I686Musl),
            ("i686", Target::I686Musl),
            ("riscv64", Target::Riscv64gcMusl),
            ("riscv64gc-unknown-linux-musl", Target::Riscv64gcMusl),
            ("ppc64le", Target::Powerpc64leMusl),
            ("powerpc64le-unknown-linux-musl", Target::Powerpc64leMusl),
            ("loong64", Target::Loongarch64Musl),
            ("loongarch64", Target::Loongarch64Musl),
            ("loongarch64-unknown-linux-musl", Target::Loongarch64Musl),
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
        assert_eq!(Target::from_machine("sparc64"), None);
        assert_eq!(Target::from_arch("arm64", None), Some(t));
        assert_eq!(Target::from_arch("sparc", None), None);
        assert_eq!(
            Target::from_arch("arm", Some("v6")),
            Some(Target::ArmMusleabihf)
        );
        assert_eq!(
            Target::from_arch("arm", None),
            Some(Target::Armv7Musleabihf)
        );
        assert_eq!(Target::from_arch("arm", Some("v5")), None);
    }

    #[test]
    fn every_target_has_its_own_names() {
        let platforms = [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/386",
            "linux/riscv64",
            "linux/ppc64le",
            "linux/loong64",
        ];
        for (t, platform) in Target::ALL.into_iter().zip(platforms) {
            assert_eq!(t.platform(), platform);
            assert_eq!(platform.parse::<Target>().unwrap(), t);
            assert_eq!(t.short().parse::<Target>().unwrap(), t);
            assert_eq!(t.triple().parse::<Target>().unwrap(), t);
            assert_eq!(Target::from_arch(t.arch(), t.variant()), Some(t));
        }
        let shorts: std::collections::BTreeSet<_> = Target::ALL.map(Target::short).into();
        assert_eq!(shorts.len(), Target::ALL.len());
        assert_eq!(Target::ArmMusleabihf.qemu(), "arm");
        assert_eq!(Target::I686Musl.qemu(), "i386");
        assert_eq!(Target::I686Musl.zig_target(), "x86-linux-musl");
        assert!(!Target::I686Musl.is_64_bit() && Target::Powerpc64leMusl.is_64_bit());
    }

    #[test]
    fn all_selects_every_target_once() {
        let asked: Vec<Selection> = ["arm64", "all", "amd64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let targets = Selection::expand(&asked);
        assert_eq!(targets.len(), 8);
        assert_eq!(targets[0], Target::Aarch64Musl);
        assert_eq!(targets[1], Target::X86_64Musl);
        let err = "al".parse::<Selection>().unwrap_err().to_string();
        assert!(err.ends_with(", or `all`"), "{err}");
    }
}
