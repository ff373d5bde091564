//! Where a packet's addresses, ports and payload are, as the cgroup_skb programs see it
//! (`skb->data` starts at the network header), and the connection it belongs to.

use aya_ebpf::programs::SkBuffContext;
use node_agent_common::FlowKey;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
pub const IPPROTO_TCP: u8 = 6;

/// `a.b.c.d` as `::ffff:a.b.c.d`.
#[inline(always)]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Source and destination of the packet and where its transport header starts.
pub struct Ip {
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
pub fn flow_key(ctx: &SkBuffContext, p: &Ip, egress: bool) -> Option<FlowKey> {
    let sport = u16::from_be(ctx.load::<u16>(p.l4).ok()?);
    let dport = u16::from_be(ctx.load::<u16>(p.l4 + 2).ok()?);
    Some(side_key(&p.src, &p.dst, sport, dport, egress))
}

/// The 4-tuple as this side sees it: on egress the source is local, on ingress the
/// destination.
#[inline(always)]
fn side_key(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, egress: bool) -> FlowKey {
    if egress {
        FlowKey {
            local_addr: *src,
            remote_addr: *dst,
            local_port: sport,
            remote_port: dport,
            _pad: 0,
        }
    } else {
        FlowKey {
            local_addr: *dst,
            remote_addr: *src,
            local_port: dport,
            remote_port: sport,
            _pad: 0,
        }
    }
}

/// The network header, one field at a time: what the L7 programs use (see [`parse_packet`]
/// for why they do not parse from one block).
#[inline(always)]
pub fn parse_l3(ctx: &SkBuffContext) -> Option<Ip> {
    match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let ver_ihl: u8 = ctx.load(0).ok()?;
            Some(Ip {
                proto: ctx.load(9).ok()?,
                src: v4_mapped(ctx.load(12).ok()?),
                dst: v4_mapped(ctx.load(16).ok()?),
                l4: usize::from(ver_ihl & 0x0f) * 4,
            })
        }
        // Extension headers are not followed: TCP/UDP directly after the fixed header.
        ETH_P_IPV6 => Some(Ip {
            proto: ctx.load(6).ok()?,
            src: ctx.load(8).ok()?,
            dst: ctx.load(24).ok()?,
            l4: 40,
        }),
        _ => None,
    }
}

/// Source and destination of the packet, its transport ports, and for TCP its flags and
/// where its payload starts.
pub struct Packet {
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub l4: usize,
    pub sport: u16,
    pub dport: u16,
    /// TCP only (0 otherwise).
    pub tcp_flags: u8,
    /// TCP only: the payload's offset, after the header's options.
    pub tcp_data: usize,
}

impl Packet {
    /// The connection a packet belongs to, from this side.
    #[inline(always)]
    pub fn flow_key(&self, egress: bool) -> FlowKey {
        side_key(&self.src, &self.dst, self.sport, self.dport, egress)
    }
}

/// The fixed IPv4 header and the first 20 bytes of the transport header.
const V4_BLOCK: usize = 40;
/// The fixed IPv6 header and the first 20 bytes of the transport header.
const V6_BLOCK: usize = 60;

/// The transport fields at `t` (the transport header's first 20 bytes) of a `proto` packet.
#[inline(always)]
fn transport(proto: u8, t: &[u8]) -> Option<(u16, u16, u8, usize)> {
    let sport = u16::from_be_bytes([*t.first()?, *t.get(1)?]);
    let dport = u16::from_be_bytes([*t.get(2)?, *t.get(3)?]);
    if proto != IPPROTO_TCP {
        return Some((sport, dport, 0, 0));
    }
    let data = usize::from(*t.get(12)? >> 4) * 4;
    Some((sport, dport, *t.get(13)?, data))
}

/// Parses the network and transport headers from one copy of the packet's first bytes: one
/// helper call per packet instead of one per field (the flow programs run for every packet
/// of every socket on the node). A packet shorter than the block, or an IPv4 header with
/// options, takes the field-by-field path. Not in the L7 programs: with both paths inlined
/// there the verifier's states multiplied past its million-instruction limit (their payload
/// parsing already takes most of the 512-byte stack and of that budget).
#[inline(always)]
pub fn parse_packet(ctx: &SkBuffContext) -> Option<Packet> {
    match u16::from_be(ctx.skb.protocol() as u16) {
        ETH_P_IP => {
            let Ok(h) = ctx.load::<[u8; V4_BLOCK]>(0) else {
                return parse_packet_by_field(ctx);
            };
            if h[0] & 0x0f != 5 {
                return parse_packet_by_field(ctx);
            }
            let proto = h[9];
            let (sport, dport, tcp_flags, data) = transport(proto, &h[20..])?;
            Some(Packet {
                proto,
                src: v4_mapped([h[12], h[13], h[14], h[15]]),
                dst: v4_mapped([h[16], h[17], h[18], h[19]]),
                l4: 20,
                sport,
                dport,
                tcp_flags,
                tcp_data: 20 + data,
            })
        }
        ETH_P_IPV6 => {
            let Ok(h) = ctx.load::<[u8; V6_BLOCK]>(0) else {
                return parse_packet_by_field(ctx);
            };
            let proto = h[6];
            let (sport, dport, tcp_flags, data) = transport(proto, &h[40..])?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            Some(Packet {
                proto,
                src,
                dst,
                l4: 40,
                sport,
                dport,
                tcp_flags,
                tcp_data: 40 + data,
            })
        }
        _ => None,
    }
}

/// The same from [`parse_l3`] and two more loads: for packets shorter than a block (a small
/// UDP datagram) and IPv4 headers with options.
#[inline(always)]
fn parse_packet_by_field(ctx: &SkBuffContext) -> Option<Packet> {
    let ip = parse_l3(ctx)?;
    let ports: [u8; 4] = ctx.load(ip.l4).ok()?;
    let (tcp_flags, data) = if ip.proto == IPPROTO_TCP {
        let off: [u8; 2] = ctx.load(ip.l4 + 12).ok()?;
        (off[1], usize::from(off[0] >> 4) * 4)
    } else {
        (0, 0)
    };
    Some(Packet {
        proto: ip.proto,
        src: ip.src,
        dst: ip.dst,
        l4: ip.l4,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        tcp_flags,
        tcp_data: ip.l4 + data,
    })
}
