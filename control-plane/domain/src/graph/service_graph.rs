//! The live service dependency graph, built from flow observations.
//!
//! Each node agent reports two views of a TCP conversation: the client's (workload → server
//! ip:port) and the server's (client ip → workload listening on ip:port). The graph keeps
//! both, keyed as observed, and resolves endpoints to entities when it is read, so a listener
//! learned after its clients still joins the edge. An endpoint is resolved, in order, by the
//! cluster (Kubernetes Services and Pods, through the `EndpointResolver` port), by a workload
//! seen listening on it, or stays an external `ip:port` node. Views not refreshed within the
//! TTL age out.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::Arc,
};

use petgraph::{
    graph::{DiGraph, NodeIndex},
    visit::{Bfs, Reversed},
};
use serde::Serialize;

use super::{
    ports::EndpointResolver,
    requests::{RequestSummary, RequestTally, RequestTotals},
};
use crate::{
    entity::{EntityId, EntityKind},
    event::WorkloadRef,
    interval::{Endpoint, FlowCounts, FlowObservation, FlowRole, MetricInterval},
};

#[derive(Debug, Clone, Copy)]
pub struct GraphConfig {
    /// Views not refreshed for this long are dropped.
    pub edge_ttl_ns: i64,
    /// Span of the "recent" counters (rates, current RTT).
    pub recent_window_ns: i64,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            edge_ttl_ns: 300 * 1_000_000_000,
            recent_window_ns: 10 * 1_000_000_000,
        }
    }
}

/// Loopback addresses only mean something on their own node.
fn scope(node: &str, ip: IpAddr) -> Option<String> {
    ip.is_loopback().then(|| node.to_string())
}

/// Cumulative and recent counts of one view.
#[derive(Debug, Clone, Default)]
struct Tally {
    total: FlowCounts,
    recent: VecDeque<(i64, FlowCounts)>,
    first_seen: i64,
    last_seen: i64,
}

impl Tally {
    fn add(&mut self, end_ns: i64, c: &FlowCounts, window: i64) {
        if self.first_seen == 0 {
            self.first_seen = end_ns;
        }
        self.total.add(c);
        // Open connections are a level, not a flow: keep the latest, not a sum.
        self.total.active = c.active;
        self.recent.push_back((end_ns, *c));
        self.last_seen = self.last_seen.max(end_ns);
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t < self.last_seen - window)
        {
            self.recent.pop_front();
        }
    }

    fn recent(&self) -> FlowCounts {
        let mut sum = FlowCounts::default();
        for (_, c) in &self.recent {
            sum.add(c);
        }
        sum
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    node: String,
    workload: EntityId,
    remote: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    node: String,
    workload: EntityId,
    local: Endpoint,
    peer: IpAddr,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityInfo {
    pub id: EntityId,
    pub kind: EntityKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
}

/// What one side saw of an edge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EdgeView {
    pub total: FlowCounts,
    pub recent: FlowCounts,
    pub last_seen_unix_ns: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: EntityId,
    pub to: EntityId,
    /// Connections opened (the larger of the two views).
    pub connections: u64,
    pub failed_connects: u64,
    pub resets: u64,
    pub retransmits: u64,
    /// Retransmitted / sent segments, both directions.
    pub retransmit_rate: f64,
    pub recent_retransmits: u64,
    pub recent_retransmit_rate: f64,
    /// Mean smoothed RTT, whole life of the edge and the recent window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_rtt_us: Option<f64>,
    /// Bytes from → to and back.
    pub bytes_forward: u64,
    pub bytes_backward: u64,
    pub last_seen_unix_ns: i64,
    /// The service endpoints this edge reaches.
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_view: Option<EdgeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_view: Option<EdgeView>,
    /// Requests over the recent window, when the kernel parsed the edge's protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphSnapshot {
    pub nodes: Vec<EntityInfo>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    pub entity: EntityId,
    /// Everything that transitively depends on `entity`, nearest first.
    pub dependents: Vec<EntityId>,
    /// The edges among them and into `entity`.
    pub edges: Vec<(EntityId, EntityId)>,
}

struct Workload {
    workload: WorkloadRef,
    nodes: HashSet<String>,
    processes: HashSet<String>,
    last_seen: i64,
}

pub struct ServiceGraph {
    config: GraphConfig,
    resolver: Arc<dyn EndpointResolver>,
    clients: HashMap<ClientKey, Tally>,
    servers: HashMap<ServerKey, Tally>,
    workloads: HashMap<EntityId, Workload>,
    /// (loopback scope, listening endpoint) → workload key, with when last seen.
    listeners: HashMap<(Option<String>, Endpoint), (EntityId, i64)>,
    /// (loopback scope, client address) → workload keys using it as a source address.
    client_addrs: HashMap<(Option<String>, IpAddr), HashMap<EntityId, i64>>,
    /// Client views' requests, keyed as their connections are.
    requests: HashMap<ClientKey, RequestTally>,
}

impl ServiceGraph {
    pub fn new(config: GraphConfig, resolver: Arc<dyn EndpointResolver>) -> Self {
        Self {
            config,
            resolver,
            clients: HashMap::new(),
            servers: HashMap::new(),
            workloads: HashMap::new(),
            listeners: HashMap::new(),
            client_addrs: HashMap::new(),
            requests: HashMap::new(),
        }
    }

    pub fn observe(&mut self, interval: &MetricInterval) {
        let end = interval.end_unix_ns;
        for f in &interval.flows {
            self.observe_flow(&interval.node, end, f);
        }
        let window = self.config.recent_window_ns;
        for r in interval
            .requests
            .iter()
            .filter(|r| r.role == FlowRole::Client)
        {
            self.requests
                .entry(ClientKey {
                    node: interval.node.clone(),
                    workload: r.workload.key.clone(),
                    remote: r.remote,
                })
                .or_default()
                .add(end, r, window);
        }
    }

    fn observe_flow(&mut self, node: &str, end: i64, f: &FlowObservation) {
        let key = f.workload.key.clone();
        let w = self
            .workloads
            .entry(key.clone())
            .or_insert_with(|| Workload {
                workload: f.workload.clone(),
                nodes: HashSet::new(),
                processes: HashSet::new(),
                last_seen: end,
            });
        w.nodes.insert(node.to_string());
        if !f.process.is_empty() && w.processes.len() < 16 {
            w.processes.insert(f.process.clone());
        }
        w.last_seen = w.last_seen.max(end);
        let window = self.config.recent_window_ns;
        match f.role {
            FlowRole::Client => {
                self.client_addrs
                    .entry((scope(node, f.local.ip), f.local.ip))
                    .or_default()
                    .insert(key.clone(), end);
                self.clients
                    .entry(ClientKey {
                        node: node.to_string(),
                        workload: key,
                        remote: f.remote,
                    })
                    .or_default()
                    .add(end, &f.counts, window);
            }
            FlowRole::Server => {
                self.listeners
                    .insert((scope(node, f.local.ip), f.local), (key.clone(), end));
                self.servers
                    .entry(ServerKey {
                        node: node.to_string(),
                        workload: key,
                        local: f.local,
                        peer: f.remote.ip,
                    })
                    .or_default()
                    .add(end, &f.counts, window);
            }
        }
    }

    /// Drops everything not seen since `now - ttl`.
    pub fn age_out(&mut self, now_unix_ns: i64) {
        let cutoff = now_unix_ns - self.config.edge_ttl_ns;
        self.clients.retain(|_, t| t.last_seen >= cutoff);
        self.requests.retain(|_, t| t.last_seen() >= cutoff);
        self.servers.retain(|_, t| t.last_seen >= cutoff);
        self.workloads.retain(|_, w| w.last_seen >= cutoff);
        self.listeners.retain(|_, (_, seen)| *seen >= cutoff);
        for users in self.client_addrs.values_mut() {
            users.retain(|_, seen| *seen >= cutoff);
        }
        self.client_addrs.retain(|_, users| !users.is_empty());
    }

    /// The entity serving `remote`, as seen from `node`.
    pub fn server_entity(&self, node: &str, remote: &Endpoint) -> (EntityId, EntityKind) {
        if let Some(r) = self.resolver.resolve(remote) {
            return (r.entity, r.kind);
        }
        match self.listeners.get(&(scope(node, remote.ip), *remote)) {
            Some((key, _)) => (key.clone(), EntityKind::Workload),
            None => (EntityId::external(remote), EntityKind::External),
        }
    }

    /// The entity behind a client address, when exactly one workload uses it.
    fn client_entity(&self, node: &str, ip: IpAddr) -> (EntityId, EntityKind) {
        if let Some(users) = self.client_addrs.get(&(scope(node, ip), ip)) {
            if users.len() == 1 {
                if let Some(key) = users.keys().next() {
                    return (key.clone(), EntityKind::Workload);
                }
            }
        }
        let as_endpoint = Endpoint { ip, port: 0 };
        if let Some(r) = self.resolver.resolve(&as_endpoint) {
            return (r.entity, r.kind);
        }
        (EntityId::external(ip), EntityKind::External)
    }

    pub fn snapshot(&self) -> GraphSnapshot {
        #[derive(Default)]
        struct Acc {
            client: Option<(FlowCounts, FlowCounts, i64)>,
            server: Option<(FlowCounts, FlowCounts, i64)>,
            endpoints: HashSet<String>,
            requests: RequestTotals,
        }
        fn merge(slot: &mut Option<(FlowCounts, FlowCounts, i64)>, t: &Tally) {
            let (total, recent, seen) = slot.get_or_insert_with(Default::default);
            total.add(&t.total);
            recent.add(&t.recent());
            *seen = (*seen).max(t.last_seen);
        }
        let mut kinds: BTreeMap<EntityId, EntityKind> = BTreeMap::new();
        let mut acc: BTreeMap<(EntityId, EntityId), Acc> = BTreeMap::new();
        for (k, t) in &self.clients {
            let (to, kind) = self.server_entity(&k.node, &k.remote);
            kinds.entry(to.clone()).or_insert(kind);
            kinds.insert(k.workload.clone(), EntityKind::Workload);
            let a = acc.entry((k.workload.clone(), to)).or_default();
            merge(&mut a.client, t);
            a.endpoints.insert(k.remote.to_string());
        }
        for (k, t) in &self.requests {
            let (to, _) = self.server_entity(&k.node, &k.remote);
            if let Some(a) = acc.get_mut(&(k.workload.clone(), to)) {
                t.merge_into(&mut a.requests);
            }
        }
        for (k, t) in &self.servers {
            let (from, kind) = self.client_entity(&k.node, k.peer);
            kinds.entry(from.clone()).or_insert(kind);
            kinds.insert(k.workload.clone(), EntityKind::Workload);
            let a = acc.entry((from, k.workload.clone())).or_default();
            merge(&mut a.server, t);
            a.endpoints.insert(k.local.to_string());
        }
        let edges = acc
            .into_iter()
            .map(|((from, to), a)| {
                let mut e = edge(from, to, a.client, a.server, a.endpoints);
                e.requests = a.requests.summary(self.config.recent_window_ns);
                e
            })
            .collect();
        let nodes = kinds
            .into_iter()
            .map(|(id, kind)| {
                let w = self.workloads.get(&id);
                EntityInfo {
                    kind,
                    workload: w.map(|w| w.workload.clone()),
                    nodes: w.map(|w| sorted(&w.nodes)).unwrap_or_default(),
                    processes: w.map(|w| sorted(&w.processes)).unwrap_or_default(),
                    id,
                }
            })
            .collect();
        GraphSnapshot { nodes, edges }
    }

    /// Everything that transitively depends on `entity` (callers of callers …), or `None`
    /// when the graph does not know it.
    pub fn blast_radius(&self, entity: &str) -> Option<BlastRadius> {
        let snapshot = self.snapshot();
        let (graph, index) = call_graph(&snapshot);
        let start = *index.get(entity)?;
        let reversed = Reversed(&graph);
        let mut bfs = Bfs::new(reversed, start);
        let mut dependents = Vec::new();
        let mut members = HashSet::from([start]);
        while let Some(n) = bfs.next(reversed) {
            if n != start {
                dependents.push(graph[n].clone());
                members.insert(n);
            }
        }
        let edges = graph
            .edge_indices()
            .filter_map(|e| graph.edge_endpoints(e))
            .filter(|(a, b)| members.contains(a) && members.contains(b))
            .map(|(a, b)| (graph[a].clone(), graph[b].clone()))
            .collect();
        Some(BlastRadius {
            entity: EntityId::new(entity),
            dependents,
            edges,
        })
    }
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort();
    v
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

type ViewSum = Option<(FlowCounts, FlowCounts, i64)>;

fn edge(
    from: EntityId,
    to: EntityId,
    client: ViewSum,
    server: ViewSum,
    endpoints: HashSet<String>,
) -> Edge {
    let zero = FlowCounts::default();
    let (ct, cr, cs) = client.unwrap_or((zero, zero, 0));
    let (st, sr, ss) = server.unwrap_or((zero, zero, 0));
    // Each side retransmits what it sent: the two views add up; connections are counted on
    // both sides, so take the larger.
    let sent = ct.packets_sent + st.packets_sent;
    let recent_sent = cr.packets_sent + sr.packets_sent;
    let retransmits = ct.retransmits + st.retransmits;
    let recent_retransmits = cr.retransmits + sr.retransmits;
    // RTT as the client measures it when it is observed, else the server's.
    let rtt = |c: &FlowCounts, s: &FlowCounts| c.mean_rtt_us().or_else(|| s.mean_rtt_us());
    let mut endpoints: Vec<String> = endpoints.into_iter().collect();
    endpoints.sort();
    Edge {
        connections: ct.connects.max(st.connects),
        failed_connects: ct.failed,
        resets: ct.resets_sent + ct.resets_received + st.resets_sent + st.resets_received,
        retransmits,
        retransmit_rate: ratio(retransmits, sent),
        recent_retransmits,
        recent_retransmit_rate: ratio(recent_retransmits, recent_sent),
        rtt_us: rtt(&ct, &st),
        recent_rtt_us: rtt(&cr, &sr),
        bytes_forward: ct.bytes_sent.max(st.bytes_received),
        bytes_backward: ct.bytes_received.max(st.bytes_sent),
        last_seen_unix_ns: cs.max(ss),
        endpoints,
        client_view: client.map(|(total, recent, seen)| EdgeView {
            total,
            recent,
            last_seen_unix_ns: seen,
        }),
        server_view: server.map(|(total, recent, seen)| EdgeView {
            total,
            recent,
            last_seen_unix_ns: seen,
        }),
        from,
        to,
        requests: None,
    }
}

/// The snapshot as a petgraph graph of entity ids (for walks and renderings), with each
/// entity's node index.
pub fn call_graph(s: &GraphSnapshot) -> (DiGraph<EntityId, ()>, HashMap<EntityId, NodeIndex>) {
    let mut g = DiGraph::new();
    let mut index = HashMap::new();
    for n in &s.nodes {
        index.insert(n.id.clone(), g.add_node(n.id.clone()));
    }
    for e in &s.edges {
        if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
            g.add_edge(a, b, ());
        }
    }
    (g, index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        graph::ports::{NoCluster, ResolvedEndpoint},
        synthetic::workload,
    };

    fn ep(s: &str) -> Endpoint {
        let (ip, port) = s.rsplit_once(':').expect("ip:port");
        Endpoint {
            ip: ip.parse().expect("ip"),
            port: port.parse().expect("port"),
        }
    }

    fn flow(
        key: &str,
        role: FlowRole,
        local: &str,
        remote: &str,
        c: FlowCounts,
    ) -> FlowObservation {
        FlowObservation {
            workload: workload(key),
            role,
            local: ep(local),
            remote: ep(remote),
            process: String::new(),
            counts: c,
        }
    }

    fn interval(end: i64, flows: Vec<FlowObservation>) -> MetricInterval {
        MetricInterval {
            node: "n1".into(),
            seq: 1,
            start_unix_ns: end - 1_000_000_000,
            end_unix_ns: end,
            flows,
            syscalls: vec![],
            latencies: vec![],
            dns: vec![],
            maps: vec![],
            requests: vec![],
            resources: vec![],
            filesystems: vec![],
        }
    }

    fn counts(connects: u64, retransmits: u64) -> FlowCounts {
        FlowCounts {
            connects,
            retransmits,
            packets_sent: 100,
            ..Default::default()
        }
    }

    /// web → api → db, each seen from both sides, plus an external dependency of db.
    fn chain() -> ServiceGraph {
        let mut g = ServiceGraph::new(GraphConfig::default(), Arc::new(NoCluster));
        let s = 10_000_000_000;
        g.observe(&interval(
            s,
            vec![
                flow(
                    "web",
                    FlowRole::Client,
                    "10.0.0.1:0",
                    "10.0.0.2:8080",
                    counts(5, 0),
                ),
                flow(
                    "api",
                    FlowRole::Server,
                    "10.0.0.2:8080",
                    "10.0.0.1:0",
                    counts(5, 0),
                ),
                flow(
                    "api",
                    FlowRole::Client,
                    "10.0.0.2:0",
                    "10.0.0.3:6379",
                    counts(3, 2),
                ),
                flow(
                    "db",
                    FlowRole::Server,
                    "10.0.0.3:6379",
                    "10.0.0.2:0",
                    counts(3, 1),
                ),
                flow(
                    "db",
                    FlowRole::Client,
                    "10.0.0.3:0",
                    "1.1.1.1:443",
                    counts(1, 0),
                ),
            ],
        ));
        g
    }

    #[test]
    fn both_views_join_into_one_edge_per_pair() {
        let snap = chain().snapshot();
        let pairs: Vec<(&str, &str)> = snap
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![("api", "db"), ("db", "1.1.1.1:443"), ("web", "api")]
        );
        let api_db = &snap.edges[0];
        assert_eq!(api_db.connections, 3);
        assert_eq!(
            api_db.retransmits, 3,
            "client and server retransmits add up"
        );
        assert!(api_db.client_view.is_some() && api_db.server_view.is_some());
        let ext = snap
            .nodes
            .iter()
            .find(|n| n.id == "1.1.1.1:443")
            .expect("external node");
        assert_eq!(ext.kind, EntityKind::External);
    }

    #[test]
    fn blast_radius_is_transitive_dependents() {
        let g = chain();
        let b = g.blast_radius("db").expect("db known");
        assert_eq!(
            b.dependents,
            vec![EntityId::new("api"), EntityId::new("web")]
        );
        let b = g.blast_radius("web").expect("web known");
        assert!(b.dependents.is_empty());
        assert!(g.blast_radius("nope").is_none());
    }

    #[test]
    fn edges_age_out() {
        let mut g = chain();
        g.age_out(10_000_000_000 + GraphConfig::default().edge_ttl_ns + 1);
        assert!(g.snapshot().edges.is_empty());
    }

    #[test]
    fn cluster_resolver_names_services() {
        struct OneService;
        impl EndpointResolver for OneService {
            fn resolve(&self, e: &Endpoint) -> Option<ResolvedEndpoint> {
                (e.port == 6379).then(|| ResolvedEndpoint {
                    entity: EntityId::service("default", "redis"),
                    kind: EntityKind::Service,
                })
            }
        }
        let mut g = ServiceGraph::new(GraphConfig::default(), Arc::new(OneService));
        g.observe(&interval(
            1,
            vec![flow(
                "api",
                FlowRole::Client,
                "10.0.0.2:0",
                "10.96.0.9:6379",
                counts(1, 0),
            )],
        ));
        let snap = g.snapshot();
        assert_eq!(snap.edges[0].to, "k8s-svc/default/redis");
    }
}
