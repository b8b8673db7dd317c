use crate::error::{Result, fail};

/// A size as people write it: a number and an optional unit, decimal (`KB`, `MB`, `GB`) or
/// binary (`KiB`, `MiB`, `GiB`), any case.
///
/// ```
/// assert_eq!(tiny_declare::parse_size("8 MiB")?, 8 << 20);
/// assert_eq!(tiny_declare::parse_size("900kb")?, 900_000);
/// assert!(tiny_declare::parse_size("8 parsecs").is_err());
/// # Ok::<(), tiny_declare::Error>(())
/// ```
pub fn parse_size(text: &str) -> Result<u64> {
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
        _ => fail!("`{text}` is not a size (for example `8 MiB` or `900 KB`)"),
    };
    let Ok(number) = number.parse::<f64>() else {
        fail!("`{text}` is not a size (for example `8 MiB` or `900 KB`)")
    };
    Ok((number * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("8 MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("900KB").unwrap(), 900_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("big").is_err());
        assert!(parse_size("8 parsecs").is_err());
    }
}
