//! `dns_lookups`: name lookups that fail, by the asking entity and fleet-wide. An entity whose
//! own lookups started failing, or a resolver whose clients' lookups did, points at DNS.

use std::{collections::BTreeMap, net::IpAddr};

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    entity::EntityId,
    event::EventKind,
    interval::{Endpoint, Sample, SampleKind},
    store::StoreError,
};

pub struct DnsLookups;

/// Programs that answer DNS: an entity running one is a resolver, not an asker.
const RESOLVERS: [&str; 9] = [
    "dnsmasq",
    "coredns",
    "named",
    "unbound",
    "kube-dns",
    "systemd-resolve",
    "pdns_server",
    "pdns_recursor",
    "knotd",
];

const RISE: f64 = 3.0;
const MIN_PER_S: f64 = 0.2;

/// The workload serving DNS at `server` (an address the agent saw answer, port 53), when the
/// graph knows one there.
fn resolver_entity(sources: &Sources, node: &str, server: &str) -> Option<EntityId> {
    let ip: IpAddr = server.parse().ok()?;
    let endpoint = Endpoint { ip, port: 53 };
    let entity = sources.graph.server_entity(node, &endpoint);
    (entity != EntityId::external(endpoint)).then_some(entity)
}

impl EvidenceTool for DnsLookups {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "dns_lookups",
            description: "DNS lookups and failures (NXDOMAIN, SERVFAIL, timeouts) of one entity and of every workload, with the names that fail, in the incident window against before it; says whether the entity is itself a resolver.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let own = window::samples(sources, scope, SampleKind::Dns)?;
        let count = |v: &[crate::interval::StoredSample]| {
            v.iter().fold((0.0, 0.0), |(q, f), s| match &s.sample {
                Sample::Dns(d) => (q + d.queries as f64, f + d.failures() as f64),
                _ => (q, f),
            })
        };
        let ((qb, fb), (qd, fd)) = (count(&own.before), count(&own.during));
        let (own_b, own_d) = window::rates(scope, fb, fd);
        let fleet = window::events(sources, scope, Some("dns_failure"), false)?;
        let (all_b, all_d) =
            window::rates(scope, fleet.before.len() as f64, fleet.during.len() as f64);
        let mut names: BTreeMap<String, (u64, std::collections::BTreeSet<String>)> =
            BTreeMap::new();
        // Failures per (node, resolver address): each address is looked up in the graph once.
        let mut asked: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for e in &fleet.during {
            if let EventKind::DnsFailure {
                rcode_name,
                query_name,
                server,
                ..
            } = &e.event.kind
            {
                *asked
                    .entry((e.event.node.as_str(), server.as_str()))
                    .or_default() += 1;
                let entry = names
                    .entry(format!("{query_name} ({rcode_name})"))
                    .or_default();
                entry.0 += 1;
                entry.1.insert(e.event.workload.key.to_string());
            }
        }
        let resolver = window::events(sources, scope, None, true)?
            .during
            .iter()
            .chain(window::events(sources, scope, None, true)?.before.iter())
            .any(|e| RESOLVERS.contains(&e.event.task.comm.as_str()));
        let mut obs = vec![
            Observation::new("own lookups failing per second", own_d, "1/s")
                .before(own_b)
                .detail(format!("{qd} queries in the window, {qb} before"))
                .weight(own_d),
            Observation::new("failing lookups fleet-wide per second", all_d, "1/s")
                .before(all_b)
                .weight(all_d),
            Observation::new(
                "entity is a DNS resolver",
                f64::from(u8::from(resolver)),
                "bool",
            )
            .weight(1.0),
        ];
        obs.extend(names.iter().map(|(name, (n, askers))| {
            Observation::new(format!("failing: {name}"), *n as f64, "answers")
                .detail(format!(
                    "asked by {}",
                    askers.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
                .weight(*n as f64)
        }));
        let mut answered_by: BTreeMap<EntityId, u64> = BTreeMap::new();
        for ((node, server), n) in asked {
            if let Some(resolver) = resolver_entity(sources, node, server) {
                *answered_by.entry(resolver).or_default() += n;
            }
        }
        let rose = |b: f64, d: f64| d >= MIN_PER_S && d >= RISE * b;
        // The resolver that answered most of the failures is where the fault is acted on,
        // unless the entity asked about is itself one.
        let place = answered_by
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(r, _)| r.clone())
            .filter(|r| !resolver && *r != scope.entity);
        let placed = |v: Vote| match &place {
            Some(r) => v.at(r.clone()),
            None => v,
        };
        let mut votes = Vec::new();
        if rose(own_b, own_d) {
            votes.push(placed(Vote::new(
                FaultClass::DnsFailure,
                0.8,
                format!("its lookups fail {own_b:.2}/s → {own_d:.2}/s"),
            )));
        } else if rose(all_b, all_d) {
            let (strength, whose) = if resolver {
                (0.8, "its clients' lookups")
            } else {
                (0.35, "lookups elsewhere")
            };
            votes.push(placed(Vote::new(
                FaultClass::DnsFailure,
                strength,
                format!("{whose} fail {all_b:.2}/s → {all_d:.2}/s"),
            )));
        }
        let summary = format!(
            "own failures {own_d:.2}/s (before {own_b:.2}/s); fleet-wide {all_d:.2}/s (before {all_b:.2}/s){}",
            if resolver { "; the entity is a resolver" } else { "" }
        );
        Ok(ToolOutput::new("dns_lookups", scope, summary, obs, votes))
    }
}
