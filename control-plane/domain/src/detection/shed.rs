//! Load shed: a replica its caller stopped sending to after it failed.
//!
//! A caller that balances over replicas (nginx `max_fails`, Envoy outlier detection, a
//! client-side pool) takes a failing one out of rotation and retries elsewhere: its users see
//! nothing, and the failing replica gets a probe every few seconds — one error every few
//! windows, never enough in a row to be persistent. What the kernel does see, every window,
//! is the traffic moving: the replica receives far less than its usual share of what the
//! caller sends to that port.
//!
//! Per interval, each of a caller's servers on one port gets `shed_ratio` = 1 − its requests
//! ÷ its usual share of the group's requests (learned while it is healthy): 0 as usual, 1
//! when it gets nothing. A server is remembered for [`MEMORY_WINDOWS`] after its last
//! request or connection, so one that gets nothing still counts; and only the shortfall of
//! one that failed the caller within that memory (an error reply, an unanswered request, a
//! refused or reset connection) counts: traffic moved away from a healthy replica (a
//! scale-down, a rebalance, a canary's weight) is no symptom, its shed stays at most 0. The
//! share is each server's own, so a caller's unrelated services on one port (everything on
//! 8080) are compared each with itself, not with each other.

use std::collections::{BTreeMap, HashMap};

use crate::{
    entity::{EntityId, Subject},
    interval::{Endpoint, FlowObservation, RequestObservation},
};

/// How long, in windows, a server stays in its caller's group after it was last called.
pub const MEMORY_WINDOWS: i64 = 10;

/// One caller's servers on one port, on one node.
type GroupKey = (String, EntityId, u16);

#[derive(Debug, Clone, Copy)]
struct Member {
    seen: i64,
    failed: Option<i64>,
    /// Its share of the group's requests while healthy (moving average); until known, an
    /// equal share.
    usual: Option<f64>,
}

/// Weight of each healthy interval in a member's usual share.
const SHARE_ALPHA: f64 = 0.05;

/// The replica groups seen so far: detection's state across passes.
#[derive(Debug, Default)]
pub struct ReplicaGroups {
    groups: HashMap<GroupKey, BTreeMap<EntityId, Member>>,
}

/// What one interval showed of one caller's calls to one server.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    requests: u64,
    failed: bool,
}

/// One edge's shed row: (value, weight) to sum over the window's intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct ShedRow {
    pub edge: Subject,
    pub value: f64,
    pub weight: f64,
}

impl ReplicaGroups {
    /// The shed rows of one interval in `window`, its client flows and requests with their
    /// servers resolved by `server`.
    pub fn interval(
        &mut self,
        node: &str,
        window: i64,
        flows: &[FlowObservation],
        requests: &[RequestObservation],
        server: &mut dyn FnMut(&Endpoint) -> EntityId,
    ) -> Vec<ShedRow> {
        use crate::interval::FlowRole::Client;
        let mut calls: HashMap<GroupKey, BTreeMap<EntityId, Calls>> = HashMap::new();
        for f in flows.iter().filter(|f| f.role == Client) {
            let key = (node.to_string(), f.workload.key.clone(), f.remote.port);
            let c = calls
                .entry(key)
                .or_default()
                .entry(server(&f.remote))
                .or_default();
            c.failed |= f.counts.failed > 0 || f.counts.resets_received > 0;
        }
        for r in requests.iter().filter(|r| r.role == Client) {
            let key = (node.to_string(), r.workload.key.clone(), r.remote.port);
            let c = calls
                .entry(key)
                .or_default()
                .entry(server(&r.remote))
                .or_default();
            c.requests += r.requests;
            c.failed |= r.errors > 0 || r.unanswered() > 0;
        }
        let mut rows = Vec::new();
        for (key, seen) in calls {
            let total: u64 = seen.values().map(|c| c.requests).sum();
            let members = self.groups.entry(key.clone()).or_default();
            for (server, c) in &seen {
                let m = members.entry(server.clone()).or_insert(Member {
                    seen: window,
                    failed: None,
                    usual: None,
                });
                m.seen = m.seen.max(window);
                if c.failed {
                    m.failed = Some(window);
                }
            }
            members.retain(|_, m| window - m.seen <= MEMORY_WINDOWS);
            if members.len() < 2 || total == 0 {
                continue;
            }
            let equal = 1.0 / members.len() as f64;
            for (server, m) in members.iter_mut() {
                let got = seen.get(server).map_or(0, |c| c.requests) as f64;
                let failed = m.failed.is_some_and(|f| window - f <= MEMORY_WINDOWS);
                let expected = m.usual.unwrap_or(equal) * total as f64;
                if expected <= f64::EPSILON {
                    continue;
                }
                // Every member gets its row, so its baseline learns what usual looks like;
                // a healthy one's shortfall counts as none.
                let short = if failed {
                    expected - got
                } else {
                    (expected - got).min(0.0)
                };
                rows.push(ShedRow {
                    edge: Subject::edge(key.1.clone(), server.clone()),
                    value: short,
                    weight: expected,
                });
                if !failed {
                    let share = got / total as f64;
                    m.usual = Some(m.usual.map_or(share, |u| u + SHARE_ALPHA * (share - u)));
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        interval::{Endpoint, FlowRole, Histogram, Protocol},
        synthetic::workload,
    };

    fn request(remote: [u8; 4], requests: u64, errors: u64) -> RequestObservation {
        let at = |ip: [u8; 4], port| Endpoint {
            ip: ip.into(),
            port,
        };
        RequestObservation {
            workload: workload("web"),
            role: FlowRole::Client,
            local: at([10, 0, 0, 1], 0),
            remote: at(remote, 8080),
            protocol: Protocol::Http1,
            requests,
            responses: requests,
            errors,
            client_errors: 0,
            timeouts: 0,
            closed_pending: 0,
            pipelined: 0,
            unparsed: 0,
            statuses: Vec::new(),
            latency: Histogram::default(),
            stuck: 0,
            tls: false,
            error_samples: Vec::new(),
        }
    }

    fn shed(g: &mut ReplicaGroups, window: i64, reqs: &[RequestObservation]) -> Vec<(String, f64)> {
        let mut server = |e: &Endpoint| EntityId::new(format!("server/{}", e.ip));
        g.interval("n", window, &[], reqs, &mut server)
            .into_iter()
            .map(|r| (r.edge.to_string(), 1.0 - (r.weight - r.value) / r.weight))
            .collect()
    }

    fn of<'a>(rows: &'a [(String, f64)], ip: &str) -> Option<&'a f64> {
        rows.iter().find(|(e, _)| e.contains(ip)).map(|(_, v)| v)
    }

    #[test]
    fn a_failed_replica_the_caller_moved_away_from_is_shed_a_healthy_one_is_not() {
        let mut g = ReplicaGroups::default();
        let (a, b) = ([10, 0, 0, 21], [10, 0, 0, 22]);
        // Balanced and healthy: both at 0.
        let balanced = shed(&mut g, 1, &[request(a, 50, 0), request(b, 50, 0)]);
        assert_eq!(balanced.len(), 2);
        assert!(balanced.iter().all(|(_, v)| v.abs() < 1e-9), "{balanced:?}");
        // a fails one request and the caller sends (nearly) everything to b.
        let probe = shed(&mut g, 2, &[request(a, 1, 1), request(b, 99, 0)]);
        assert!(
            of(&probe, "10.0.0.21").is_some_and(|v| *v > 0.95),
            "{probe:?}"
        );
        assert!(
            of(&probe, "10.0.0.22").is_some_and(|v| *v <= 0.0),
            "{probe:?}"
        );
        // Windows with no request to a at all: still its group's, still shed.
        let absent = shed(&mut g, 3, &[request(b, 100, 0)]);
        assert!(
            of(&absent, "10.0.0.21").is_some_and(|v| (v - 1.0).abs() < 1e-9),
            "{absent:?}"
        );
        // Long after its last call and failure, it is forgotten: b is alone on the port.
        assert!(shed(&mut g, 3 + MEMORY_WINDOWS + 1, &[request(b, 100, 0)]).is_empty());
    }

    #[test]
    fn traffic_moved_off_a_replica_that_never_failed_is_no_symptom() {
        let mut g = ReplicaGroups::default();
        let (a, b) = ([10, 0, 0, 21], [10, 0, 0, 22]);
        shed(&mut g, 1, &[request(a, 50, 0), request(b, 50, 0)]);
        // Scaled down or drained: a gets nothing, and never failed.
        let drained = shed(&mut g, 2, &[request(b, 100, 0)]);
        assert_eq!(of(&drained, "10.0.0.21"), Some(&0.0), "{drained:?}");
        // One server on the port: no group to shed from.
        let mut single = ReplicaGroups::default();
        assert!(shed(&mut single, 1, &[request(a, 3, 3)]).is_empty());
    }

    #[test]
    fn a_small_service_beside_a_busy_one_on_the_same_port_is_judged_by_its_own_share() {
        let mut g = ReplicaGroups::default();
        let (busy, small) = ([10, 0, 0, 31], [10, 0, 0, 32]);
        for w in 0..20 {
            shed(&mut g, w, &[request(busy, 95, 0), request(small, 5, 0)]);
        }
        // One error from the small one, its traffic as usual: no shed.
        let one = shed(&mut g, 20, &[request(busy, 95, 0), request(small, 5, 1)]);
        assert!(
            of(&one, "10.0.0.32").is_some_and(|v| v.abs() < 0.05),
            "{one:?}"
        );
        // The caller stops calling it after it failed: shed.
        let gone = shed(&mut g, 21, &[request(busy, 100, 0)]);
        assert!(
            of(&gone, "10.0.0.32").is_some_and(|v| (v - 1.0).abs() < 1e-9),
            "{gone:?}"
        );
    }
}
