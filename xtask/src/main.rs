//! `cargo xtask`: this workspace's commands (see README.md). What they do is in the
//! `tiny-commands` library; what is ours is here: the service's own smoke checks and the
//! benchmark that drives the service.

mod bench;
mod ours;

use std::process::ExitCode;

use clap::Subcommand;
use tiny_commands::{Ours, Project};
use xshell::Shell;

/// The commands this workspace adds.
#[derive(Debug, Subcommand)]
enum OurCommands {
    /// Measure build times, binary sizes and request throughput, and print the figures
    Bench(bench::BenchArgs),
}

impl Ours for OurCommands {
    fn checks(image: &str) -> Vec<tiny_smoke::Own> {
        ours::checks(image)
    }

    fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        match self {
            OurCommands::Bench(args) => args.run(sh, project),
        }
    }
}

fn main() -> ExitCode {
    tiny_commands::main::<OurCommands>()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tiny_commands::cli::{Cli, Commands};

    use super::*;

    #[test]
    fn bench_is_one_of_the_commands_and_its_flags_are_checked() {
        let cli =
            Cli::<OurCommands>::try_parse_from(["xtask", "bench", "--only", "devloop", "--json"]);
        assert!(matches!(
            cli.unwrap().command,
            Commands::Ours(OurCommands::Bench(_))
        ));
        assert!(
            Cli::<OurCommands>::try_parse_from(["xtask", "bench", "--only", "nothing"]).is_err()
        );
        assert!(Cli::<OurCommands>::try_parse_from(["xtask", "image", "--fast"]).is_ok());
    }
}
