//! What the commands print: progress lines on stderr, tables and sizes for stdout.

use std::time::{Duration, Instant};

/// Runs one step and prints `what` with its elapsed time on stderr when it succeeds.
pub fn step<T>(what: impl std::fmt::Display, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = f()?;
    eprintln!("  {what} ({})", seconds(started.elapsed()));
    Ok(result)
}

pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `1.9 MiB`, `812 KiB`, `940 B`.
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.2} MiB", b / KIB / KIB)
    } else if b >= KIB {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> =
            cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(size(940), "940 B");
        assert_eq!(size(812 * 1024), "812 KiB");
        assert_eq!(size(2_000_000), "1.91 MiB");
    }

    #[test]
    fn tables_align() {
        let rows = vec![vec!["x86_64".to_string(), "1".to_string()], vec!["a".into(), "22".into()]];
        assert_eq!(table(&["arch", "n"], &rows), "arch    n\nx86_64  1\na       22\n");
    }
}
