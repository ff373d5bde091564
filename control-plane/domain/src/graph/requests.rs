//! Request-level figures of an edge for the graph: requests/s, error and 4xx ratios,
//! unanswered requests and p99 latency over the recent window, from the client's side.

use std::collections::VecDeque;

use serde::Serialize;

use crate::interval::{Histogram, Protocol, RequestObservation};

/// The recent requests of one client view of an edge.
#[derive(Debug, Clone, Default)]
pub(super) struct RequestTally {
    recent: VecDeque<(i64, RequestObservation)>,
}

impl RequestTally {
    pub(super) fn add(&mut self, end_ns: i64, r: &RequestObservation, window: i64) {
        self.recent.push_back((end_ns, r.clone()));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t < end_ns - window)
        {
            self.recent.pop_front();
        }
    }

    pub(super) fn last_seen(&self) -> i64 {
        self.recent.back().map_or(0, |(t, _)| *t)
    }

    /// Folds this tally into `into` (several client views can make one edge).
    pub(super) fn merge_into(&self, into: &mut RequestTotals) {
        for (_, r) in &self.recent {
            into.add(r);
        }
    }
}

/// Sums over the recent window, before they become a summary.
#[derive(Debug, Clone, Default)]
pub(super) struct RequestTotals {
    protocol: Option<Protocol>,
    requests: u64,
    responses: u64,
    errors: u64,
    client_errors: u64,
    unanswered: u64,
    latency: Histogram,
}

impl RequestTotals {
    fn add(&mut self, r: &RequestObservation) {
        self.protocol.get_or_insert(r.protocol);
        self.requests += r.requests;
        self.responses += r.responses;
        self.errors += r.errors;
        self.client_errors += r.client_errors;
        self.unanswered += r.unanswered();
        let h = &mut self.latency;
        h.count += r.latency.count;
        h.sum_ns += r.latency.sum_ns;
        if h.log2_buckets.len() < r.latency.log2_buckets.len() {
            h.log2_buckets.resize(r.latency.log2_buckets.len(), 0);
        }
        for (a, b) in h.log2_buckets.iter_mut().zip(&r.latency.log2_buckets) {
            *a += b;
        }
    }

    pub(super) fn summary(&self, window_ns: i64) -> Option<RequestSummary> {
        let protocol = self.protocol?;
        let secs = (window_ns as f64 / 1e9).max(1e-9);
        let ratio = |n: u64| {
            if self.responses == 0 {
                0.0
            } else {
                n as f64 / self.responses as f64
            }
        };
        Some(RequestSummary {
            protocol,
            requests_per_s: self.requests as f64 / secs,
            error_ratio: ratio(self.errors),
            client_error_ratio: ratio(self.client_errors),
            unanswered: self.unanswered,
            p99_ms: self.latency.quantile_ns(0.99).map(|ns| ns as f64 / 1e6),
        })
    }
}

/// An edge's requests over the graph's recent window, as its client saw them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSummary {
    pub protocol: Protocol,
    pub requests_per_s: f64,
    /// Failed replies (HTTP 5xx, Redis and PostgreSQL errors) / replies.
    pub error_ratio: f64,
    /// HTTP 4xx / replies.
    pub client_error_ratio: f64,
    /// Timed out, or cut off by a close.
    pub unanswered: u64,
    /// Upper bound of the log2 bucket holding the 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}
