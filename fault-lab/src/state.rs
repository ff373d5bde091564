//! The lab's persistent state: the one-run lock and the teardown records of active faults.
//!
//! A fault writes its undo steps here *before* it changes anything, so a harness that dies
//! mid-fault leaves a record; the next start replays every record, then removes leftovers of
//! the testbed itself.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{
    error::{LabError, Result},
    sys,
};

/// Where the lab keeps its lock, records and run results (`$VIGIL_LAB_STATE` or
/// `/var/lib/vigil-lab`).
pub fn state_dir() -> PathBuf {
    std::env::var_os("VIGIL_LAB_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/vigil-lab"))
}

/// Held for the whole run; a second run fails with `LabError::Busy`.
pub struct RunLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        let path = dir.join("lab.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LabError::io(format!("opening {}", path.display())))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, _)) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                return Err(LabError::Busy { path, pid });
            }
        };
        lock.set_len(0)
            .map_err(LabError::io("truncating the lock file"))?;
        write!(lock, "{}", std::process::id()).map_err(LabError::io("writing the lock file"))?;
        Ok(Self { _lock: lock, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One way to undo part of a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo {
    /// `nft delete table inet <table>` inside `netns`.
    NftTable { netns: String, table: String },
    /// `tc qdisc del dev <dev> root` inside `netns`.
    Qdisc { netns: String, dev: String },
    /// `iptables -F <chain>` inside `netns`.
    IptablesChain { netns: String, chain: String },
    /// Kill a helper process (a delayer) if it is still the one started.
    Process { pid: u32, comm: String },
    /// Write `value` back into a cgroup or proc file.
    WriteFile { path: PathBuf, value: String },
    /// Restore a file's permission bits.
    Chmod { path: PathBuf, mode: u32 },
    /// Remove a file the fault created.
    RemoveFile { path: PathBuf },
    /// SIGHUP the process whose pid `pid_file` holds, if its comm is still `comm`: a server
    /// re-reading what another step restored (nginx and its certificate).
    Reload { pid_file: PathBuf, comm: String },
    /// Point a symlink back at its target.
    Symlink { path: PathBuf, target: PathBuf },
    /// Set a Redis password back.
    RedisPassword {
        addr: String,
        current: String,
        restore: String,
    },
    /// Kill every process of a lab cgroup (its supervisor, if alive, restarts it).
    KillCgroup { name: String },
}

impl Undo {
    /// Performs the step; a thing already gone is not an error.
    pub fn apply(&self) {
        let ok = match self {
            Self::NftTable { netns, table } => sys::try_run(&[
                "ip", "netns", "exec", netns, "nft", "delete", "table", "inet", table,
            ]),
            Self::Qdisc { netns, dev } => sys::try_run(&[
                "ip", "netns", "exec", netns, "tc", "qdisc", "del", "dev", dev, "root",
            ]),
            Self::IptablesChain { netns, chain } => {
                sys::try_run(&["ip", "netns", "exec", netns, "iptables", "-F", chain])
            }
            Self::Process { pid, comm } => {
                let current =
                    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if current.trim_end() == comm {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                true
            }
            Self::WriteFile { path, value } => std::fs::write(path, value).is_ok(),
            Self::Chmod { path, mode } => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).is_ok()
            }
            Self::RemoveFile { path } => std::fs::remove_file(path).is_ok() || !path.exists(),
            Self::Reload { pid_file, comm } => {
                let pid = std::fs::read_to_string(pid_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok());
                match pid {
                    Some(pid)
                        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|c| c.trim_end() == comm) =>
                    {
                        nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGHUP,
                        )
                        .is_ok()
                    }
                    // Gone: whatever starts it next reads the restored files.
                    _ => true,
                }
            }
            Self::Symlink { path, target } => {
                let _ = std::fs::remove_file(path);
                std::os::unix::fs::symlink(target, path).is_ok()
            }
            Self::RedisPassword {
                addr,
                current,
                restore,
            } => {
                // A supervisor that restarted redis already gave it back its password.
                crate::redis::set_password(addr, current, restore).is_ok()
                    || crate::redis::accepts(addr, restore).unwrap_or(false)
            }
            // The guard still applies: a tampered record cannot name a foreign cgroup.
            Self::KillCgroup { name } => crate::names::LabName::parse(name)
                .map(|n| crate::testbed::cgroups::kill_all(n.as_str()))
                .is_ok(),
        };
        if !ok {
            warn!(step = ?self, "undo step did nothing (already undone?)");
        }
    }
}

/// The persisted record of one active fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub id: String,
    pub scenario: String,
    pub target: String,
    pub started_unix_ms: u64,
    pub ttl_ms: u64,
    pub undo: Vec<Undo>,
}

impl FaultRecord {
    pub fn expired(&self, now_unix_ms: u64) -> bool {
        now_unix_ms >= self.started_unix_ms + self.ttl_ms
    }
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Teardown records on disk, one JSON file per active fault.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(state: &Path) -> Result<Self> {
        let dir = state.join("faults");
        std::fs::create_dir_all(&dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        Ok(Self { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes the record atomically (temp file + rename): never half-written.
    pub fn save(&self, r: &FaultRecord) -> Result<()> {
        let tmp = self.dir.join(format!(".{}.tmp", r.id));
        let text = serde_json::to_string_pretty(r).map_err(|e| LabError::Invalid(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(LabError::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, self.path(&r.id)).map_err(LabError::io("saving a teardown record"))
    }

    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id));
    }

    pub fn load_all(&self) -> Vec<FaultRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                serde_json::from_str(&text).ok()
            })
            .collect()
    }

    /// Undoes every recorded fault (a previous harness died, or their TTL passed).
    pub fn replay(&self, only_expired: bool) -> usize {
        let now = now_unix_ms();
        let mut n = 0;
        for r in self.load_all() {
            if only_expired && !r.expired(now) {
                continue;
            }
            info!(fault = %r.id, scenario = %r.scenario, target = %r.target, "tearing down a recorded fault");
            for step in r.undo.iter().rev() {
                step.apply();
            }
            self.remove(&r.id);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = RunLock::acquire(dir.path()).expect("first");
        let err = RunLock::acquire(dir.path())
            .err()
            .expect("second run refused");
        assert!(
            matches!(err, LabError::Busy { pid, .. } if pid == std::process::id()),
            "{err}"
        );
        drop(first);
        RunLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn records_replay_undo_steps_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = Records::new(dir.path()).expect("records");
        let victim = dir.path().join("made-by-fault");
        std::fs::write(&victim, "x").expect("write");
        records
            .save(&FaultRecord {
                id: "f1".into(),
                scenario: "test".into(),
                target: "vigil-lab-x".into(),
                started_unix_ms: 0,
                ttl_ms: 1,
                undo: vec![Undo::RemoveFile {
                    path: victim.clone(),
                }],
            })
            .expect("save");
        assert_eq!(records.replay(true), 1);
        assert!(!victim.exists());
        assert_eq!(records.replay(false), 0, "the record is gone once replayed");
    }

    #[test]
    fn a_replayed_reload_restores_the_file_first_then_signals_the_server_by_its_comm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (conf, seen, pid_file) = (
            dir.path().join("cert.pem"),
            dir.path().join("hup"),
            dir.path().join("server.pid"),
        );
        std::fs::write(&conf, "expired").expect("write");
        // A "server" that, on SIGHUP, records the file it would reload.
        let script = format!(
            "trap 'cat {} > {}' HUP; while :; do sleep 0.05; done",
            conf.display(),
            seen.display()
        );
        let mut server = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("spawn sh");
        std::fs::write(&pid_file, server.id().to_string()).expect("pid file");
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Another program's comm: not signalled.
        Undo::Reload {
            pid_file: pid_file.clone(),
            comm: "nginx".into(),
        }
        .apply();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!seen.exists(), "a process of another name was signalled");
        let records = Records::new(dir.path()).expect("records");
        records
            .save(&FaultRecord {
                id: "f2".into(),
                scenario: "expired-certificate".into(),
                target: "vigil-lab-web".into(),
                started_unix_ms: 0,
                ttl_ms: 1,
                // As the scenario records them: the reload first, so it is undone last.
                undo: vec![
                    Undo::Reload {
                        pid_file,
                        comm: "sh".into(),
                    },
                    Undo::WriteFile {
                        path: conf,
                        value: "good".into(),
                    },
                ],
            })
            .expect("save");
        assert_eq!(records.replay(true), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !seen.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(
            std::fs::read_to_string(&seen)
                .ok()
                .as_deref()
                .map(str::trim),
            Some("good"),
            "the server reloaded the restored file"
        );
    }
}
