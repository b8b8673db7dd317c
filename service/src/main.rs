use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use service::config::Config;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The web service. Settings come from the environment: PORT (8080), BIND_ADDRESS (0.0.0.0),
/// DATABASE_PATH (service.db), RUST_LOG (info), MIGRATE_ON_START (false); limits
/// MAX_MESSAGE_BYTES (1048576), MAX_BODY_BYTES (1048576), MAX_CONNECTIONS (1024),
/// MAX_WEBSOCKETS (256), MAX_HEADER_BYTES (32768), HEADER_TIMEOUT_SECONDS (10),
/// REQUEST_TIMEOUT_SECONDS (30), WS_IDLE_TIMEOUT_SECONDS (60), WS_PING_SECONDS (20),
/// WS_PONG_TIMEOUT_SECONDS (10); on SIGTERM, DRAIN_SECONDS (5) and SHUTDOWN_TIMEOUT_SECONDS (9).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP until SIGTERM or SIGINT (the default)
    Serve,
    /// Exit 0 when the service on PORT answers /healthz (for container health checks)
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Config::from_env().and_then(|config| match cli.command {
        None | Some(Command::Serve) => serve(config),
        Some(Command::Healthcheck) => healthcheck(config),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    service::init_logging(&config.log)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(service::server::run(config));
    // Past the shutdown deadline nothing is waited for: not even a database call stuck on
    // the blocking pool, which dropping the runtime would wait on.
    runtime.shutdown_timeout(Duration::ZERO);
    result
}

fn healthcheck(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(service::healthcheck::check(config.local_address()))
}
