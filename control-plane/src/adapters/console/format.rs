//! How the console writes values: times (fixed UTC text; the browser adds ages), spans,
//! confidences, the API's names for enums, and URL path segments.

use maud::{html, Markup};
use serde::Serialize;

/// A time as `<time>`: UTC text, with the unix milliseconds the page's script turns into an
/// age ("3 min ago") in the reader's clock. The text itself never changes, so a live region
/// is re-sent only when its content did.
pub fn time(unix_ns: i64) -> Markup {
    let ms = unix_ns / 1_000_000;
    html! { time data-ms=(ms) { (clock(unix_ns)) } }
}

/// `2026-12-07 19:05:03` (UTC).
pub fn clock(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| unix_ns.to_string())
}

/// A duration between two instants, as an operator reads it: `850 ms`, `4.2 s`, `3 min`.
pub fn span(ns: i64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else if ms < 3_600_000.0 {
        format!("{:.0} min", ms / 60e3)
    } else {
        format!("{:.1} h", ms / 3_600e3)
    }
}

/// `0.85` as `85 %`.
pub fn confidence(c: f64) -> String {
    format!("{:.0} %", c * 100.0)
}

/// A serde enum's wire name (`pending_approval`), as the API spells it.
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `text` as one URL path segment: unreserved characters kept, everything else `%XX`.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_the_unit_an_operator_expects() {
        assert_eq!(span(850_000_000), "850 ms");
        assert_eq!(span(4_200_000_000), "4.2 s");
        assert_eq!(span(180_000_000_000), "3 min");
        assert_eq!(clock(0), "1970-01-01 00:00:00");
        assert_eq!(confidence(0.854), "85 %");
        assert_eq!(segment("runbook-oom_kill.v2"), "runbook-oom_kill.v2");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
