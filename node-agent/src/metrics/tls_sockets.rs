//! The addresses of the sockets the TLS uprobes name by (process, fd).
//!
//! `/proc/<pid>/fd/<fd>` links to `socket:[<inode>]`, and `/proc/<pid>/net/tcp{,6}` (the
//! process's own network namespace) lists each TCP socket's addresses with its inode. An
//! inode's addresses never change, so they are cached; the fd link is read again every
//! interval, since a closed fd's number is soon reused for another socket.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use node_agent_common::FlowKey;

use crate::attribution::tcp_table;

/// A socket found: its inode (to tell a reused fd from the same socket) and 4-tuple.
#[derive(Debug, Clone, Copy)]
struct Found {
    inode: u64,
    flow: FlowKey,
    used: Instant,
}

/// How long a socket no drain asked for stays cached.
const KEEP: Duration = Duration::from_secs(120);

/// Finds and caches TLS sockets' 4-tuples, by (process, fd).
pub struct TlsSockets {
    proc_root: PathBuf,
    found: HashMap<(u32, i32), Found>,
    /// Sockets whose addresses could not be found (closed before anything read them).
    pub unresolved: u64,
}

/// Shared by the thread that hears of new sockets and the collector.
pub type SharedTlsSockets = Arc<Mutex<TlsSockets>>;

impl TlsSockets {
    pub fn new(proc_root: &Path) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            found: HashMap::new(),
            unresolved: 0,
        }
    }

    /// Reads the addresses of a socket the kernel just announced, while it is open.
    pub fn announced(&mut self, tgid: u32, fd: i32) {
        let now = Instant::now();
        if let Some((inode, flow)) = self.read(tgid, fd, None) {
            self.found.insert(
                (tgid, fd),
                Found {
                    inode,
                    flow,
                    used: now,
                },
            );
        }
    }

    /// The 4-tuple of process `tgid`'s socket `fd`, as the kernel's `FlowKey` spells it. A
    /// closed socket's is the last one found for that fd.
    pub fn resolve(&mut self, tgid: u32, fd: i32) -> Option<FlowKey> {
        let now = Instant::now();
        let cached = self.found.get(&(tgid, fd)).copied();
        let found = match self.read(tgid, fd, cached) {
            Some((inode, flow)) => Some(Found {
                inode,
                flow,
                used: now,
            }),
            None => cached.map(|f| Found { used: now, ..f }),
        };
        match found {
            Some(f) => {
                self.found.insert((tgid, fd), f);
                Some(f.flow)
            }
            None => {
                self.unresolved += 1;
                None
            }
        }
    }

    /// The socket behind the fd now, from procfs; `cached` is reused while the fd still
    /// links to its inode.
    fn read(&self, tgid: u32, fd: i32, cached: Option<Found>) -> Option<(u64, FlowKey)> {
        let pid = self.proc_root.join(tgid.to_string());
        let link = std::fs::read_link(pid.join("fd").join(fd.to_string())).ok()?;
        let inode = socket_inode(link.to_str()?)?;
        if let Some(c) = cached.filter(|c| c.inode == inode) {
            return Some((inode, c.flow));
        }
        ["net/tcp", "net/tcp6"].iter().find_map(|file| {
            let text = std::fs::read_to_string(pid.join(file)).ok()?;
            let found = tcp_table::sockets(&text).find(|s| s.inode == inode);
            found.map(|s| (inode, s.flow))
        })
    }

    /// Ends one drain: sockets nobody asked for in a while are forgotten.
    pub fn end_drain(&mut self) {
        self.found.retain(|_, f| f.used.elapsed() < KEEP);
    }
}

/// The inode of a `socket:[<inode>]` fd link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A real socket of this process, found through the real procfs.
    #[test]
    fn a_connected_socket_of_this_process_is_found() {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut sockets = TlsSockets::new(Path::new("/proc"));
        let flow = sockets
            .resolve(std::process::id(), client.as_raw_fd())
            .expect("the client socket is found");
        assert_eq!(flow.remote_port, port);
        assert_eq!(flow.local_port, client.local_addr().expect("addr").port());
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(sockets.resolve(std::process::id(), 99_999), None);
        assert_eq!(sockets.unresolved, 1);
        // Announced while open, then closed: the drain still gets its addresses.
        let other = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let fd = other.as_raw_fd();
        sockets.announced(std::process::id(), fd);
        let local = other.local_addr().expect("addr").port();
        drop(other);
        let flow = sockets
            .resolve(std::process::id(), fd)
            .expect("a closed socket's last addresses");
        assert_eq!(flow.local_port, local);
    }
}
