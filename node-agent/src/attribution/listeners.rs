//! Which host process listens on a TCP port, for naming server-side flows of processes in the
//! root cgroup (their packets arrive in softirq context, so the kernel cannot say whose they
//! are; the cgroup says "host" and nothing more).
//!
//! Reads `/proc/net/tcp{,6}` for listening sockets and `/proc/<pid>/fd` for their owners. That
//! is a walk over every process, so it is done only when an unknown port shows up, at most
//! once per `REFRESH`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::tcp_table;

const REFRESH: Duration = Duration::from_secs(5);

pub struct ListenerNames {
    proc_root: PathBuf,
    by_port: HashMap<u16, String>,
    refreshed: Option<Instant>,
}

/// (port, socket inode) of listening sockets in one `/proc/net/tcp*` text.
pub fn listening_sockets(text: &str) -> Vec<(u16, u64)> {
    tcp_table::sockets(text)
        .filter(|s| s.state == tcp_table::LISTEN)
        .map(|s| (s.flow.local_port, s.inode))
        .collect()
}

impl ListenerNames {
    pub fn new(proc_root: &Path) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            by_port: HashMap::new(),
            refreshed: None,
        }
    }

    /// The command name of the host process listening on `port`, if any.
    pub fn name(&mut self, port: u16) -> Option<String> {
        if !self.by_port.contains_key(&port)
            && self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH)
        {
            self.refresh();
        }
        self.by_port.get(&port).cloned()
    }

    fn refresh(&mut self) {
        self.refreshed = Some(Instant::now());
        let mut inodes: HashMap<u64, u16> = HashMap::new();
        for file in ["net/tcp", "net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(self.proc_root.join(file)) {
                inodes.extend(listening_sockets(&text).into_iter().map(|(p, i)| (i, p)));
            }
        }
        self.by_port.clear();
        let Ok(procs) = std::fs::read_dir(&self.proc_root) else {
            return;
        };
        for entry in procs.flatten() {
            let pid = entry.file_name();
            if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let target = target.to_string_lossy();
                let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                if let Some(port) = inodes.get(&inode) {
                    if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
                        self.by_port.insert(*port, comm.trim_end().to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_sockets() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1B9E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1B9E 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 41299 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(listening_sockets(text), vec![(7070, 41234)]);
    }

    #[test]
    fn names_this_process_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut names = ListenerNames::new(Path::new("/proc"));
        let me = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(names.name(port).as_deref(), Some(me.trim_end()));
    }
}
