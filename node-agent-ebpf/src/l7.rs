//! Request-level protocols (HTTP/1.x, Redis, PostgreSQL) on plain TCP, from the same
//! cgroup_skb programs that count each connection's bytes.
//!
//! Why packets and not syscall payloads: these programs already run for every segment of
//! every socket, with the socket's cgroup and the 4-tuple at hand; a data segment costs one
//! more map lookup and a copy of its first [`PEEK`] bytes. Syscall payloads would mean a
//! buffer read on every read/write/send/recv of every process, sockets or not, and a way to
//! tell a socket fd from a file without kprobes.
//!
//! Each connection alternates: the client's request, then the first segment of the server's
//! reply (its latency and outcome), and nothing is parsed in between. The parsers are in
//! `node_agent_common::l7`, shared with user space and unit-tested there.

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_skb_cgroup_id, bpf_skb_load_bytes},
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use node_agent_common::{
    l7::{
        self, L7Conn, L7EdgeKey, L7ErrorKey, L7Notice, L7Stats, Outcome, Peek, TlsSocket,
        L7_MAX_MISSES, L7_STASH, NOTICE_ERROR_SAMPLE, NOTICE_TLS_SOCKET, PEEK,
    },
    map_slot, FlowKey, ROLE_CLIENT, ROLE_SERVER,
};

use crate::{
    agg::{atomic_add, count_insert, get_or_insert, record_atomic, BPF_NOEXIST},
    maps::{L7_CONNS, L7_ERRORS, L7_ERROR_SAMPLES, L7_NOTICES, L7_STATS},
    packet::{flow_key, parse_l3, tcp_payload, IPPROTO_TCP},
};

#[cgroup_skb(ingress)]
pub fn vigil_l7_ingress(ctx: SkBuffContext) -> i32 {
    let _ = inspect(&ctx, false);
    1
}

#[cgroup_skb(egress)]
pub fn vigil_l7_egress(ctx: SkBuffContext) -> i32 {
    let _ = inspect(&ctx, true);
    1
}

/// A TCP segment with a payload goes on to [`segment`]; anything else is not ours.
#[inline(always)]
fn inspect(ctx: &SkBuffContext, egress: bool) -> Option<()> {
    let p = parse_l3(ctx)?;
    if p.proto != IPPROTO_TCP {
        return None;
    }
    let payload = tcp_payload(ctx, p.l4)?;
    if ctx.len() as usize <= payload {
        return None;
    }
    let key = flow_key(ctx, &p, egress)?;
    segment(ctx, &key, egress, payload)
}

/// The first bytes of the payload at `off` (of `total` bytes), copied into `p` after the
/// `held` bytes already there.
#[inline(always)]
fn peek(ctx: &SkBuffContext, off: usize, total: usize, held: usize, p: &mut Peek) -> Option<()> {
    let skb = ctx.skb.skb.cast::<c_void>();
    fill(p, total, held, |at, dst, size| {
        // SAFETY: bpf_skb_load_bytes gets this program's `__sk_buff`, a destination `fill`
        // keeps inside `p.bytes` and a constant length; it fails instead of reading past the
        // packet.
        unsafe { bpf_skb_load_bytes(skb, (off + at) as u32, dst, size) }
    })
}

/// Copies up to [`PEEK`] bytes of a `total`-byte message into `p` after its `held` bytes, in
/// constant-size chunks (the verifier refuses a length that may be zero): `read(at, dst,
/// size)` copies `size` bytes from offset `at` of the message, 0 on success.
#[inline(always)]
pub fn fill(
    p: &mut Peek,
    total: usize,
    held: usize,
    read: impl Fn(usize, *mut c_void, u32) -> i64,
) -> Option<()> {
    let held = held & (L7_STASH - 1);
    let room = PEEK - held;
    let avail = if total < room { total } else { room };
    let dst = p.bytes.as_mut_ptr();
    let mut copied = 0usize;
    for size in [32usize, 16, 8, 4, 2, 1] {
        if copied + size <= avail && held + copied + size <= PEEK {
            // SAFETY: `held + copied + size <= PEEK`, checked above: inside `p.bytes`.
            let at = unsafe { dst.add(held + copied) }.cast::<c_void>();
            if read(copied, at, size as u32) != 0 {
                break;
            }
            copied += size;
        }
    }
    if copied == 0 {
        return None;
    }
    p.len = held + copied;
    p.total = held + total;
    Some(())
}

/// Keeps a segment too short to parse for the next one (see `L7Conn::stash`); `false` when
/// it is not short, and so really not understood.
///
/// # Safety
/// `c` points at a live `L7_CONNS` value.
#[inline(always)]
pub unsafe fn hold(c: *mut L7Conn, p: &Peek) -> bool {
    if p.total >= L7_STASH {
        return false;
    }
    // SAFETY: the caller's guarantee; `p.bytes` is longer than the stash.
    unsafe {
        let mut i = 0;
        while i < L7_STASH {
            (*c).stash[i] = p.bytes[i];
            i += 1;
        }
        (*c).stash_len = p.total as u8;
    }
    true
}

#[inline(always)]
fn stats(edge: &L7EdgeKey) -> Option<*mut L7Stats> {
    get_or_insert!(L7_STATS, edge, &L7Stats::ZERO, map_slot::L7_STATS)
}

/// One data segment of a TCP connection: `egress` when this side sent it.
#[inline(always)]
pub fn segment(ctx: &SkBuffContext, key: &FlowKey, egress: bool, payload: usize) -> Option<()> {
    // SAFETY: bpf_ktime_get_ns takes no arguments; bpf_skb_cgroup_id's one argument is this
    // cgroup_skb program's own `__sk_buff`.
    let (now, cgroup) = unsafe { (bpf_ktime_get_ns(), bpf_skb_cgroup_id(ctx.skb.skb)) };
    let total = (ctx.len() as usize).checked_sub(payload)?;
    if total == 0 {
        return None;
    }
    // One copy of the payload's first bytes for every branch below: the BPF stack is 512
    // bytes for the whole program.
    let mut p = Peek::EMPTY;
    let Some(c) = L7_CONNS.get_ptr_mut(key) else {
        peek(ctx, payload, total, 0, &mut p)?;
        return first_segment(&p, key, cgroup, egress, now);
    };
    // SAFETY: `c` points at a live `L7_CONNS` value (map values stay mapped while the program
    // runs).
    unsafe {
        if (*c).proto == l7::PROTO_OPAQUE {
            return None;
        }
        let held = take_stash(c, &mut p);
        peek(ctx, payload, total, held, &mut p)?;
        message(c, &p, egress, now, |c| L7EdgeKey::of(key, c))
    }
}

/// Moves a short segment held from before (see [`hold`]) to the front of `p`; its length.
///
/// # Safety
/// `c` points at a live connection state.
#[inline(always)]
pub unsafe fn take_stash(c: *mut L7Conn, p: &mut Peek) -> usize {
    // SAFETY: the caller's guarantee.
    unsafe {
        // Copied even when empty: a branch here gives the verifier two kinds of `held` to
        // follow through every parser, which took the program past its 1M-instruction limit.
        let held = usize::from((*c).stash_len) & (L7_STASH - 1);
        let mut i = 0;
        while i < L7_STASH {
            p.bytes[i] = (*c).stash[i];
            i += 1;
        }
        (*c).stash_len = 0;
        held
    }
}

/// One message of a connection whose state is `c`: `p` is its first bytes, `sent` when this
/// side sent it, `now` when. Shared by TCP segments and OpenSSL's plaintext (`tls`): `edge`
/// names the connection's edge from its state.
///
/// # Safety
/// `c` points at a live connection state. Its fields are plain stores: the two directions
/// of one connection may run on two CPUs at once, but a request and its reply are ordered
/// by the exchange itself, so a race needs a client that sends before the reply it waits
/// for — pipelining, which is counted and never timed.
#[inline(always)]
pub unsafe fn message(
    c: *mut L7Conn,
    p: &Peek,
    sent: bool,
    now: u64,
    edge: impl Fn(&L7Conn) -> L7EdgeKey,
) -> Option<()> {
    // SAFETY: the caller's guarantee.
    unsafe {
        let proto = (*c).proto;
        if proto == l7::PROTO_OPAQUE {
            return None;
        }
        let mut at = 0;
        if proto == l7::PROTO_UNKNOWN {
            let detected = l7::detect(p);
            if detected != l7::PROTO_HTTP2 {
                return unknown_message(detected, p, c, sent, now, &edge);
            }
            // The preface is no request; frames may follow it in the same message.
            (*c).proto = detected;
            (*c).role = if sent { ROLE_CLIENT } else { ROLE_SERVER };
            at = l7::http2::PREFACE_LEN;
        }
        if (*c).proto == l7::PROTO_HTTP2 {
            // One call site: the verifier walks the frames once.
            return http2_message(c, p, sent, at, &edge);
        }
        let from_client = sent == ((*c).role == ROLE_CLIENT);
        let edge = edge(&*c);
        if from_client {
            if !l7::is_request(proto, p) {
                // The rest of a request (a body), or the start of one cut short.
                if (*c).pending == 0 {
                    hold(c, p);
                }
                return None;
            }
            let s = stats(&edge)?;
            atomic_add(&raw mut (*s).requests, 1);
            if (*c).pending != 0 {
                atomic_add(&raw mut (*s).pipelined, 1);
            } else {
                (*c).pending = 1;
                (*c).request_ns = now;
            }
            return Some(());
        }
        if (*c).pending == 0 {
            return None; // the rest of a reply
        }
        let Some(r) = l7::reply(proto, p) else {
            if hold(c, p) {
                return None;
            }
            (*c).pending = 0;
            let s = stats(&edge)?;
            atomic_add(&raw mut (*s).unparsed, 1);
            return Some(());
        };
        if r.outcome == Outcome::Interim {
            return Some(());
        }
        let s = stats(&edge)?;
        (*c).pending = 0;
        atomic_add(&raw mut (*s).responses, 1);
        record_atomic(&raw mut (*s).latency, now.saturating_sub((*c).request_ns));
        match r.outcome {
            Outcome::Error => atomic_add(&raw mut (*s).errors, 1),
            Outcome::ClientError => atomic_add(&raw mut (*s).client_errors, 1),
            Outcome::Upgraded => (*c).proto = l7::PROTO_OPAQUE,
            Outcome::Ok | Outcome::Interim => {}
        }
        if matches!(r.outcome, Outcome::Error | Outcome::ClientError) {
            failed(&L7ErrorKey { edge, code: r.code }, p);
        }
    }
    Some(())
}

/// One HTTP/2 message: its frames from `at` on, counted (see `l7::http2`; nothing pends,
/// nothing is timed).
///
/// # Safety
/// `c` points at a live connection state.
#[inline(always)]
unsafe fn http2_message(
    c: *mut L7Conn,
    p: &Peek,
    sent: bool,
    at: usize,
    edge: &impl Fn(&L7Conn) -> L7EdgeKey,
) -> Option<()> {
    // SAFETY: the caller's guarantee.
    unsafe {
        let from_client = sent == ((*c).role == ROLE_CLIENT);
        let f = l7::http2::frames(p, from_client, at);
        if f.requests == 0 && f.responses == 0 && f.errors == 0 {
            return None;
        }
        let edge = edge(&*c);
        let s = stats(&edge)?;
        atomic_add(&raw mut (*s).requests, f.requests);
        atomic_add(&raw mut (*s).responses, f.responses);
        atomic_add(&raw mut (*s).errors, f.errors);
        atomic_add(&raw mut (*s).client_errors, f.client_errors);
        if f.code != 0 {
            failed(&L7ErrorKey { edge, code: f.code }, p);
        }
    }
    Some(())
}

/// Counts a failing reply by its code; the first with a new (edge, code) is also sampled.
#[inline(always)]
fn failed(key: &L7ErrorKey, p: &Peek) {
    if let Some(n) = L7_ERRORS.get_ptr_mut(key) {
        // SAFETY: `n` points at a live `L7_ERRORS` value; the add is atomic.
        unsafe { atomic_add(n, 1) };
        return;
    }
    if L7_ERRORS.insert(key, 1u64, BPF_NOEXIST).is_ok() {
        count_insert(map_slot::L7_ERRORS);
        if L7_ERROR_SAMPLES.load() != 0 {
            notify(NOTICE_ERROR_SAMPLE, key, p, TlsSocket { tgid: 0, fd: -1 });
        }
    } else if let Some(n) = L7_ERRORS.get_ptr_mut(key) {
        // Another CPU created it first.
        // SAFETY: as above.
        unsafe { atomic_add(n, 1) };
    }
}

/// Tells user space about a TLS socket whose fd was just learnt; a full ring only delays
/// that until the next drain, which still finds a socket that is open.
#[inline(always)]
pub fn notify_socket(tgid: u32, fd: i32) {
    let none = L7ErrorKey {
        edge: L7EdgeKey::NONE,
        code: 0,
    };
    notify(
        NOTICE_TLS_SOCKET,
        &none,
        &Peek::EMPTY,
        TlsSocket { tgid, fd },
    );
}

#[inline(always)]
fn notify(kind: u32, error: &L7ErrorKey, p: &Peek, socket: TlsSocket) {
    let Some(mut entry) = L7_NOTICES.reserve::<L7Notice>(0) else {
        return;
    };
    let n = entry.as_mut_ptr();
    // SAFETY: `n` is the reserved record, exclusively ours until submitted; every field is
    // written before the submit.
    unsafe {
        (*n).kind = kind;
        (*n).len = p.len as u32;
        (*n).socket = socket;
        (*n).error = *error;
        (*n).bytes = p.bytes;
    }
    entry.submit(0);
}

/// A data segment of a connection not seen before: a request opens its state with the
/// sender as the client; anything else starts counting misses. A cheap path of its own:
/// sending it through `message` as well doubled the verifier's work past its limit.
#[inline(always)]
fn first_segment(p: &Peek, key: &FlowKey, cgroup: u64, egress: bool, now: u64) -> Option<()> {
    let proto = l7::detect(p);
    let mut c = L7Conn::unknown(cgroup);
    c.request_ns = now;
    c.proto = proto;
    c.role = if egress { ROLE_CLIENT } else { ROLE_SERVER };
    c.misses = 1;
    if proto == l7::PROTO_HTTP2 {
        // The preface is no request. Frames after it in this segment are not read: a
        // connection's first stream, if it rides with the preface, is missed.
        c.misses = 0;
    } else if proto != l7::PROTO_UNKNOWN {
        c.pending = 1;
        c.misses = 0;
        let s = stats(&L7EdgeKey::of(key, &c))?;
        // SAFETY: `s` points at a live `L7_STATS` value; the add is atomic (cgroup_skb
        // programs interrupt one another, see `agg`).
        unsafe { atomic_add(&raw mut (*s).requests, 1) };
    } else if p.total < L7_STASH {
        // A request cut short: held for the next segment, not yet a miss.
        c.misses = 0;
        c.stash_len = p.total as u8;
        let mut i = 0;
        while i < L7_STASH {
            c.stash[i] = p.bytes[i];
            i += 1;
        }
    }
    if L7_CONNS.insert(key, c, 0).is_ok() {
        count_insert(map_slot::L7_CONNS);
    }
    Some(())
}

/// Another message of a connection whose protocol is not known yet (`proto` is what the
/// message looks like; not HTTP/2, which `message` handles).
///
/// # Safety
/// `c` points at a live connection state.
#[inline(always)]
unsafe fn unknown_message(
    proto: u8,
    p: &Peek,
    c: *mut L7Conn,
    sent: bool,
    now: u64,
    edge: &impl Fn(&L7Conn) -> L7EdgeKey,
) -> Option<()> {
    // SAFETY: the caller's guarantee; plain stores as in `message`.
    unsafe {
        if proto == l7::PROTO_UNKNOWN {
            if hold(c, p) {
                return None;
            }
            (*c).misses = (*c).misses.saturating_add(1);
            if (*c).misses >= L7_MAX_MISSES {
                (*c).proto = l7::PROTO_OPAQUE;
            }
            return None;
        }
        (*c).proto = proto;
        (*c).role = if sent { ROLE_CLIENT } else { ROLE_SERVER };
        (*c).pending = 1;
        (*c).request_ns = now;
        let s = stats(&edge(&*c))?;
        atomic_add(&raw mut (*s).requests, 1);
    }
    Some(())
}

/// A connection's state is gone (the TCP connection closed, or its `SSL` was freed): a
/// request still outstanding failed with it.
#[inline(always)]
pub fn ended(conn: &L7Conn, edge: impl Fn(&L7Conn) -> L7EdgeKey) {
    if conn.pending != 0 && conn.proto != l7::PROTO_OPAQUE && conn.proto != l7::PROTO_UNKNOWN {
        if let Some(s) = stats(&edge(conn)) {
            // SAFETY: `s` points at a live `L7_STATS` value; the add is atomic.
            unsafe { atomic_add(&raw mut (*s).closed_pending, 1) };
        }
    }
}

/// The connection closed: a request still outstanding failed with it.
#[inline(always)]
pub fn closed(key: &FlowKey) {
    let Some(c) = L7_CONNS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: `c` points at a live `L7_CONNS` value; it is copied out before the delete.
    let conn = unsafe { *c };
    let _ = L7_CONNS.remove(key);
    ended(&conn, |c| L7EdgeKey::of(key, c));
}
