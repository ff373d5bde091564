//! cgroup id → cgroup path, for the cgroup-v2 hierarchy.
//!
//! `bpf_get_current_cgroup_id()` returns the kernfs id of the task's cgroup-v2 directory,
//! which is that directory's inode number on 64-bit kernels. Walking the cgroup2 mount maps
//! ids back to paths. This is how events of processes already gone from procfs (a forked
//! child that crashed and was reaped within milliseconds) are still attributed.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// An id a rescan did not find is looked for again at most this often, so a burst of events
/// from a cgroup that no longer exists cannot turn into a burst of directory walks. An id
/// never looked for always gets its rescan: new cgroups (container starts) are common.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on remembered misses.
const MAX_MISSES: usize = 4096;

pub struct CgroupIndex {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    misses: HashMap<u64, Instant>,
    /// Directory walks done, for tests and diagnostics.
    pub scans: u64,
}

/// The cgroup2 mount point from a mountinfo text (`/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        mount.split_whitespace().nth(4).map(PathBuf::from)
    })
}

impl CgroupIndex {
    /// An index over the host's cgroup2 mount, or an empty one when there is none.
    pub fn discover() -> Self {
        let root = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| cgroup2_mount(&m));
        Self::new(root)
    }

    pub fn new(root: Option<PathBuf>) -> Self {
        Self {
            root,
            paths: HashMap::new(),
            misses: HashMap::new(),
            scans: 0,
        }
    }

    /// The path of cgroup `id` relative to the hierarchy root ("/" for the root).
    pub fn resolve(&mut self, id: u64) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        if self
            .misses
            .get(&id)
            .is_some_and(|t| t.elapsed() < RESCAN_INTERVAL)
        {
            return None;
        }
        self.scan();
        let found = self.paths.get(&id).cloned();
        if found.is_none() {
            if self.misses.len() >= MAX_MISSES {
                self.misses.clear();
            }
            self.misses.insert(id, Instant::now());
        }
        found
    }

    fn scan(&mut self) {
        self.scans += 1;
        let Some(root) = self.root.clone() else {
            return;
        };
        self.paths.clear();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let relative = dir
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            self.paths
                .insert(meta.ino(), format!("/{}", relative.display()));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            stack.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mount_in_mountinfo() {
        let hybrid = "35 25 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755\n\
                      36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                      37 35 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("37 35 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn maps_directory_inodes_to_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("kubepods.slice/pod-a");
        std::fs::create_dir_all(&nested).expect("mkdir");
        let id = std::fs::metadata(&nested).expect("stat").ino();
        let root_id = std::fs::metadata(dir.path()).expect("stat").ino();
        let mut index = CgroupIndex::new(Some(dir.path().to_path_buf()));
        assert_eq!(index.resolve(id).as_deref(), Some("/kubepods.slice/pod-a"));
        assert_eq!(index.resolve(root_id).as_deref(), Some("/"));
        // A cgroup made after the last scan is found at once: its id was never looked for.
        let later = dir.path().join("late");
        std::fs::create_dir(&later).expect("mkdir");
        let late_id = std::fs::metadata(&later).expect("stat").ino();
        assert_eq!(index.resolve(late_id).as_deref(), Some("/late"));
        // An unknown id is rescanned for once, then not again within the interval.
        let scans = index.scans;
        assert_eq!(index.resolve(u64::MAX), None);
        assert_eq!(index.resolve(u64::MAX), None);
        assert_eq!(index.scans, scans + 1);
        index
            .misses
            .insert(u64::MAX, Instant::now() - RESCAN_INTERVAL);
        assert_eq!(index.resolve(u64::MAX), None);
        assert_eq!(index.scans, scans + 2);
    }
}
