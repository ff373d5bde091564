//! The lab's local runtime: starts each service in its namespace and cgroups, restarts it
//! when it exits (with backoff, so a crash loop stays a loop and not a fork bomb), and scales
//! replicas on request.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use super::cgroups::LabCgroup;
use crate::{
    error::{LabError, Result},
    names::LabName,
};

/// How to run one service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Service and cgroup name.
    pub name: LabName,
    pub netns: LabName,
    pub argv: Vec<String>,
    /// Run as this user and group (`setpriv`), e.g. ("nobody", "nogroup").
    pub user: Option<(String, String)>,
    pub memory_limit_bytes: Option<u64>,
    pub log: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub desired: bool,
    pub running: bool,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

struct Slot {
    spec: ServiceSpec,
    cgroup: LabCgroup,
    desired: bool,
    child: Option<Child>,
    restarts: u32,
    last_exit: Option<String>,
    started: Option<Instant>,
    not_before: Instant,
    backoff: Duration,
}

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a stopped service gets to exit on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// A service that ran this long is healthy again: its backoff resets.
const STABLE: Duration = Duration::from_secs(10);

fn spawn(spec: &ServiceSpec, cgroup: &LabCgroup) -> Result<Child> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", spec.netns.as_str()]);
    if let Some((user, group)) = &spec.user {
        command.args([
            "setpriv",
            &format!("--reuid={user}"),
            &format!("--regid={group}"),
            "--clear-groups",
            "--",
        ]);
    }
    command.args(&spec.argv);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(LabError::io(format!("opening {}", spec.log.display())))?;
    let err = log
        .try_clone()
        .map_err(LabError::io("cloning the log file"))?;
    command.stdin(Stdio::null()).stdout(log).stderr(err);
    super::cgroups::join_on_exec(&mut command, cgroup.procs_files());
    command
        .spawn()
        .map_err(LabError::io(format!("starting {}", spec.name)))
}

pub struct Supervisor {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(specs: Vec<ServiceSpec>) -> Result<Self> {
        let mut slots = BTreeMap::new();
        for spec in specs {
            let cgroup = LabCgroup::create(&spec.name)?;
            if let Some(limit) = spec.memory_limit_bytes {
                LabCgroup::write(
                    &cgroup.memory_file("memory.limit_in_bytes"),
                    &limit.to_string(),
                )?;
            }
            slots.insert(
                spec.name.to_string(),
                Slot {
                    spec,
                    cgroup,
                    desired: true,
                    child: None,
                    restarts: 0,
                    last_exit: None,
                    started: None,
                    not_before: Instant::now(),
                    backoff: MIN_BACKOFF,
                },
            );
        }
        let slots = Arc::new(Mutex::new(slots));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (slots.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("vigil-lab-supervisor".into())
            .spawn(move || supervise(&s, &st))
            .map_err(LabError::io("starting the supervisor thread"))?;
        Ok(Self {
            slots,
            stop,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Slot) -> T) -> Result<T> {
        let mut slots = self.lock();
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| LabError::UnknownService(name.to_string()))?;
        Ok(f(slot))
    }

    /// Starts or stops the service for good (replica scaling).
    pub fn set_desired(&self, name: &str, running: bool) -> Result<()> {
        self.with(name, |s| {
            s.desired = running;
            s.not_before = Instant::now();
            s.backoff = MIN_BACKOFF;
            if !running {
                kill_slot(s);
            }
        })
    }

    /// Kills the service's processes; the supervisor restarts it (a new config is read).
    pub fn restart(&self, name: &str) -> Result<()> {
        self.with(name, |s| {
            kill_slot(s);
            s.not_before = Instant::now();
        })
    }

    pub fn cgroup(&self, name: &str) -> Result<LabCgroup> {
        self.with(name, |s| s.cgroup.clone())
    }

    /// The main pid of a running service.
    pub fn pid(&self, name: &str) -> Result<Option<u32>> {
        self.with(name, |s| s.child.as_ref().map(Child::id))
    }

    pub fn status(&self) -> Vec<ServiceStatus> {
        self.lock()
            .values()
            .map(|s| ServiceStatus {
                name: s.spec.name.to_string(),
                desired: s.desired,
                running: s.child.is_some(),
                pid: s.child.as_ref().map(Child::id),
                restarts: s.restarts,
                last_exit: s.last_exit.clone(),
            })
            .collect()
    }

    /// Stops every service and the supervisor.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for s in self.lock().values_mut() {
            s.desired = false;
            kill_slot(s);
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Stops a service the way a runtime does: SIGTERM, a grace period, then SIGKILL for
/// whatever is left in its cgroup. (A SIGKILL straight away would look like a crash.)
fn kill_slot(s: &mut Slot) {
    use nix::sys::signal::{kill, Signal};
    if let Some(c) = &s.child {
        let _ = kill(nix::unistd::Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if s.child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    s.cgroup.kill_all();
    if let Some(mut c) = s.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn supervise(slots: &Mutex<BTreeMap<String, Slot>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        {
            let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
            for s in slots.values_mut() {
                tick(s);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tick(s: &mut Slot) {
    if let Some(child) = &mut s.child {
        match child.try_wait() {
            Ok(None) => {
                if s.started.is_some_and(|t| t.elapsed() > STABLE) {
                    s.backoff = MIN_BACKOFF;
                }
                return;
            }
            Ok(Some(status)) => {
                // The namespace wrapper exits with the service: the service's processes may
                // linger (nginx workers); a restart starts from an empty cgroup.
                s.cgroup.kill_all();
                s.last_exit = Some(status.to_string());
                s.child = None;
                if s.desired {
                    s.restarts += 1;
                    s.not_before = Instant::now() + s.backoff;
                    s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
                    warn!(service = %s.spec.name, %status, restarts = s.restarts, "service exited; restarting");
                }
            }
            Err(e) => warn!(service = %s.spec.name, error = %e, "cannot poll the service"),
        }
    }
    if s.desired && s.child.is_none() && Instant::now() >= s.not_before {
        match spawn(&s.spec, &s.cgroup) {
            Ok(child) => {
                info!(service = %s.spec.name, pid = child.id(), "service started");
                s.child = Some(child);
                s.started = Some(Instant::now());
            }
            Err(e) => {
                warn!(service = %s.spec.name, error = %e, "service failed to start");
                s.not_before = Instant::now() + s.backoff;
                s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
