//! `cargo xtask doctor`: every tool the commands need, found or missing, with the fix.

use xshell::Shell;

use crate::cli::DoctorArgs;
use crate::model::choice::EngineKind;
use crate::model::project::Project;
use crate::model::target::Target;
use crate::tools::engine::{Builder, Engine};
use crate::tools::toolchain::{self, CSource};
use crate::tools::{qemu, which};

impl DoctorArgs {
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let mut rows = Vec::new();
        let mut missing = 0;
        let sysroot = toolchain::sysroot(sh)?;
        for target in project.targets(&self.targets) {
            let std = if toolchain::rust_target_installed(&sysroot, target) {
                ("ok", "installed".to_string())
            } else if which::find_on_path("rustup").is_some() {
                (
                    "auto",
                    format!("`cargo xtask build` adds it (rustup target add {target})"),
                )
            } else {
                missing += 1;
                (
                    "missing",
                    format!("install it for your toolchain (rustup target add {target})"),
                )
            };
            rows.push(row(format!("rust std {target}"), std));
            let cc = match toolchain::locate_c_compiler(project, target) {
                CSource::UserSet { var, value } => ("ok", format!("{value} (from {var})")),
                CSource::Zig(zig) => ("ok", format!("zig cc ({zig})")),
                CSource::Provisionable => (
                    "auto",
                    format!(
                        "`cargo xtask build` installs zig {} with pip",
                        project.settings.zig
                    ),
                ),
                CSource::Missing => {
                    missing += 1;
                    ("missing", toolchain::missing_c_compiler(project, target))
                }
            };
            rows.push(row(format!("C compiler {target}"), cc));
        }
        // Plain `cargo build --target <musl triple>` runs the committed wrappers, which need
        // the zig link `cargo xtask build` leaves in the target directory.
        let link = toolchain::zig_link(&project.target_dir);
        let plain = match link.read_link_utf8() {
            Ok(zig) => ("ok", format!("the .cargo/cc wrappers run {zig}")),
            Err(_) => (
                "auto",
                "run `cargo xtask build` once: it links zig for the .cargo/cc wrappers".into(),
            ),
        };
        rows.push(row("plain cargo build".into(), plain));
        let foreign = project
            .targets(&self.targets)
            .into_iter()
            .filter(|t| Target::host() != Some(*t));
        for target in foreign {
            let status = match qemu::emulation(target) {
                Ok(found) => ("ok", found),
                Err(e) => {
                    missing += 1;
                    ("missing", format!("{e:#}"))
                }
            };
            rows.push(row(format!("emulation {}", target.platform()), status));
        }
        // One working engine is enough; each row says how to get the one that is not.
        let engines: Vec<_> = [EngineKind::Docker, EngineKind::Podman]
            .into_iter()
            .map(|kind| (kind, Engine::detect(sh, Some(kind))))
            .collect();
        if !engines
            .iter()
            .any(|(_, e)| e.as_ref().is_ok_and(|e| e.builder != Builder::Legacy))
        {
            missing += 1;
        }
        for (kind, engine) in engines {
            let status = match engine {
                Ok(e) if e.builder == Builder::Legacy => (
                    "limited",
                    format!(
                        "{}: install the buildx plugin to build for other platforms",
                        e.describe()
                    ),
                ),
                Ok(e) => ("ok", e.describe()),
                Err(e) => ("missing", format!("{e:#}")),
            };
            rows.push(row(format!("{kind:?}").to_lowercase(), status));
        }
        print!(
            "{}",
            crate::report::table(&["tool", "status", "detail"], &rows)
        );
        if missing > 0 {
            anyhow::bail!("{missing} tool(s) missing: see the table above for the fix");
        }
        Ok(())
    }
}

fn row(tool: String, (status, detail): (&str, String)) -> Vec<String> {
    vec![tool, status.to_string(), detail]
}
