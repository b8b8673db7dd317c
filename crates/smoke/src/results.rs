//! What a smoke test found: one value per check, per image and for the run, serialised as
//! is for machines (bump [`SCHEMA`] when a field changes meaning or goes away).

use serde::Serialize;

/// The version of the serialised [`Run`].
pub const SCHEMA: u32 = 1;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Run {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Every image passed every check.
    pub passed: bool,
    /// The engine the containers ran in (`tiny_engine::Engine::describe`).
    pub engine: String,
    /// Each image's checks, in the order they ran.
    pub images: Vec<Image>,
}

/// One image's checks, in the order they ran.
#[derive(Debug, Serialize)]
pub struct Image {
    /// The reference tested.
    pub image: String,
    /// `amd64`, `armv7`: the image's own platform, or the one expected of it if it could
    /// not be read.
    pub arch: Option<String>,
    /// Every check passed.
    pub passed: bool,
    /// How long its checks took, in seconds.
    pub seconds: f64,
    /// The first failed check and why (`/healthz: the container exited ...`).
    pub failure: Option<String>,
    /// Its checks.
    pub checks: Vec<Check>,
}

/// One check of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`binary`, `/healthz`, `GET /hello -> 200`, `sigterm`).
    pub name: String,
    /// How it went.
    pub result: Outcome,
    /// How long it took; `None` when skipped.
    pub seconds: Option<f64>,
    /// What the check saw, or why it failed.
    pub detail: String,
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed: the image's later checks are skipped.
    Fail,
    /// Not run: an earlier check of the image failed.
    Skip,
}

impl Outcome {
    /// The word a table shows: failures shout.
    ///
    /// ```
    /// assert_eq!(tiny_smoke::results::Outcome::Fail.word(), "FAIL");
    /// ```
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

impl Image {
    /// The label of its rows: the architecture, else the reference.
    pub fn label(&self) -> &str {
        self.arch.as_deref().unwrap_or(&self.image)
    }

    /// The row that sums it up, after its checks.
    pub fn total(&self) -> Check {
        Check {
            name: "total".into(),
            result: if self.passed {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            seconds: Some(self.seconds),
            detail: self.image.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_outcomes_in_lower_case() {
        let run = Run {
            schema: SCHEMA,
            passed: false,
            engine: "docker".into(),
            images: vec![Image {
                image: "svc:1-arm64".into(),
                arch: Some("arm64".into()),
                passed: false,
                seconds: 3.31,
                failure: Some("hello: no".into()),
                checks: vec![Check {
                    name: "hello".into(),
                    result: Outcome::Skip,
                    seconds: None,
                    detail: String::new(),
                }],
            }],
        };
        let json: serde_json::Value = serde_json::to_value(&run).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["images"][0]["checks"][0]["result"], "skip");
        assert_eq!(
            json["images"][0]["checks"][0]["seconds"],
            serde_json::Value::Null
        );
        assert_eq!(run.images[0].total().result, Outcome::Fail);
    }
}
