//! What `verify` reports: one row per thing compared between the staged build and a rebuild
//! of the same commit.

use serde::Serialize;

use tiny_cross::dist::Manifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
}

/// One comparison: `expected` is what is staged (or pushed), `rebuilt` what the clean
/// rebuild gave; either is `missing` when that side has no such thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub what: String,
    pub expected: String,
    pub rebuilt: String,
    pub result: Outcome,
}

const MISSING: &str = "missing";

impl Row {
    pub fn new(what: impl Into<String>, expected: Option<&str>, rebuilt: Option<&str>) -> Row {
        let result = match (expected, rebuilt) {
            (Some(a), Some(b)) if a == b => Outcome::Pass,
            _ => Outcome::Fail,
        };
        Row {
            what: what.into(),
            expected: expected.unwrap_or(MISSING).to_owned(),
            rebuilt: rebuilt.unwrap_or(MISSING).to_owned(),
            result,
        }
    }
}

/// One row per binary (`<triple>/<name>`, by sha256) of either side's dist manifests.
pub fn binary_rows(expected: &[Manifest], rebuilt: &[Manifest]) -> Vec<Row> {
    let files = |manifests: &[Manifest]| -> Vec<(String, String)> {
        manifests
            .iter()
            .flat_map(|m| {
                m.files
                    .iter()
                    .map(|f| (format!("{}/{}", m.target, f.name), f.sha256.clone()))
            })
            .collect()
    };
    let (want, got) = (files(expected), files(rebuilt));
    let find = |list: &[(String, String)], name: &str| {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, sha)| sha.clone())
    };
    let mut rows: Vec<Row> = want
        .iter()
        .map(|(name, sha)| Row::new(name, Some(sha), find(&got, name).as_deref()))
        .collect();
    rows.extend(
        got.iter()
            .filter(|(name, _)| find(&want, name).is_none())
            .map(|(name, sha)| Row::new(name, None, Some(sha))),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_cross::dist::FileEntry;

    fn manifest(target: &str, files: &[(&str, &str)]) -> Manifest {
        Manifest {
            package: "p".into(),
            version: "1".into(),
            target: target.into(),
            files: files
                .iter()
                .map(|(name, sha)| FileEntry {
                    name: (*name).into(),
                    size: 1,
                    sha256: (*sha).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn binaries_pass_by_hash_and_fail_when_changed_or_on_one_side_only() {
        let staged = [
            manifest("x86", &[("migrate", "aa"), ("service", "bb")]),
            manifest("arm", &[("service", "cc")]),
        ];
        let rebuilt = [
            manifest("x86", &[("migrate", "aa"), ("service", "bd")]),
            manifest("arm", &[("service", "cc"), ("extra", "dd")]),
        ];
        let rows = binary_rows(&staged, &rebuilt);
        let summary: Vec<(&str, &str, &str, Outcome)> = rows
            .iter()
            .map(|r| {
                (
                    r.what.as_str(),
                    r.expected.as_str(),
                    r.rebuilt.as_str(),
                    r.result,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("x86/migrate", "aa", "aa", Outcome::Pass),
                ("x86/service", "bb", "bd", Outcome::Fail),
                ("arm/service", "cc", "cc", Outcome::Pass),
                ("arm/extra", "missing", "dd", Outcome::Fail),
            ]
        );
        assert_eq!(
            serde_json::to_value(&rows[1]).unwrap(),
            serde_json::json!({"what": "x86/service", "expected": "bb", "rebuilt": "bd", "result": "fail"})
        );
    }
}
