//! Where a packet's addresses, ports and payload are, as the cgroup_skb programs see it
//! (`skb->data` starts at the network header), and the connection it belongs to.

use aya_ebpf::programs::SkBuffContext;
use node_agent_common::FlowKey;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// `a.b.c.d` as `::ffff:a.b.c.d`.
#[inline(always)]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Source and destination of the packet and where its transport header starts.
pub struct Packet {
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub l4: usize,
}

/// Where a TCP segment's payload starts (after the header's options).
#[inline(always)]
pub fn tcp_payload(ctx: &SkBuffContext, l4: usize) -> Option<usize> {
    Some(l4 + usize::from(ctx.load::<u8>(l4 + 12).ok()? >> 4) * 4)
}

/// The connection a TCP packet belongs to, from this side (`local` is the socket's end).
#[inline(always)]
pub fn flow_key(ctx: &SkBuffContext, p: &Packet, egress: bool) -> Option<FlowKey> {
    let sport = u16::from_be(ctx.load::<u16>(p.l4).ok()?);
    let dport = u16::from_be(ctx.load::<u16>(p.l4 + 2).ok()?);
    Some(if egress {
        FlowKey {
            local_addr: p.src,
            remote_addr: p.dst,
            local_port: sport,
            remote_port: dport,
            _pad: 0,
        }
    } else {
        FlowKey {
            local_addr: p.dst,
            remote_addr: p.src,
            local_port: dport,
            remote_port: sport,
            _pad: 0,
        }
    })
}

#[inline(always)]
pub fn parse_ip(ctx: &SkBuffContext) -> Option<Packet> {
    match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let ver_ihl: u8 = ctx.load(0).ok()?;
            Some(Packet {
                proto: ctx.load(9).ok()?,
                src: v4_mapped(ctx.load(12).ok()?),
                dst: v4_mapped(ctx.load(16).ok()?),
                l4: usize::from(ver_ihl & 0x0f) * 4,
            })
        }
        // Extension headers are not followed: TCP/UDP directly after the fixed header.
        ETH_P_IPV6 => Some(Packet {
            proto: ctx.load(6).ok()?,
            src: ctx.load(8).ok()?,
            dst: ctx.load(24).ok()?,
            l4: 40,
        }),
        _ => None,
    }
}
