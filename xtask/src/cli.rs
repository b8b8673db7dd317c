//! The command line: clap types only, no I/O.

use clap::{Args, Parser, Subcommand};

use crate::target::Target;

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
    /// Check every tool the commands need: found, or how to get it
    Doctor(DoctorArgs),
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
        let cli = Cli::try_parse_from(["xtask", "build", "--target", "arm64", "--target", "x86_64-unknown-linux-musl"]).unwrap();
        let Command::Build(args) = cli.command else { panic!("not build") };
        assert_eq!(args.targets, [Target::Aarch64Musl, Target::X86_64Musl]);
    }

    #[test]
    fn an_unknown_target_is_a_usage_error_naming_the_supported_ones() {
        let err = Cli::try_parse_from(["xtask", "build", "--target", "nonsense"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("supported targets are x86_64-unknown-linux-musl"));
    }
}
