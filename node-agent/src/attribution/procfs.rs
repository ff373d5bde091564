//! Reading a process's cgroups and parent from procfs.

use std::path::Path;

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub hierarchy: u32,
    pub controllers: String,
    pub path: String,
}

pub fn parse_cgroup_file(text: &str) -> Vec<CgroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            Some(CgroupEntry {
                hierarchy: parts.next()?.parse().ok()?,
                controllers: parts.next()?.to_string(),
                path: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// The path that best identifies the workload. On cgroup v2 that is the unified path; on
/// v1/hybrid hosts container runtimes place processes in every controller, and a non-root
/// `memory` path (the limit that OOM-kills) is preferred, then `cpu`, `pids`, any other.
pub fn workload_cgroup_path(entries: &[CgroupEntry]) -> String {
    let non_root = |e: &&CgroupEntry| e.path != "/";
    let by_controller = |name: &str| {
        entries
            .iter()
            .filter(non_root)
            .find(|e| e.controllers.split(',').any(|c| c == name))
    };
    entries
        .iter()
        .filter(non_root)
        .find(|e| e.hierarchy == 0)
        .or_else(|| by_controller("memory"))
        .or_else(|| by_controller("cpu"))
        .or_else(|| by_controller("pids"))
        .or_else(|| {
            entries
                .iter()
                .filter(non_root)
                .find(|e| !e.controllers.starts_with("name="))
        })
        .map(|e| e.path.clone())
        .unwrap_or_else(|| "/".to_string())
}

/// What procfs says about a live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub cgroup_path: String,
    pub ppid: u32,
    pub comm: String,
}

/// Reads `/proc/<pid>/{cgroup,stat}`; `None` when the process is gone.
pub fn read_proc(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let cgroups = std::fs::read_to_string(dir.join("cgroup")).ok()?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid) = parse_stat(&stat)?;
    Some(ProcInfo {
        cgroup_path: workload_cgroup_path(&parse_cgroup_file(&cgroups)),
        ppid,
        comm,
    })
}

/// `pid (comm) state ppid ...`; comm may contain spaces and parentheses, so split at the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((comm, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_prefers_unified_then_memory() {
        let hybrid = "12:pids:/\n11:memory:/vigil-test/oom-1\n4:cpu,cpuacct:/other\n1:name=systemd:/x\n0::/\n";
        assert_eq!(
            workload_cgroup_path(&parse_cgroup_file(hybrid)),
            "/vigil-test/oom-1"
        );
        let v2 = "0::/system.slice/nginx.service\n";
        assert_eq!(
            workload_cgroup_path(&parse_cgroup_file(v2)),
            "/system.slice/nginx.service"
        );
        let root = "5:memory:/\n0::/\n";
        assert_eq!(workload_cgroup_path(&parse_cgroup_file(root)), "/");
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        assert_eq!(
            parse_stat("42 (my (weird) cmd) S 7 42 42 0"),
            Some(("my (weird) cmd".into(), 7))
        );
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let info = read_proc(Path::new("/proc"), me).expect("own process is readable");
        assert_eq!(info.ppid, nix::unistd::getppid().as_raw() as u32);
    }
}
