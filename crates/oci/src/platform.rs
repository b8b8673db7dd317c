//! The Linux platforms images are built for.

use std::fmt;
use std::str::FromStr;

/// A Linux platform (CPU architecture and, for 32-bit ARM, its variant), as OCI platforms
/// name it (`amd64`, `arm64`, `arm/v7`, ...).
///
/// ```
/// use tiny_oci::platform::Arch;
///
/// let arch: Arch = "arm64".parse()?;
/// assert_eq!(arch, Arch::Arm64);
/// assert_eq!(arch.platform(), "linux/arm64");
/// let v7: Arch = "arm/v7".parse()?;
/// assert_eq!((v7.architecture(), v7.variant()), ("arm", Some("v7")));
/// assert_eq!(v7.as_str(), "armv7");
/// assert!("sparc".parse::<Arch>().is_err());
/// # Ok::<(), tiny_oci::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64
    Amd64,
    /// 64-bit ARM (aarch64)
    Arm64,
    /// 32-bit ARMv7 (`arm/v7`)
    ArmV7,
    /// 32-bit ARMv6 (`arm/v6`)
    ArmV6,
    /// 32-bit x86 (`386`)
    I386,
    /// 64-bit RISC-V
    Riscv64,
    /// 64-bit little-endian POWER
    Ppc64le,
    /// 64-bit LoongArch
    Loong64,
}

impl Arch {
    /// Every platform, in the order they are listed.
    pub const ALL: [Arch; 8] = [
        Arch::Amd64,
        Arch::Arm64,
        Arch::ArmV7,
        Arch::ArmV6,
        Arch::I386,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::Loong64,
    ];

    /// The platform's one-word name, used in tags (`<tag>-<name>`): the architecture as OCI
    /// spells it, followed by the variant: `amd64`, `arm64`, `armv7`, `armv6`, `386`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::ArmV7 => "armv7",
            Arch::ArmV6 => "armv6",
            Arch::I386 => "386",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::Loong64 => "loong64",
        }
    }

    /// The `architecture` of an OCI config or platform: `amd64`, `arm`, ...
    pub fn architecture(self) -> &'static str {
        match self {
            Arch::ArmV7 | Arch::ArmV6 => "arm",
            other => other.as_str(),
        }
    }

    /// The `variant` of an OCI config or platform (`v7`, `v6`), where there are several.
    pub fn variant(self) -> Option<&'static str> {
        match self {
            Arch::ArmV7 => Some("v7"),
            Arch::ArmV6 => Some("v6"),
            _ => None,
        }
    }

    /// The platform as `docker --platform` spells it: `linux/amd64`, `linux/arm/v7`.
    pub fn platform(self) -> String {
        match self.variant() {
            Some(variant) => format!("linux/{}/{variant}", self.architecture()),
            None => format!("linux/{}", self.architecture()),
        }
    }

    /// The platform an OCI `architecture` and `variant` name; `arm` without a variant is
    /// `arm/v7` (as Docker takes it), a variant of another architecture (`arm64/v8`) is
    /// the architecture.
    pub fn of(architecture: &str, variant: Option<&str>) -> Option<Arch> {
        let variant = match (architecture, variant) {
            ("arm", None | Some("")) => Some("v7"),
            ("arm", v) => v,
            _ => None,
        };
        Arch::ALL.into_iter().find(|a| {
            a.architecture() == architecture && (architecture != "arm" || a.variant() == variant)
        })
    }

    /// Whether an OCI platform's architecture and variant are this one's.
    pub fn matches(self, architecture: &str, variant: Option<&str>) -> bool {
        Arch::of(architecture, variant) == Some(self)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = crate::Error;

    /// The one-word name (`armv7`) or the platform without `linux/` (`arm/v7`).
    fn from_str(s: &str) -> crate::Result<Arch> {
        let s = s.strip_prefix("linux/").unwrap_or(s);
        let (architecture, variant) = match s.split_once('/') {
            Some((a, v)) => (a, Some(v)),
            None => (s, None),
        };
        Arch::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .or_else(|| Arch::of(architecture, variant).filter(|a| a.variant() == variant))
            .or_else(|| (architecture == "arm" && variant.is_none()).then_some(Arch::ArmV7))
            .ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "unknown architecture `{s}`: one of {}",
                    Arch::ALL.map(Arch::platform).join(", ")
                ))
            })
    }
}

impl From<Arch> for oci_spec::image::Arch {
    fn from(arch: Arch) -> oci_spec::image::Arch {
        oci_spec::image::Arch::from(arch.architecture())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_round_trips() {
        for arch in Arch::ALL {
            assert_eq!(arch.as_str().parse::<Arch>().unwrap(), arch);
            assert_eq!(arch.platform().parse::<Arch>().unwrap(), arch);
            assert_eq!(Arch::of(arch.architecture(), arch.variant()), Some(arch));
        }
        assert_eq!(Arch::of("arm64", Some("v8")), Some(Arch::Arm64));
        assert_eq!(Arch::of("arm", Some("v5")), None);
        assert!(Arch::ArmV6.matches("arm", Some("v6")));
        assert!(!Arch::ArmV6.matches("arm", None));
        assert!("arm/v5".parse::<Arch>().is_err());
    }
}
