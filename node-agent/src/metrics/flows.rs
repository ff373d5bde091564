//! Folding per-connection kernel counters into per-edge samples.
//!
//! The kernel keeps one entry per TCP connection (4-tuple). An edge is what the service graph
//! needs: one local workload talking to one remote service endpoint. A client's edge is keyed
//! by the server's ip:port; a server's by its listening ip:port and the client's address
//! (the client's ephemeral port is folded away).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
};

use node_agent_common::{
    FlowKey, FlowStats, FLOW_CLOSED, FLOW_ESTABLISHED, FLOW_FAILED, ROLE_CLIENT, ROLE_SERVER,
};

/// `::ffff:a.b.c.d` back to `a.b.c.d`.
pub fn ip(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    pub cgroup_id: u64,
    pub role: u8,
    pub local_ip: IpAddr,
    /// The listening port for a server, 0 for a client.
    pub local_port: u16,
    pub remote_ip: IpAddr,
    /// The server's port for a client, 0 for a server.
    pub remote_port: u16,
}

/// An edge's counts over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeTotals {
    pub connects: u64,
    pub established: u64,
    pub failed: u64,
    pub closed: u64,
    pub active: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub srtt_sum_us: u64,
    pub srtt_samples: u64,
    /// A process that opened one of the connections (0 when unknown).
    pub tgid: u32,
}

/// The growing counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FlowCounters([u64; 9]);

impl FlowCounters {
    fn of(s: &FlowStats) -> Self {
        Self([
            s.bytes_sent,
            s.bytes_received,
            s.packets_sent,
            s.packets_received,
            s.retransmits,
            s.resets_sent,
            s.resets_received,
            s.srtt_sum_us,
            s.srtt_samples,
        ])
    }

    fn delta(&self, prev: &Self) -> Self {
        let mut d = [0; 9];
        for (i, v) in d.iter_mut().enumerate() {
            // A smaller value means the tuple was reused by a new connection: all of it is new.
            *v = self.0[i].checked_sub(prev.0[i]).unwrap_or(self.0[i]);
        }
        Self(d)
    }
}

struct Seen {
    counters: FlowCounters,
    flags: u8,
}

/// The role of a connection the kernel first saw mid-stream (opened before the agent): the
/// side with the higher (ephemeral) port is the client.
fn role_of(key: &FlowKey, stats: &FlowStats) -> u8 {
    match stats.role {
        ROLE_CLIENT | ROLE_SERVER => stats.role,
        _ if key.remote_port < key.local_port => ROLE_CLIENT,
        _ => ROLE_SERVER,
    }
}

fn edge_key(key: &FlowKey, stats: &FlowStats, role: u8) -> EdgeKey {
    let client = role == ROLE_CLIENT;
    EdgeKey {
        cgroup_id: stats.cgroup_id,
        role,
        local_ip: ip(key.local_addr),
        local_port: if client { 0 } else { key.local_port },
        remote_ip: ip(key.remote_addr),
        remote_port: if client { key.remote_port } else { 0 },
    }
}

/// Per-connection memory between two drains.
#[derive(Default)]
pub struct FlowTracker {
    seen: HashMap<FlowKey, Seen>,
    /// Connections user space removed from the kernel map after they ended.
    pub deleted: u64,
}

/// One drain of the flow map.
pub struct FlowDrain {
    pub edges: HashMap<EdgeKey, EdgeTotals>,
    /// Ended connections, already reported: delete them from the kernel map.
    pub finished: Vec<FlowKey>,
}

impl FlowTracker {
    pub fn observe(&mut self, reading: Vec<(FlowKey, FlowStats)>) -> FlowDrain {
        let mut edges: HashMap<EdgeKey, EdgeTotals> = HashMap::new();
        let mut finished = Vec::new();
        let mut next = HashMap::with_capacity(reading.len());
        for (key, stats) in reading {
            let counters = FlowCounters::of(&stats);
            let (delta, prev_flags, new_flow) = match self.seen.get(&key) {
                Some(p) => (counters.delta(&p.counters), p.flags, false),
                None => (counters, 0, true),
            };
            let flags_new = stats.flags & !prev_flags;
            let ended = stats.flags & (FLOW_CLOSED | FLOW_FAILED) != 0;
            let active = stats.flags & FLOW_ESTABLISHED != 0 && !ended;
            let role = role_of(&key, &stats);
            let e = edges.entry(edge_key(&key, &stats, role)).or_default();
            // Only a connection the kernel saw open (role known) is a new connection.
            if new_flow && stats.role != 0 {
                e.connects += 1;
            }
            e.established += u64::from(flags_new & FLOW_ESTABLISHED != 0);
            e.failed += u64::from(flags_new & FLOW_FAILED != 0);
            e.closed += u64::from(flags_new & FLOW_CLOSED != 0);
            e.active += u64::from(active);
            let [bs, br, ps, pr, rt, rs, rr, ss, sn] = delta.0;
            e.bytes_sent += bs;
            e.bytes_received += br;
            e.packets_sent += ps;
            e.packets_received += pr;
            e.retransmits += rt;
            e.resets_sent += rs;
            e.resets_received += rr;
            e.srtt_sum_us += ss;
            e.srtt_samples += sn;
            if e.tgid == 0 {
                e.tgid = stats.tgid;
            }
            if ended {
                finished.push(key);
            } else {
                next.insert(
                    key,
                    Seen {
                        counters,
                        flags: stats.flags,
                    },
                );
            }
        }
        self.deleted += finished.len() as u64;
        // Entries missing from this reading were evicted by the kernel's LRU.
        self.seen = next;
        // Idle, already-reported connections with nothing open say nothing this interval.
        edges.retain(|_, t| EdgeTotals { tgid: 0, ..*t } != EdgeTotals::default());
        FlowDrain { edges, finished }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lport: u16, rport: u16) -> FlowKey {
        let v4 = |a: [u8; 4]| {
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
            ]
        };
        FlowKey {
            local_addr: v4([10, 0, 0, 1]),
            remote_addr: v4([10, 0, 0, 2]),
            local_port: lport,
            remote_port: rport,
            _pad: 0,
        }
    }

    #[test]
    fn connections_fold_into_one_client_edge() {
        let mut t = FlowTracker::default();
        let mut a = FlowStats::new(7, 100, ROLE_CLIENT, 0);
        a.flags = FLOW_ESTABLISHED;
        a.bytes_sent = 100;
        let mut b = FlowStats::new(7, 100, ROLE_CLIENT, 0);
        b.flags = FLOW_FAILED;
        b.resets_received = 1;
        let d = t.observe(vec![(key(40000, 6379), a), (key(40001, 6379), b)]);
        assert_eq!(d.edges.len(), 1);
        let (k, e) = d.edges.iter().next().expect("one edge");
        assert_eq!(
            (k.remote_port, k.local_port, k.role),
            (6379, 0, ROLE_CLIENT)
        );
        assert_eq!(k.remote_ip.to_string(), "10.0.0.2");
        assert_eq!(
            (e.connects, e.established, e.failed, e.active),
            (2, 1, 1, 1)
        );
        assert_eq!((e.bytes_sent, e.resets_received), (100, 1));
        assert_eq!(d.finished, vec![key(40001, 6379)]);

        // Next interval: only the change is reported, and a close ends the connection.
        a.bytes_sent = 250;
        a.flags |= FLOW_CLOSED;
        let d = t.observe(vec![(key(40000, 6379), a)]);
        let e = d.edges.values().next().expect("edge");
        assert_eq!(
            (e.connects, e.bytes_sent, e.closed, e.active),
            (0, 150, 1, 0)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn mid_stream_connection_role_is_inferred_from_ports() {
        let mut t = FlowTracker::default();
        let mut s = FlowStats::new(9, 0, 0, 0);
        s.bytes_received = 10;
        let d = t.observe(vec![(key(80, 51000), s)]);
        let k = d.edges.keys().next().expect("edge");
        assert_eq!((k.role, k.local_port, k.remote_port), (ROLE_SERVER, 80, 0));
        assert_eq!(d.edges.values().next().map(|e| e.connects), Some(0));
    }
}
