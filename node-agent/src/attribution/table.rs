//! The agent's process table: what each live process belongs to.
//!
//! The kernel event says which pid; the table says which workload. Entries are made when a
//! process execs (it is alive, so procfs is exact) and at start-up for processes already
//! running; they are read when the process later exits or is OOM-killed, when procfs may
//! already have forgotten it.

use std::{collections::HashMap, path::PathBuf};

use super::{
    procfs::{read_proc, ProcInfo},
    workload::{workload_from_cgroup_path, Workload},
};

/// A workload plus whether this process is its root (its parent lives elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub workload: Workload,
    pub cgroup_path: String,
    pub ppid: u32,
    pub is_root_process: bool,
    /// When it started, in clock ticks since boot (unknown: 0).
    pub start_ticks: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    info: ProcInfo,
    workload_key: String,
    attribution: Attribution,
}

pub struct ProcessTable {
    proc_root: PathBuf,
    entries: HashMap<u32, Entry>,
    /// Bound on entries; past it the table is rebuilt from procfs (processes that exited
    /// without an exit event, e.g. while the agent was lagging, are purged that way).
    capacity: usize,
}

impl ProcessTable {
    pub fn new(proc_root: impl Into<PathBuf>, capacity: usize) -> Self {
        Self {
            proc_root: proc_root.into(),
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Records every process currently running.
    pub fn scan(&mut self) -> usize {
        self.entries.clear();
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return 0;
        };
        let pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for pid in pids {
            if let Some(info) = read_proc(&self.proc_root, pid) {
                let entry = self.entry_for(info);
                self.entries.insert(pid, entry);
            }
        }
        // A host with more live processes than the bound would otherwise rescan on every
        // exec: keep headroom above what is alive.
        self.capacity = self.capacity.max(self.entries.len() * 2);
        self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Re-reads `pid` from procfs (after exec); returns its attribution if it is alive.
    pub fn refresh(&mut self, pid: u32) -> Option<Attribution> {
        if self.entries.len() >= self.capacity {
            self.scan();
        }
        let info = read_proc(&self.proc_root, pid)?;
        let entry = self.entry_for(info);
        let attribution = entry.attribution.clone();
        self.entries.insert(pid, entry);
        Some(attribution)
    }

    fn entry_for(&self, info: ProcInfo) -> Entry {
        let workload = workload_from_cgroup_path(&info.cgroup_path, &info.comm);
        let parent_key = self
            .entries
            .get(&info.ppid)
            .map(|p| p.workload_key.clone())
            .or_else(|| {
                let parent = read_proc(&self.proc_root, info.ppid)?;
                Some(workload_from_cgroup_path(&parent.cgroup_path, &parent.comm).key)
            });
        let is_root_process = parent_key.as_deref() != Some(workload.key.as_str());
        Entry {
            workload_key: workload.key.clone(),
            attribution: Attribution {
                cgroup_path: info.cgroup_path.clone(),
                ppid: info.ppid,
                is_root_process,
                start_ticks: info.start_ticks,
                workload,
            },
            info,
        }
    }

    /// The attribution of `pid`: the table's (recorded while it was alive), else procfs now.
    pub fn lookup(&mut self, pid: u32) -> Option<Attribution> {
        match self.entries.get(&pid) {
            Some(e) => Some(e.attribution.clone()),
            None => self.refresh(pid),
        }
    }

    /// Forgets a process that exited, returning what it was.
    pub fn remove(&mut self, pid: u32) -> Option<Attribution> {
        let entry = self.entries.remove(&pid);
        match entry {
            Some(e) => Some(e.attribution),
            None => read_proc(&self.proc_root, pid).map(|info| self.entry_for(info).attribution),
        }
    }

    /// The comm recorded for `pid`, if any.
    pub fn comm(&self, pid: u32) -> Option<&str> {
        self.entries.get(&pid).map(|e| e.info.comm.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_self_and_parent_relationship() {
        let mut table = ProcessTable::new("/proc", 100_000);
        assert!(table.scan() > 1);
        let me = std::process::id();
        let a = table.lookup(me).expect("self is in the table");
        assert_eq!(a.ppid, nix::unistd::getppid().as_raw() as u32);
        assert!(table.remove(me).is_some());
        // Removed entries fall back to procfs while the process lives.
        assert!(table.lookup(me).is_some());
    }
}
