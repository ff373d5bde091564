//! Kernel time per eBPF program, from the kernel's own run-time statistics (for the
//! benchmarks): where the probes' cost is, program by program.
//!
//! The kernel counts `run_time_ns` and `run_cnt` of every program only while someone holds a
//! `BPF_ENABLE_STATS` descriptor (the counting itself costs two clock reads per run, so it
//! is off by default); [`Stats::enable`] holds one for as long as it lives.

use std::{collections::BTreeMap, os::fd::OwnedFd, time::Duration};

use anyhow::Context as _;

/// Run-time statistics switched on while this lives.
pub struct Stats {
    _enabled: OwnedFd,
}

/// One program's counters at one moment, by program id.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<u32, (String, u64, u64)>);

/// What one program cost between two snapshots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramCost {
    /// The kernel keeps 15 bytes of a program's name.
    pub program: String,
    pub runs_per_s: f64,
    pub ns_per_run: f64,
    /// Kernel time in the program, as a share of one CPU.
    pub cpu_pct: f64,
}

impl Stats {
    pub fn enable() -> anyhow::Result<Self> {
        let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("BPF_ENABLE_STATS (needs root and a 5.8+ kernel)")?;
        Ok(Self { _enabled: fd })
    }

    /// The counters of every loaded program whose name starts with `prefix`.
    pub fn snapshot(&self, prefix: &str) -> Snapshot {
        let mut out = BTreeMap::new();
        for info in aya::programs::loaded_programs().flatten() {
            let Some(name) = info.name_as_str() else {
                continue;
            };
            if name.starts_with(prefix) {
                out.insert(
                    info.id(),
                    (
                        name.to_string(),
                        u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                        info.run_count(),
                    ),
                );
            }
        }
        Snapshot(out)
    }
}

impl Snapshot {
    /// Each program's cost from `self` to `later`, over `elapsed`; programs that did not
    /// run are left out, the costliest first. One row per program, not per name: the kernel
    /// keeps 15 bytes of a name, and two programs may share those (`vigil_process_e` is
    /// both exec and exit), so a name can appear twice.
    pub fn costs_until(&self, later: &Snapshot, elapsed: Duration) -> Vec<ProgramCost> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut costs: Vec<ProgramCost> = later
            .0
            .iter()
            .map(|(id, (name, ns, runs))| {
                let (ns0, runs0) = self.0.get(id).map_or((0, 0), |b| (b.1, b.2));
                (name, ns.saturating_sub(ns0), runs.saturating_sub(runs0))
            })
            .filter(|(_, _, runs)| *runs > 0)
            .map(|(name, ns, runs)| ProgramCost {
                program: name.to_string(),
                runs_per_s: runs as f64 / secs,
                ns_per_run: ns as f64 / runs as f64,
                cpu_pct: 100.0 * ns as f64 / 1e9 / secs,
            })
            .collect();
        costs.sort_by(|a, b| b.cpu_pct.total_cmp(&a.cpu_pct));
        costs
    }
}
