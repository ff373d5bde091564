//! A cgroup made for one test (cgroup-v1 memory, or cgroup v2), removed with everything in
//! it on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

pub struct Cgroup {
    pub name: String,
    pub dir: PathBuf,
}

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const V1_CPU: &str = "/sys/fs/cgroup/cpu";

impl Cgroup {
    /// Creates `/sys/fs/cgroup/memory/<name>`, with a hard limit when given.
    pub fn memory_v1(name: &str, limit_bytes: Option<u64>) -> Self {
        let cg = Self::create_in(Path::new(V1_MEMORY), name);
        if let Some(limit) = limit_bytes {
            cg.write("memory.limit_in_bytes", &limit.to_string());
        }
        cg
    }

    /// Creates `/sys/fs/cgroup/cpu/<name>` with a CFS quota of `quota_us` per 100 ms period.
    pub fn cpu_v1(name: &str, quota_us: u64) -> Self {
        let cg = Self::create_in(Path::new(V1_CPU), name);
        cg.write("cpu.cfs_period_us", "100000");
        cg.write("cpu.cfs_quota_us", &quota_us.to_string());
        cg
    }

    /// Makes `command` join every one of `groups` before it execs (one workload in several
    /// hierarchies under one name, as container runtimes lay it out).
    pub fn place_in_all(groups: &[&Cgroup], command: &mut Command) {
        let procs = groups.iter().map(|g| g.dir.join("cgroup.procs")).collect();
        fault_lab::testbed::cgroups::join_on_exec(command, procs);
    }

    /// Creates `<name>` in the cgroup-v2 hierarchy (`/sys/fs/cgroup/unified` on hybrid hosts,
    /// `/sys/fs/cgroup` on v2 hosts).
    pub fn unified(name: &str) -> Self {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.controllers").exists())
            .expect("no cgroup-v2 hierarchy at /sys/fs/cgroup/unified or /sys/fs/cgroup");
        Self::create_in(root, name)
    }

    fn create_in(hierarchy: &Path, name: &str) -> Self {
        let dir = hierarchy.join(name);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create {} (needs root): {e}", dir.display()));
        Self {
            name: name.to_string(),
            dir,
        }
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("writing {value} to {}: {e}", path.display()));
    }

    /// The cgroup path as processes see it in `/proc/<pid>/cgroup`.
    pub fn path(&self) -> String {
        format!("/{}", self.name)
    }

    /// Makes `command` join this cgroup between fork and exec, the way container runtimes
    /// place a workload before it starts.
    pub fn place(&self, command: &mut Command) {
        fault_lab::testbed::cgroups::join_on_exec(command, vec![self.dir.join("cgroup.procs")]);
    }

    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for pid in self.pids() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if std::fs::remove_dir(&self.dir).is_ok()
                || !self.dir.exists()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
