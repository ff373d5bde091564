//! `edge_stats`: an entity's connections and requests, peer by peer, in the window against
//! before it — TCP (connects, failures, resets, retransmissions, RTT, bytes) and L7 (errors by
//! code, timeouts, latency). What changed on which edge names the cause:
//!
//! - auth refusals (HTTP 401/403, Redis WRONGPASS/NOAUTH, SQLSTATE class 28): credentials;
//! - a peer that went silent (bytes from it stop, connects time out, no resets): a partition;
//! - refused connects and resets: a dependency down;
//! - retransmissions up with round trips steady: loss; round trips up with no loss: latency;
//!   both at once, on a busy sender: a saturated link (its queue delays and drops);
//! - L7 errors: the dependency's (as a client) or the entity's own (as a server).
//!
//! A dependency that answers with errors is followed down (up to two calls): its own edges
//! are judged the same way, so "web's calls to app fail" finds "app's calls to redis are
//! refused the password".

use std::collections::BTreeMap;

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        tools::process_exits::ProcessExits,
        window,
    },
    entity::EntityId,
    interval::{FlowCounts, FlowRole, Histogram, Sample, SampleKind, StoredSample},
    store::StoreError,
};

pub struct EdgeStats;

/// A rate must rise this much (×) over before to count as news.
const RISE: f64 = 3.0;
/// Retries a cut-off peer leaves behind in a window, at the least: one stray retransmission
/// is any busy link's.
const CUT_OFF_TRIES: u64 = 3;
/// The share of a cut-off sender's segments that are retransmissions: nothing it sends is
/// acknowledged, so most of what it sends is sent again.
const CUT_OFF_RETRY_SHARE: f64 = 0.3;

#[derive(Debug, Default, Clone)]
struct Requests {
    requests: u64,
    responses: u64,
    errors: u64,
    client_errors: u64,
    unanswered: u64,
    auth: u64,
    codes: BTreeMap<String, u64>,
    latency: Histogram,
}

impl Requests {
    fn add(&mut self, o: &crate::interval::RequestObservation) {
        self.requests += o.requests;
        self.responses += o.responses;
        self.errors += o.errors;
        self.client_errors += o.client_errors;
        self.unanswered += o.unanswered();
        for s in &o.statuses {
            *self.codes.entry(s.code.clone()).or_default() += s.count;
            if is_auth_refusal(&s.code) {
                self.auth += s.count;
            }
        }
        merge(&mut self.latency, &o.latency);
    }
}

fn merge(into: &mut Histogram, h: &Histogram) {
    into.count += h.count;
    into.sum_ns += h.sum_ns;
    if into.log2_buckets.len() < h.log2_buckets.len() {
        into.log2_buckets.resize(h.log2_buckets.len(), 0);
    }
    for (i, n) in h.log2_buckets.iter().enumerate() {
        into.log2_buckets[i] += n;
    }
}

/// A reply that says "who are you?" rather than "I failed": HTTP 401/403, Redis's auth
/// errors, PostgreSQL's SQLSTATE class 28 (invalid authorization).
pub fn is_auth_refusal(code: &str) -> bool {
    matches!(code, "401" | "403" | "WRONGPASS" | "NOAUTH" | "NOPERM")
        || (code.len() == 5 && code.starts_with("28"))
}

#[derive(Debug, Default, Clone)]
struct Side {
    flows: FlowCounts,
    requests: Requests,
    /// Smoothed RTT per sample window (its end): the sum and the number of samples.
    rtt_by_window: BTreeMap<i64, (u64, u64)>,
}

/// Round trips that vary this much (coefficient of variation) from sample to sample come
/// from a queue that fills and drains; a longer path adds a steady delay.
const QUEUEING_CV: f64 = 0.1;
/// Samples a steadiness judgement needs, after the two at the fault's edges are dropped.
const STEADINESS_SAMPLES: usize = 4;

/// The coefficient of variation of the round trips over the span they were up (past 3× the
/// `before` level: the window may reach past the fault's end, or start before it), leaving
/// out the first and last sample of that span (each half before, half after a change). A dip
/// inside the span (a queue that drained) counts.
fn rtt_variation(rtts: &[f64], before: Option<f64>) -> Option<f64> {
    let up = |x: &f64| before.is_none_or(|b| *x >= 3.0 * b);
    let first = rtts.iter().position(up)?;
    let last = rtts.iter().rposition(up)?;
    let rtts = &rtts[first..=last];
    if rtts.len() < STEADINESS_SAMPLES + 2 {
        return None;
    }
    let inner = &rtts[1..rtts.len() - 1];
    let n = inner.len() as f64;
    let mean = inner.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let var = inner.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some(var.sqrt() / mean)
}

#[derive(Debug, Default, Clone)]
struct Edge {
    before: Side,
    during: Side,
}

fn peer(sources: &Sources, s: &StoredSample) -> Option<(FlowRole, EntityId)> {
    let (role, remote) = match &s.sample {
        Sample::Flow(f) => (f.role, f.remote),
        Sample::Request(r) => (r.role, r.remote),
        _ => return None,
    };
    Some((role, sources.graph.server_entity(&s.node, &remote)))
}

/// What one edge's change says, as votes (strongest first is not required). `server` is the
/// edge's serving side: the one refusing credentials.
fn judge(
    scope: &Scope,
    role: FlowRole,
    (name, server): (&str, &EntityId),
    e: &Edge,
    votes: &mut Vec<Vote>,
) {
    let (b, d) = (&e.before, &e.during);
    let r = |before: u64, during: u64| window::rates(scope, before as f64, during as f64);
    let rose =
        |(before, during): (f64, f64), floor: f64| during >= floor && during >= RISE * before;
    let auth = r(b.requests.auth, d.requests.auth);
    if rose(auth, 0.2) {
        votes.push(
            Vote::new(
                FaultClass::CredentialFailure,
                0.85,
                format!(
                    "{name}: auth refusals {:.2}/s → {:.2}/s ({})",
                    auth.0,
                    auth.1,
                    codes(&d.requests)
                ),
            )
            .at(server.clone()),
        );
    }
    let bytes_in = r(b.flows.bytes_received, d.flows.bytes_received);
    let trouble = d.flows.retransmits + d.flows.failed + d.requests.unanswered;
    // Cut off is the entity still trying and nothing answering: its sends are retries
    // (retransmissions, connects that time out, requests left unanswered), not a caller that
    // went quiet because something upstream of it stopped its work.
    let kept_trying = trouble >= CUT_OFF_TRIES
        && (d.flows.failed + d.requests.unanswered >= CUT_OFF_TRIES
            || d.flows.retransmits as f64 >= CUT_OFF_RETRY_SHARE * d.flows.packets_sent as f64);
    // A reset is an answer: the peer's host is reachable, so a peer that resets is down, not
    // cut off.
    if role == FlowRole::Client
        && bytes_in.0 > 100.0
        && bytes_in.1 < 0.02 * bytes_in.0
        && kept_trying
        && d.flows.resets_received == 0
    {
        votes.push(Vote::new(
            FaultClass::Partition,
            0.75,
            format!(
                "{name}: nothing comes back ({:.0} B/s before, {:.0} B/s now) while {trouble} retransmissions, failed connects or unanswered requests pile up",
                bytes_in.0, bytes_in.1
            ),
        ));
    }
    let refused = r(b.flows.resets_received, d.flows.resets_received);
    let failed = r(b.flows.failed, d.flows.failed);
    if role == FlowRole::Client
        && (rose(refused, 0.2) || (rose(failed, 0.2) && d.flows.resets_received > 0))
    {
        votes.push(Vote::new(
            FaultClass::DependencyDown,
            0.55,
            format!(
                "{name}: connects failing {:.2}/s, resets {:.2}/s",
                failed.1, refused.1
            ),
        ));
    }
    let loss = |s: &Side| s.flows.retransmits as f64 / s.flows.packets_sent.max(1) as f64;
    let (loss_b, loss_d) = (loss(b), loss(d));
    let lossy = d.flows.retransmits >= 3 && loss_d >= 0.01 && loss_d >= RISE * loss_b;
    let rtt_b = b.flows.mean_rtt_us();
    let rtt_d = d.flows.mean_rtt_us();
    let slow = matches!((rtt_b, rtt_d), (Some(x), Some(y)) if y >= 3.0 * x && y - x >= 1_000.0);
    let rtt_text = format!(
        "RTT {:.0} µs → {:.0} µs, retransmitted {:.1} % → {:.1} % of segments",
        rtt_b.unwrap_or(0.0),
        rtt_d.unwrap_or(0.0),
        loss_b * 100.0,
        loss_d * 100.0
    );
    let series: Vec<f64> = d
        .rtt_by_window
        .values()
        .filter(|(_, n)| *n > 0)
        .map(|(sum, n)| *sum as f64 / *n as f64)
        .collect();
    let variation = rtt_variation(&series, rtt_b);
    let cv = variation.map_or("too few samples to judge".into(), |v| {
        format!("varying {:.0} %", v * 100.0)
    });
    match (lossy, slow, variation) {
        (true, false, _) => votes.push(Vote::new(FaultClass::NetworkLoss, 0.7, format!("{name}: {rtt_text}"))),
        (true, true, _) => {
            votes.push(Vote::new(FaultClass::BandwidthSaturation, 0.5, format!("{name}: queueing and drops: {rtt_text}")));
        }
        (false, true, Some(v)) if v >= QUEUEING_CV => votes.push(Vote::new(
            FaultClass::BandwidthSaturation,
            0.6,
            format!("{name}: round trips up and unsteady ({cv}), as a filling queue makes them: {rtt_text}"),
        )),
        (false, true, Some(_)) => votes.push(Vote::new(
            FaultClass::NetworkLatency,
            0.65,
            format!("{name}: round trips up by a steady delay ({cv}): {rtt_text}"),
        )),
        (false, true, None) => votes.push(Vote::new(FaultClass::NetworkLatency, 0.5, format!("{name}: {rtt_text} ({cv})"))),
        (false, false, _) => {}
    }
    let errors = r(b.requests.errors, d.requests.errors);
    if rose(errors, 0.2) && d.requests.auth < d.requests.errors {
        let (class, who) = match role {
            FlowRole::Client => (FaultClass::DependencyErrors, "answers"),
            FlowRole::Server => (FaultClass::AppErrors, "is answered"),
        };
        votes.push(Vote::new(
            class,
            0.5,
            format!(
                "{name} {who} with errors {:.2}/s → {:.2}/s ({})",
                errors.0,
                errors.1,
                codes(&d.requests)
            ),
        ));
    }
}

fn codes(r: &Requests) -> String {
    let mut v: Vec<_> = r.codes.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .take(3)
        .map(|(c, n)| format!("{c} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every edge of `scope.entity`, peer by peer, before the window and in it.
fn edges_of(
    sources: &Sources,
    scope: &Scope,
) -> Result<BTreeMap<(FlowRole, EntityId), Edge>, StoreError> {
    let mut edges: BTreeMap<(FlowRole, EntityId), Edge> = BTreeMap::new();
    for kind in [SampleKind::Flow, SampleKind::Request] {
        let split = window::samples(sources, scope, kind)?;
        for (during, samples) in [(false, &split.before), (true, &split.during)] {
            for s in samples {
                let Some(key) = peer(sources, s) else {
                    continue;
                };
                let edge = edges.entry(key).or_default();
                let side = if during {
                    &mut edge.during
                } else {
                    &mut edge.before
                };
                match &s.sample {
                    Sample::Flow(f) => {
                        side.flows.add(&f.counts);
                        let w = side.rtt_by_window.entry(s.end_unix_ns).or_default();
                        w.0 += f.counts.srtt_sum_us;
                        w.1 += f.counts.srtt_samples;
                    }
                    Sample::Request(r) => side.requests.add(r),
                    _ => {}
                }
            }
        }
    }
    Ok(edges)
}

fn edge_observation(name: &str, e: &Edge, telling: bool) -> Observation {
    let (b, d) = (&e.before, &e.during);
    let p99 = d
        .requests
        .latency
        .quantile_ns(0.99)
        .map_or(String::new(), |ns| {
            format!(", p99 ≤ {:.1} ms", ns as f64 / 1e6)
        });
    Observation::new(format!("{name} requests"), d.requests.requests as f64, "requests")
        .before(b.requests.requests as f64)
        .detail(format!(
            "{} errors ({}), {} unanswered{p99}; {} connects, {} failed, {} resets in, {} retransmits, {} B in",
            d.requests.errors,
            codes(&d.requests),
            d.requests.unanswered,
            d.flows.connects,
            d.flows.failed,
            d.flows.resets_received,
            d.flows.retransmits,
            d.flows.bytes_received
        ))
        .weight(if telling { 100.0 } else { 0.0 } + (d.requests.errors + d.flows.failed + d.flows.retransmits) as f64)
}

/// How many calls down an error is followed: the entity's dependency, and its dependency's.
const MAX_HOPS: usize = 2;
/// What a witness one call further down is worth: the error might have another cause on the
/// way back up.
const HOP_DISCOUNT: f64 = 0.9;

/// A dependency that answers with errors is asked why, as an engineer would: its own calls
/// are judged, and what they show (auth refusals to a database, connects refused, …) votes
/// too, marked as seen downstream.
fn downstream(
    sources: &Sources,
    scope: &Scope,
    mut erring: Vec<EntityId>,
    obs: &mut Vec<Observation>,
    votes: &mut Vec<Vote>,
) -> Result<(), StoreError> {
    let mut seen: Vec<EntityId> = vec![scope.entity.clone()];
    for hop in 1..=MAX_HOPS {
        let mut next = Vec::new();
        for dep in std::mem::take(&mut erring) {
            if seen.contains(&dep) {
                continue;
            }
            seen.push(dep.clone());
            let there = Scope {
                entity: dep.clone(),
                ..scope.clone()
            };
            for ((role, peer), e) in edges_of(sources, &there)? {
                if role != FlowRole::Client {
                    continue;
                }
                let name = format!("{dep} → {peer}");
                let mut found = Vec::new();
                judge(&there, role, (&name, &peer), &e, &mut found);
                if found.is_empty() {
                    continue;
                }
                if found
                    .iter()
                    .any(|v| v.class == FaultClass::DependencyErrors)
                {
                    next.push(peer.clone());
                }
                obs.push(edge_observation(&format!("downstream: {name}"), &e, true));
                let discount = HOP_DISCOUNT.powi(hop as i32);
                votes.extend(found.into_iter().map(|v| Vote {
                    strength: v.strength * discount,
                    reason: format!("downstream of {}: {}", scope.entity, v.reason),
                    ..v
                }));
            }
        }
        erring = next;
    }
    Ok(())
}

impl EvidenceTool for EdgeStats {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edge_stats",
            description: "An entity's edges, peer by peer, as client and as server: TCP connects, failures, resets, retransmissions, RTT and bytes, and L7 requests, errors by code, timeouts and p99 latency, in the incident window against before it.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let edges = edges_of(sources, scope)?;
        let mut obs = Vec::new();
        let mut votes: Vec<Vote> = Vec::new();
        let mut erring: Vec<EntityId> = Vec::new();
        let mut down: Vec<EntityId> = Vec::new();
        for ((role, peer), e) in &edges {
            let (name, server) = match role {
                FlowRole::Client => (format!("{} → {peer}", scope.entity), peer),
                FlowRole::Server => (format!("{peer} → {}", scope.entity), &scope.entity),
            };
            let before = votes.len();
            judge(scope, *role, (&name, server), e, &mut votes);
            let telling = votes.len() > before;
            // A dependency that errs or refuses is asked why, below.
            if *role == FlowRole::Client && *peer != scope.entity {
                let says = |class| votes[before..].iter().any(|v| v.class == class);
                if says(FaultClass::DependencyErrors) {
                    erring.push(peer.clone());
                }
                if says(FaultClass::DependencyDown) && !down.contains(peer) {
                    down.push(peer.clone());
                }
            }
            obs.push(edge_observation(&name, e, telling));
        }
        downstream(sources, scope, erring, &mut obs, &mut votes)?;
        let revisit = why_down(sources, scope, &down, &mut obs, &mut votes)?;
        // One vote per class: the strongest edge's.
        votes.sort_by(|a, b| b.strength.total_cmp(&a.strength));
        let mut kept: Vec<Vote> = Vec::new();
        for v in votes {
            if !kept.iter().any(|k| k.class == v.class) {
                kept.push(v);
            }
        }
        let summary = format!(
            "{} edges; {} changed telling ways",
            edges.len(),
            obs.iter().filter(|o| o.weight >= 100.0).count()
        );
        Ok(ToolOutput::new("edge_stats", scope, summary, obs, kept).revisit_at(revisit))
    }
}

/// A dependency that refuses connections is asked why, as an engineer would: how its own
/// processes ended (killed, crashing in a loop, stopped and not replaced). What that shows
/// votes too, placed on the dependency, which is where an action helps. Returns when the
/// answer may change with no new evidence (a stop still inside its replacement grace).
fn why_down(
    sources: &Sources,
    scope: &Scope,
    down: &[EntityId],
    obs: &mut Vec<Observation>,
    votes: &mut Vec<Vote>,
) -> Result<Option<i64>, StoreError> {
    let mut revisit: Option<i64> = None;
    for peer in down {
        let there = Scope {
            entity: peer.clone(),
            ..scope.clone()
        };
        let exits = ProcessExits.call(sources, &there)?;
        revisit = match (revisit, exits.revisit_unix_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if exits.votes.is_empty() {
            continue;
        }
        obs.push(
            Observation::new(format!("why {peer} refuses: {}", exits.summary), 1.0, "")
                .weight(200.0),
        );
        votes.extend(exits.votes.into_iter().map(|v| Vote {
            strength: v.strength * HOP_DISCOUNT,
            reason: format!("{peer} refuses connections: {}", v.reason),
            at: Some(peer.clone()),
            ..v
        }));
    }
    Ok(revisit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// A 10 s window on `entity`, a minute's quiet before it.
    fn ten_seconds(entity: &str) -> Scope {
        Scope {
            entity: EntityId::new(entity),
            from_unix_ns: 0,
            onset_unix_ns: None,
            to_unix_ns: 10 * S,
            lookback_ns: 60 * S,
        }
    }

    /// What `judge` says of a client edge `name` to `server`.
    fn client_votes(scope: &Scope, (name, server): (&str, &str), e: &Edge) -> Vec<Vote> {
        let mut votes = Vec::new();
        judge(
            scope,
            FlowRole::Client,
            (name, &EntityId::new(server)),
            e,
            &mut votes,
        );
        votes
    }

    fn silent_peer(resets: u64) -> Vec<FaultClass> {
        let scope = ten_seconds("cgroup/web");
        let mut e = Edge::default();
        e.before.flows.bytes_received = 60 * 10_000;
        e.during.flows.failed = 5;
        e.during.flows.resets_received = resets;
        let votes = client_votes(&scope, ("web → app", "cgroup/app"), &e);
        votes.into_iter().map(|v| v.class).collect()
    }

    #[test]
    fn a_caller_that_went_quiet_is_not_cut_off() {
        // Bytes back collapse because the entity stopped asking (its own upstream failed),
        // with a stray retransmission among many segments sent: not a partition.
        let scope = ten_seconds("cgroup/app");
        let mut e = Edge::default();
        e.before.flows.bytes_received = 60 * 70_000;
        e.during.flows.bytes_received = 6_000;
        e.during.flows.packets_sent = 400;
        e.during.flows.retransmits = 2;
        let votes = client_votes(&scope, ("app → postgres", "cgroup/postgres"), &e);
        assert!(
            votes.iter().all(|v| v.class != FaultClass::Partition),
            "{votes:?}"
        );
        // The same collapse with every segment retried is.
        e.during.flows.retransmits = 300;
        let votes = client_votes(&scope, ("app → postgres", "cgroup/postgres"), &e);
        assert!(
            votes.iter().any(|v| v.class == FaultClass::Partition),
            "{votes:?}"
        );
    }

    #[test]
    fn refused_credentials_place_the_fault_on_the_server_that_refuses_them() {
        let scope = ten_seconds("cgroup/app");
        let redis = EntityId::new("cgroup/redis");
        let credential_votes = |auth: u64| {
            let mut e = Edge::default();
            e.before.requests.requests = 600;
            e.during.requests.requests = 100;
            e.during.requests.auth = auth;
            let mut votes = client_votes(&scope, ("app → redis", redis.as_str()), &e);
            votes.retain(|v| v.class == FaultClass::CredentialFailure);
            votes
        };
        let refused = credential_votes(40);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].at.as_ref(), Some(&redis));
        // No refusals, no credential vote placed anywhere.
        assert!(credential_votes(0).is_empty());
    }

    #[test]
    fn a_silent_peer_is_cut_off_unless_it_resets() {
        assert!(silent_peer(0).contains(&FaultClass::Partition));
        let resets = silent_peer(5);
        assert!(!resets.contains(&FaultClass::Partition), "{resets:?}");
        assert!(resets.contains(&FaultClass::DependencyDown), "{resets:?}");
    }

    /// A window that reaches past a steady delay's end (RTT back at 20 µs) or starts before
    /// it: still a steady delay, judged over the span the round trips were up; a queue's
    /// swings inside that span, a dip included, are still a queue's.
    #[test]
    fn steadiness_is_judged_over_the_span_the_round_trips_were_up() {
        let before = Some(20.0);
        let mut delayed = vec![20.0, 20.0, 150_000.0];
        delayed.extend([201_000.0; 12]);
        delayed.extend([120_000.0, 20.0, 21.0, 19.0, 20.0]);
        let cv = rtt_variation(&delayed, before).expect("enough samples");
        assert!(cv < QUEUEING_CV, "{cv}");
        let all = rtt_variation(&delayed, None).expect("enough samples");
        assert!(all >= QUEUEING_CV, "the whole window is unsteady: {all}");
        let queue = [
            20.0, 90_000.0, 140_000.0, 60_000.0, 30.0, 120_000.0, 70_000.0, 150_000.0, 20.0,
        ];
        let cv = rtt_variation(&queue, before).expect("enough samples");
        assert!(cv >= QUEUEING_CV, "{cv}");
    }
}
