//! The command line: clap types only, no I/O.

use cargo_metadata::camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

use crate::model::choice::{BaseKind, EngineKind};
use crate::model::target::Target;

/// Builds the service as static binaries for x86_64 and aarch64 Linux (musl), packages
/// them as tiny container images, and proves the images work.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cross-compile the service for the musl targets and stage verified static binaries
    Build(BuildArgs),
    /// Build one container image per architecture from the staged binaries
    Image(ImageArgs),
    /// Run each architecture's image as a real container and check that it works
    SmokeTest(SmokeArgs),
    /// Check every tool the commands need: found, or how to get it
    Doctor(DoctorArgs),
    /// Measure build times, binary sizes and request throughput, and print the figures
    Bench(BenchArgs),
    /// Write an SPDX SBOM and SLSA provenance for each target's staged binaries
    Sbom(SbomArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build for this target; repeatable. Also accepts amd64/x86_64 and arm64/aarch64
    /// [default: `targets` in [workspace.metadata.xtask]: x86_64-unknown-linux-musl and
    /// aarch64-unknown-linux-musl]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Target>,
    /// The cargo profile to build with
    #[arg(long, value_name = "NAME", default_value = "release")]
    pub profile: String,
    /// Print the staged artifacts as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Build for this target; repeatable (amd64, arm64 and the triples are accepted)
    /// [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Target>,
    /// The base image kind [default: `base` in [workspace.metadata.xtask.image], scratch]
    #[arg(long, value_enum)]
    pub base: Option<BaseKind>,
    /// Any base image reference; overrides --base
    #[arg(long, value_name = "REF")]
    pub base_image: Option<String>,
    /// The container engine [default: docker if its daemon runs and it has BuildKit, else podman]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// The multi-architecture reference `[registry/]name[:tag]`; each architecture is tagged
    /// `<tag>-<arch>` [default: `<name>:<version>` from Cargo.toml]
    #[arg(long, value_name = "REF")]
    pub tag: Option<String>,
    /// The registry to name the images for, `host:port`
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// Push every architecture's image, then the multi-architecture index
    #[arg(long)]
    pub push: bool,
    /// Print the images as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Test this target's image (`<name>:<version>-<arch>`); repeatable
    /// [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE", conflicts_with = "images")]
    pub targets: Vec<Target>,
    /// Test this image instead; repeatable. Its architecture is read from the image
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<String>,
    /// The multi-architecture reference the images were built as (see `image --tag`)
    #[arg(long, value_name = "REF", conflicts_with = "images")]
    pub tag: Option<String>,
    /// The container engine [default: docker if its daemon runs and it has BuildKit, else podman]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// Seconds to wait for /healthz after the container starts (emulation is slow)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds of load per `/hello` throughput run
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub duration: u64,
    /// Concurrent connections for the throughput runs
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connections: u32,
    /// Skip the cold builds (minutes each); measure no-op builds, sizes and throughput only
    #[arg(long)]
    pub skip_cold: bool,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Describe this target's build; repeatable (amd64, arm64 and the triples are accepted)
    /// [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Target>,
    /// Write `<DIR>/<triple>/{sbom.spdx.json,provenance.intoto.json}`
    /// [default: <target dir>/xtask/sbom]
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,
    /// Print what was written as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check for these targets [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Target>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_repeat_and_accept_shorthands() {
        let cli = Cli::try_parse_from([
            "xtask",
            "build",
            "--target",
            "arm64",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .unwrap();
        let Command::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.targets, [Target::Aarch64Musl, Target::X86_64Musl]);
    }

    #[test]
    fn an_unknown_target_is_a_usage_error_naming_the_supported_ones() {
        let err = Cli::try_parse_from(["xtask", "build", "--target", "nonsense"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(
            err.to_string()
                .contains("supported targets are x86_64-unknown-linux-musl")
        );
    }
}
