//! What one HTTP request may cost (`[api]`): header and body size, how long it may take, and
//! how many requests a token may make. Each refusal has its own status and says which limit
//! and which setting: 431 headers, 413 body, 408 too slow, 429 too many (with
//! `Retry-After`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};

use crate::{adapters::refusal::refuse, config::ApiConfig};

/// Paths whose responses are streams that live as long as the client watches.
const STREAMS: &[&str] = &["/console/live/", "/mcp"];

/// Sizes and time: in front of everything, the guard included.
pub async fn limits(State(cfg): State<Arc<ApiConfig>>, request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > cfg.max_header_bytes {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request's headers are {header_bytes} bytes, more than the {} allowed ([api] max_header_bytes)",
                cfg.max_header_bytes
            ),
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|l| *l > cfg.max_body_bytes as u64) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {len} bytes, more than the {} allowed ([api] max_body_bytes)",
                cfg.max_body_bytes
            ),
        );
    }
    let path = request.uri().path();
    if STREAMS.iter().any(|p| path.starts_with(p)) {
        return next.run(request).await;
    }
    let within = Duration::from_secs(cfg.request_timeout_secs);
    match tokio::time::timeout(within, next.run(request)).await {
        Ok(response) => body_refusal(response, cfg.max_body_bytes),
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request was not complete within {} s ([api] request_timeout_secs): send the body at once",
                cfg.request_timeout_secs
            ),
        ),
    }
}

/// A body without a declared length that passed the limit is refused by the extractor with
/// a bare 413: give it the same words as a declared one.
fn body_refusal(response: Response, max: usize) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/json"))
    {
        return response;
    }
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is more than the {max} bytes allowed ([api] max_body_bytes)"),
    )
}

/// A token bucket per token name: `rate` per second, up to `burst` at once.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept at most; past it the full ones (idle tokens) are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub fn new(cfg: &ApiConfig) -> Self {
        Self {
            rate: cfg.requests_per_second,
            burst: f64::from(cfg.burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `who`'s bucket at `now`; `Err(wait)` when it is empty.
    pub fn take(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(who) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (level, at)| {
                *level + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (level, at) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        *level =
            (*level + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *level) / self.rate))
        }
    }

    /// The 429 for `who`, waiting `wait`.
    pub fn refusal(&self, who: &str, wait: Duration) -> Response {
        let secs = wait.as_secs().max(1);
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "token `{who}` made more than {} requests per second (burst {}; [api] requests_per_second, burst): retry in {secs} s",
                self.rate, self.burst
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(&ApiConfig {
            requests_per_second: rate,
            burst,
            ..Default::default()
        })
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate_and_tokens_are_counted_apart() {
        let l = limiter(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take("ci", t0).is_ok());
        }
        let wait = l.take("ci", t0).expect_err("the burst is spent");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            l.take("alice", t0).is_ok(),
            "another token has its own bucket"
        );
        assert!(
            l.take("ci", t0 + Duration::from_millis(100)).is_ok(),
            "refilled at 10/s"
        );
        assert!(l.take("ci", t0 + Duration::from_millis(100)).is_err());
        for _ in 0..3 {
            assert!(
                l.take("ci", t0 + Duration::from_secs(60)).is_ok(),
                "full again, not more"
            );
        }
        assert!(l.take("ci", t0 + Duration::from_secs(60)).is_err());
    }
}
