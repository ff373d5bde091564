//! Times as the Kubernetes API writes them, and waiting for something to happen.

/// `unix_ns` in RFC 3339 (`creationTimestamp`, log lines).
pub fn rfc3339(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .expect("a time")
        .to_string()
}

/// Polls `f` every 100 ms until it returns `Some`, for up to `tries` polls.
pub async fn until<T>(what: &str, tries: usize, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..tries {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
