//! `resource_pressure`: an entity's memory against its limit, CPU throttling and PSI stall
//! time, in the window against before it.

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    interval::{ResourceObservation, Sample, SampleKind, StoredSample},
    store::StoreError,
};

pub struct ResourcePressure;

#[derive(Debug, Default, Clone, Copy)]
struct Reading {
    max_memory_ratio: f64,
    periods: u64,
    throttled: u64,
    memory_stall_us: u64,
    cpu_stall_us: u64,
    io_stall_us: u64,
    samples: u64,
}

fn read(samples: &[StoredSample]) -> Reading {
    let mut r = Reading::default();
    for s in samples {
        let Sample::Resource(o) = &s.sample else {
            continue;
        };
        let o: &ResourceObservation = o;
        r.max_memory_ratio = r
            .max_memory_ratio
            .max(o.memory_limit_ratio().unwrap_or(0.0));
        r.periods += o.cpu_periods;
        r.throttled += o.cpu_throttled_periods;
        r.memory_stall_us += o.memory_stall_us.unwrap_or(0);
        r.cpu_stall_us += o.cpu_stall_us.unwrap_or(0);
        r.io_stall_us += o.io_stall_us.unwrap_or(0);
        r.samples += 1;
    }
    r
}

impl Reading {
    fn throttled_ratio(&self) -> f64 {
        self.throttled as f64 / self.periods.max(1) as f64
    }
}

impl EvidenceTool for ResourcePressure {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "resource_pressure",
            description: "One entity's resources from its cgroup: working set over the memory limit, share of CPU periods throttled, and PSI stall time (memory, CPU, IO), in the incident window against before it.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let split = window::samples(sources, scope, SampleKind::Resource)?;
        let (b, d) = (read(&split.before), read(&split.during));
        let stall = |us: u64, secs: f64| us as f64 / 1e6 / secs;
        let (io_b, io_d) = (
            stall(b.io_stall_us, scope.before_secs()),
            stall(d.io_stall_us, scope.symptom_secs()),
        );
        let obs = vec![
            Observation::new(
                "memory working set / limit (max)",
                d.max_memory_ratio,
                "ratio",
            )
            .before(b.max_memory_ratio)
            .weight(d.max_memory_ratio),
            Observation::new("CPU periods throttled", d.throttled_ratio(), "ratio")
                .before(b.throttled_ratio())
                .weight(d.throttled_ratio() * 2.0),
            Observation::new(
                "memory stall",
                stall(d.memory_stall_us, scope.symptom_secs()),
                "s/s",
            )
            .before(stall(b.memory_stall_us, scope.before_secs())),
            Observation::new(
                "CPU stall",
                stall(d.cpu_stall_us, scope.symptom_secs()),
                "s/s",
            )
            .before(stall(b.cpu_stall_us, scope.before_secs())),
            Observation::new("IO stall", io_d, "s/s")
                .before(io_b)
                .weight(io_d),
        ];
        let mut votes = Vec::new();
        let (tb, td) = (b.throttled_ratio(), d.throttled_ratio());
        if td >= 0.25 && td >= 2.0 * tb {
            votes.push(Vote::new(
                FaultClass::CpuThrottling,
                0.75,
                format!(
                    "throttled in {:.0} % of CPU periods (before {:.0} %)",
                    td * 100.0,
                    tb * 100.0
                ),
            ));
        }
        if d.max_memory_ratio >= 0.9 {
            votes.push(Vote::new(
                FaultClass::MemoryPressure,
                0.6,
                format!(
                    "working set reached {:.0} % of the limit",
                    d.max_memory_ratio * 100.0
                ),
            ));
        }
        if io_d >= 0.2 && io_d >= 3.0 * io_b {
            votes.push(Vote::new(
                FaultClass::IoLatency,
                0.45,
                format!("stalled on IO {io_d:.2} s per second (before {io_b:.2})"),
            ));
        }
        let summary = if d.samples == 0 {
            "no cgroup readings in the window".to_string()
        } else {
            format!(
                "memory up to {:.0} % of its limit, throttled {:.0} % of periods",
                d.max_memory_ratio * 100.0,
                td * 100.0
            )
        };
        Ok(ToolOutput::new(
            "resource_pressure",
            scope,
            summary,
            obs,
            votes,
        ))
    }
}
