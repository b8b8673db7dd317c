//! The service's migration tool, shipped beside it: inspects and moves the schema of the
//! database at DATABASE_PATH (default service.db).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use service::config::DEFAULT_DATABASE;
use service::db;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The database file
    #[arg(long, env = "DATABASE_PATH", default_value = DEFAULT_DATABASE, global = true)]
    database: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply every pending migration (or up to --to)
    Up {
        /// Stop at this version instead of the latest
        #[arg(long)]
        to: Option<usize>,
    },
    /// Revert the last migration (or down to --to; 0 empties the schema)
    Down {
        /// Revert to this version instead of one step
        #[arg(long)]
        to: Option<usize>,
    },
    /// List the migrations, applied or pending; exit 1 when any is pending
    Status,
    /// Print the schema version the database is at
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut conn = db::open(&cli.database)?;
    let status = db::status(&conn)?;
    let target = match cli.command {
        Command::Status => return Ok(print_status(&status)),
        Command::Version => {
            println!("{}", status.applied);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Up { to } => to.unwrap_or(status.latest),
        Command::Down { to } => to.unwrap_or(status.applied.saturating_sub(1)),
    };
    let going_up = matches!(cli.command, Command::Up { .. });
    if going_up && target < status.applied {
        bail!(
            "the database is at version {}, past {target}: use `migrate down --to {target}`",
            status.applied
        );
    }
    if !going_up && target > status.applied {
        bail!(
            "the database is at version {}, before {target}: use `migrate up --to {target}`",
            status.applied
        );
    }
    if target > status.latest {
        bail!(
            "--to {target} is past the latest migration ({})",
            status.latest
        );
    }
    if target == status.applied {
        println!("already at version {target}; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    db::migrations()
        .to_version(&mut conn, target)
        .with_context(|| {
            format!(
                "migrating {} to version {target} failed",
                cli.database.display()
            )
        })?;
    println!(
        "migrated {} from version {} to {target}",
        cli.database.display(),
        status.applied
    );
    Ok(ExitCode::SUCCESS)
}

fn print_status(status: &db::Status) -> ExitCode {
    for version in 1..=status.latest {
        let state = if version <= status.applied {
            "applied"
        } else {
            "pending"
        };
        println!("{version:>4}  {state:<8} {}", db::describe(version));
    }
    if status.pending() > 0 {
        println!("{} pending: run `migrate up`", status.pending());
        ExitCode::FAILURE
    } else {
        println!("up to date at version {}", status.applied);
        ExitCode::SUCCESS
    }
}
