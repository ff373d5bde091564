//! The starter corpus shipped in the binary: a runbook for every fault class and runbooks for
//! operating Vigil itself (`control-plane/corpus/`). Written into the corpus directory where
//! missing, so the default works with no configuration and an operator's edits are kept.

use std::path::Path;

use tracing::info;

use crate::domain::retrieve::ports::CorpusError;

/// (path in the corpus, text).
pub const STARTER: &[(&str, &str)] = &[
    (
        "runbooks/app_errors.md",
        include_str!("../../../corpus/runbooks/app_errors.md"),
    ),
    (
        "runbooks/app_latency.md",
        include_str!("../../../corpus/runbooks/app_latency.md"),
    ),
    (
        "runbooks/bad_deploy.md",
        include_str!("../../../corpus/runbooks/bad_deploy.md"),
    ),
    (
        "runbooks/bandwidth_saturation.md",
        include_str!("../../../corpus/runbooks/bandwidth_saturation.md"),
    ),
    (
        "runbooks/certificate_expiry.md",
        include_str!("../../../corpus/runbooks/certificate_expiry.md"),
    ),
    (
        "runbooks/cpu_throttling.md",
        include_str!("../../../corpus/runbooks/cpu_throttling.md"),
    ),
    (
        "runbooks/crash_loop.md",
        include_str!("../../../corpus/runbooks/crash_loop.md"),
    ),
    (
        "runbooks/credential_failure.md",
        include_str!("../../../corpus/runbooks/credential_failure.md"),
    ),
    (
        "runbooks/dependency_down.md",
        include_str!("../../../corpus/runbooks/dependency_down.md"),
    ),
    (
        "runbooks/dependency_errors.md",
        include_str!("../../../corpus/runbooks/dependency_errors.md"),
    ),
    (
        "runbooks/disk_full.md",
        include_str!("../../../corpus/runbooks/disk_full.md"),
    ),
    (
        "runbooks/dns_failure.md",
        include_str!("../../../corpus/runbooks/dns_failure.md"),
    ),
    (
        "runbooks/io_latency.md",
        include_str!("../../../corpus/runbooks/io_latency.md"),
    ),
    (
        "runbooks/memory_pressure.md",
        include_str!("../../../corpus/runbooks/memory_pressure.md"),
    ),
    (
        "runbooks/network_latency.md",
        include_str!("../../../corpus/runbooks/network_latency.md"),
    ),
    (
        "runbooks/network_loss.md",
        include_str!("../../../corpus/runbooks/network_loss.md"),
    ),
    (
        "runbooks/oom_kill.md",
        include_str!("../../../corpus/runbooks/oom_kill.md"),
    ),
    (
        "runbooks/partition.md",
        include_str!("../../../corpus/runbooks/partition.md"),
    ),
    (
        "runbooks/permission_denied.md",
        include_str!("../../../corpus/runbooks/permission_denied.md"),
    ),
    (
        "runbooks/process_killed.md",
        include_str!("../../../corpus/runbooks/process_killed.md"),
    ),
    (
        "runbooks/replica_shortage.md",
        include_str!("../../../corpus/runbooks/replica_shortage.md"),
    ),
    (
        "runbooks/vigil/approval-gate-broken.md",
        include_str!("../../../corpus/ops/approval-gate-broken.md"),
    ),
    (
        "runbooks/vigil/false-positive.md",
        include_str!("../../../corpus/ops/false-positive.md"),
    ),
    (
        "runbooks/vigil/hallucinated-citation.md",
        include_str!("../../../corpus/ops/hallucinated-citation.md"),
    ),
    (
        "runbooks/vigil/llm-loop-stuck.md",
        include_str!("../../../corpus/ops/llm-loop-stuck.md"),
    ),
    (
        "runbooks/vigil/stale-corpus-index.md",
        include_str!("../../../corpus/ops/stale-corpus-index.md"),
    ),
];

/// Writes every starter document that is not in `dir` yet; returns how many were written.
pub fn seed(dir: &Path) -> Result<usize, CorpusError> {
    let mut written = 0;
    for (rel, text) in STARTER {
        let path = dir.join(rel);
        if path.exists() {
            continue;
        }
        let write = |e: std::io::Error| CorpusError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write)?;
        }
        std::fs::write(&path, text).map_err(write)?;
        written += 1;
    }
    if written > 0 {
        info!(dir = %dir.display(), written, "starter runbooks written into the corpus");
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::diagnose::FaultClass;

    #[test]
    fn every_fault_class_has_a_starter_runbook_that_parses() {
        let docs: Vec<_> = STARTER
            .iter()
            .map(|(rel, text)| super::super::parse(Path::new(rel), text).expect(rel))
            .collect();
        for class in FaultClass::ALL {
            assert!(
                docs.iter().any(|d| d.classes == vec![class]),
                "no runbook for {class:?}"
            );
        }
        let ops = docs.iter().filter(|d| d.classes.is_empty()).count();
        assert!(ops >= 5, "runbooks for operating Vigil: {ops}");
    }
}
