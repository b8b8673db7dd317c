//! `cargo xtask smoke-test`: each architecture's image as a real container, checked the way
//! production would use it: read-only, non-root, no capabilities, host network on loopback.

mod results;

use std::time::Duration;

use anyhow::{Context, bail};
use xshell::Shell;

use crate::cli::SmokeArgs;
use crate::model::project::Project;
use crate::oci::reference::{ImageNames, ImageRef};
use crate::oci::signing;
use crate::report;
use tiny_declare as declared;
use tiny_engine::Engine;
use tiny_smoke::results::Check;
use tiny_smoke::{Options, Subject};

/// Each check's row on stderr as it ends, with a ticking line while it runs.
struct LiveRows;

impl tiny_smoke::Observer for LiveRows {
    fn started(&self, label: &str, check: &str) -> Box<dyn std::any::Any> {
        Box::new(report::ticking(format!("{label} {check}")))
    }

    fn ended(&self, label: &str, check: &Check) {
        eprintln!("{}", results::live_row(label, check));
    }

    fn logs(&self, _label: &str, container: &str, output: &str) {
        eprintln!("--- logs of {container} ---");
        eprint!("{output}");
    }
}

impl SmokeArgs {
    /// Runs the smoke test; `checks` gives the workspace's own Rust checks of an image.
    pub fn run(
        self,
        sh: &Shell,
        project: &Project,
        checks: fn(&str) -> Vec<tiny_smoke::Own>,
    ) -> anyhow::Result<()> {
        let key = self.require_signature.as_deref();
        let key = key.map(|k| Ok::<_, anyhow::Error>((signing::public_key(k)?, k)));
        let key = key.transpose()?;
        let engine = Engine::detect(sh, self.engine.map(Into::into))?;
        let _whole_run = engine.remover().whole_run();
        if let Some(notice) = engine.sweep_leftovers(sh)? {
            eprintln!("  {notice}");
        }
        let subjects = self.subjects(sh, project, &engine)?;
        if let Some((key, path)) = &key {
            for subject in &subjects {
                signing::require_signed_engine_image(
                    sh,
                    &subject.reference,
                    &subject.image,
                    key,
                    path,
                )?;
            }
        }
        eprintln!("  engine: {}", engine.describe());
        let timeout = Duration::from_secs(self.timeout);
        eprintln!("{}", results::live_header());
        let mut images = Vec::new();
        for subject in &subjects {
            let options = Options {
                timeout,
                own: checks(&subject.declared.name),
                names: "xtask-smoke".to_owned(),
            };
            images.push(tiny_smoke::check_image(
                sh, &engine, subject, &options, &LiveRows,
            )?);
        }
        let failed: Vec<String> = images
            .iter()
            .filter_map(|i| Some(format!("{} ({})", i.image, i.failure.as_ref()?)))
            .collect();
        let run = tiny_smoke::results::Run {
            schema: tiny_smoke::results::SCHEMA,
            passed: failed.is_empty(),
            engine: engine.describe(),
            images,
        };
        // Printed whether or not every check passed: a failed run's results matter most.
        // Where stdout and stderr are both the terminal, the rows are on it already.
        if self.json {
            println!("{}", serde_json::to_string_pretty(&run)?);
        } else if !report::on_one_terminal() {
            print!("{}", results::table(&run));
        }
        if !failed.is_empty() {
            bail!("smoke test failed for {}", failed.join("; "));
        }
        Ok(())
    }

    /// The images to test, each found in the engine before any container starts.
    fn subjects(
        &self,
        sh: &Shell,
        project: &Project,
        engine: &Engine,
    ) -> anyhow::Result<Vec<Subject>> {
        let mut subjects = Vec::new();
        // Declared names select declared images; anything else is a reference to test.
        let (named, references): (Vec<&ImageRef>, Vec<&ImageRef>) = self
            .images
            .iter()
            .partition(|r| project.image_names().contains(&r.to_string().as_str()));
        if !references.is_empty() && (!self.targets.is_empty() || self.tag.is_some() || self.fast) {
            bail!(
                "--target, --tag and --fast choose among the declared images' tags: give \
                 --image {} by name, or leave them out",
                project.image_names().join("|")
            );
        }
        if references.is_empty() {
            let named: Vec<String> = named.iter().map(|r| r.to_string()).collect();
            let given = match self.tag {
                Some(_) => &["--tag"][..],
                None => &[],
            };
            for declared in project.select_one_if(&named, given)? {
                self.declared_subjects(sh, &project.for_image(&declared), engine, &mut subjects)?;
            }
        }
        for reference in references {
            let text = reference.to_string();
            let named = text.split('@').next().unwrap_or(&text);
            let repository = match named.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => repository,
                _ => named,
            };
            let last = repository.rsplit('/').next().unwrap_or(repository);
            let image = engine.find_image(sh, &text)?.with_context(|| {
                format!(
                    "no image {reference} in {}: pull it (`{} pull {reference}`) or build it first",
                    engine.name(),
                    engine.name()
                )
            })?;
            // The declared image its repository is named after, else the one whose
            // entrypoint it runs.
            let entrypoint = image.config.entrypoint.as_ref().and_then(|e| e.first());
            let by_entrypoint: Vec<&declared::Image> = project
                .images
                .iter()
                .filter(|i| Some(&i.entrypoint.program.to_string()) == entrypoint)
                .collect();
            let declared = match project.images.iter().find(|i| i.name == last) {
                Some(declared) => declared,
                None => match by_entrypoint[..] {
                    [one] => one,
                    _ => bail!(
                        "--image {reference}: neither its repository `{last}` nor its \
                         entrypoint names one declared image (declared: {}): tag it as one of \
                         them",
                        project.image_names().join(", ")
                    ),
                },
            };
            subjects.push(Subject {
                declared: declared.clone(),
                reference: reference.to_string(),
                expected_arch: None,
                image,
            });
        }
        Ok(subjects)
    }

    /// Each target's tag of the current declared image.
    fn declared_subjects(
        &self,
        sh: &Shell,
        project: &Project,
        engine: &Engine,
        subjects: &mut Vec<Subject>,
    ) -> anyhow::Result<()> {
        let name = project.image_name();
        let names = ImageNames::new(self.tag.as_deref(), None, name, &project.package.version)?;
        let names = if self.fast { names.dev()? } else { names };
        let tag = self
            .tag
            .as_ref()
            .map(|t| format!(" --tag {t}"))
            .unwrap_or_default()
            + if self.fast { " --fast" } else { "" };
        for target in project.targets(&self.targets) {
            let reference = names.for_target(target);
            let image = engine.find_image(sh, &reference)?.with_context(|| {
                format!(
                    "no image {reference} in {}: build it with `cargo xtask image --image {name} --target {}{tag}`",
                    engine.name(),
                    target.short()
                )
            })?;
            subjects.push(Subject {
                declared: project.image.clone(),
                reference,
                expected_arch: Some(target.short()),
                image,
            });
        }
        Ok(())
    }
}
