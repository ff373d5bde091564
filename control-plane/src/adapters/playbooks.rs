//! Playbooks from YAML: the ones Vigil ships (embedded, so the default works with no files),
//! or every `*.yaml` of a configured directory instead. A file that does not parse, names an
//! action or a class that does not exist, or gives an action a parameter it does not take is
//! refused naming the file and the line.

use std::path::{Path, PathBuf};

use crate::domain::remediate::{Playbook, Playbooks};

/// The playbooks Vigil ships, one per fault class that has a safe action.
pub const SHIPPED: [(&str, &str); 16] = [
    (
        "oom_kill.yaml",
        include_str!("../../playbooks/oom_kill.yaml"),
    ),
    (
        "memory_pressure.yaml",
        include_str!("../../playbooks/memory_pressure.yaml"),
    ),
    (
        "cpu_throttling.yaml",
        include_str!("../../playbooks/cpu_throttling.yaml"),
    ),
    (
        "crash_loop.yaml",
        include_str!("../../playbooks/crash_loop.yaml"),
    ),
    (
        "bad_deploy.yaml",
        include_str!("../../playbooks/bad_deploy.yaml"),
    ),
    (
        "process_killed.yaml",
        include_str!("../../playbooks/process_killed.yaml"),
    ),
    (
        "replica_shortage.yaml",
        include_str!("../../playbooks/replica_shortage.yaml"),
    ),
    (
        "disk_full.yaml",
        include_str!("../../playbooks/disk_full.yaml"),
    ),
    (
        "dns_failure.yaml",
        include_str!("../../playbooks/dns_failure.yaml"),
    ),
    (
        "credential_failure.yaml",
        include_str!("../../playbooks/credential_failure.yaml"),
    ),
    (
        "permission_denied.yaml",
        include_str!("../../playbooks/permission_denied.yaml"),
    ),
    (
        "network_loss.yaml",
        include_str!("../../playbooks/network_loss.yaml"),
    ),
    (
        "network_latency.yaml",
        include_str!("../../playbooks/network_latency.yaml"),
    ),
    (
        "partition.yaml",
        include_str!("../../playbooks/partition.yaml"),
    ),
    (
        "certificate_expiry.yaml",
        include_str!("../../playbooks/certificate_expiry.yaml"),
    ),
    (
        "bandwidth_saturation.yaml",
        include_str!("../../playbooks/bandwidth_saturation.yaml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("cannot read the playbook directory {dir}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the playbook {file}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        file: String,
        line: Option<usize>,
        message: String,
    },
}

/// The line (1-based) of the first step of `action` in `text`, for pointing at a bad one.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Parses one playbook file; `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Playbook, PlaybookError> {
    let playbook: Playbook = serde_saphyr::from_str(text).map_err(|e| PlaybookError::Invalid {
        file: origin.to_string(),
        line: None,
        message: e.to_string(),
    })?;
    for step in &playbook.actions {
        step.check().map_err(|message| PlaybookError::Invalid {
            file: origin.to_string(),
            line: line_of(text, &format!("action: {}", step.action.as_str())),
            message,
        })?;
    }
    Ok(playbook)
}

fn build(files: Vec<(String, String)>) -> Result<Playbooks, PlaybookError> {
    let mut list = Vec::new();
    for (origin, text) in &files {
        list.push((origin.clone(), parse(origin, text)?));
    }
    Playbooks::new(list).map_err(|message| PlaybookError::Invalid {
        file: "playbooks".into(),
        line: None,
        message,
    })
}

/// The shipped playbooks, or those of `dir` instead.
pub fn load(dir: Option<&Path>) -> Result<Playbooks, PlaybookError> {
    let Some(dir) = dir else {
        return build(
            SHIPPED
                .iter()
                .map(|(n, t)| (format!("(shipped) {n}"), t.to_string()))
                .collect(),
        );
    };
    let entries = std::fs::read_dir(dir).map_err(|source| PlaybookError::ReadDir {
        dir: dir.into(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|source| PlaybookError::Read {
            file: p.clone(),
            source,
        })?;
        files.push((p.display().to_string(), text));
    }
    build(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{diagnose::taxonomy::FaultClass, remediate::ActionClass};

    #[test]
    fn the_shipped_playbooks_load_one_per_class() {
        let p = load(None).expect("shipped playbooks");
        assert_eq!(p.all().count(), SHIPPED.len());
        let oom = p.get(FaultClass::OomKill).expect("oom_kill");
        assert_eq!(oom.actions[0].action, ActionClass::RaiseMemoryLimit);
        assert_eq!(oom.actions[0].number("factor"), Some(1.5));
        assert!(
            p.get(FaultClass::AppErrors).is_none(),
            "no safe action: none shipped"
        );
        // Every file in the playbooks directory is one Vigil ships.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("playbooks dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut shipped: Vec<String> = SHIPPED.iter().map(|(f, _)| f.to_string()).collect();
        shipped.sort();
        assert_eq!(files, shipped);
    }

    #[test]
    fn a_bad_playbook_is_refused_naming_the_file_and_line() {
        let e = parse(
            "ops/oom.yaml",
            "class: oom_kill\nactions:\n  - action: raise_memory_limit\n    params: {factor: 9}\n",
        )
        .expect_err("factor out of range");
        assert_eq!(
            e.to_string(),
            "ops/oom.yaml:3: raise_memory_limit.factor is 9; it must be within 1.01..=4"
        );
        let e = parse(
            "ops/x.yaml",
            "class: oom_kill\nactions:\n  - action: restart_process\n",
        )
        .expect_err("no replicas");
        assert!(
            e.to_string().contains("ops/x.yaml:3") && e.to_string().contains("replicas: 1"),
            "{e}"
        );
        let e = parse(
            "ops/y.yaml",
            "class: oom_kill\nactions:\n  - action: reboot_the_world\n",
        )
        .expect_err("unknown action");
        assert!(
            e.to_string().starts_with("ops/y.yaml") && e.to_string().contains("reboot_the_world"),
            "{e}"
        );
        let e = parse(
            "ops/z.yaml",
            "class: oom_kill\nactions:\n  - action: rotate_log\n    params: {keep: 3}\n",
        )
        .expect_err("unknown parameter");
        assert!(
            e.to_string()
                .contains("takes no parameter \"keep\" (it takes: keep_mib)"),
            "{e}"
        );
    }

    #[test]
    fn two_playbooks_for_one_class_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        for n in ["a.yaml", "b.yaml"] {
            std::fs::write(
                dir.path().join(n),
                "class: oom_kill\nactions:\n  - action: raise_memory_limit\n    params: {factor: 2}\n",
            )
            .expect("write");
        }
        let e = load(Some(dir.path())).expect_err("two for oom_kill");
        assert!(
            e.to_string().contains("a second playbook for oom_kill"),
            "{e}"
        );
    }
}
