//! The agent's own cost, from procfs: CPU time (user + system, every thread) and resident
//! memory. BPF programs run in the context of the task that hit the probe, so their time is
//! the workloads', not this: `cargo xtask bench` reports it per program.

use std::{path::PathBuf, time::Instant};

/// CPU time and resident memory at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has an unexpected format", path.display())]
    Format { path: PathBuf },
}

/// Reads the agent's own figures from `/proc/self` (or another process's, in tests).
#[derive(Debug, Clone)]
pub struct Usage {
    dir: PathBuf,
    ticks_per_s: f64,
    page_bytes: u64,
}

impl Usage {
    pub fn of_self(proc: &str) -> Self {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .unwrap_or(100);
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        Self {
            dir: PathBuf::from(proc).join("self"),
            ticks_per_s: ticks as f64,
            page_bytes: page as u64,
        }
    }

    fn read(&self, file: &str) -> Result<(PathBuf, String), UsageError> {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path)
            .map(|text| (path.clone(), text))
            .map_err(|source| UsageError::Read { path, source })
    }

    pub fn snapshot(&self) -> Result<Snapshot, UsageError> {
        let (path, stat) = self.read("stat")?;
        let cpu_ticks = cpu_ticks(&stat).ok_or(UsageError::Format { path })?;
        let (path, statm) = self.read("statm")?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or(UsageError::Format { path })?;
        Ok(Snapshot {
            at: Instant::now(),
            cpu_ticks,
            rss_bytes: pages * self.page_bytes,
        })
    }

    /// CPU used between two snapshots, in percent of one core.
    pub fn cpu_percent(&self, from: &Snapshot, to: &Snapshot) -> f64 {
        let wall = to.at.duration_since(from.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let cpu = to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / self.ticks_per_s;
        100.0 * cpu / wall
    }
}

/// utime + stime from `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses: fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (vigil (agent) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 700 55 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(755));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cost_that_grows_with_work() {
        let usage = Usage::of_self("/proc");
        let a = usage.snapshot().expect("own /proc/self");
        assert!(a.rss_bytes > 0);
        // Busy until the kernel has charged us 5 ticks (however starved the test machine).
        let start = Instant::now();
        let mut x = 0u64;
        let b = loop {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(x) ^ 0x9e37);
            }
            let b = usage.snapshot().expect("own /proc/self");
            if b.cpu_ticks >= a.cpu_ticks + 5 || start.elapsed().as_secs() > 20 {
                break b;
            }
        };
        std::hint::black_box(x);
        assert!(b.cpu_ticks >= a.cpu_ticks + 5, "CPU time never advanced");
        let pct = usage.cpu_percent(&a, &b);
        assert!(pct > 0.0 && pct <= 100.0 * 1024.0, "{pct:.1} %");
    }
}
