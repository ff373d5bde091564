//! How a moved metric reads to an operator: in the metric's own units ("connect failures
//! 0 → 310/s"), the score only beside it. A robust z of +241862σ says the baseline was flat,
//! not how bad things are.

/// `feature` as words: `connect_failures_per_s` → "connect failures".
pub fn feature_words(feature: &str) -> String {
    let base = feature
        .strip_suffix("_per_s")
        .or_else(|| feature.strip_suffix("_us"))
        .or_else(|| feature.strip_suffix("_ratio").map(|_| feature))
        .unwrap_or(feature);
    base.replace('_', " ")
}

/// One value of `feature` with its unit.
pub fn value_in_units(feature: &str, v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if feature.ends_with("_per_s") {
        format!("{}/s", number(v))
    } else if feature.ends_with("_ratio") || feature.ends_with("_pct") {
        let pct = if feature.ends_with("_ratio") {
            v * 100.0
        } else {
            v
        };
        format!("{} %", number(pct))
    } else if feature.ends_with("_us") {
        if v >= 1_000_000.0 {
            format!("{} s", number(v / 1e6))
        } else if v >= 1_000.0 {
            format!("{} ms", number(v / 1e3))
        } else {
            format!("{} µs", number(v))
        }
    } else if feature.ends_with("_hours") {
        format!("{} h", number(v))
    } else {
        number(v)
    }
}

/// "connect failures 0 → 310/s (+12σ)".
pub fn change(feature: &str, from: f64, to: f64, z: f64) -> String {
    let from = value_in_units(feature, from);
    let to = value_in_units(feature, to);
    // The unit once, after the new value, when both share it.
    let unit_of = |s: &str| {
        s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
            .to_string()
    };
    let shown_from = if unit_of(&from) == unit_of(&to) && !unit_of(&to).is_empty() {
        from.trim_end_matches(unit_of(&to).as_str())
            .trim_end()
            .to_string()
    } else {
        from
    };
    format!(
        "{} {shown_from} → {to} ({:+.0}σ)",
        feature_words(feature),
        z
    )
}

/// Few significant digits: 0.4, 3.2, 17, 310, 12000.
fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a < 10.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_in_the_metrics_units() {
        assert_eq!(
            change("resets_per_s", 0.0, 310.2, 241_862.0),
            "resets 0 → 310/s (+241862σ)"
        );
        assert_eq!(
            change("request_p99_us", 4_000.0, 650_000.0, 9.0),
            "request p99 4 → 650 ms (+9σ)"
        );
        assert_eq!(
            change("rtt_us", 400.0, 2_500.0, 7.0),
            "rtt 400 µs → 2.5 ms (+7σ)"
        );
        assert_eq!(
            change("error_ratio", 0.0, 0.42, 30.0),
            "error ratio 0 → 42 % (+30σ)"
        );
    }
}
