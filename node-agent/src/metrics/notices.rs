//! What the request programs tell user space at once (the `L7_NOTICES` ring buffer), read
//! on a thread of its own: new TLS sockets, whose addresses must be read while they are
//! open, and samples of failing replies, held for the next drain.

use std::{
    collections::HashMap,
    os::fd::AsFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use aya::maps::{MapData, RingBuf};
use node_agent_common::l7::{L7ErrorKey, L7Notice, NOTICE_ERROR_SAMPLE, NOTICE_TLS_SOCKET, PEEK};
use tracing::warn;

use super::tls_sockets::SharedTlsSockets;

/// Samples of failing replies waiting for the next drain: one per (edge, code), the first
/// seen, so the kernel's own limit (one per new key) is kept even if a key is recreated
/// within an interval.
#[derive(Default)]
pub struct ErrorSamples {
    pending: HashMap<L7ErrorKey, String>,
    /// Samples dropped because `MAX_PENDING` were already waiting.
    pub dropped: u64,
}

/// Bounds the memory held between drains.
const MAX_PENDING: usize = 1024;

pub type SharedErrorSamples = Arc<Mutex<ErrorSamples>>;

impl ErrorSamples {
    pub fn add(&mut self, key: L7ErrorKey, text: String) {
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            self.dropped += 1;
            return;
        }
        self.pending.entry(key).or_insert(text);
    }

    /// Everything since the last drain.
    pub fn take(&mut self) -> HashMap<L7ErrorKey, String> {
        std::mem::take(&mut self.pending)
    }
}

/// The first bytes of a reply as text a person can read in a log or a console: printable
/// ASCII kept, every run of anything else (CR LF, a PostgreSQL field's NUL and type byte,
/// binary lengths) one space.
pub fn sample_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut gap = false;
    for &b in bytes {
        if b.is_ascii_graphic() || b == b' ' {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(char::from(b));
        } else {
            gap = true;
        }
    }
    out.trim_end().to_string()
}

fn decode(bytes: &[u8]) -> Option<L7Notice> {
    if bytes.len() < size_of::<L7Notice>() {
        return None;
    }
    // SAFETY: the record holds at least one `L7Notice` (checked above), a plain-integer
    // repr(C) type any bytes are valid for; the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<L7Notice>()) })
}

/// Reads notices until `stop`.
pub fn watch(
    mut ring: RingBuf<MapData>,
    sockets: SharedTlsSockets,
    samples: SharedErrorSamples,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("vigil-l7-notices".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ready = {
                    let mut fds = [nix::poll::PollFd::new(
                        ring.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(500u16))
                };
                if let Err(error) = ready {
                    if error != nix::errno::Errno::EINTR {
                        warn!(%error, "polling the request notices failed: TLS sockets are looked up at each drain only, and failing replies are not sampled");
                        return;
                    }
                }
                while let Some(item) = ring.next() {
                    let notice = decode(&item);
                    drop(item);
                    let Some(n) = notice else {
                        continue;
                    };
                    match n.kind {
                        NOTICE_TLS_SOCKET => {
                            if let Ok(mut s) = sockets.lock() {
                                s.announced(n.socket.tgid, n.socket.fd);
                            }
                        }
                        NOTICE_ERROR_SAMPLE => {
                            let len = (n.len as usize).min(PEEK);
                            if let Ok(mut s) = samples.lock() {
                                s.add(n.error, sample_text(&n.bytes[..len]));
                            }
                        }
                        _ => {}
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_read_as_text() {
        assert_eq!(
            sample_text(b"-WRONGPASS invalid username-password pair\r\n"),
            "-WRONGPASS invalid username-password pair"
        );
        assert_eq!(
            sample_text(b"HTTP/1.1 503 Service Unavailable\r\nServer: nginx\r\n"),
            "HTTP/1.1 503 Service Unavailable Server: nginx"
        );
        assert_eq!(
            sample_text(b"E\x00\x00\x00\x7fSFATAL\x00VFATAL\x00C28P01\x00Mpassword"),
            "E SFATAL VFATAL C28P01 Mpassword"
        );
        assert_eq!(sample_text(b"\x00\x01"), "");
    }

    #[test]
    fn short_records_are_not_read() {
        let mut bytes = vec![0u8; size_of::<L7Notice>()];
        bytes[0] = NOTICE_TLS_SOCKET as u8;
        bytes[8] = 7; // socket.tgid
        bytes[12] = 3; // socket.fd
        let n = decode(&bytes).expect("a whole record");
        assert_eq!(
            (n.kind, n.socket.tgid, n.socket.fd),
            (NOTICE_TLS_SOCKET, 7, 3)
        );
        assert!(decode(&bytes[..20]).is_none());
    }

    #[test]
    fn one_sample_per_key_and_a_bounded_backlog() {
        let mut s = ErrorSamples::default();
        let key = |code| L7ErrorKey {
            edge: node_agent_common::l7::L7EdgeKey::of(
                &node_agent_common::FlowKey {
                    local_addr: [0; 16],
                    remote_addr: [0; 16],
                    local_port: 1,
                    remote_port: 2,
                    _pad: 0,
                },
                &node_agent_common::l7::L7Conn {
                    request_ns: 0,
                    cgroup_id: 1,
                    proto: 1,
                    role: 1,
                    pending: 0,
                    misses: 0,
                    stash_len: 0,
                    _pad: [0; 3],
                    stash: [0; 16],
                },
            ),
            code,
        };
        s.add(key(500), "first".into());
        s.add(key(500), "second".into());
        for code in 0..(MAX_PENDING as u64 + 5) {
            s.add(key(1000 + code), String::new());
        }
        assert_eq!(s.dropped, 6, "the first one already held a slot");
        let taken = s.take();
        assert_eq!(taken.get(&key(500)).map(String::as_str), Some("first"));
        assert_eq!(taken.len(), MAX_PENDING);
        assert!(s.take().is_empty());
    }
}
