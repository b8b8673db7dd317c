//! `cargo xtask bench` (filled in below).
use xshell::Shell;

use crate::cli::BenchArgs;
use crate::project::Project;

impl BenchArgs {
    pub fn run(self, _sh: &Shell, _project: &Project) -> anyhow::Result<()> {
        anyhow::bail!("not yet")
    }
}
