//! `workload_logs`: an entity's newest log lines (Kubernetes pod logs, or a configured file),
//! the ones that say what went wrong first. Phrases that name a cause vote for it, weakly: a
//! log says what the program thinks, the kernel what happened.

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
    },
    store::StoreError,
};

pub struct WorkloadLogs;

const MAX_LINES: usize = 200;

/// Lower-case phrases and the class they name.
const PHRASES: [(&str, FaultClass); 14] = [
    ("permission denied", FaultClass::PermissionDenied),
    ("operation not permitted", FaultClass::PermissionDenied),
    ("no space left on device", FaultClass::DiskFull),
    ("wrongpass", FaultClass::CredentialFailure),
    ("noauth", FaultClass::CredentialFailure),
    ("authentication failed", FaultClass::CredentialFailure),
    ("token expired", FaultClass::CredentialFailure),
    ("unauthorized", FaultClass::CredentialFailure),
    ("certificate has expired", FaultClass::CertificateExpiry),
    ("connection refused", FaultClass::DependencyDown),
    ("name or service not known", FaultClass::DnsFailure),
    ("no such host", FaultClass::DnsFailure),
    ("out of memory", FaultClass::MemoryPressure),
    ("exec format error", FaultClass::BadDeploy),
];

impl EvidenceTool for WorkloadLogs {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "workload_logs",
            description: "The newest log lines of one entity (pod logs on Kubernetes, a configured file locally), those naming an error first.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let lines = sources
            .logs
            .tail(&scope.entity, scope.from_unix_ns, MAX_LINES)?;
        let mut obs = Vec::new();
        let mut hits: Vec<(FaultClass, u32, String)> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let lower = line.to_lowercase();
            let named = PHRASES.iter().find(|(p, _)| lower.contains(p));
            if let Some((_, class)) = named {
                match hits.iter_mut().find(|h| h.0 == *class) {
                    Some(h) => h.1 += 1,
                    None => hits.push((*class, 1, line.clone())),
                }
            }
            let erroring = named.is_some() || lower.contains("error") || lower.contains("fatal");
            obs.push(
                Observation::new(line.chars().take(300).collect::<String>(), 1.0, "line").weight(
                    if erroring { 10.0 } else { 0.0 } + i as f64 / lines.len().max(1) as f64,
                ),
            );
        }
        let votes = hits
            .iter()
            .map(|(class, n, line)| {
                Vote::new(
                    *class,
                    0.4,
                    format!(
                        "{n} log line(s) like: {}",
                        line.chars().take(160).collect::<String>()
                    ),
                )
            })
            .collect();
        let summary = if lines.is_empty() {
            "no logs configured or found for this entity".to_string()
        } else {
            format!(
                "{} lines read, {} naming a cause",
                lines.len(),
                hits.iter().map(|h| h.1).sum::<u32>()
            )
        };
        Ok(ToolOutput::new("workload_logs", scope, summary, obs, votes))
    }
}
