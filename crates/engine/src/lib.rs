//! Docker and podman, driven from Rust through their command-line clients: the engine found
//! and told apart ([`Engine::detect`]: docker with BuildKit, else podman, else docker's
//! legacy builder), images built for a platform, tagged, inspected and pushed, and
//! containers run locked down ([`Resources`]: host network, read-only root, no
//! capabilities, no new privileges) and removed however the run ends, a signal included.
//!
//! Every container and volume carries the label [`LABEL`] with the [`RunId`] of the process
//! that made it, so [`Engine::sweep_leftovers`] can remove what a killed run left behind
//! without touching a live run's. Errors are one line: a daemon that went away is
//! [`Error::Unreachable`], told apart from a command that failed, with what to start.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! let sh = xshell::Shell::new()?;
//! match tiny_engine::Engine::detect(&sh, None) {
//!     Ok(engine) => {
//!         // `docker 28.2.2 at /usr/bin/docker (buildx)`
//!         println!("{}", engine.describe());
//!         let resources = tiny_engine::Resources::new(&sh, &engine, Duration::from_secs(30));
//!         // Containers and volumes made through `resources` go when it drops.
//!         drop(resources);
//!     }
//!     // No engine here: one line that says what to start or install.
//!     Err(e) => assert!(!e.to_string().contains('\n')),
//! }
//!
//! // An engine's error output, cut down to the reason.
//! let reason = tiny_engine::failure_reason(
//!     "#4 ERROR: pull access denied\nerror: failed to solve: pull access denied\n",
//! );
//! assert_eq!(reason, "failed to solve: pull access denied");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod containers;
mod engine;
mod error;
pub mod inspect;
pub mod probe;
mod process;
mod run_id;

pub use containers::{Resources, STOP_DEADLINE};
pub use engine::{BuildRequest, Builder, Engine, EngineKind, NO_ENGINE, Remover, failure_reason};
pub use error::{Error, Result};
pub use process::{Finished, Io, Running};
pub use run_id::{LABEL, RunId, VolumeName};
