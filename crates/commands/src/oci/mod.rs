//! What this project adds to `tiny_oci`: image names from targets and profiles, and the
//! staged build context.

pub mod context;
pub(crate) mod reference;
pub(crate) mod signing;

use tiny_cross::target::Target;
use tiny_oci::platform::Arch;

/// The OCI architecture of `target`'s images.
pub fn arch(target: Target) -> Arch {
    match target {
        Target::X86_64Musl => Arch::Amd64,
        Target::Aarch64Musl => Arch::Arm64,
        Target::Armv7Musleabihf => Arch::ArmV7,
        Target::ArmMusleabihf => Arch::ArmV6,
        Target::I686Musl => Arch::I386,
        Target::Riscv64gcMusl => Arch::Riscv64,
        Target::Powerpc64leMusl => Arch::Ppc64le,
        Target::Loongarch64Musl => Arch::Loong64,
    }
}

/// The OCI architectures of `targets`' images.
pub fn arches(targets: &[Target]) -> Vec<Arch> {
    targets.iter().map(|t| arch(*t)).collect()
}
