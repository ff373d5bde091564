//! Kubernetes resource quantities (`512Mi`, `1.5Gi`, `250m`, `2`, `1e9`) as numbers, and the
//! raised limit written back in the unit a person reads: whole MiB for memory, millicores
//! for CPU, rounded up so a raise never rounds down to the old value.

/// The value of `q` in base units (bytes, cores), or `None` for text that is no quantity.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * multiplier;
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// Memory in whole MiB, rounded up.
pub fn memory(bytes: f64) -> String {
    format!("{}Mi", (bytes / 1024f64.powi(2)).ceil() as u64)
}

/// CPU in millicores, rounded up.
pub fn cpu(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_every_notation_read_as_base_units() {
        assert_eq!(parse("512Mi"), Some(512.0 * 1048576.0));
        assert_eq!(parse("1.5Gi"), Some(1.5 * 1073741824.0));
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1e9"), Some(1e9));
        assert_eq!(parse("128M"), Some(128e6));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("12Qi"), None);
        assert_eq!(parse("-1"), None);
    }

    #[test]
    fn raised_values_round_up_in_a_readable_unit() {
        assert_eq!(memory(parse("512Mi").unwrap_or_default() * 1.5), "768Mi");
        assert_eq!(memory(1.0), "1Mi");
        assert_eq!(cpu(parse("250m").unwrap_or_default() * 2.0), "500m");
        assert_eq!(cpu(1.0005), "1001m");
    }
}
