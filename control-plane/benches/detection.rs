//! Detection throughput and time to incident, on a synthetic fleet through the real store.
//!
//! `cargo bench -p control-plane --bench detection` (or `cargo xtask bench`) prints:
//! - ingest (SQLite + graph) and detection (features, baselines, forests, correlation)
//!   throughput in feature samples per second;
//! - how many windows after a fault's first anomalous window the incident opens, and the
//!   processing time of the tick that opens it.

use std::{cell::Cell, sync::Arc, time::Instant};

use control_plane::{
    adapters::sqlite::SqliteStore,
    config::ControlPlaneConfig,
    domain::{
        clock::{Clock, ManualClock, SystemClock},
        detection::{DetectionConfig, DetectionParts, DetectionService},
        graph::{ports::NoCluster, GraphConfig, LiveGraph},
        incident::IncidentId,
        interval::service::MetricsService,
    },
    eval::synthetic::{Fleet, SlowRedis, SEC},
};

fn main() -> anyhow::Result<()> {
    let chains: usize = std::env::var("VIGIL_BENCH_CHAINS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let windows: u64 = 400;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
    // The shipped defaults, with 1 s windows so the synthetic seconds are windows.
    let config = DetectionConfig {
        window_ns: SEC,
        grace_ns: 0,
        ..ControlPlaneConfig::default().detection_config()
    };
    // Synthetic time: each window is judged the moment its grace ends.
    let clock = Arc::new(ManualClock::at(0));
    let graph = Arc::new(LiveGraph::new(GraphConfig::default(), Arc::new(NoCluster)));
    let detection = Arc::new(DetectionService::new(DetectionParts {
        config,
        incidents: store.clone(),
        baselines: store.clone(),
        graph: graph.clone(),
        clock: clock.clone(),
    })?);
    let metrics = MetricsService::new(store.clone())
        .with_sink(graph)
        .with_sink(detection.clone());
    let fleet = Fleet::new(chains);
    let start = SystemClock.now_unix_ns() / SEC * SEC - (windows as i64 + 100) * SEC;
    // Cells: the step closure adds to them while the report below reads them.
    let (ingest_s, detect_s) = (Cell::new(0.0), Cell::new(0.0));
    let observations = Cell::new(0usize);
    let mut seq = 0u64;
    let mut step = |fault: Option<SlowRedis>| -> anyhow::Result<(f64, Vec<IncidentId>)> {
        seq += 1;
        let end = start + seq as i64 * SEC;
        let interval = fleet.interval(seq, end, fault);
        observations.set(observations.get() + interval.flows.len() + interval.syscalls.len());
        let t = Instant::now();
        metrics.ingest(&interval)?;
        ingest_s.set(ingest_s.get() + t.elapsed().as_secs_f64());
        let t = Instant::now();
        clock.set(end + 2 * SEC);
        let outcome = detection.tick()?;
        let took = t.elapsed().as_secs_f64();
        detect_s.set(detect_s.get() + took);
        Ok((took, outcome.opened))
    };
    let mut opened_healthy = 0;
    for _ in 0..windows {
        opened_healthy += step(None)?.1.len();
    }
    let stats = detection.stats();
    let (ingest_s, detect_s, observations) = (ingest_s.get(), detect_s.get(), observations.get());
    let entities = detection.baselines().len();
    println!(
        "detection benchmark: {chains} chains ({entities} entities), {windows} windows of 1 s"
    );
    println!(
        "  ingest:    {:>10.0} samples/s  ({:.0} observations/s; {:.2} ms per interval, SQLite + graph)",
        stats.samples as f64 / ingest_s,
        observations as f64 / ingest_s,
        ingest_s * 1e3 / windows as f64
    );
    println!(
        "  detection: {:>10.0} samples/s  ({:.2} ms per window: polars features, baselines, forests, correlation)",
        stats.samples as f64 / detect_s,
        detect_s * 1e3 / windows as f64
    );
    println!(
        "  end to end: {:>9.0} samples/s  ({} samples; forests trained: workload {}, edge {}; healthy incidents {opened_healthy})",
        stats.samples as f64 / (ingest_s + detect_s),
        stats.samples,
        stats.workload_forest_trained,
        stats.edge_forest_trained
    );
    // A fault: which window's tick opens the incident, and how long that tick took.
    let fault = SlowRedis {
        chain: chains / 2,
        rtt_us: 150_000,
    };
    for n in 1..=10 {
        let (took, opened) = step(Some(fault))?;
        if !opened.is_empty() {
            let c = &config;
            let lag_windows = n - 1;
            println!(
                "  time to incident: opened when anomalous window {n} closed \
                 ({lag_windows} window(s) after the first; rule: {} consecutive); that tick took {:.1} ms",
                c.rule.consecutive,
                took * 1e3
            );
            let default = ControlPlaneConfig::default().detection;
            println!(
                "    with the default {} ms windows and {} ms grace: first anomalous window closed → incident ≈ {:.1} s",
                default.window_ms,
                default.grace_ms,
                (lag_windows as f64 * default.window_ms as f64 + default.grace_ms as f64) / 1e3
                    + took
            );
            return Ok(());
        }
    }
    anyhow::bail!("no incident within 10 windows of the fault")
}
