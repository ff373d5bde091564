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
    /// When it started, in clock ticks since boot (`stat` field 22).
    pub start_ticks: u64,
}

/// Reads `/proc/<pid>/{cgroup,stat}`; `None` when the process is gone.
pub fn read_proc(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let cgroups = std::fs::read_to_string(dir.join("cgroup")).ok()?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid, start_ticks) = parse_stat(&stat)?;
    Some(ProcInfo {
        cgroup_path: workload_cgroup_path(&parse_cgroup_file(&cgroups)),
        ppid,
        comm,
        start_ticks,
    })
}

/// Clock ticks per second, as `stat`'s times count them.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// Nanoseconds since boot (CLOCK_BOOTTIME, the clock `stat`'s start time counts on).
fn boottime_ns() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    u64::try_from(t.tv_sec())
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec()).ok()?)
}

/// How long a process that started at `start_ticks` has lived until now, in milliseconds.
pub fn lifetime_ms(start_ticks: u64) -> Option<u64> {
    let started_ns = start_ticks.checked_mul(1_000_000_000)? / ticks_per_second();
    Some(boottime_ns()?.checked_sub(started_ns)? / 1_000_000)
}

/// `pid (comm) state ppid ... starttime ...` → (comm, ppid, starttime); comm may contain
/// spaces and parentheses, so split at the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // Fields after the comm, from field 3 (state): ppid is field 4, starttime field 22.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let start_ticks = rest.get(19).and_then(|f| f.parse().ok()).unwrap_or(0);
    Some((comm, ppid, start_ticks))
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
            Some(("my (weird) cmd".into(), 7, 0))
        );
        let full = "42 (sh) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5113 2277376 100";
        assert_eq!(parse_stat(full).map(|s| s.2), Some(5113));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let info = read_proc(Path::new("/proc"), me).expect("own process is readable");
        assert_eq!(info.ppid, nix::unistd::getppid().as_raw() as u32);
        let lived = lifetime_ms(info.start_ticks).expect("a lifetime");
        assert!(
            lived < 24 * 3600 * 1000,
            "this test has not run for a day: {lived} ms"
        );
    }
}
