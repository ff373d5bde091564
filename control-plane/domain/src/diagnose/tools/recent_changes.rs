//! `recent_changes`: what changed in an entity lately — programs executed that it had not run
//! before (a new binary), restarts. On Kubernetes the Deployment's ReplicaSet revisions join
//! through the same output (not wired yet). A new binary followed by failures is a bad deploy.

use std::collections::BTreeSet;

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    event::EventKind,
    store::StoreError,
};

pub struct RecentChanges;

impl EvidenceTool for RecentChanges {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "recent_changes",
            description: "Changes to one entity around the incident: programs it executed for the first time (a new binary), and restarts of its main process.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let split = window::events(sources, scope, None, true)?;
        let exec = |e: &crate::event::StoredEvent| match &e.event.kind {
            EventKind::ProcessExec { filename } => Some(filename.clone()),
            _ => None,
        };
        let known: BTreeSet<String> = split.before.iter().filter_map(exec).collect();
        let mut new_binaries = BTreeSet::new();
        let mut restarts = 0u32;
        for e in &split.during {
            if let Some(f) = exec(e) {
                if e.event.workload.is_root_process {
                    restarts += 1;
                }
                // Only against a history: with nothing before, everything looks new.
                if !known.is_empty() && !known.contains(&f) {
                    new_binaries.insert(f);
                }
            }
        }
        let failures = split.during.iter().filter(|e| e.event.is_crash()).count()
            + split
                .during
                .iter()
                .filter(|e| matches!(e.event.kind, EventKind::ExecFailure { .. }))
                .count();
        let obs = vec![
            Observation::new("main process started", f64::from(restarts), "times").weight(2.0),
            Observation::new(
                "programs run for the first time",
                new_binaries.len() as f64,
                "programs",
            )
            .detail(new_binaries.iter().cloned().collect::<Vec<_>>().join(", "))
            .weight(3.0),
            Observation::new("abnormal endings after", failures as f64, "events").weight(1.0),
        ];
        let mut votes = Vec::new();
        if !new_binaries.is_empty() && failures > 0 {
            votes.push(Vote::new(
                FaultClass::BadDeploy,
                0.5,
                format!(
                    "new program(s) {} then {failures} failure(s)",
                    new_binaries.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let summary = format!(
            "{restarts} starts, {} new program(s) in the window",
            new_binaries.len()
        );
        Ok(ToolOutput::new(
            "recent_changes",
            scope,
            summary,
            obs,
            votes,
        ))
    }
}
