//! A cgroup made for one test (cgroup-v1 memory, or cgroup v2), removed with everything in
//! it on drop.

use std::{
    ffi::CString,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

pub struct Cgroup {
    pub name: String,
    pub dir: PathBuf,
}

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

impl Cgroup {
    /// Creates `/sys/fs/cgroup/memory/<name>`, with a hard limit when given.
    pub fn memory_v1(name: &str, limit_bytes: Option<u64>) -> Self {
        let cg = Self::create_in(Path::new(V1_MEMORY), name);
        if let Some(limit) = limit_bytes {
            cg.write("memory.limit_in_bytes", &limit.to_string());
        }
        cg
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
        let procs = CString::new(
            self.dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("path has no NUL");
        // SAFETY: the closure only calls async-signal-safe functions (getpid, open, write,
        // close) and writes to its own stack; nothing is allocated after fork.
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
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let len = digits.len() - at;
                let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
                libc::close(fd);
                if written != len as isize {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
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
