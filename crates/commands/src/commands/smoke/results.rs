//! The smoke test's results as people read them: a row on stderr as each check ends, and a
//! table of the whole run (the values are `tiny_smoke::results`'; `--json` prints them as
//! they are, schema in README).

use crate::report;
use tiny_cross::target::Target;
use tiny_smoke::results::{Check, Run};

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

/// Every image's checks and its total, aligned.
pub fn table(run: &Run) -> String {
    let mut rows = Vec::new();
    for image in &run.images {
        for check in image.checks.iter().chain([&image.total()]) {
            rows.push(cells(image.label(), check).to_vec());
        }
    }
    report::table(&HEADERS, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_smoke::results::{Image, Outcome, SCHEMA};

    fn check(name: &str, result: Outcome, seconds: Option<f64>) -> Check {
        Check {
            name: name.into(),
            result,
            seconds,
            detail: String::new(),
        }
    }

    #[test]
    fn the_table_shouts_failures_and_dashes_skipped_times() {
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
        let table = table(&run);
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
