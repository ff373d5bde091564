//! The lab's cgroups: a v1 memory and cpu group per service (limits, OOM, throttling) and a
//! cgroup-v2 group of the same name (so the agent's per-cgroup telemetry names the service on
//! hybrid hosts).

use std::{
    ffi::CString,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    error::{LabError, Result},
    names::{LabName, PREFIX},
};

const ROOT: &str = "/sys/fs/cgroup";

/// The hierarchies a service joins, those that exist on this host.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut h: Vec<PathBuf> = ["memory", "cpu"]
        .iter()
        .map(|c| root.join(c))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    let unified = root.join("unified");
    if unified.join("cgroup.controllers").exists() {
        h.push(unified);
    } else if root.join("cgroup.controllers").exists() {
        h.push(root.to_path_buf());
    }
    h
}

#[derive(Debug, Clone)]
pub struct LabCgroup {
    pub name: LabName,
}

impl LabCgroup {
    pub fn create(name: &LabName) -> Result<Self> {
        for h in hierarchies() {
            let dir = h.join(name.as_str());
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .map_err(LabError::io(format!("creating cgroup {}", dir.display())))?;
            }
        }
        Ok(Self { name: name.clone() })
    }

    /// `cgroup.procs` of every hierarchy: a new process writes its pid into each.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(self.name.as_str()).join("cgroup.procs"))
            .collect()
    }

    pub fn memory_file(&self, file: &str) -> PathBuf {
        Path::new(ROOT)
            .join("memory")
            .join(self.name.as_str())
            .join(file)
    }

    pub fn cpu_file(&self, file: &str) -> PathBuf {
        Path::new(ROOT)
            .join("cpu")
            .join(self.name.as_str())
            .join(file)
    }

    pub fn write(path: &Path, value: &str) -> Result<()> {
        std::fs::write(path, value).map_err(LabError::io(format!(
            "writing {value} to {}",
            path.display()
        )))
    }

    pub fn pids(&self) -> Vec<i32> {
        pids_in(&hierarchies()[..], self.name.as_str())
    }

    pub fn kill_all(&self) {
        kill_all(self.name.as_str());
    }
}

fn pids_in(hierarchies: &[PathBuf], name: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = hierarchies
        .iter()
        .flat_map(|h| {
            std::fs::read_to_string(h.join(name).join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Makes `command` write its own pid into each `cgroup.procs` file between fork and exec, the
/// way container runtimes place a workload before it starts: nothing it runs escapes.
pub fn join_on_exec(command: &mut Command, procs_files: Vec<PathBuf>) {
    let files: Vec<CString> = procs_files
        .into_iter()
        .filter_map(|p| CString::new(p.into_os_string().into_encoded_bytes()).ok())
        .collect();
    // SAFETY: between fork and exec the closure only calls async-signal-safe functions
    // (getpid, open, write, close) on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            let mut pid = libc::getpid() as u32;
            loop {
                at -= 1;
                digits[at] = b'0' + (pid % 10) as u8;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
                libc::close(fd);
                if n != (digits.len() - at) as isize {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// SIGKILLs every process in the lab cgroup `name`, in every hierarchy.
pub fn kill_all(name: &str) {
    for pid in pids_in(&hierarchies(), name) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Lab cgroups present in any hierarchy.
pub fn lab_cgroups() -> Vec<String> {
    let mut names: Vec<String> = hierarchies()
        .iter()
        .flat_map(|h| {
            std::fs::read_dir(h)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(PREFIX))
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Kills every process in every lab cgroup and removes the cgroups.
pub fn remove_all() {
    let hs = hierarchies();
    for name in lab_cgroups() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            kill_all(&name);
            let all_gone = hs.iter().all(|h| {
                let d = h.join(&name);
                !d.exists() || std::fs::remove_dir(&d).is_ok()
            });
            if all_gone || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
