//! Docker credential helpers (`docker-credential-<name> get`), run for the credential files
//! that name them.

use oci_spec::distribution::Reference;
use xshell::{Shell, cmd};

use crate::tools::which;
use tiny_oci::auth::{AuthFiles, HelperRun, Login, RunHelper};

/// The credential the user's files and helpers hold for `reference`'s registry, or where
/// none was found.
pub fn stored_login(sh: &Shell, reference: &Reference) -> anyhow::Result<Login> {
    Ok(AuthFiles::from_env().lookup(reference.registry(), &Helpers(sh))?)
}

/// Runs helpers through the one shell.
pub struct Helpers<'a>(pub &'a Shell);

impl RunHelper for Helpers<'_> {
    fn get(&self, program: &str, server: &str) -> tiny_oci::Result<Option<HelperRun>> {
        let sh = self.0;
        let Some(path) = which::find_on_path(program) else {
            return Ok(None);
        };
        let out = cmd!(sh, "{path} get")
            .stdin(server)
            .quiet()
            .ignore_status()
            .output()
            .map_err(|e| tiny_oci::Error::Other(e.to_string()))?;
        Ok(Some(HelperRun {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }))
    }
}
