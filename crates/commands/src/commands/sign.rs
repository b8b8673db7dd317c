//! `cargo xtask sign`: cosign signatures for an image already in a registry, each platform's
//! image and the index, as `.sig` images and sigstore bundle referrers.

use xshell::Shell;

use crate::cli::SignArgs;
use crate::model::project::Project;
use crate::oci::signing;

impl SignArgs {
    /// Runs `cargo xtask sign` in `project`.
    pub fn run(self, sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        // The key is checked before the registry is asked for anything.
        let key = signing::signing_key(&self.key)?;
        let login = self.auth.login(sh, &self.reference)?;
        let signed = signing::sign(&self.reference, login, &key)?;
        signing::print_signed(&signed, self.json)
    }
}
