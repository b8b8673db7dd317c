//! `cargo xtask`: the project's build orchestrator (see README.md).

// The doc comments of `cli.rs` are clap's help text, written for a terminal (`[default: ...]`,
// `<tag>-<arch>`), not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cli;
mod commands;
mod interrupt;
mod model;
mod oci;
mod ours;
mod report;
mod tools;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use model::project::Project;
use xshell::Shell;

fn main() -> ExitCode {
    // First of all, so that no moment of a run is left to the default (die at once).
    interrupt::install();
    report::quiet_on_closed_output();
    let cli = match Cli::try_parse() {
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
    let result = match catch_unwind(AssertUnwindSafe(|| run(cli))) {
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

fn run(cli: Cli) -> anyhow::Result<()> {
    // Read by every build this command starts: a value no build can record is refused
    // before anything runs.
    if stamps_time(&cli.command) {
        tiny_oci::epoch::Epoch::from_env()?;
    }
    let project = Project::load()?;
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    match cli.command {
        Command::Build(args) => args.run(&sh, &project),
        Command::Image(args) => (*args).run(&sh, &project),
        Command::Push(args) => args.run(&sh, &project),
        Command::Pull(args) => args.run(&sh, &project),
        Command::Index(args) => args.run(&sh, &project),
        Command::SmokeTest(args) => args.run(&sh, &project),
        Command::Doctor(args) => args.run(&sh, &project),
        Command::Bench(args) => args.run(&sh, &project),
        Command::Sbom(args) => args.run(&sh, &project),
        Command::Verify(args) => args.run(&sh, &project),
        Command::Run(args) => args.run(&sh, &project),
        Command::Keygen(args) => args.run(&sh, &project),
        Command::Sign(args) => args.run(&sh, &project),
    }
}

/// Whether `command` compiles or writes images or documents, and so reads
/// `SOURCE_DATE_EPOCH`.
fn stamps_time(command: &Command) -> bool {
    match command {
        Command::Build(_)
        | Command::Image(_)
        | Command::Run(_)
        | Command::Verify(_)
        | Command::Bench(_)
        | Command::Sbom(_) => true,
        Command::Push(_)
        | Command::Pull(_)
        | Command::Index(_)
        | Command::SmokeTest(_)
        | Command::Doctor(_)
        | Command::Keygen(_)
        | Command::Sign(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn usage_error(args: &[&str]) -> String {
        one_line(&Cli::try_parse_from(args).unwrap_err().render().to_string())
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
