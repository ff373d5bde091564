//! Times as the Kubernetes API writes them.

/// `unix_ns` in RFC 3339 (`creationTimestamp`, log lines).
pub fn rfc3339(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .expect("a time")
        .to_string()
}
