//! One module per command, each `impl <Command>Args { fn run(self, sh, project) }`. They
//! hand each other values, never import one another.

pub mod build;
pub mod doctor;
pub mod image;
pub mod index;
pub mod init;
pub mod keygen;
pub mod pull;
pub mod push;
pub mod run;
pub mod sbom;
pub mod sign;
pub mod smoke;
pub mod verify;

use oci_spec::distribution::Reference;
use xshell::Shell;

use crate::cli::RegistryAuthArgs;
use crate::tools::credential_helper::stored_login;
use tiny_oci::auth::{Credential, Login};

// Shared by every command that talks to a registry (push, pull, index, image --push).
impl RegistryAuthArgs {
    /// The credential for `reference`'s registry: the one given on the command line (the
    /// password comes from stdin, so this reads it: call it once), else the one stored in
    /// the user's credential files or helpers.
    pub fn login(&self, sh: &Shell, reference: &Reference) -> anyhow::Result<Login> {
        match self.username.as_deref() {
            Some(user) => Ok(Login::given(Credential::from_stdin(user)?)),
            None => stored_login(sh, reference),
        }
    }
}

/// Writes beside the file, then renames: a reader sees the old file or the new one, never a
/// part. `mode` sets its permissions (else the default for a new file).
fn write_atomically(
    path: &std::path::Path,
    contents: &str,
    mode: Option<u32>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::os::unix::fs::PermissionsExt as _;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.as_deref().unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
