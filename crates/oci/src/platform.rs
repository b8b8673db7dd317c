//! The Linux CPU architectures images are built for.

use std::fmt;
use std::str::FromStr;

/// A Linux CPU architecture, as OCI platforms name it (`amd64`, `arm64`).
///
/// ```
/// use tiny_oci::platform::Arch;
///
/// let arch: Arch = "arm64".parse()?;
/// assert_eq!(arch, Arch::Arm64);
/// assert_eq!(arch.platform(), "linux/arm64");
/// assert!("sparc".parse::<Arch>().is_err());
/// # Ok::<(), tiny_oci::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64
    Amd64,
    /// 64-bit ARM (aarch64)
    Arm64,
}

impl Arch {
    /// The architecture as OCI spells it: `amd64`, `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The platform as `docker --platform` spells it: `linux/amd64`.
    pub fn platform(self) -> String {
        format!("linux/{}", self.as_str())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Arch> {
        match s {
            "amd64" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            other => Err(crate::Error::Invalid(format!(
                "unknown architecture `{other}`: amd64 or arm64"
            ))),
        }
    }
}

impl From<Arch> for oci_spec::image::Arch {
    fn from(arch: Arch) -> oci_spec::image::Arch {
        oci_spec::image::Arch::from(arch.as_str())
    }
}
