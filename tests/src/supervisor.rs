//! A supervisor as a host runs one, for tests that need a workload which dies and comes back
//! (an OOM loop under a memory limit, a crash loop).

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{bin_path, Cgroup};

/// A supervisor as a host runs one: restarts the hog whenever it dies, after `pause`, with
/// the arguments `args()` gives at that moment (so the test can change what the workload does).
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(
        cgroup: &Cgroup,
        pause: Duration,
        args: impl Fn() -> Vec<String> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicU32::new(0));
        let procs = cgroup.dir.join("cgroup.procs");
        let thread = {
            let (stop, kills) = (stop.clone(), kills.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut command = Command::new(bin_path("vigil-test-hog"));
                    command.args(args());
                    fault_lab::testbed::cgroups::join_on_exec(&mut command, vec![procs.clone()]);
                    let Ok(mut child) = command.spawn() else {
                        return;
                    };
                    // Polled, so a stop ends a hog that holds its memory and lives on.
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            let _ = child.kill();
                            let _ = child.wait();
                            return;
                        }
                        if let Ok(Some(status)) = child.try_wait() {
                            use std::os::unix::process::ExitStatusExt;
                            if status.signal() == Some(libc::SIGKILL) {
                                kills.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    std::thread::sleep(pause);
                }
            })
        };
        Self {
            stop,
            kills,
            thread: Some(thread),
        }
    }

    pub fn kills(&self) -> u32 {
        self.kills.load(Ordering::Relaxed)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
