//! Resource pressure per workload cgroup, read from the cgroup files (no eBPF needed): memory
//! usage, working set and limit; PSI stall time for memory, CPU and IO; CFS throttling.
//!
//! Only cgroups that showed up in this interval's kernel aggregates (or recently) are read,
//! so the cost follows the number of live workloads, never the number of processes. Paths are
//! the cgroup-v2 path (what the kernel's cgroup ids name); on a hybrid host the v1 memory and
//! cpu hierarchies are read at the same relative path, as container runtimes and systemd lay
//! them out. A file that is absent (no PSI, no v1 controller) leaves its field unset.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use vigil_proto::v1;

/// Where the hierarchies are mounted.
#[derive(Debug, Clone, Default)]
pub struct CgroupRoots {
    pub v2: Option<PathBuf>,
    pub memory_v1: Option<PathBuf>,
    pub cpu_v1: Option<PathBuf>,
}

impl CgroupRoots {
    /// From a mountinfo text: the cgroup2 mount and the v1 mounts holding `memory` and `cpu`.
    pub fn from_mountinfo(mountinfo: &str) -> Self {
        let mut roots = Self::default();
        for line in mountinfo.lines() {
            let Some((mount, fs)) = line.split_once(" - ") else {
                continue;
            };
            let Some(point) = mount.split_whitespace().nth(4).map(PathBuf::from) else {
                continue;
            };
            let mut fs = fs.split_whitespace();
            let (kind, options) = (fs.next(), fs.nth(1).unwrap_or(""));
            match kind {
                Some("cgroup2") if roots.v2.is_none() => roots.v2 = Some(point),
                Some("cgroup") => {
                    let has = |c: &str| options.split(',').any(|o| o == c);
                    if has("memory") && roots.memory_v1.is_none() {
                        roots.memory_v1 = Some(point.clone());
                    }
                    if has("cpu") && roots.cpu_v1.is_none() {
                        roots.cpu_v1 = Some(point);
                    }
                }
                _ => {}
            }
        }
        roots
    }

    pub fn discover() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| Self::from_mountinfo(&m))
            .unwrap_or_default()
    }
}

/// Counters that only grow, as last read, to ship their deltas.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// The CFS figures came from v2 `cpu.stat` (a delta is taken only within one source).
    cpu_from_v2: bool,
    periods: u64,
    throttled_periods: u64,
    throttled_us: u64,
    memory_stall_us: Option<u64>,
    cpu_stall_us: Option<u64>,
    io_stall_us: Option<u64>,
}

/// A cgroup is still read this many intervals after it was last seen active.
const KEEP_INTERVALS: u64 = 60;

/// How long a cgroup's answer to "does v2 `cpu.stat` carry the throttling fields" is kept
/// before it is asked again (the cpu controller can be enabled on v2 later).
const REPROBE_INTERVALS: u64 = 30;

pub struct ResourceReader {
    roots: CgroupRoots,
    /// Most cgroups read per interval.
    cap: usize,
    last: HashMap<u64, Counters>,
    /// cgroup id → (path, interval it was last seen active in).
    tracked: HashMap<u64, (String, u64)>,
    /// cgroup id → (whether its v2 `cpu.stat` has the throttling fields, interval asked).
    /// Reading v2 `cpu.stat` flushes the kernel's per-CPU cgroup statistics (rstat), whose
    /// cost grows with the cgroups on the node: on a hybrid host, where the cpu controller
    /// is on v1 and the v2 file has no throttling fields, that read was most of the agent's
    /// time with 1,000 workloads (perf: `css_rstat_flush` under `cpu_stat_show`).
    cpu_on_v2: HashMap<u64, (bool, u64)>,
    interval: u64,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The `some` line's `total=` of a PSI file: µs any task waited, since boot.
fn psi_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// A v1 limit this large is "no limit" (the kernel reports PAGE_COUNTER_MAX in bytes).
const UNLIMITED_V1: u64 = 1 << 60;

impl ResourceReader {
    pub fn new(roots: CgroupRoots, cap: usize) -> Self {
        Self {
            roots,
            cap,
            last: HashMap::new(),
            tracked: HashMap::new(),
            cpu_on_v2: HashMap::new(),
            interval: 0,
        }
    }

    /// Notes cgroups active this interval (id → v2 path relative to the hierarchy root).
    pub fn seen(&mut self, cgroups: impl IntoIterator<Item = (u64, String)>) {
        for (id, path) in cgroups {
            // The root cgroup is the host, not a workload with limits of its own.
            if path.is_empty() || path == "/" {
                continue;
            }
            if self.tracked.len() >= self.cap && !self.tracked.contains_key(&id) {
                continue;
            }
            self.tracked.insert(id, (path, self.interval));
        }
    }

    /// One sample per tracked cgroup; forgets those quiet for `KEEP_INTERVALS` or gone.
    /// (The caller fills in each sample's workload.)
    pub fn sample(&mut self) -> Vec<v1::ResourceSample> {
        self.interval += 1;
        let now = self.interval;
        self.tracked
            .retain(|_, (_, seen)| now.saturating_sub(*seen) <= KEEP_INTERVALS);
        let mut out = Vec::with_capacity(self.tracked.len());
        let mut gone = Vec::new();
        let tracked: Vec<(u64, String)> = self
            .tracked
            .iter()
            .map(|(id, (p, _))| (*id, p.clone()))
            .collect();
        for (id, path) in tracked {
            match self.read_one(id, &path) {
                Some(s) => out.push(s),
                None => gone.push(id),
            }
        }
        for id in gone {
            self.tracked.remove(&id);
            self.last.remove(&id);
        }
        self.last.retain(|id, _| self.tracked.contains_key(id));
        self.cpu_on_v2.retain(|id, _| self.tracked.contains_key(id));
        out
    }

    fn v2(&self, path: &str, file: &str) -> Option<String> {
        read(
            &self
                .roots
                .v2
                .as_ref()?
                .join(path.trim_start_matches('/'))
                .join(file),
        )
    }

    fn v1(root: &Option<PathBuf>, path: &str, file: &str) -> Option<String> {
        read(&root.as_ref()?.join(path.trim_start_matches('/')).join(file))
    }

    /// `None` when the cgroup no longer exists.
    fn read_one(&mut self, id: u64, path: &str) -> Option<v1::ResourceSample> {
        if !self
            .roots
            .v2
            .as_ref()?
            .join(path.trim_start_matches('/'))
            .is_dir()
        {
            return None;
        }
        let mut s = v1::ResourceSample {
            cgroup_id: id,
            ..Default::default()
        };
        // Memory: cgroup v2 where the controller is on it, else v1 at the same path.
        if let Some(current) = self
            .v2(path, "memory.current")
            .and_then(|t| t.trim().parse().ok())
        {
            s.memory_usage_bytes = current;
            s.memory_limit_bytes = self
                .v2(path, "memory.max")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let inactive = self
                .v2(path, "memory.stat")
                .and_then(|t| stat_field(&t, "inactive_file"))
                .unwrap_or(0);
            s.memory_working_set_bytes = current.saturating_sub(inactive);
        } else if let Some(usage) = Self::v1(&self.roots.memory_v1, path, "memory.usage_in_bytes")
            .and_then(|t| t.trim().parse().ok())
        {
            s.memory_usage_bytes = usage;
            s.memory_limit_bytes = Self::v1(&self.roots.memory_v1, path, "memory.limit_in_bytes")
                .and_then(|t| t.trim().parse().ok())
                .filter(|&l| l < UNLIMITED_V1)
                .unwrap_or(0);
            let inactive = Self::v1(&self.roots.memory_v1, path, "memory.stat")
                .and_then(|t| stat_field(&t, "total_inactive_file"))
                .unwrap_or(0);
            s.memory_working_set_bytes = usage.saturating_sub(inactive);
        }
        // CFS bandwidth: v2 `cpu.stat` has the throttle fields only with the cpu controller
        // on v2; v1 counts throttled time in ns.
        let mut now = Counters::default();
        let ask_v2 = match self.cpu_on_v2.get(&id) {
            Some(&(on, asked)) => on || self.interval.saturating_sub(asked) >= REPROBE_INTERVALS,
            None => true,
        };
        let v2_cpu = if ask_v2 {
            let t = self
                .v2(path, "cpu.stat")
                .filter(|t| t.contains("nr_periods"));
            self.cpu_on_v2.insert(id, (t.is_some(), self.interval));
            t
        } else {
            None
        };
        if let Some(t) = v2_cpu.as_deref() {
            now.cpu_from_v2 = true;
            now.periods = stat_field(t, "nr_periods").unwrap_or(0);
            now.throttled_periods = stat_field(t, "nr_throttled").unwrap_or(0);
            now.throttled_us = stat_field(t, "throttled_usec").unwrap_or(0);
        } else if let Some(t) = Self::v1(&self.roots.cpu_v1, path, "cpu.stat") {
            now.periods = stat_field(&t, "nr_periods").unwrap_or(0);
            now.throttled_periods = stat_field(&t, "nr_throttled").unwrap_or(0);
            now.throttled_us = stat_field(&t, "throttled_time").unwrap_or(0) / 1_000;
        }
        now.memory_stall_us = self.v2(path, "memory.pressure").and_then(|t| psi_total(&t));
        now.cpu_stall_us = self.v2(path, "cpu.pressure").and_then(|t| psi_total(&t));
        now.io_stall_us = self.v2(path, "io.pressure").and_then(|t| psi_total(&t));
        if let Some(before) = self
            .last
            .get(&id)
            .filter(|b| b.cpu_from_v2 == now.cpu_from_v2)
        {
            s.cpu_periods = now.periods.saturating_sub(before.periods);
            s.cpu_throttled_periods = now
                .throttled_periods
                .saturating_sub(before.throttled_periods);
            s.cpu_throttled_us = now.throttled_us.saturating_sub(before.throttled_us);
            let delta = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
            s.memory_stall_us = delta(now.memory_stall_us, before.memory_stall_us);
            s.cpu_stall_us = delta(now.cpu_stall_us, before.cpu_stall_us);
            s.io_stall_us = delta(now.io_stall_us, before.io_stall_us);
        }
        self.last.insert(id, now);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mounts_are_found() {
        let m = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let r = CgroupRoots::from_mountinfo(m);
        assert_eq!(r.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(
            r.memory_v1.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(r.cpu_v1.as_deref(), Some(Path::new("/sys/fs/cgroup/cpu")));
    }

    #[test]
    fn psi_and_stat_fields_parse() {
        let psi = "some avg10=0.02 avg60=1.85 avg300=5.61 total=3051759108\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(psi_total(psi), Some(3_051_759_108));
        let stat = "nr_periods 120\nnr_throttled 30\nthrottled_time 9000000\n";
        assert_eq!(stat_field(stat, "nr_throttled"), Some(30));
        assert_eq!(stat_field(stat, "nr_periods"), Some(120));
        assert_eq!(stat_field(stat, "missing"), None);
    }

    /// A hybrid host: the cpu controller on v1, a v2 `cpu.stat` without throttling fields.
    /// The v2 file is not read again until the re-probe interval (reading it costs a
    /// node-wide statistics flush), then is used once it carries the fields.
    #[test]
    fn a_v2_cpu_stat_without_throttling_is_not_reread_every_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (v2, v1) = (dir.path().join("unified"), dir.path().join("cpu"));
        for d in [&v2, &v1] {
            std::fs::create_dir_all(d.join("app")).expect("mkdir");
        }
        let write = |d: &Path, text: &str| std::fs::write(d.join("app/cpu.stat"), text);
        write(&v2, "usage_usec 5\n").expect("v2");
        write(&v1, "nr_periods 10\nnr_throttled 1\nthrottled_time 0\n").expect("v1");
        let roots = CgroupRoots {
            v2: Some(v2.clone()),
            memory_v1: None,
            cpu_v1: Some(v1.clone()),
        };
        let mut r = ResourceReader::new(roots, 16);
        let mut periods = Vec::new();
        for i in 0..=REPROBE_INTERVALS + 1 {
            r.seen([(7, "/app".to_string())]);
            if i == 1 {
                // The cpu controller moves to v2: seen only at the next probe.
                write(&v2, "nr_periods 1000\nnr_throttled 0\nthrottled_usec 0\n").expect("v2");
            }
            if i > 0 {
                write(
                    &v1,
                    &format!("nr_periods {}\nnr_throttled 1\nthrottled_time 0\n", 10 + i),
                )
                .expect("v1");
            }
            periods.push(r.sample().first().map_or(0, |s| s.cpu_periods));
        }
        // Deltas of v1's nr_periods (one per interval) until the re-probe finds v2's fields;
        // no delta across the change of source.
        let probe = REPROBE_INTERVALS as usize;
        assert!(periods[1..probe].iter().all(|&p| p == 1), "{periods:?}");
        assert_eq!(periods[probe], 0, "{periods:?}");
        assert_eq!(r.cpu_on_v2.get(&7).map(|c| c.0), Some(true));
    }
}
