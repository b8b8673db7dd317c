//! `cargo xtask`: the project's build orchestrator (see README.md).

mod cli;
mod commands;
mod interrupt;
mod model;
mod oci;
mod report;
mod tools;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use model::project::Project;
use xshell::Shell;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors get one line, like every other error; help and version print as usual.
        Err(e) if e.use_stderr() => {
            let rendered = e.to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    interrupt::install();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let project = Project::load()?;
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    match cli.command {
        Command::Build(args) => args.run(&sh, &project),
        Command::Image(args) => args.run(&sh, &project),
        Command::SmokeTest(args) => args.run(&sh, &project),
        Command::Doctor(args) => args.run(&sh, &project),
        Command::Bench(args) => args.run(&sh, &project),
        Command::Sbom(args) => args.run(&sh, &project),
    }
}
