//! What the kernel keeps per connection and per edge for the request-level protocols.

use core::mem::size_of;

use crate::{FlowKey, LatencyHist, ROLE_CLIENT};

/// One edge's requests as one side sees them: the local workload (`cgroup_id`, `local_addr`)
/// and its peer, with the server's port. A client's and a server's view of one connection
/// are two keys (both are on the node when both ends are).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct L7EdgeKey {
    pub cgroup_id: u64,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// The server's port: the remote one for a client, the local one for a server.
    pub server_port: u16,
    /// `ROLE_CLIENT` or `ROLE_SERVER`: who sent the requests.
    pub role: u8,
    /// `PROTO_*`.
    pub proto: u8,
    /// `TRANSPORT_*`: plain TCP, or TLS seen through the OpenSSL uprobes.
    pub transport: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<L7EdgeKey>() == 48);

impl L7EdgeKey {
    /// No edge: the key of a notice that is not about one.
    pub const NONE: Self = Self {
        cgroup_id: 0,
        local_addr: [0; 16],
        remote_addr: [0; 16],
        server_port: 0,
        role: 0,
        proto: 0,
        transport: TRANSPORT_TCP,
        _pad: [0; 3],
    };

    /// The edge a connection's requests are counted on: this side's workload and the
    /// server's port (the kernel when it counts, user space when it finds a timed-out one).
    #[inline(always)]
    pub fn of(key: &FlowKey, c: &L7Conn) -> Self {
        Self {
            cgroup_id: c.cgroup_id,
            local_addr: key.local_addr,
            remote_addr: key.remote_addr,
            server_port: if c.role == ROLE_CLIENT {
                key.remote_port
            } else {
                key.local_port
            },
            role: c.role,
            proto: c.proto,
            transport: TRANSPORT_TCP,
            _pad: [0; 3],
        }
    }

    /// The edge of a TLS connection as the kernel names it: by process and socket fd (a
    /// uprobe sees neither the socket nor its addresses), with
    /// [`TRANSPORT_TLS_SOCKET`]. User space finds the socket's addresses
    /// ([`Self::with_flow`]).
    #[inline(always)]
    pub fn tls_socket(tgid: u32, fd: i32, c: &L7Conn) -> Self {
        let mut remote_addr = [0u8; 16];
        let t = tgid.to_le_bytes();
        let f = fd.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            remote_addr[i] = t[i];
            remote_addr[4 + i] = f[i];
            i += 1;
        }
        Self {
            cgroup_id: c.cgroup_id,
            local_addr: [0; 16],
            remote_addr,
            server_port: 0,
            role: c.role,
            proto: c.proto,
            transport: TRANSPORT_TLS_SOCKET,
            _pad: [0; 3],
        }
    }

    /// The (process, fd) a [`TRANSPORT_TLS_SOCKET`] key names.
    pub fn tls_socket_of(&self) -> Option<(u32, i32)> {
        if self.transport != TRANSPORT_TLS_SOCKET {
            return None;
        }
        let a = &self.remote_addr;
        Some((
            u32::from_le_bytes([a[0], a[1], a[2], a[3]]),
            i32::from_le_bytes([a[4], a[5], a[6], a[7]]),
        ))
    }

    /// This TLS socket's edge once its addresses are known: as a plain connection's, over
    /// [`TRANSPORT_TLS`].
    pub fn with_flow(&self, flow: &FlowKey) -> Self {
        Self {
            local_addr: flow.local_addr,
            remote_addr: flow.remote_addr,
            server_port: if self.role == ROLE_CLIENT {
                flow.remote_port
            } else {
                flow.local_port
            },
            transport: TRANSPORT_TLS,
            ..*self
        }
    }
}

/// Requests parsed from a TCP connection's segments.
pub const TRANSPORT_TCP: u8 = 0;
/// Requests read from OpenSSL's plaintext, on a socket named by (process, fd): the kernel's
/// key, never shipped.
pub const TRANSPORT_TLS_SOCKET: u8 = 1;
/// Requests read from OpenSSL's plaintext, on a socket whose addresses user space found.
pub const TRANSPORT_TLS: u8 = 2;

/// Counters of one edge (per CPU in the kernel; user space sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct L7Stats {
    pub requests: u64,
    /// Final replies (errors included).
    pub responses: u64,
    /// Replies that failed the request (HTTP 5xx, Redis and PostgreSQL errors).
    pub errors: u64,
    /// HTTP 4xx.
    pub client_errors: u64,
    /// A request sent while the previous one was still outstanding (pipelining): counted,
    /// not timed, so no reply is ever matched to the wrong request.
    pub pipelined: u64,
    /// A reply the parser did not recognise (the request is then not outstanding any more).
    pub unparsed: u64,
    /// Connections closed with a request outstanding.
    pub closed_pending: u64,
    /// Request → first segment of its reply.
    pub latency: LatencyHist,
}
const _: () = assert!(size_of::<L7Stats>() == 7 * 8 + 144);

impl L7Stats {
    pub const ZERO: Self = Self {
        requests: 0,
        responses: 0,
        errors: 0,
        client_errors: 0,
        pipelined: 0,
        unparsed: 0,
        closed_pending: 0,
        latency: LatencyHist::ZERO,
    };
}

/// Failing replies of one edge by what failed: the HTTP status, the Redis error prefix, or
/// the SQLSTATE, packed as the parsers pack them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct L7ErrorKey {
    pub edge: L7EdgeKey,
    pub code: u64,
}
const _: () = assert!(size_of::<L7ErrorKey>() == 56);

/// One connection's parsing state, keyed by its `FlowKey` (this side's view).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L7Conn {
    /// When the outstanding request was sent (client) or received (server).
    pub request_ns: u64,
    pub cgroup_id: u64,
    pub proto: u8,
    pub role: u8,
    /// A request is outstanding.
    pub pending: u8,
    /// Data segments that matched no protocol yet; at [`L7_MAX_MISSES`] the connection is
    /// opaque (a server-first protocol, or not a request protocol at all).
    pub misses: u8,
    /// Bytes of `stash` in use.
    pub stash_len: u8,
    pub _pad: [u8; 3],
    /// A segment too short to parse (a server that writes `HTTP/1.1 ` and the status in two
    /// sends), held to be read in front of the next segment.
    pub stash: [u8; L7_STASH],
}
const _: () = assert!(size_of::<L7Conn>() == 40);

impl L7Conn {
    /// A connection whose first message is still to come (its role and protocol are set by
    /// the first request, from either side).
    #[inline(always)]
    pub const fn unknown(cgroup_id: u64) -> Self {
        Self {
            request_ns: 0,
            cgroup_id,
            proto: super::PROTO_UNKNOWN,
            role: 0,
            pending: 0,
            misses: 0,
            stash_len: 0,
            _pad: [0; 3],
            stash: [0; L7_STASH],
        }
    }
}

/// The longest segment held for the next one: longer than any prefix the parsers need.
pub const L7_STASH: usize = 16;

/// See [`L7Conn::misses`]: joined mid-way, a connection may show a few reply segments
/// before its next request.
pub const L7_MAX_MISSES: u8 = 8;

/// A TLS connection in the uprobes: the process and its OpenSSL `SSL *`, which lives as long
/// as the connection (`SSL_free` ends it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}
const _: () = assert!(size_of::<TlsKey>() == 16);

/// A TLS connection's socket fd (learnt from the first read or write syscall a thread makes
/// inside an OpenSSL call on it; -1 until then) and its parsing state, as a TCP
/// connection's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsConn {
    pub fd: i32,
    pub _pad: u32,
    pub conn: L7Conn,
}
const _: () = assert!(size_of::<TlsConn>() == 48);

/// An OpenSSL read or write in progress on one thread, from its uprobe to its uretprobe.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsCall {
    pub ssl: u64,
    /// The plaintext buffer.
    pub buf: u64,
    /// `SSL_read_ex`/`SSL_write_ex`: where the byte count is written (the return value is 1
    /// or 0); 0 for `SSL_read`/`SSL_write`, which return the count.
    pub count_at: u64,
    /// When the call began (a write's time: the application handed the message over).
    pub start_ns: u64,
}
const _: () = assert!(size_of::<TlsCall>() == 32);

/// A TLS connection's socket, announced the moment its fd is learnt (usually in the
/// handshake): user space reads its addresses while it is still open, since a short
/// connection may be closed by the next drain.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsSocket {
    pub tgid: u32,
    pub fd: i32,
}
const _: () = assert!(size_of::<TlsSocket>() == 8);

/// [`L7Notice::kind`]: a new TLS socket ([`L7Notice::socket`]).
pub const NOTICE_TLS_SOCKET: u32 = 1;
/// [`L7Notice::kind`]: the first failing reply with a new (edge, code)
/// ([`L7Notice::error`]), its first bytes in [`L7Notice::bytes`]. One per key while the key
/// lives in `L7_ERRORS`: that is the rate limit, and it never sends a request's bytes.
pub const NOTICE_ERROR_SAMPLE: u32 = 2;

/// What the request programs tell user space at once, on the `L7_NOTICES` ring buffer
/// (one fixed-size record for both kinds).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct L7Notice {
    pub kind: u32,
    /// Bytes of `bytes` in use.
    pub len: u32,
    pub socket: TlsSocket,
    pub error: L7ErrorKey,
    pub bytes: [u8; super::PEEK],
}
const _: () = assert!(size_of::<L7Notice>() == 8 + 8 + 56 + 64);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), plain integers, no implicit padding (sizes asserted above).
    unsafe impl aya::Pod for super::TlsKey {}
    unsafe impl aya::Pod for super::TlsConn {}
    unsafe impl aya::Pod for super::TlsSocket {}
    unsafe impl aya::Pod for super::L7Notice {}
    // SAFETY: repr(C), plain integers, no implicit padding (sizes asserted above).
    unsafe impl aya::Pod for super::L7EdgeKey {}
    unsafe impl aya::Pod for super::L7Stats {}
    unsafe impl aya::Pod for super::L7ErrorKey {}
    unsafe impl aya::Pod for super::L7Conn {}
}
