//! Packets of every socket on the node, seen by cgroup_skb programs attached to the cgroup v2
//! root: bytes and packets per TCP connection, the owning socket's cgroup (also for accepted
//! sockets, whose state changes run in softirq context), and DNS over UDP port 53.
//!
//! `skb->data` starts at the network header here. The programs never drop: they return 1.

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
    map_slot, DnsFailure, DnsQueryKey, DnsStats, EventKind, FlowKey, FlowStats, DNS_QUESTION_LEN,
    ROLE_CLIENT, ROLE_SERVER,
};

use crate::{
    agg::{atomic_add, get_or_insert, record},
    emit::reserve,
    maps::{DNS, DNS_EVENT_BUDGET, DNS_PENDING, FLOWS},
    packet::{parse_packet, Packet, IPPROTO_TCP},
};

const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;
const DNS_HEADER_LEN: usize = 12;
/// The header flag of a response.
const DNS_QR: u16 = 0x8000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

#[cgroup_skb(ingress)]
pub fn vigil_skb_ingress(ctx: SkBuffContext) -> i32 {
    let _ = account(&ctx, Direction::Ingress);
    1
}

#[cgroup_skb(egress)]
pub fn vigil_skb_egress(ctx: SkBuffContext) -> i32 {
    let _ = account(&ctx, Direction::Egress);
    1
}

#[inline(always)]
fn account(ctx: &SkBuffContext, dir: Direction) -> Option<()> {
    let p = parse_packet(ctx)?;
    let key = p.flow_key(dir == Direction::Egress);
    let (local_port, remote_port, remote_addr) = (key.local_port, key.remote_port, key.remote_addr);
    // SAFETY: bpf_skb_cgroup_id's one argument must be the program's `__sk_buff`; `ctx.skb.skb`
    // is exactly the context pointer the kernel passed to this cgroup_skb program.
    let cgroup = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    match p.proto {
        IPPROTO_TCP => tcp_packet(ctx, &key, cgroup, dir, &p),
        IPPROTO_UDP if dir == Direction::Egress && remote_port == DNS_PORT => {
            dns_query(ctx, cgroup, local_port, p.l4 + 8)
        }
        IPPROTO_UDP if dir == Direction::Ingress && remote_port == DNS_PORT => {
            dns_answer(ctx, cgroup, local_port, &remote_addr, p.l4 + 8)
        }
        _ => None,
    }
}

#[inline(always)]
fn tcp_packet(
    ctx: &SkBuffContext,
    key: &FlowKey,
    cgroup: u64,
    dir: Direction,
    p: &Packet,
) -> Option<()> {
    let len = u64::from(ctx.len());
    let flags = p.tcp_flags;
    let f = match FLOWS.get_ptr_mut(key) {
        Some(f) => f,
        None => {
            // Start tracking at a SYN (the role is then known) or at a data segment of a
            // connection opened before the agent. Bare ACKs/FINs after close do not revive it.
            let syn = flags & TCP_FLAG_SYN != 0 && flags & TCP_FLAG_ACK == 0;
            let has_data = len > p.tcp_data as u64;
            if !syn && !has_data {
                return None;
            }
            let role = match (syn, dir) {
                (true, Direction::Egress) => ROLE_CLIENT,
                (true, Direction::Ingress) => ROLE_SERVER,
                _ => 0,
            };
            // SAFETY: bpf_ktime_get_ns takes no arguments and reads the monotonic clock.
            let now = unsafe { bpf_ktime_get_ns() };
            let init = FlowStats::new(cgroup, 0, role, now);
            get_or_insert!(FLOWS, key, &init, map_slot::FLOWS)?
        }
    };
    // SAFETY: `f` points at a live `FLOWS` value (map values stay mapped while the program
    // runs). Its counters are added to by every CPU and by programs this one may interrupt
    // (or be interrupted by) on its own CPU, hence atomic adds through raw pointers to these
    // aligned `u64` fields. `cgroup_id` is one aligned 8-byte store: two racing writers both
    // store the socket's cgroup, so either result is right.
    unsafe {
        if (*f).cgroup_id == 0 {
            (*f).cgroup_id = cgroup;
        }
        match dir {
            Direction::Egress => {
                atomic_add(&raw mut (*f).bytes_sent, len);
                atomic_add(&raw mut (*f).packets_sent, 1);
            }
            Direction::Ingress => {
                atomic_add(&raw mut (*f).bytes_received, len);
                atomic_add(&raw mut (*f).packets_received, 1);
            }
        }
    }
    Some(())
}

#[inline(always)]
fn dns_stats(cgroup: u64) -> Option<*mut DnsStats> {
    get_or_insert!(DNS, &cgroup, &DnsStats::ZERO, map_slot::DNS)
}

/// The DNS message's id and flags, with the id as the key that pairs query and answer.
#[inline(always)]
fn dns_header(
    ctx: &SkBuffContext,
    cgroup: u64,
    local_port: u16,
    dns: usize,
) -> Option<(DnsQueryKey, u16)> {
    let id = u16::from_be(ctx.load::<u16>(dns).ok()?);
    let flags = u16::from_be(ctx.load::<u16>(dns + 2).ok()?);
    Some((
        DnsQueryKey {
            cgroup_id: cgroup,
            local_port,
            id,
            _pad: 0,
        },
        flags,
    ))
}

#[inline(always)]
fn dns_query(ctx: &SkBuffContext, cgroup: u64, local_port: u16, dns: usize) -> Option<()> {
    let (key, flags) = dns_header(ctx, cgroup, local_port, dns)?;
    if flags & DNS_QR != 0 {
        return None; // a response leaving: this node serves DNS, not our concern here
    }
    // SAFETY: bpf_ktime_get_ns takes no arguments and reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    if DNS_PENDING.insert(key, now, 0).is_ok() {
        crate::agg::count_insert(map_slot::DNS_PENDING);
    }
    let s = dns_stats(cgroup)?;
    // SAFETY: `s` is this CPU's copy of a live `DNS` value and `queries` an aligned `u64`.
    // Egress runs in the sending task's context with bottom halves enabled, so a softirq may
    // run egress again on this CPU in the middle of this add: it is atomic.
    unsafe { atomic_add(&raw mut (*s).queries, 1) };
    Some(())
}

#[inline(always)]
fn dns_answer(
    ctx: &SkBuffContext,
    cgroup: u64,
    local_port: u16,
    server: &[u8; 16],
    dns: usize,
) -> Option<()> {
    let (key, flags) = dns_header(ctx, cgroup, local_port, dns)?;
    if flags & DNS_QR == 0 {
        return None;
    }
    let id = key.id;
    // SAFETY: bpf_ktime_get_ns takes no arguments and reads the monotonic clock.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: `get` is unsafe because another CPU may remove or reuse the element while the
    // reference lives; the `u64` send time is copied out at once (a torn value would only
    // skew one latency sample).
    let sent = unsafe { DNS_PENDING.get(key).copied() };
    let _ = DNS_PENDING.remove(key);
    let rcode = flags & 0x000f;
    let s = dns_stats(cgroup)?;
    // SAFETY: `s` is this CPU's copy of a live `DNS` value. Only ingress writes these fields
    // (egress only adds to `queries`), and ingress runs with bottom halves disabled (the
    // NET_RX softirq), so no other cgroup_skb program runs on this CPU until it returns, and
    // tracepoint programs never touch `DNS`: plain adds cannot lose an update.
    unsafe {
        (*s).answers += 1;
        match rcode {
            0 => {}
            2 => (*s).servfail += 1,
            3 => (*s).nxdomain += 1,
            _ => (*s).other_errors += 1,
        }
        if let Some(sent) = sent {
            record(&mut (*s).latency, now.saturating_sub(sent));
        }
    }
    if rcode != 0 && within_budget(now) {
        dns_failure(ctx, cgroup, id, rcode, server, dns);
    }
    Some(())
}

/// Failing-DNS records per CPU per second. Past it the records are sampled away on purpose
/// (the per-cgroup DNS aggregates still count every failure), so they are not reported as
/// ring-buffer drops, which mean loss.
const DNS_EVENTS_PER_SECOND: u64 = 64;

#[inline(always)]
fn within_budget(now: u64) -> bool {
    let Some(b) = DNS_EVENT_BUDGET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `b` is this CPU's element of `DNS_EVENT_BUDGET`, used only from ingress, which
    // runs with bottom halves disabled: nothing else reads or writes it on this CPU meanwhile.
    unsafe {
        let second = now / 1_000_000_000;
        if (*b).second != second {
            (*b).second = second;
            (*b).sent = 0;
        }
        if (*b).sent >= DNS_EVENTS_PER_SECOND {
            (*b).sampled_away += 1;
            return false;
        }
        (*b).sent += 1;
    }
    true
}

/// Sends the failed name to user space: answers echo the question right after the header.
#[inline(always)]
fn dns_failure(
    ctx: &SkBuffContext,
    cgroup: u64,
    id: u16,
    rcode: u16,
    server: &[u8; 16],
    dns: usize,
) {
    let Some(mut entry) = reserve::<DnsFailure>(EventKind::DnsFailure) else {
        return;
    };
    let e = entry.as_mut_ptr();
    let q = dns + DNS_HEADER_LEN;
    // SAFETY: `e` points at the record `reserve` just took from the ring buffer: sized and
    // aligned for `DnsFailure`, and ours alone until `submit`. bpf_get_smp_processor_id and
    // bpf_ktime_get_ns take no arguments. bpf_skb_load_bytes gets this program's `__sk_buff`,
    // a destination inside `question` (`copied + size <= DNS_QUESTION_LEN`, checked below) and
    // a constant length; it fails instead of reading past the packet.
    unsafe {
        let h = &mut (*e).header;
        h.kind = EventKind::DnsFailure as u32;
        h.cpu = aya_ebpf::helpers::bpf_get_smp_processor_id();
        h.ktime_ns = bpf_ktime_get_ns();
        h.cgroup_id = cgroup;
        h.pid = 0;
        h.tgid = 0;
        h.comm = [0; 16];
        (*e).rcode = rcode;
        (*e).query_id = id;
        (*e).server_port = DNS_PORT;
        (*e).server_addr = *server;
        // Constant lengths only (the verifier refuses a length that may be zero): the
        // available bytes are copied as a sum of powers of two, largest first.
        let avail = (ctx.len() as usize).saturating_sub(q).min(DNS_QUESTION_LEN);
        let skb = ctx.skb.skb.cast::<c_void>();
        let question = (*e).question.as_mut_ptr();
        let mut copied = 0usize;
        for size in [64usize, 32, 16, 8, 4, 2, 1] {
            if copied + size <= avail && copied + size <= DNS_QUESTION_LEN {
                let dst = question.add(copied).cast::<c_void>();
                if bpf_skb_load_bytes(skb, (q + copied) as u32, dst, size as u32) != 0 {
                    break;
                }
                copied += size;
            }
        }
        (*e).question_len = copied as u16;
    }
    entry.submit(0);
}
