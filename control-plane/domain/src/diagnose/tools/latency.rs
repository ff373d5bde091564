//! `latency_histograms`: p50/p99 of an entity's served requests, syscalls, run-queue waits and
//! block IO, in the window against before it.

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    interval::{FlowRole, Histogram, LatencyKind, Sample, SampleKind, StoredSample},
    store::StoreError,
};

pub struct LatencyHistograms;

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Served,
    BlockIo,
    RunQueue,
}

fn merged(samples: &[StoredSample], which: Which) -> Histogram {
    let mut h = Histogram::default();
    for s in samples {
        let src = match (&s.sample, which) {
            (Sample::Request(r), Which::Served) if r.role == FlowRole::Server => &r.latency,
            (Sample::Latency(l), Which::BlockIo) if l.kind == LatencyKind::BlockIo => &l.latency,
            (Sample::Latency(l), Which::RunQueue) if l.kind == LatencyKind::RunQueue => &l.latency,
            _ => continue,
        };
        h.count += src.count;
        h.sum_ns += src.sum_ns;
        if h.log2_buckets.len() < src.log2_buckets.len() {
            h.log2_buckets.resize(src.log2_buckets.len(), 0);
        }
        for (i, n) in src.log2_buckets.iter().enumerate() {
            h.log2_buckets[i] += n;
        }
    }
    h
}

fn ms(h: &Histogram, q: f64) -> Option<f64> {
    h.quantile_ns(q).map(|ns| ns as f64 / 1e6)
}

impl EvidenceTool for LatencyHistograms {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "latency_histograms",
            description: "Latency histograms of one entity: requests it served, block IO and run-queue waits, p50 and p99 in the incident window against before it.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let requests = window::samples(sources, scope, SampleKind::Request)?;
        let latency = window::samples(sources, scope, SampleKind::Latency)?;
        let mut obs = Vec::new();
        let mut votes = Vec::new();
        for (which, name, split, class, floor_ms) in [
            (
                Which::Served,
                "served requests",
                &requests,
                FaultClass::AppLatency,
                10.0,
            ),
            (
                Which::BlockIo,
                "block IO",
                &latency,
                FaultClass::IoLatency,
                5.0,
            ),
            (
                Which::RunQueue,
                "run-queue wait",
                &latency,
                FaultClass::AppLatency,
                5.0,
            ),
        ] {
            let (b, d) = (merged(&split.before, which), merged(&split.during, which));
            let (Some(p99), p99_before) = (ms(&d, 0.99), ms(&b, 0.99)) else {
                continue;
            };
            let grew = p99 >= floor_ms && p99_before.is_none_or(|x| p99 >= 4.0 * x);
            obs.push(
                Observation::new(format!("{name} p99 (bucket bound)"), p99, "ms")
                    .detail(format!(
                        "p50 {:.2} ms; {} in the window, {} before",
                        ms(&d, 0.5).unwrap_or(0.0),
                        d.count,
                        b.count
                    ))
                    .weight(p99 / p99_before.unwrap_or(1.0).max(0.001))
                    .before(p99_before.unwrap_or(0.0)),
            );
            if grew {
                let strength = if which == Which::BlockIo { 0.55 } else { 0.35 };
                votes.push(Vote::new(
                    class,
                    strength,
                    format!(
                        "{name} p99 {:.1} ms → {p99:.1} ms",
                        p99_before.unwrap_or(0.0)
                    ),
                ));
            }
        }
        let summary = format!("{} latency distributions compared", obs.len());
        Ok(ToolOutput::new(
            "latency_histograms",
            scope,
            summary,
            obs,
            votes,
        ))
    }
}
