//! The commands of `cargo xtask` as a library: `init`, `build`, `image`, `smoke-test`, `run`,
//! `push`, `pull`, `index`, `sbom`, `keygen`, `sign`, `verify` and `doctor`, over the images
//! a workspace declares in its `Cargo.toml` (`[workspace.metadata.xtask]`, see
//! [`tiny_declare`]). A workspace's xtask is its `main`: [`main`] with
//! [`NoCommands`], [`main_with_checks`] for Rust smoke checks of its own,
//! or, with commands of its own too, an [`Ours`]:
//!
//! ```no_run
//! use clap::Subcommand;
//! use tiny_commands::{Ours, Project};
//!
//! #[derive(Debug, Subcommand)]
//! enum Mine {
//!     /// Print the workspace's root
//!     Root,
//! }
//!
//! impl Ours for Mine {
//!     fn checks(image: &str) -> Vec<tiny_commands::Own> {
//!         match image {
//!             "notes" => vec![tiny_commands::Own {
//!                 name: "the front page links the notes",
//!                 after_restart: false,
//!                 run: Box::new(|service| {
//!                     anyhow::ensure!(service.addr.port() != 0);
//!                     Ok("it does".to_owned())
//!                 }),
//!             }],
//!             _ => Vec::new(),
//!         }
//!     }
//!
//!     fn run(self, _sh: &xshell::Shell, project: &Project) -> anyhow::Result<()> {
//!         match self {
//!             Mine::Root => println!("{}", project.root),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     tiny_commands::main::<Mine>()
//! }
//! ```
//!
//! The command line parses without running anything:
//!
//! ```
//! use clap::Parser;
//! use tiny_commands::cli::{Cli, Command, Commands};
//!
//! let cli = <Cli>::try_parse_from(["xtask", "build", "--target", "arm64"]).unwrap();
//! let Commands::Builtin(Command::Build(args)) = cli.command else { unreachable!() };
//! assert_eq!(args.targets.len(), 1);
//! ```

// The doc comments of `cli.rs` are clap's help text, written for a terminal (`[default: ...]`,
// `<tag>-<arch>`), not rustdoc links or HTML.
#![warn(missing_docs)]
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

pub mod cli;
pub(crate) mod commands;
pub mod interrupt;
pub mod model;
pub mod oci;
pub mod report;
pub mod tools;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::{Cli, Command, Commands, NoCommands};
pub use model::project::Project;
pub use tiny_smoke::{Answer, Own, Running};
use xshell::Shell;

/// What a workspace adds to the commands: Rust smoke checks for its images, beside the
/// declared ones, and commands of its own (a clap subcommand enum).
pub trait Ours: Subcommand {
    /// The Rust checks `smoke-test` runs on the image declared as `image`.
    fn checks(image: &str) -> Vec<Own> {
        let _ = image;
        Vec::new()
    }

    /// Runs one of the workspace's own commands, in the workspace's root.
    fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()>;
}

impl Ours for NoCommands {
    fn run(self, _: &Shell, _: &Project) -> anyhow::Result<()> {
        match self {}
    }
}

/// Parses the command line, runs the command and turns its outcome into the exit status:
/// usage errors and failures as one line on stderr, an interrupt as exit 130 after its
/// undo, a closed stdout quietly.
pub fn main<E: Ours>() -> ExitCode {
    main_checking::<E>(E::checks)
}

/// [`main`] for a workspace that adds Rust smoke checks and no commands: `checks` gives
/// those of the image declared as its argument.
///
/// ```no_run
/// use tiny_commands::Own;
///
/// fn checks(image: &str) -> Vec<Own> {
///     match image {
///         "notes" => vec![Own {
///             name: "the front page names the service",
///             after_restart: false,
///             run: Box::new(|service| Ok(format!("asked {}", service.addr))),
///         }],
///         _ => Vec::new(),
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     tiny_commands::main_with_checks(checks)
/// }
/// ```
pub fn main_with_checks(checks: fn(&str) -> Vec<Own>) -> ExitCode {
    main_checking::<NoCommands>(checks)
}

fn main_checking<E: Ours>(checks: fn(&str) -> Vec<Own>) -> ExitCode {
    // First of all, so that no moment of a run is left to the default (die at once).
    interrupt::install();
    report::quiet_on_closed_output();
    let cli = match Cli::<E>::try_parse() {
        Ok(cli) => cli,
        // Usage errors get one line, like every other error; help and version print as usual.
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    // A closed stdout (`cargo xtask doctor | head -1`) unwinds the run from the print that
    // found it, undoing what the run made on the way, and ends it quietly.
    let result = match catch_unwind(AssertUnwindSafe(|| run(cli, checks))) {
        Ok(result) => result,
        Err(panic) if report::closed_output(panic.as_ref()) => {
            return ExitCode::from(report::CLOSED_OUTPUT);
        }
        Err(panic) => resume_unwind(panic),
    };
    // A signal wins over whatever the step it stopped made of it.
    if interrupt::requested() {
        interrupt::await_undo();
        interrupt::report();
        return ExitCode::from(interrupt::EXIT_STATUS);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<report::Reported>().is_some() => {
            ExitCode::from(e.downcast_ref::<report::Reported>().map_or(1, |r| r.code))
        }
        Err(e) => {
            // A closed stderr must not turn the error into a panic.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            let code = e.downcast_ref::<report::ExitStatus>().map_or(1, |s| s.code);
            ExitCode::from(code)
        }
    }
}

/// clap's usage error on one line: the error with its tip or possible values, without the
/// usage that follows; the pointer to `--help` only where clap has no better advice.
fn one_line(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let (help, said): (Vec<&str>, Vec<&str>) = lines
        .into_iter()
        .partition(|l| l.starts_with("For more information"));
    let mut line = String::new();
    for part in &said {
        if !line.is_empty() {
            line.push_str(if part.starts_with('[') { " " } else { "; " });
        }
        line.push_str(part);
    }
    if said.len() == 1 {
        line.extend(
            help.first()
                .map(|h| format!("; {}", h.trim_end_matches('.'))),
        );
    }
    if line.is_empty() {
        return "error: invalid arguments".into();
    }
    line
}

fn run<E: Ours>(cli: Cli<E>, checks: fn(&str) -> Vec<Own>) -> anyhow::Result<()> {
    // Read by every build this command starts: a value no build can record is refused
    // before anything runs.
    if stamps_time(&cli.command) {
        tiny_oci::epoch::Epoch::from_env()?;
    }
    // Before the workspace declares anything: it is what sets a workspace up.
    if let Commands::Builtin(Command::Init(args)) = cli.command {
        let (root, declared) = model::project::workspace_root()?;
        return args.run(root.as_std_path(), declared);
    }
    let project = Project::load()?;
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    let command = match cli.command {
        Commands::Builtin(command) => command,
        Commands::Ours(ours) => return ours.run(&sh, &project),
    };
    match command {
        Command::Init(_) => unreachable!("init runs before the workspace is read"),
        Command::Build(args) => args.run(&sh, &project),
        Command::Image(args) => (*args).run(&sh, &project),
        Command::Push(args) => args.run(&sh, &project),
        Command::Pull(args) => args.run(&sh, &project),
        Command::Index(args) => args.run(&sh, &project),
        Command::SmokeTest(args) => args.run(&sh, &project, checks),
        Command::Doctor(args) => args.run(&sh, &project),
        Command::Sbom(args) => args.run(&sh, &project),
        Command::Verify(args) => args.run(&sh, &project),
        Command::Run(args) => args.run(&sh, &project),
        Command::Keygen(args) => args.run(&sh, &project),
        Command::Sign(args) => args.run(&sh, &project),
    }
}

/// Whether `command` compiles or writes images or documents, and so reads
/// `SOURCE_DATE_EPOCH` (a workspace's own commands are taken to).
fn stamps_time<E: Subcommand>(command: &Commands<E>) -> bool {
    let Commands::Builtin(command) = command else {
        return true;
    };
    match command {
        Command::Build(_)
        | Command::Image(_)
        | Command::Run(_)
        | Command::Verify(_)
        | Command::Sbom(_) => true,
        Command::Push(_)
        | Command::Pull(_)
        | Command::Index(_)
        | Command::SmokeTest(_)
        | Command::Doctor(_)
        | Command::Keygen(_)
        | Command::Init(_)
        | Command::Sign(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn usage_error(args: &[&str]) -> String {
        one_line(
            &<Cli>::try_parse_from(args)
                .unwrap_err()
                .render()
                .to_string(),
        )
    }

    #[test]
    fn usage_errors_keep_the_tip_and_the_possible_values_on_one_line() {
        let err = usage_error(&["xtask", "build", "--targte", "amd64"]);
        assert!(
            err.starts_with("error: unexpected argument '--targte' found; tip: a similar argument exists: '--target'"),
            "{err}"
        );
        let err = usage_error(&["xtask", "image", "--engine", "nosuch"]);
        assert_eq!(
            err,
            "error: invalid value 'nosuch' for '--engine <ENGINE>' [possible values: builtin, docker, podman]"
        );
        for args in [
            &["xtask", "smoke-test", "--imgae", "x"][..],
            &["xtask", "frobnicate"],
            &["xtask", "image", "--base", "debian"],
        ] {
            let err = usage_error(args);
            assert!(!err.contains('\n') && err.starts_with("error: "), "{err}");
            assert!(!err.contains("Usage:"), "{err}");
        }
        let err = usage_error(&["xtask", "frobnicate"]);
        assert_eq!(
            err,
            "error: unrecognized subcommand 'frobnicate'; For more information, try '--help'"
        );
    }
}
