//! The `--json` documents of `smoke-test` and `doctor` (schemas in README), read the way a
//! machine reads them: a missing field or a changed type fails the test.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct SmokeRun {
    pub schema: u32,
    pub passed: bool,
    pub engine: String,
    pub images: Vec<SmokeImage>,
}

#[derive(Debug, Deserialize)]
pub struct SmokeImage {
    pub image: String,
    pub arch: Option<String>,
    pub passed: bool,
    pub seconds: f64,
    pub failure: Option<String>,
    pub checks: Vec<SmokeCheck>,
}

#[derive(Debug, Deserialize)]
pub struct SmokeCheck {
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: String,
    pub seconds: Option<f64>,
    pub detail: String,
}

impl SmokeRun {
    pub fn parse(stdout: &[u8]) -> SmokeRun {
        let run: SmokeRun = serde_json::from_slice(stdout).unwrap_or_else(|e| {
            panic!(
                "smoke-test --json: {e}: {}",
                String::from_utf8_lossy(stdout)
            )
        });
        assert_eq!(run.schema, 1);
        run
    }

    /// Every check of every image passed, and the images are these architectures.
    pub fn assert_all_passed(&self, archs: &[&str]) {
        let found: Vec<&str> = self
            .images
            .iter()
            .filter_map(|i| i.arch.as_deref())
            .collect();
        assert_eq!(found, archs, "{self:#?}");
        assert!(self.passed, "{self:#?}");
        for image in &self.images {
            assert!(image.passed && image.failure.is_none(), "{image:#?}");
            for check in &image.checks {
                assert_eq!(check.result, "pass", "{}: {check:?}", image.image);
                assert!(check.seconds.is_some(), "{check:?}");
            }
        }
    }
}

impl SmokeImage {
    pub fn check(&self, name: &str) -> &SmokeCheck {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {self:#?}"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Doctor {
    pub schema: u32,
    pub ok: bool,
    pub tools: Vec<DoctorTool>,
}

#[derive(Debug, Deserialize)]
pub struct DoctorTool {
    pub name: String,
    /// `ok`, `auto`, `limited` or `missing`.
    pub status: String,
    pub found: bool,
    pub version: Option<String>,
    pub path: Option<String>,
    pub detail: Option<String>,
    pub fix: Option<String>,
}

impl Doctor {
    pub fn parse(stdout: &[u8]) -> Doctor {
        let doctor: Doctor = serde_json::from_slice(stdout)
            .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(stdout)));
        assert_eq!(doctor.schema, 1);
        doctor
    }

    pub fn tool(&self, name: &str) -> &DoctorTool {
        self.tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tool {name}: {self:#?}"))
    }
}

/// `bench --json` (schema in README): the development loop's figures.
#[derive(Debug, Deserialize)]
pub struct BenchRun {
    pub schema: u32,
    pub noop: Option<Noop>,
    pub devloop: Option<Devloop>,
    pub tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Noop {
    pub rounds: usize,
    pub runs: Vec<NoopRun>,
    pub xtask_over_plain: f64,
    pub goal: f64,
}

#[derive(Debug, Deserialize)]
pub struct NoopRun {
    pub driver: String,
    pub seconds: f64,
}

#[derive(Debug, Deserialize)]
pub struct Devloop {
    pub cores: usize,
    pub edit: String,
    pub warmup_seconds: f64,
    pub runs: Vec<DevloopRun>,
    pub fast_over_release: f64,
    pub goal: f64,
    pub sizes: Vec<DevloopSizes>,
}

#[derive(Debug, Deserialize)]
pub struct DevloopRun {
    /// `release` or `fast`.
    pub path: String,
    pub targets: Vec<String>,
    pub seconds: f64,
    pub rounds: usize,
}

#[derive(Debug, Deserialize)]
pub struct DevloopSizes {
    pub target: String,
    pub binary: String,
    pub release: u64,
    pub fast: u64,
}

impl BenchRun {
    pub fn parse(stdout: &[u8]) -> BenchRun {
        let run: BenchRun = serde_json::from_slice(stdout)
            .unwrap_or_else(|e| panic!("bench --json: {e}: {}", String::from_utf8_lossy(stdout)));
        assert_eq!(run.schema, 1);
        run
    }
}
