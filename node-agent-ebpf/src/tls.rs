//! Requests over TLS: uprobes on OpenSSL's `SSL_read`/`SSL_write` (and their `_ex` forms)
//! hand the plaintext to the same parsers and state machine as plain TCP (`l7::message`).
//!
//! A uprobe sees an `SSL *` and a buffer, not a socket. The socket's fd is learnt from the
//! syscalls the thread makes inside the OpenSSL call (`vigil_tls_fd`, on the read/write
//! family's tracepoints): OpenSSL's socket BIO and the custom BIOs of curl and others all
//! end in one of them on the calling thread. The kernel counts a TLS connection's requests
//! under (process, fd) ([`L7EdgeKey::tls_socket`]); user space finds that socket's addresses
//! in procfs and ships the edge as any other.
//!
//! Times: a write's is its entry (when the application handed the message over), a read's
//! its return (when the plaintext reached the application), so a client's latency is
//! request written → reply read, and a server's is request read → reply written.

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::bpf_probe_read_user,
    },
    macros::{tracepoint, uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use node_agent_common::{
    l7::{L7Conn, L7EdgeKey, Peek, TlsCall, TlsConn, TlsKey},
    map_slot,
};

use crate::{
    agg::{atomic_add, count_insert},
    l7::{ended, fill, message, notify_socket, take_stash},
    maps::{TELEMETRY_LAYOUT, TLS_CALLS, TLS_CONNS, TLS_IN_FLIGHT},
};

#[uprobe]
pub fn vigil_ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, false);
    0
}

#[uprobe]
pub fn vigil_ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, true);
    0
}

#[uprobe]
pub fn vigil_ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, false);
    0
}

#[uprobe]
pub fn vigil_ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, true);
    0
}

/// `SSL_do_handshake`, `SSL_connect`, `SSL_accept`: no plaintext, but the handshake's
/// syscalls name the socket before the first request, while even a one-request connection
/// is still open for user space to read its addresses.
#[uprobe]
pub fn vigil_ssl_handshake(ctx: ProbeContext) -> u32 {
    if let Some(ssl) = ctx.arg::<u64>(0) {
        begin(ssl, 0, 0);
    }
    0
}

#[uretprobe]
pub fn vigil_ssl_handshake_ret(_ctx: RetProbeContext) -> u32 {
    end_call(bpf_get_current_pid_tgid());
    0
}

/// `SSL_write` and `SSL_write_ex` return here.
#[uretprobe]
pub fn vigil_ssl_write_ret(ctx: RetProbeContext) -> u32 {
    let _ = exit(&ctx, true);
    0
}

/// `SSL_read` and `SSL_read_ex` return here.
#[uretprobe]
pub fn vigil_ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let _ = exit(&ctx, false);
    0
}

/// `SSL_free(ssl)`: the connection is over; a request outstanding on it failed.
#[uprobe]
pub fn vigil_ssl_free(ctx: ProbeContext) -> u32 {
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return 0;
    };
    let key = TlsKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
        ssl,
    };
    let Some(c) = TLS_CONNS.get_ptr_mut(key) else {
        return 0;
    };
    // SAFETY: `c` points at a live `TLS_CONNS` value; it is copied out before the delete.
    let conn = unsafe { *c };
    let _ = TLS_CONNS.remove(key);
    if conn.fd >= 0 {
        ended(&conn.conn, |c| L7EdgeKey::tls_socket(key.tgid, conn.fd, c));
    }
    0
}

/// A read/write-family syscall (`fd` is its first argument): inside an OpenSSL call on this
/// thread, it names that connection's socket.
#[tracepoint]
pub fn vigil_tls_fd(ctx: TracePointContext) -> u32 {
    let _ = learn_fd(&ctx);
    0
}

/// `SSL_*(ssl, buf, num[, count_at])`: remembered until the call returns.
#[inline(always)]
fn enter(ctx: &ProbeContext, ex: bool) {
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let count_at = if ex {
        match ctx.arg::<u64>(3) {
            Some(p) if p != 0 => p,
            _ => return,
        }
    } else {
        0
    };
    begin(ssl, buf, count_at);
}

#[inline(always)]
fn begin(ssl: u64, buf: u64, count_at: u64) {
    let call = TlsCall {
        ssl,
        buf,
        count_at,
        // SAFETY: bpf_ktime_get_ns takes no arguments.
        start_ns: unsafe { bpf_ktime_get_ns() },
    };
    let thread = bpf_get_current_pid_tgid();
    // SAFETY: a plain map lookup; only its presence is used.
    let fresh = unsafe { TLS_CALLS.get(thread) }.is_none();
    if TLS_CALLS.insert(thread, call, 0).is_ok() && fresh {
        in_flight(1);
    }
}

/// The thread's OpenSSL call returned (or will never be seen returning).
#[inline(always)]
fn end_call(thread: u64) {
    if TLS_CALLS.remove(thread).is_ok() {
        in_flight(u64::MAX); // - 1, wrapping
    }
}

#[inline(always)]
fn in_flight(delta: u64) {
    if let Some(n) = TLS_IN_FLIGHT.get_ptr_mut(0) {
        // SAFETY: `n` is the one element of a preallocated array, 8-byte aligned and live
        // while the program runs; every CPU adds to it, so the add is atomic.
        unsafe { atomic_add(n, delta) };
    }
}

#[inline(always)]
fn learn_fd(ctx: &TracePointContext) -> Option<()> {
    if *TLS_IN_FLIGHT.get(0)? == 0 {
        return None;
    }
    let thread = bpf_get_current_pid_tgid();
    // SAFETY: a plain map lookup; the value is copied out.
    let call = unsafe { *TLS_CALLS.get(thread)? };
    let at = TELEMETRY_LAYOUT.load().io_fd;
    // SAFETY: `read_at` bounds-checks the read against the trace record (bpf_probe_read).
    let fd = unsafe { ctx.read_at::<i32>(at as usize) }.ok()?;
    let key = TlsKey {
        tgid: (thread >> 32) as u32,
        _pad: 0,
        ssl: call.ssl,
    };
    if let Some(c) = TLS_CONNS.get_ptr_mut(key) {
        // SAFETY: `c` points at a live `TLS_CONNS` value; only this connection's own calls
        // (one thread at a time, as OpenSSL requires) write it.
        unsafe {
            if (*c).fd != fd {
                (*c).fd = fd;
                notify_socket(key.tgid, fd);
            }
        }
        return Some(());
    }
    let conn = TlsConn {
        fd,
        _pad: 0,
        // SAFETY: takes no arguments. The same cgroup v2 id as the socket's
        // (`bpf_skb_cgroup_id`): a socket belongs to the cgroup of the task that made it.
        conn: L7Conn::unknown(unsafe { bpf_get_current_cgroup_id() }),
    };
    if TLS_CONNS.insert(key, conn, 0).is_ok() {
        count_insert(map_slot::TLS_CONNS);
        notify_socket(key.tgid, fd);
    }
    Some(())
}

/// A call returned: its plaintext, if any, is one message of its connection.
#[inline(always)]
fn exit(ctx: &RetProbeContext, write: bool) -> Option<()> {
    let thread = bpf_get_current_pid_tgid();
    // SAFETY: a plain map lookup; the value is copied out before the delete.
    let call = unsafe { *TLS_CALLS.get(thread)? };
    end_call(thread);
    // Every one of these returns an `int`: the upper half of the register is not part of it
    // (a -1 read as 64 bits can be 4294967295, "bytes read").
    let ret = ctx.ret::<u64>() as u32 as i32;
    let count = if call.count_at != 0 {
        if ret != 1 {
            return None;
        }
        // SAFETY: bpf_probe_read_user fails instead of faulting on a bad user pointer.
        unsafe { aya_ebpf::helpers::bpf_probe_read_user(call.count_at as *const u64) }.ok()?
    } else if ret > 0 {
        ret as u64
    } else {
        return None;
    };
    if count == 0 {
        return None;
    }
    let key = TlsKey {
        tgid: (thread >> 32) as u32,
        _pad: 0,
        ssl: call.ssl,
    };
    let c = TLS_CONNS.get_ptr_mut(key)?;
    // SAFETY: `c` points at a live `TLS_CONNS` value; see `learn_fd` for who writes it.
    unsafe {
        let fd = (*c).fd;
        if fd < 0 {
            return None;
        }
        let conn = &raw mut (*c).conn;
        let mut p = Peek::EMPTY;
        let held = take_stash(conn, &mut p);
        read_plaintext(call.buf, count as usize, held, &mut p)?;
        let now = if write {
            call.start_ns
        } else {
            bpf_ktime_get_ns()
        };
        message(conn, &p, write, now, |c| {
            L7EdgeKey::tls_socket(key.tgid, fd, c)
        })
    }
}

/// The first bytes of the `total`-byte plaintext at `buf`, after the `held` bytes already
/// in `p`.
#[inline(always)]
fn read_plaintext(buf: u64, total: usize, held: usize, p: &mut Peek) -> Option<()> {
    fill(p, total, held, |at, dst, size| {
        // SAFETY: `fill` keeps `dst` inside `p.bytes` with a constant `size`;
        // bpf_probe_read_user fails instead of faulting on a bad user address.
        unsafe { bpf_probe_read_user(dst, size, (buf + at as u64) as *const c_void) }
    })
}
