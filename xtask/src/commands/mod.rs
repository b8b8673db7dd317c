//! One module per command, each `impl <Command>Args { fn run(self, sh, project) }`. They
//! hand each other values, never import one another.

pub mod bench;
pub mod build;
pub mod doctor;
pub mod image;
pub mod index;
pub mod pull;
pub mod push;
pub mod run;
pub mod sbom;
pub mod smoke;
pub mod verify;

use crate::cli::RegistryAuthArgs;
use crate::oci::auth::Credential;

// Shared by every command that talks to a registry (push, pull, index, image --push).
impl RegistryAuthArgs {
    /// The credential given on the command line, if any (the password comes from stdin).
    pub fn credential(&self) -> anyhow::Result<Option<Credential>> {
        self.username
            .as_deref()
            .map(Credential::from_stdin)
            .transpose()
    }
}
