//! What the commands print: progress lines on stderr, tables and sizes for stdout.

use std::time::{Duration, Instant};

/// Runs one step and prints `what` with its elapsed time on stderr when it succeeds.
pub fn step<T>(
    what: impl std::fmt::Display,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = f()?;
    eprintln!("  {what} ({})", seconds(started.elapsed()));
    Ok(result)
}

pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Milliseconds, for steps that take less than a second.
pub fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
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

/// Parses `8 MiB`, `900KB`, `1.5GiB` or a plain byte count.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => anyhow::bail!("`{text}` is not a size (for example `8 MiB` or `900 KB`)"),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not a size (for example `8 MiB` or `900 KB`)"))?;
    Ok((number * factor as f64) as u64)
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
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
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
    fn sizes_parse() {
        assert_eq!(parse_size("8 MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("900KB").unwrap(), 900_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("big").is_err());
        assert!(parse_size("8 parsecs").is_err());
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["x86_64".to_string(), "1".to_string()],
            vec!["a".into(), "22".into()],
        ];
        assert_eq!(
            table(&["arch", "n"], &rows),
            "arch    n\nx86_64  1\na       22\n"
        );
    }
}
