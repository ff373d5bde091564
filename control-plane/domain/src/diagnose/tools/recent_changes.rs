//! `recent_changes`: what changed in an entity lately — programs executed that it had not run
//! before (a new binary), restarts, and on Kubernetes the revisions of the Deployment behind
//! it (its ReplicaSets). A new binary followed by failures is a bad deploy; so is trouble in a
//! pod of a revision rolled out shortly before it.

use std::collections::BTreeSet;

use crate::{
    diagnose::{
        ports::{Rollout, Sources},
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
            description: "Changes to one entity around the incident: programs it executed for the first time (a new binary), restarts of its main process, and on Kubernetes the Deployment revisions rolled out (images before and after).",
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
        let rollouts: Vec<Rollout> = sources
            .changes
            .rollouts(&scope.entity, scope.before_from_unix_ns())?
            .into_iter()
            .filter(|r| r.at_unix_ns <= scope.to_unix_ns)
            .collect();
        let mut obs = vec![
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
        obs.extend(rollouts.iter().map(|r| {
            let before = (scope.onset_unix_ns() - r.at_unix_ns) as f64 / 1e9;
            Observation::new(
                format!("{} revision {} rolled out", r.controller, r.revision),
                before,
                "s before the symptom",
            )
            .detail(rollout_detail(r))
            .weight(if r.runs_it { 4.0 } else { 1.5 })
        }));
        let mut votes = Vec::new();
        // The entity runs a revision rolled out within the look-back: the symptom is the
        // first thing that revision did wrong. Stronger when the kernel saw it fail.
        if let Some(r) = rollouts.iter().rev().find(|r| r.runs_it) {
            votes.push(Vote::new(
                FaultClass::BadDeploy,
                if failures > 0 { 0.5 } else { 0.35 },
                format!(
                    "runs {} revision {}, rolled out {:.0} s before the symptom{}",
                    r.controller,
                    r.revision,
                    (scope.onset_unix_ns() - r.at_unix_ns) as f64 / 1e9,
                    if failures > 0 {
                        format!(", then {failures} failure(s)")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
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
            "{restarts} starts, {} new program(s) in the window, {} rollout(s)",
            new_binaries.len(),
            rollouts.len()
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

/// What a rollout changed: its images against the revision before it.
fn rollout_detail(r: &Rollout) -> String {
    let images = r.images.join(", ");
    let runs = if r.runs_it {
        "this entity runs it"
    } else {
        "this entity runs an older revision"
    };
    if r.previous_images.is_empty() {
        format!("images {images}; {runs}")
    } else if r.previous_images == r.images {
        format!("images unchanged ({images}): the pod template's configuration changed; {runs}")
    } else {
        format!(
            "images {images} (were {}); {runs}",
            r.previous_images.join(", ")
        )
    }
}
