//! A cgroup-v1 memory cgroup made for one test, removed (with everything in it) on drop.

use std::{
    ffi::CString,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

pub struct MemoryCgroup {
    pub name: String,
    pub dir: PathBuf,
}

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

impl MemoryCgroup {
    /// Creates `/sys/fs/cgroup/memory/<name>`, with a hard limit when given.
    pub fn create(name: &str, limit_bytes: Option<u64>) -> Self {
        let dir = PathBuf::from(V1_MEMORY).join(name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot create {} (needs root and a cgroup-v1 memory hierarchy): {e}",
                dir.display()
            )
        });
        let cg = Self {
            name: name.to_string(),
            dir,
        };
        if let Some(limit) = limit_bytes {
            cg.write("memory.limit_in_bytes", &limit.to_string());
        }
        cg
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
        // SAFETY: the closure only calls async-signal-safe functions (open, write, close)
        // on memory allocated before fork.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // In cgroup v1, writing 0 moves the writing task.
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
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

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
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
