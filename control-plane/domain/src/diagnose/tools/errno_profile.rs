//! `errno_profile`: which errors the kernel returned to an entity's syscalls, by errno, in the
//! window against before it. An errno that was rare and now is frequent names its cause:
//! EACCES/EPERM a permission, ENOSPC/EDQUOT a full disk, ECONNREFUSED a dead dependency.
//!
//! A process that starts probes its environment (search paths, optional files, privileges it
//! may lack) and collects errors no running process sees. So errors in a sample that spans a
//! process start are counted apart: a rise seen only there is start-up noise multiplied by
//! restarts (a crash loop's, say), reported but not a vote for a cause.

use std::collections::BTreeMap;

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    event::EventKind,
    interval::{Sample, SampleKind, StoredSample},
    store::StoreError,
};

pub struct ErrnoProfile;

/// Syscalls whose failures another tool already reports: a failed execve is an exec failure
/// (`kernel_events`), and counting it here too would make one fact two witnesses.
const REPORTED_ELSEWHERE: [&str; 2] = ["execve", "execveat"];

/// A rate that rose this much (×, and by at least `MIN_RISE_PER_S`) is news.
const RISE: f64 = 3.0;
const MIN_RISE_PER_S: f64 = 0.2;

/// A process's start-up errors may land in the sample after the one its exec fell in.
const START_UP_NS: i64 = 1_000_000_000;

/// Per errno: before, during (every sample), during in samples spanning no process start,
/// and the syscalls seen failing with it in the window.
#[derive(Default)]
struct Tally {
    before: f64,
    during: f64,
    steady: f64,
    calls: BTreeMap<String, u64>,
}

/// Syscalls that send packets. Netfilter dropping a locally generated packet returns EPERM
/// to its sender (`nft ... drop`, `iptables -j DROP` on output): on these calls EPERM and
/// EACCES are a firewall losing packets, not a file or capability refused.
const SENDS: [&str; 5] = ["connect", "sendto", "sendmsg", "sendmmsg", "sendfile"];

/// What an errno on one kind of call is evidence of: the errno, and whether the calls were
/// packet sends.
type Key = (String, bool);

fn label((errno, sending): &Key) -> String {
    if *sending {
        format!("{errno} on sends")
    } else {
        errno.clone()
    }
}

/// The class an errno points at, and how specifically.
fn points_at((errno, sending): &Key) -> Option<(FaultClass, f64)> {
    Some(match errno.as_str() {
        "EACCES" | "EPERM" if *sending => (FaultClass::NetworkLoss, 0.5),
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
        let starts: Vec<i64> = window::events(sources, scope, None, true)?
            .during
            .iter()
            .filter(|e| {
                matches!(
                    e.event.kind,
                    EventKind::ProcessExec { .. } | EventKind::ExecFailure { .. }
                )
            })
            .map(|e| e.event.time_unix_ns)
            .collect();
        let spans_a_start = |s: &StoredSample| {
            starts
                .iter()
                .any(|&t| t >= s.start_unix_ns - START_UP_NS && t <= s.end_unix_ns)
        };
        let mut by: BTreeMap<Key, Tally> = BTreeMap::new();
        for (during, samples) in [(false, &split.before), (true, &split.during)] {
            for s in samples {
                let Sample::Syscall(o) = &s.sample else {
                    continue;
                };
                if REPORTED_ELSEWHERE.contains(&o.name.as_str()) {
                    continue;
                }
                let steady = !spans_a_start(s);
                for e in &o.errors_by_errno {
                    let sending = SENDS.contains(&o.name.as_str());
                    let t = by.entry((e.name.clone(), sending)).or_default();
                    if during {
                        t.during += e.count as f64;
                        if steady {
                            t.steady += e.count as f64;
                        }
                        *t.calls.entry(o.name.clone()).or_default() += e.count;
                    } else {
                        t.before += e.count as f64;
                    }
                }
            }
        }
        let mut obs = Vec::new();
        let mut votes: Vec<Vote> = Vec::new();
        for (key, t) in &by {
            let errno = label(key);
            let (before, during) = window::rates(scope, t.before, t.during);
            let steady = window::rates(scope, 0.0, t.steady).1;
            let mut calls: Vec<_> = t.calls.iter().collect();
            calls.sort_by(|a, b| b.1.cmp(a.1));
            let names: Vec<String> = calls
                .iter()
                .take(3)
                .map(|(n, c)| format!("{n} ×{c}"))
                .collect();
            let rises = |rate: f64| rate >= before * RISE && rate - before >= MIN_RISE_PER_S;
            let rose = rises(during);
            let start_up_only = rose && !rises(steady);
            obs.push(
                Observation::new(format!("{errno} per second"), during, "1/s")
                    .before(before)
                    .detail(if start_up_only {
                        format!(
                            "{} (only in samples where one of {} process starts fell: start-up errors, repeated by restarts)",
                            names.join(", "),
                            starts.len()
                        )
                    } else {
                        names.join(", ")
                    })
                    .weight((during - before).max(0.0) + if rose { 100.0 } else { 0.0 }),
            );
            // Start-up noise multiplied by restarts says nothing of the cause: the exits and
            // restarts are `process_exits`' to judge; the errors stay in the observations.
            if let (true, false, Some((class, strength))) = (rose, start_up_only, points_at(key)) {
                let reason = format!(
                    "{errno} rose from {before:.2}/s to {during:.2}/s ({}){}",
                    names.join(", "),
                    if key.1 {
                        ": a local firewall rule drops outbound packets"
                    } else {
                        ""
                    }
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
