//! This host's cgroup-v1 limits: a `cgroup/<path>` workload's memory limit
//! (`memory.limit_in_bytes`) and CPU quota (`cpu.cfs_quota_us`) under the v1 hierarchies,
//! raised by a playbook's factor and written back on undo — unless someone changed it since,
//! whose change then stands. A workload with no limit (or no v1 cgroup) is refused: there is
//! nothing Vigil could verify or undo.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::domain::{
    entity::EntityId,
    remediate::{
        ports::{Runtime, RuntimeError},
        ActionClass, Applied, Step,
    },
};

/// cgroup-v1 reports "no limit" as the largest page-aligned i64.
const UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

pub struct CgroupLimits {
    memory_root: PathBuf,
    cpu_root: PathBuf,
}

impl CgroupLimits {
    pub fn new(memory_root: impl Into<PathBuf>, cpu_root: impl Into<PathBuf>) -> Self {
        Self {
            memory_root: memory_root.into(),
            cpu_root: cpu_root.into(),
        }
    }

    /// The host's v1 hierarchies.
    pub fn host() -> Self {
        Self::new("/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu")
    }
}

fn failed(class: ActionClass, target: &EntityId, why: impl Into<String>) -> RuntimeError {
    RuntimeError::Failed {
        action: class.as_str(),
        target: target.clone(),
        why: why.into(),
    }
}

/// The cgroup directory of `target` under `root`, refusing anything but a plain relative path.
fn cgroup_dir(root: &Path, class: ActionClass, target: &EntityId) -> Result<PathBuf, RuntimeError> {
    let rel = target
        .as_str()
        .strip_prefix("cgroup/")
        .filter(|r| !r.is_empty() && r.split('/').all(|s| !s.is_empty() && s != "." && s != ".."))
        .ok_or_else(|| RuntimeError::Unsupported {
            runtime: "local",
            action: class.as_str(),
            why: format!("{target} is not a cgroup/<path> workload of this host"),
        })?;
    let dir = root.join(rel);
    if !dir.is_dir() {
        return Err(failed(
            class,
            target,
            format!("no cgroup-v1 directory {}", dir.display()),
        ));
    }
    Ok(dir)
}

fn read_number(path: &Path, class: ActionClass, target: &EntityId) -> Result<i64, RuntimeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| failed(class, target, format!("reading {}: {e}", path.display())))?;
    text.trim().parse::<i64>().map_err(|e| {
        failed(
            class,
            target,
            format!("{} holds {:?}: {e}", path.display(), text.trim()),
        )
    })
}

/// How long a write is retried while the kernel answers EBUSY.
const BUSY_FOR: std::time::Duration = std::time::Duration::from_secs(3);

fn write_number(
    path: &Path,
    value: i64,
    class: ActionClass,
    target: &EntityId,
) -> Result<(), RuntimeError> {
    // A v1 memory limit below what the cgroup uses is refused with EBUSY until the kernel
    // has reclaimed enough (or the workload has shrunk, or restarted): every write retries for
    // a while, then says so.
    let until = std::time::Instant::now() + BUSY_FOR;
    loop {
        match std::fs::write(path, value.to_string()) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::ResourceBusy
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::ResourceBusy {
                    format!(
                        "writing {value} to {}: the workload still uses more than that after {} s ({e})",
                        path.display(),
                        BUSY_FOR.as_secs()
                    )
                } else {
                    format!("writing {value} to {}: {e}", path.display())
                };
                return Err(failed(class, target, why));
            }
        }
    }
}

impl Runtime for CgroupLimits {
    fn name(&self) -> &'static str {
        "local"
    }

    fn supports(&self, class: ActionClass) -> bool {
        matches!(
            class,
            ActionClass::RaiseMemoryLimit | ActionClass::ChangeCpuQuota
        )
    }

    fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        let class = step.action;
        let (root, file) = match class {
            ActionClass::RaiseMemoryLimit => (&self.memory_root, "memory.limit_in_bytes"),
            ActionClass::ChangeCpuQuota => (&self.cpu_root, "cpu.cfs_quota_us"),
            _ => {
                return Err(RuntimeError::Unsupported {
                    runtime: "local",
                    action: class.as_str(),
                    why: "it changes cgroup-v1 memory limits and CPU quotas only".into(),
                })
            }
        };
        let path = cgroup_dir(root, class, target)?.join(file);
        let old = read_number(&path, class, target)?;
        if old < 0 || old as u64 >= UNLIMITED {
            return Err(failed(
                class,
                target,
                format!("{} sets no limit to raise", path.display()),
            ));
        }
        // Checked at load: a factor within the playbook's safe range.
        let factor = step.number("factor").unwrap_or(1.0);
        let mut new = (old as f64 * factor).round() as i64;
        if let Some(max) = step.number("max_bytes") {
            new = new.min(max as i64);
        }
        if new <= old {
            return Err(failed(
                class,
                target,
                format!("{} is at its ceiling ({old})", path.display()),
            ));
        }
        write_number(&path, new, class, target)?;
        Ok(Applied {
            detail: format!("{} of {target}: {old} -> {new}", file),
            inverse: json!({"file": path, "value": old, "set": new, "class": class}),
        })
    }

    fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        let class: ActionClass =
            serde_json::from_value(applied.inverse["class"].clone()).map_err(|e| {
                failed(
                    ActionClass::RaiseMemoryLimit,
                    target,
                    format!("the recorded inverse names no action: {e}"),
                )
            })?;
        let (Some(path), Some(value)) = (
            applied.inverse["file"].as_str(),
            applied.inverse["value"].as_i64(),
        ) else {
            return Err(failed(
                class,
                target,
                "the recorded inverse has no file and value",
            ));
        };
        // Only a file under this runtime's own hierarchies is ever written back.
        let path = PathBuf::from(path);
        if !(path.starts_with(&self.memory_root) || path.starts_with(&self.cpu_root)) {
            return Err(failed(
                class,
                target,
                format!("{} is outside the cgroup hierarchies", path.display()),
            ));
        }
        // Undo only what is still Vigil's: a limit someone changed since is theirs now.
        if let Some(set) = applied.inverse["set"].as_i64() {
            let now = read_number(&path, class, target)?;
            if now != set {
                return Err(failed(
                    class,
                    target,
                    format!("{} is {now}, not the {set} Vigil set: someone changed it since; left as it is", path.display()),
                ));
            }
        }
        write_number(&path, value, class, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(class: &str, factor: f64) -> Step {
        serde_saphyr::from_str(&format!("action: {class}\nparams: {{factor: {factor}}}\n"))
            .expect("step")
    }

    /// A v1-shaped hierarchy in a temporary directory (the kernel's own is driven by the
    /// privileged end-to-end tests).
    fn hierarchy(limit: &str) -> (tempfile::TempDir, CgroupLimits) {
        let dir = tempfile::tempdir().expect("dir");
        let app = dir.path().join("memory/shop/app");
        std::fs::create_dir_all(&app).expect("mkdir");
        std::fs::write(app.join("memory.limit_in_bytes"), limit).expect("write");
        std::fs::create_dir_all(dir.path().join("cpu")).expect("mkdir");
        let rt = CgroupLimits::new(dir.path().join("memory"), dir.path().join("cpu"));
        (dir, rt)
    }

    #[test]
    fn a_memory_limit_is_raised_and_written_back() {
        let (dir, rt) = hierarchy("100663296\n");
        let target = EntityId::new("cgroup/shop/app");
        let applied = rt
            .apply(&target, &step("raise_memory_limit", 1.5))
            .expect("apply");
        let file = dir.path().join("memory/shop/app/memory.limit_in_bytes");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "150994944");
        assert!(
            applied.detail.contains("100663296 -> 150994944"),
            "{}",
            applied.detail
        );
        rt.undo(&target, &applied).expect("undo");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "100663296");
        // Raised again, then changed by someone else: the undo leaves their value.
        let applied = rt
            .apply(&target, &step("raise_memory_limit", 1.5))
            .expect("apply");
        std::fs::write(&file, "209715200").expect("an operator's change");
        let e = rt
            .undo(&target, &applied)
            .expect_err("not Vigil's any more");
        assert!(e.to_string().contains("someone changed it since"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "209715200");
    }

    #[test]
    fn no_limit_an_unknown_workload_or_an_escape_is_refused() {
        let (_dir, rt) = hierarchy("9223372036854771712\n");
        let e = rt
            .apply(
                &EntityId::new("cgroup/shop/app"),
                &step("raise_memory_limit", 1.5),
            )
            .expect_err("unlimited");
        assert!(e.to_string().contains("no limit to raise"), "{e}");
        let e = rt
            .apply(
                &EntityId::new("cgroup/../etc"),
                &step("raise_memory_limit", 1.5),
            )
            .expect_err("escape");
        assert!(
            e.to_string().contains("not a cgroup/<path> workload"),
            "{e}"
        );
        let e = rt
            .apply(
                &EntityId::new("k8s-pod/abc"),
                &step("raise_memory_limit", 1.5),
            )
            .expect_err("a pod");
        assert!(
            e.to_string().contains("not a cgroup/<path> workload"),
            "{e}"
        );
        let forged = Applied {
            detail: String::new(),
            inverse: json!({"file": "/etc/passwd", "value": 1, "class": "raise_memory_limit"}),
        };
        let e = rt
            .undo(&EntityId::new("cgroup/shop/app"), &forged)
            .expect_err("outside");
        assert!(
            e.to_string().contains("outside the cgroup hierarchies"),
            "{e}"
        );
    }
}
