//! TCP connection lifecycle and health from the `sock` and `tcp` tracepoints, added into
//! `FLOWS` by 4-tuple. Addresses come from the tracepoint itself, so these work in softirq
//! context where `current` is an unrelated task.

use core::mem::offset_of;

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use node_agent_common::{
    map_slot, FlowKey, FlowStats, SockTupleLayout, FIELD_ABSENT, FLOW_CLOSED, FLOW_ESTABLISHED,
    FLOW_FAILED, ROLE_CLIENT, ROLE_SERVER, TUPLE_SOCKADDR,
};

use crate::{
    agg::{atomic_add, get_or_insert},
    maps::{FLOWS, TELEMETRY_LAYOUT},
    packet::v4_mapped,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;

// Kernel TCP states (include/net/tcp_states.h).
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

/// Reads one `sockaddr_in`/`sockaddr_in6` at `off`: (address, host-order port).
#[inline(always)]
fn read_sockaddr(ctx: &TracePointContext, off: u32) -> Option<([u8; 16], u16)> {
    let off = off as usize;
    // SAFETY: `ctx` is the TCP tracepoint's record and `off` the offset of one of its
    // `sockaddr_in6`-sized `saddr`/`daddr` fields in this kernel's format (the agent checked
    // the size); family, port and address are read at their fixed `sockaddr_in`/`sockaddr_in6`
    // offsets within it. `read_at` copies with bpf_probe_read_kernel, which fails instead of
    // faulting, into plain integers and byte arrays.
    unsafe {
        let family = ctx.read_at::<u16>(off).ok()?;
        let port = u16::from_be(ctx.read_at::<u16>(off + 2).ok()?);
        match family {
            AF_INET => Some((v4_mapped(ctx.read_at::<[u8; 4]>(off + 4).ok()?), port)),
            AF_INET6 => Some((ctx.read_at::<[u8; 16]>(off + 8).ok()?, port)),
            _ => None,
        }
    }
}

/// The connection this tracepoint is about, from the local side. `None` for other families or
/// when this kernel lacks the fields.
#[inline(always)]
pub fn read_tuple(ctx: &TracePointContext, t: &SockTupleLayout) -> Option<FlowKey> {
    if t.mode == FIELD_ABSENT {
        return None;
    }
    if t.mode == TUPLE_SOCKADDR {
        let (local_addr, local_port) = read_sockaddr(ctx, t.saddr)?;
        let (remote_addr, remote_port) = read_sockaddr(ctx, t.daddr)?;
        return Some(FlowKey {
            local_addr,
            remote_addr,
            local_port,
            remote_port,
            _pad: 0,
        });
    }
    // SAFETY: `ctx` is the TCP tracepoint's record and the offsets in `t` are those of its
    // split `family`, `sport`, `dport`, `saddr`, `daddr`, `saddr_v6` and `daddr_v6` fields in
    // this kernel's format; `read_at` copies with bpf_probe_read_kernel (fails, never faults)
    // into plain integers and byte arrays.
    unsafe {
        let family = ctx.read_at::<u16>(t.family as usize).ok()?;
        let (local_addr, remote_addr) = match family {
            AF_INET => (
                v4_mapped(ctx.read_at::<[u8; 4]>(t.saddr as usize).ok()?),
                v4_mapped(ctx.read_at::<[u8; 4]>(t.daddr as usize).ok()?),
            ),
            AF_INET6 => (
                ctx.read_at::<[u8; 16]>(t.saddr_v6 as usize).ok()?,
                ctx.read_at::<[u8; 16]>(t.daddr_v6 as usize).ok()?,
            ),
            _ => return None,
        };
        Some(FlowKey {
            local_addr,
            remote_addr,
            local_port: ctx.read_at::<u16>(t.sport as usize).ok()?,
            remote_port: ctx.read_at::<u16>(t.dport as usize).ok()?,
            _pad: 0,
        })
    }
}

#[tracepoint]
pub fn vigil_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    // SAFETY: `ctx` is the inet_sock_set_state record and the `state_*` offsets those of its
    // `protocol`, `oldstate` and `newstate` fields in this kernel's format; `read_at` copies
    // with bpf_probe_read_kernel (fails, never faults) into plain integers.
    let (protocol, old, new) = unsafe {
        (
            ctx.read_at::<u16>(l.state_protocol as usize).unwrap_or(0),
            ctx.read_at::<i32>(l.state_old as usize).unwrap_or(0),
            ctx.read_at::<i32>(l.state_new as usize).unwrap_or(0),
        )
    };
    if protocol != IPPROTO_TCP || old == TCP_LISTEN || new == TCP_LISTEN {
        return 0;
    }
    let Some(key) = read_tuple(&ctx, &l.state) else {
        return 0;
    };
    // SAFETY: bpf_ktime_get_ns takes no arguments and reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // Leaving ESTABLISHED (this side or its peer closed: FIN_WAIT1, CLOSE_WAIT), closed, or
    // a new connection on a reused tuple: the old one's outstanding request failed. Not at
    // CLOSE only: a side that closes waits in FIN_WAIT2 for as long as a frozen peer is.
    if old == TCP_ESTABLISHED || new == TCP_CLOSE || (old == TCP_CLOSE && new == TCP_SYN_SENT) {
        crate::l7::closed(&key);
    }
    if old == TCP_CLOSE && new == TCP_SYN_SENT {
        // connect(): the only transition that runs in the connecting task's context.
        let pid_tgid = bpf_get_current_pid_tgid();
        // SAFETY: bpf_get_current_cgroup_id takes no arguments; `current` is the connecting
        // task on this transition.
        let cgroup = unsafe { bpf_get_current_cgroup_id() };
        let init = FlowStats::new(cgroup, (pid_tgid >> 32) as u32, ROLE_CLIENT, now);
        if let Some(f) = get_or_insert!(FLOWS, &key, &init, map_slot::FLOWS) {
            // SAFETY: `f` points at a live `FLOWS` value (map values stay mapped while the
            // program runs). These are plain aligned stores of whole fields: the socket's
            // lock serialises its state changes, and the cgroup_skb programs only add to the
            // counters (atomically) and fill a zero `cgroup_id`. A reused tuple takes the new
            // owner.
            unsafe {
                (*f).cgroup_id = cgroup;
                (*f).tgid = (pid_tgid >> 32) as u32;
                (*f).role = ROLE_CLIENT;
                (*f).flags = 0;
                (*f).last_ns = now;
            }
        }
        return 0;
    }
    if old == TCP_SYN_RECV && new == TCP_ESTABLISHED {
        // A listener's child socket; its cgroup is filled in by the cgroup_skb programs.
        let init = FlowStats::new(0, 0, ROLE_SERVER, now);
        if let Some(f) = get_or_insert!(FLOWS, &key, &init, map_slot::FLOWS) {
            // SAFETY: `f` points at a live `FLOWS` value; the socket's lock serialises its
            // state changes, the only writers of `role`, `flags` and `last_ns`.
            unsafe {
                (*f).role = ROLE_SERVER;
                (*f).flags |= FLOW_ESTABLISHED;
                (*f).last_ns = now;
            }
        }
        return 0;
    }
    let Some(f) = FLOWS.get_ptr_mut(key) else {
        if old == TCP_SYN_SENT && new == TCP_CLOSE {
            failed_unsent(&key, now);
        }
        return 0;
    };
    // SAFETY: `f` points at a live `FLOWS` value; one socket's state changes, the only
    // writers of `flags` and `last_ns`, are serialised by its lock.
    unsafe {
        (*f).last_ns = now;
        if new == TCP_ESTABLISHED {
            (*f).flags |= FLOW_ESTABLISHED;
        } else if new == TCP_CLOSE {
            (*f).flags |= if old == TCP_SYN_SENT {
                FLOW_FAILED
            } else {
                FLOW_CLOSED
            };
        }
    }
    0
}

/// A connect that gave up in SYN_SENT without one packet leaving: a local firewall dropped
/// its SYNs (nftables `output … drop`, a network policy), so the cgroup_skb programs never
/// saw the connection under its real source port, and `connect()` recorded it under port 0
/// (measured with tracefs: `sport=0` on CLOSE → SYN_SENT, the port is chosen after that
/// transition). That entry names its owner; the failure is recorded under the real tuple.
#[inline(always)]
fn failed_unsent(key: &FlowKey, now: u64) {
    let mut at_connect = *key;
    at_connect.local_port = 0;
    // SAFETY: the value is copied out at once; a concurrent update of the entry can at worst
    // give a stale owner, never a fault.
    let Some(owner) = (unsafe { FLOWS.get(at_connect) }).copied() else {
        return;
    };
    if owner.role != ROLE_CLIENT {
        return;
    }
    let mut failed = FlowStats::new(owner.cgroup_id, owner.tgid, ROLE_CLIENT, now);
    failed.flags = FLOW_FAILED;
    if FLOWS.insert(key, failed, crate::agg::BPF_NOEXIST).is_ok() {
        crate::agg::count_insert(map_slot::FLOWS);
    }
}

/// Adds one to the `u64` counter at byte offset `field` of the connection the tracepoint
/// names.
#[inline(always)]
fn bump(ctx: &TracePointContext, t: &SockTupleLayout, field: usize) {
    let Some(key) = read_tuple(ctx, t) else {
        return;
    };
    if let Some(f) = FLOWS.get_ptr_mut(key) {
        // SAFETY: `f` points at a live `FLOWS` value and `field` is the `offset_of!` one of
        // its `u64` counters (8-byte aligned in the `repr(C)` struct), which other CPUs and
        // the cgroup_skb programs add to as well: hence the atomic add, and a raw pointer
        // rather than a `&mut` to memory others write.
        unsafe { atomic_add(f.cast::<u8>().add(field).cast::<u64>(), 1) };
    }
}

/// Every retransmit counts, in any state. Measured on the PostgreSQL chain with tracefs:
/// 1564 of 1571 were in FIN_WAIT1, the client's FIN re-sent as a tail-loss probe because
/// PostgreSQL delays its ACK (about one per connection, nothing lost). Dropping closing
/// states would silence that, but under real loss short connections lose mostly their FINs
/// (10 % loss nginx → app: 18 of 20 retransmits in FIN_WAIT1/CLOSING/LAST_ACK), and the
/// tracepoint cannot tell a tail-loss probe from a timeout.
#[tracepoint]
pub fn vigil_tcp_retransmit(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    bump(&ctx, &l.retransmit, offset_of!(FlowStats, retransmits));
    0
}

#[tracepoint]
pub fn vigil_tcp_receive_reset(ctx: TracePointContext) -> u32 {
    bump(
        &ctx,
        &TELEMETRY_LAYOUT.load().receive_reset,
        offset_of!(FlowStats, resets_received),
    );
    0
}

#[tracepoint]
pub fn vigil_tcp_send_reset(ctx: TracePointContext) -> u32 {
    bump(
        &ctx,
        &TELEMETRY_LAYOUT.load().send_reset,
        offset_of!(FlowStats, resets_sent),
    );
    0
}

/// Fires for each segment received on an established connection; carries the smoothed RTT.
#[tracepoint]
pub fn vigil_tcp_probe(ctx: TracePointContext) -> u32 {
    let l = TELEMETRY_LAYOUT.load();
    let Some(key) = read_tuple(&ctx, &l.probe) else {
        return 0;
    };
    let Some(f) = FLOWS.get_ptr_mut(key) else {
        return 0;
    };
    // SAFETY: `ctx` is the tcp_probe record and `probe_srtt` the offset of its `srtt` field
    // in this kernel's format (`read_at` fails, never faults); `f` points at a live `FLOWS`
    // value whose aligned `u64` RTT counters get atomic adds, as several CPUs may receive
    // segments of one connection.
    unsafe {
        let srtt = ctx.read_at::<u32>(l.probe_srtt as usize).unwrap_or(0);
        if srtt != 0 {
            atomic_add(&raw mut (*f).srtt_sum_us, u64::from(srtt));
            atomic_add(&raw mut (*f).srtt_samples, 1);
        }
    }
    0
}
