//! `cargo xtask keygen`: an ECDSA P-256 key pair in cosign's files (`cosign.key`, encrypted
//! in cosign's format, mode 0600; `cosign.pub`).

use anyhow::{Context as _, bail};
use tiny_sign::{KeyPair, PASSWORD_ENV, Password, write_key_files};
use xshell::Shell;

use crate::cli::KeygenArgs;
use crate::model::project::Project;

impl KeygenArgs {
    /// Runs `cargo xtask keygen` in `project`.
    pub fn run(self, _sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        let password = if self.password_stdin {
            Password::from_reader(std::io::stdin().lock())
                .context("reading the password from stdin")?
        } else {
            match Password::from_env() {
                Some(password) => password,
                None => bail!(
                    "keygen needs a password to encrypt the private key: pipe it with --password-stdin or set {PASSWORD_ENV}"
                ),
            }
        };
        let key = KeyPair::generate();
        let (private, public) =
            write_key_files(&key, &self.output_key_prefix, password.as_bytes())?;
        eprintln!(
            "  wrote {} (private, encrypted, mode 0600) and {} (public)",
            private.display(),
            public.display()
        );
        println!("{}", public.display());
        Ok(())
    }
}
