//! `cargo xtask doctor`: every tool the commands need, found or missing, with the fix.

use serde::Serialize;
use xshell::Shell;

use crate::cli::DoctorArgs;
use crate::model::project::Project;
use crate::tools::toolchain::{self, CSource};
use crate::tools::which;
use tiny_cross::qemu;
use tiny_engine::{Builder, Engine, EngineKind};

/// The version of the `--json` document (schema in README).
const SCHEMA: u32 = 1;

/// `doctor --json`.
#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    /// Nothing is missing: every command can run (some may provision first).
    ok: bool,
    tools: Vec<Tool>,
}

/// One tool, as found.
#[derive(Debug, Serialize)]
struct Tool {
    name: String,
    status: Status,
    /// Present and usable (`ok` or `limited`).
    found: bool,
    version: Option<String>,
    path: Option<String>,
    /// What was found, in words.
    detail: Option<String>,
    /// What to do: for `auto`, what provisions it; for `limited` and `missing`, the fix.
    fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Missing, and a command provisions it when needed.
    Auto,
    /// Found, but short of what some command needs.
    Limited,
    Missing,
}

impl Tool {
    fn ok(name: String, detail: String) -> Tool {
        Tool {
            name,
            status: Status::Ok,
            found: true,
            version: None,
            path: None,
            detail: Some(detail),
            fix: None,
        }
    }

    fn not_ok(name: String, status: Status, fix: String) -> Tool {
        Tool {
            name,
            status,
            found: status == Status::Limited,
            version: None,
            path: None,
            detail: None,
            fix: Some(fix),
        }
    }

    fn at(mut self, path: impl ToString) -> Tool {
        self.path = Some(path.to_string());
        self
    }

    fn row(&self) -> Vec<String> {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Auto => "auto",
            Status::Limited => "limited",
            Status::Missing => "missing",
        };
        let detail = match (&self.detail, &self.fix) {
            (Some(detail), Some(fix)) => format!("{detail}: {fix}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        };
        vec![self.name.clone(), status.into(), detail]
    }
}

impl DoctorArgs {
    /// Runs `cargo xtask doctor` in `project`.
    pub fn run(self, sh: &Shell, project: &Project) -> anyhow::Result<()> {
        let mut tools = Vec::new();
        let sysroot = toolchain::sysroot(sh)?;
        let workspace = toolchain::workspace(project);
        for target in project.targets(&self.targets) {
            let name = format!("rust std {target}");
            tools.push(if toolchain::rust_target_installed(&sysroot, target) {
                Tool::ok(name, "installed".into())
                    .at(sysroot.join("lib/rustlib").join(target.triple()))
            } else if toolchain::std_from_source_noted(&workspace, &sysroot, target) {
                let how = format!(
                    "from source: each build compiles it from rust-src (rustup has none for {target} here)"
                );
                Tool::ok(name, how).at(toolchain::rust_src(&sysroot))
            } else if which::find_on_path("rustup").is_some() {
                let fix = format!(
                    "`cargo xtask build` adds it (rustup target add {target}), or builds it \
                     from rust-src where rustup has none"
                );
                Tool::not_ok(name, Status::Auto, fix)
            } else {
                let fix = format!("install it for your toolchain (rustup target add {target})");
                Tool::not_ok(name, Status::Missing, fix)
            });
            let name = format!("C compiler {target}");
            tools.push(match toolchain::locate_c_compiler(project, target) {
                CSource::UserSet { var, value } => {
                    Tool::ok(name, format!("{value} (from {var})")).at(value)
                }
                CSource::Zig(zig) => Tool::ok(name, format!("zig cc ({zig})")).at(zig),
                CSource::Provisionable => {
                    let fix = format!(
                        "`cargo xtask build` installs zig {} with pip",
                        project.settings.zig
                    );
                    Tool::not_ok(name, Status::Auto, fix)
                }
                CSource::Missing => Tool::not_ok(
                    name,
                    Status::Missing,
                    toolchain::missing_c_compiler(project, target),
                ),
            });
        }
        // Plain `cargo build --target <musl triple>` runs the committed wrappers, which need
        // the zig link `cargo xtask build` leaves in the target directory.
        let link = toolchain::zig_link(&project.target_dir);
        let name = "plain cargo build".to_owned();
        tools.push(match link.read_link_utf8() {
            Ok(zig) => Tool::ok(name, format!("the .cargo/cc wrappers run {zig}")).at(zig),
            Err(_) => Tool::not_ok(
                name,
                Status::Auto,
                "run `cargo xtask build` once: it links zig for the .cargo/cc wrappers".into(),
            ),
        });
        // Which platforms this host runs: natively, or through qemu (how to add it if not).
        for target in project.targets(&self.targets) {
            let name = format!("emulation {}", target.platform());
            if target.runs_natively() {
                tools.push(Tool::ok(name, "runs natively".into()));
                continue;
            }
            tools.push(match qemu::emulation(target) {
                Ok(found) => Tool::ok(name, found),
                Err(e) => Tool::not_ok(name, Status::Missing, format!("{e:#}")),
            });
        }
        let mut missing = tools.iter().filter(|t| t.status == Status::Missing).count();
        // One working engine is enough; each row says how to get the one that is not.
        let mut engine_missing = true;
        for kind in [EngineKind::Docker, EngineKind::Podman] {
            let name = format!("{kind:?}").to_lowercase();
            tools.push(match Engine::detect(sh, Some(kind)) {
                Ok(e) => {
                    let mut tool = if e.builder == Builder::Legacy {
                        Tool {
                            detail: Some(e.describe()),
                            ..Tool::not_ok(
                                name,
                                Status::Limited,
                                "install the buildx plugin to build for other platforms".into(),
                            )
                        }
                    } else {
                        engine_missing = false;
                        Tool::ok(name, e.describe())
                    };
                    tool.version = Some(e.version.clone());
                    tool.at(&e.program)
                }
                Err(e) => Tool::not_ok(name, Status::Missing, format!("{e:#}")),
            });
        }
        missing += usize::from(engine_missing);
        let report = Report {
            schema: SCHEMA,
            ok: missing == 0,
            tools,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let rows: Vec<Vec<String>> = report.tools.iter().map(Tool::row).collect();
            print!(
                "{}",
                crate::report::table(&["tool", "status", "detail"], &rows)
            );
        }
        if missing > 0 {
            let table = if self.json { "the JSON" } else { "the table" };
            anyhow::bail!("{missing} tool(s) missing: see {table} above for the fix");
        }
        Ok(())
    }
}
