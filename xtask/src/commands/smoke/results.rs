//! What a smoke test found: one value per check, per image and for the run, printed as a
//! table or serialised for `--json` (schema in README; bump `SCHEMA` when a field changes
//! meaning or goes away).

use serde::Serialize;

use crate::report;
use tiny_cross::target::Target;

/// The version of the `--json` document.
pub const SCHEMA: u32 = 1;

/// The whole run: `smoke-test --json`.
#[derive(Debug, Serialize)]
pub struct Run {
    pub schema: u32,
    /// Every image passed every check.
    pub passed: bool,
    /// The engine the containers ran in, as `doctor` describes it.
    pub engine: String,
    pub images: Vec<Image>,
}

/// One image's checks, in the order they ran.
#[derive(Debug, Serialize)]
pub struct Image {
    /// The reference tested.
    pub image: String,
    /// `amd64`, `arm64`: the image's own, or the one expected of it if it could not be read.
    pub arch: Option<String>,
    pub passed: bool,
    pub seconds: f64,
    /// The first failed check and why (`healthz: the container exited ...`).
    pub failure: Option<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub result: Outcome,
    /// `None` when skipped.
    pub seconds: Option<f64>,
    /// What the check saw, or why it failed.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not run: an earlier check of the image failed.
    Skip,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

/// The table's columns; `live_row` prints them as each check ends, `table` at the end.
pub const HEADERS: [&str; 5] = ["image", "check", "result", "time", "detail"];
/// Fixed widths of the leading columns for rows printed as they come: the image column
/// fits every platform's label (`ppc64le`, `riscv64` and `loong64` are the longest).
fn live_widths() -> [usize; 4] {
    let label = Target::ALL.iter().map(|t| t.short().len()).max();
    [label.unwrap_or(5), 14, 6, 5]
}

fn cells(label: &str, check: &Check) -> [String; 5] {
    let time = check
        .seconds
        .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"));
    [
        label.to_owned(),
        check.name.clone(),
        check.result.word().to_owned(),
        time,
        check.detail.clone(),
    ]
}

/// One check's row, for stderr as the check ends.
pub fn live_row(label: &str, check: &Check) -> String {
    let cells = cells(label, check);
    let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
    report::live_row(&live_widths(), &cells)
}

pub fn live_header() -> String {
    report::live_row(&live_widths(), &HEADERS)
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

impl Run {
    /// Every image's checks and its total, aligned.
    pub fn table(&self) -> String {
        let mut rows = Vec::new();
        for image in &self.images {
            for check in image.checks.iter().chain([&image.total()]) {
                rows.push(cells(image.label(), check).to_vec());
            }
        }
        report::table(&HEADERS, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, result: Outcome, seconds: Option<f64>) -> Check {
        Check {
            name: name.into(),
            result,
            seconds,
            detail: String::new(),
        }
    }

    #[test]
    fn the_json_names_outcomes_in_lower_case_and_the_table_shouts_failures() {
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
                checks: vec![
                    check("hello", Outcome::Fail, Some(1.0)),
                    check("websocket", Outcome::Skip, None),
                ],
            }],
        };
        let json: serde_json::Value = serde_json::to_value(&run).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["images"][0]["checks"][0]["result"], "fail");
        assert_eq!(
            json["images"][0]["checks"][1]["seconds"],
            serde_json::Value::Null
        );
        let table = run.table();
        assert!(table.contains("arm64  hello      FAIL    1.0s"), "{table}");
        assert!(table.contains("arm64  websocket  skip    -"), "{table}");
        assert!(
            table.contains("arm64  total      FAIL    3.3s  svc:1-arm64"),
            "{table}"
        );
    }

    #[test]
    fn live_rows_line_up_for_every_platform_label() {
        let header = live_header();
        let column = header.find("check").unwrap();
        for target in Target::ALL {
            let row = live_row(target.short(), &check("hello", Outcome::Pass, Some(1.0)));
            assert_eq!(row.find("hello"), Some(column), "{header}\n{row}");
        }
    }
}
