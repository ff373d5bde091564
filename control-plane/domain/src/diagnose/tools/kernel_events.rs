//! `kernel_events`: what the kernel reported about an entity — OOM kills, exec failures,
//! exits, DNS failures — counted in the window and before it, the most telling listed.

use std::collections::BTreeMap;

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    event::{signal_name, EventKind},
    store::StoreError,
};

pub struct KernelEvents;

fn describe(kind: &EventKind) -> (String, f64) {
    match kind {
        EventKind::OomKill {
            victim_comm,
            victim_pid,
            anon_rss_kb,
            ..
        } => (
            format!("OOM killer ended {victim_comm} ({victim_pid}) with {anon_rss_kb} KiB anonymous RSS"),
            10.0,
        ),
        EventKind::ExecFailure {
            filename,
            errno_name,
            ..
        } => (format!("execve {filename} failed: {errno_name}"), 8.0),
        EventKind::ProcessExit {
            exit_code,
            signal,
            killed_by,
            ..
        } => {
            let how = match (signal, exit_code) {
                (Some(s), _) => signal_name(*s).to_string(),
                (None, Some(c)) => format!("exit {c}"),
                (None, None) => "exit".into(),
            };
            let by = killed_by
                .as_ref()
                .map(|k| format!(" sent by {} ({})", k.comm, k.pid))
                .unwrap_or_default();
            (format!("process exited: {how}{by}"), 3.0)
        }
        EventKind::DnsFailure {
            rcode_name,
            query_name,
            ..
        } => (format!("DNS {rcode_name} for {query_name}"), 4.0),
        EventKind::ProcessExec { filename } => (format!("exec {filename}"), 1.0),
    }
}

impl EvidenceTool for KernelEvents {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "kernel_events",
            description: "Kernel events of one entity (OOM kills, exec failures, process exits, DNS failures): counts in the incident window and before it, and the most telling events.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let split = window::events(sources, scope, None, true)?;
        let mut counts: BTreeMap<&'static str, (f64, f64)> = BTreeMap::new();
        for e in &split.before {
            counts.entry(e.event.kind.name()).or_default().0 += 1.0;
        }
        for e in &split.during {
            counts.entry(e.event.kind.name()).or_default().1 += 1.0;
        }
        let mut obs: Vec<Observation> = counts
            .iter()
            .map(|(k, &(b, d))| {
                Observation::new(format!("{k} events"), d, "events")
                    .before(b)
                    .weight(d - b * scope.during_secs() / scope.before_secs())
            })
            .collect();
        // Distinct descriptions, so a loop of identical exits is one line with its count.
        let mut seen: BTreeMap<String, (f64, u32)> = BTreeMap::new();
        for e in &split.during {
            let (text, w) = describe(&e.event.kind);
            let entry = seen.entry(text).or_insert((w, 0));
            entry.1 += 1;
        }
        obs.extend(seen.into_iter().map(|(text, (w, n))| {
            Observation::new(text, f64::from(n), "times").weight(w + f64::from(n).ln())
        }));
        let during = |k: &str| counts.get(k).map_or(0.0, |c| c.1);
        let mut votes = Vec::new();
        if during("oom_kill") > 0.0 {
            votes.push(Vote::new(
                FaultClass::OomKill,
                0.9,
                format!("{} OOM kill(s) in the window", during("oom_kill")),
            ));
        }
        if during("exec_failure") > 0.0 {
            votes.push(Vote::new(
                FaultClass::BadDeploy,
                0.85,
                format!(
                    "{} exec failure(s): the program does not run",
                    during("exec_failure")
                ),
            ));
        }
        let summary = format!(
            "{} kernel events in the window, {} in the {:.0} s before",
            split.during.len(),
            split.before.len(),
            scope.before_secs()
        );
        Ok(ToolOutput::new("kernel_events", scope, summary, obs, votes))
    }
}
