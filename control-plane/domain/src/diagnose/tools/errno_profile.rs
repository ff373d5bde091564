//! `errno_profile`: which errors the kernel returned to an entity's syscalls, by errno, in the
//! window against before it. An errno that was rare and now is frequent names its cause:
//! EACCES/EPERM a permission, ENOSPC/EDQUOT a full disk, ECONNREFUSED a dead dependency.

use std::collections::BTreeMap;

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    interval::{Sample, SampleKind},
    store::StoreError,
};

pub struct ErrnoProfile;

/// A rate that rose this much (×, and by at least `MIN_RISE_PER_S`) is news.
const RISE: f64 = 3.0;
const MIN_RISE_PER_S: f64 = 0.2;

/// The class an errno points at, and how specifically.
fn points_at(errno: &str) -> Option<(FaultClass, f64)> {
    Some(match errno {
        "EACCES" | "EPERM" => (FaultClass::PermissionDenied, 0.8),
        "ENOSPC" | "EDQUOT" => (FaultClass::DiskFull, 0.85),
        "ECONNREFUSED" => (FaultClass::DependencyDown, 0.5),
        "EHOSTUNREACH" | "ENETUNREACH" => (FaultClass::Partition, 0.5),
        "ENOMEM" => (FaultClass::MemoryPressure, 0.4),
        _ => return None,
    })
}

impl EvidenceTool for ErrnoProfile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "errno_profile",
            description: "Syscall errors of one entity by errno (and the syscalls that got them), per second in the incident window and before it.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let split = window::samples(sources, scope, SampleKind::Syscall)?;
        // errno → (before, during, syscalls seen failing with it in the window)
        let mut by: BTreeMap<String, (f64, f64, BTreeMap<String, u64>)> = BTreeMap::new();
        for (during, samples) in [(false, &split.before), (true, &split.during)] {
            for s in samples {
                let Sample::Syscall(o) = &s.sample else {
                    continue;
                };
                for e in &o.errors_by_errno {
                    let entry = by.entry(e.name.clone()).or_default();
                    if during {
                        entry.1 += e.count as f64;
                        *entry.2.entry(o.name.clone()).or_default() += e.count;
                    } else {
                        entry.0 += e.count as f64;
                    }
                }
            }
        }
        let mut obs = Vec::new();
        let mut votes: Vec<Vote> = Vec::new();
        for (errno, (b, d, calls)) in &by {
            let (before, during) = window::rates(scope, *b, *d);
            let mut calls: Vec<_> = calls.iter().collect();
            calls.sort_by(|a, b| b.1.cmp(a.1));
            let names: Vec<String> = calls.iter().take(3).map(|(n, c)| format!("{n} ×{c}")).collect();
            let rose = during >= before * RISE && during - before >= MIN_RISE_PER_S;
            obs.push(
                Observation::new(format!("{errno} per second"), during, "1/s")
                    .before(before)
                    .detail(names.join(", "))
                    .weight((during - before).max(0.0) + if rose { 100.0 } else { 0.0 }),
            );
            if let (true, Some((class, strength))) = (rose, points_at(errno)) {
                let reason = format!(
                    "{errno} rose from {before:.2}/s to {during:.2}/s ({})",
                    names.join(", ")
                );
                match votes.iter_mut().find(|v| v.class == class) {
                    Some(v) if v.strength >= strength => {}
                    Some(v) => *v = Vote::new(class, strength, reason),
                    None => votes.push(Vote::new(class, strength, reason)),
                }
            }
        }
        let summary = format!(
            "{} errnos seen; {} rose in the window",
            by.len(),
            obs.iter().filter(|o| o.weight >= 100.0).count()
        );
        Ok(ToolOutput::new("errno_profile", scope, summary, obs, votes))
    }
}
