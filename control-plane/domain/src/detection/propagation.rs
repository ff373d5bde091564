//! How much of a caller's trouble its dependency accounts for, from the size of the changes in
//! the metrics' own units; and where a fault of the network itself lies.
//!
//! The root-cause walk moves from an anomalous entity towards its anomalous dependencies.
//! That is right when the dependency changed enough to be the caller's trouble: a database
//! 200 ms slower behind an app 210 ms slower. It is wrong when the dependency moved a little
//! beside a caller that broke on its own: an app answering nothing (2 s timeouts, every
//! request failing) while its database answers 26 ms slower. [`Changes::explains`] is the
//! share of the caller's rise the dependency's rise covers, latency against latency and
//! errors against errors (and failing calls below explain slower ones above: retries); the
//! pull falls linearly under [`MIN_SHARE`] of it.
//!
//! Round-trip time and retransmits do not travel along calls: they belong to the link. A fault
//! on one host's network shows on every link through it, so when most anomalous links share
//! one endpoint, that endpoint is the place ([`Changes::link_suspect`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{
    entity::{EdgeId, EntityId, Subject},
    incident::evidence::AnomalyEvidence,
};

/// Below this share of its caller's rise a dependency's rise does not explain it: a caller
/// makes several calls per request (so a tenth per call can add up), but not dozens.
pub const MIN_SHARE: f64 = 0.1;

/// Link-level features: the network between the two ends, not either end's work.
const LINK_FEATURES: [&str; 2] = ["rtt_us", "retransmits_per_s"];
/// The connection's own trouble, whatever is sent over it.
const CONNECTION_FEATURES: [&str; 4] = [
    "connect_failures_per_s",
    "resets_per_s",
    "retransmits_per_s",
    "rtt_us",
];
/// Features whose rise means the server refused, dropped or never answered: that explains
/// any trouble of its callers.
/// (A shed server is one its caller stopped calling after it failed.)
const DEAD_FEATURES: [&str; 5] = [
    "connect_failures_per_s",
    "resets_per_s",
    "unanswered_per_s",
    "stuck_requests",
    "shed_ratio",
];

/// The largest rise of every crossing feature of every subject in an episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes(BTreeMap<Subject, BTreeMap<String, f64>>);

impl Changes {
    pub fn record(&mut self, a: &AnomalyEvidence) {
        for f in a.features.iter().filter(|f| f.crossed) {
            let rise = f.value - f.median;
            if rise.is_finite() && rise > 0.0 {
                let slot = self
                    .0
                    .entry(a.entity.clone())
                    .or_default()
                    .entry(f.feature.clone())
                    .or_insert(0.0);
                *slot = slot.max(rise);
            }
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    fn rise(&self, subject: &Subject, feature: &str) -> f64 {
        self.0
            .get(subject)
            .and_then(|m| m.get(feature))
            .copied()
            .unwrap_or(0.0)
    }

    /// The largest rise of `feature` on calls into `server`.
    fn into(&self, server: &EntityId, feature: &str) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| matches!(s, Subject::Edge(e) if &e.server == server))
            .map(|(s, _)| self.rise(s, feature))
            .fold(0.0, f64::max)
    }

    /// In [0, 1]: how far `callee`'s change on the call `caller → callee` accounts for the
    /// change on the calls into `caller`. 1 where nothing comparable was measured (the walk
    /// then goes on as it would without sizes).
    pub fn explains(&self, caller: &EntityId, callee: &EntityId) -> f64 {
        let call = Subject::Edge(EdgeId::new(caller.clone(), callee.clone()));
        let Some(out) = self.0.get(&call) else {
            return 1.0;
        };
        if DEAD_FEATURES
            .iter()
            .any(|f| out.get(*f).is_some_and(|r| *r > 0.0))
        {
            return 1.0;
        }
        let (lat_in, err_in) = (
            self.into(caller, "request_p99_us"),
            self.into(caller, "error_ratio"),
        );
        if lat_in <= 0.0 && err_in <= 0.0 {
            return 1.0;
        }
        // A slower link is as much a slower call as a slower server.
        let lat_out = self
            .rise(&call, "request_p99_us")
            .max(self.rise(&call, "rtt_us"));
        let err_out = self.rise(&call, "error_ratio");
        let mut share: f64 = 0.0;
        if lat_in > 0.0 {
            share = share.max(lat_out / lat_in);
            // Failing calls below make slow calls above (retries, backoff, timeouts).
            if err_out >= MIN_SHARE {
                share = 1.0;
            }
        }
        if err_in > 0.0 {
            share = share.max(err_out / err_in);
        }
        // Linear below MIN_SHARE: a dependency covering a hundredth of the rise still pulls a
        // tenth as hard as one that covers it all.
        (share / MIN_SHARE).min(1.0)
    }

    /// Servers some callers connect to as usual while others cannot (connects failing or
    /// reset, packets lost, round trips slow), with no anomaly of their own: the trouble is on
    /// those callers' path (their firewall, their interface), not the server — a server that
    /// is down or unreachable is so for every caller. Only connection-level evidence counts:
    /// a server's requests can fail for one caller and not another by design (another port,
    /// another route, another backend), which says nothing about where the fault is.
    /// Server → its failing callers. `edges`: every call edge seen; `active`: the subjects
    /// with traffic in the windows just judged.
    pub fn exonerated(
        &self,
        edges: &[EdgeId],
        active: &BTreeSet<Subject>,
    ) -> BTreeMap<EntityId, Vec<EntityId>> {
        let mut out: BTreeMap<EntityId, Vec<EntityId>> = BTreeMap::new();
        for e in edges {
            let subject = Subject::Edge(e.clone());
            // A witness is a call that carried traffic in the windows just judged and did not
            // cross: an idle caller (a checker that calls every five minutes) proves nothing.
            if self.0.contains_key(&subject) || !active.contains(&subject) {
                continue;
            }
            // `e` is a healthy call into its server: are there anomalous ones beside it?
            let failing: Vec<EntityId> = self
                .0
                .iter()
                .filter_map(|(s, m)| match s {
                    Subject::Edge(a)
                        if a.server == e.server
                            && a.client != e.client
                            && CONNECTION_FEATURES
                                .iter()
                                .any(|f| m.get(*f).is_some_and(|r| *r > 0.0)) =>
                    {
                        Some(a.client.clone())
                    }
                    _ => None,
                })
                .collect();
            let own = self.0.contains_key(&Subject::Workload(e.server.clone()));
            if !failing.is_empty() && !own {
                out.entry(e.server.clone()).or_insert(failing);
            }
        }
        out
    }

    /// The endpoint most anomalous links share: on the same side of at least two of them, on
    /// at least two thirds of them, and on more than any other endpoint.
    pub fn link_suspect(&self) -> Option<EntityId> {
        let links: Vec<_> = self
            .0
            .iter()
            .filter_map(|(s, m)| match s {
                Subject::Edge(e)
                    if LINK_FEATURES
                        .iter()
                        .any(|f| m.get(*f).is_some_and(|r| *r > 0.0)) =>
                {
                    Some(e)
                }
                _ => None,
            })
            .collect();
        if links.len() < 2 {
            return None;
        }
        // Links per endpoint, and on which side: a host whose network is at fault is on the
        // same side of several links (the client of every call it makes, or the server of
        // every call it takes). The middle of a chain A → B → C is on both sides of one link
        // each, and a slow server there (delayed ACKs raise RTT) would otherwise promote B.
        let mut on: BTreeMap<&EntityId, (usize, usize)> = BTreeMap::new();
        for e in &links {
            on.entry(&e.client).or_default().0 += 1;
            on.entry(&e.server).or_default().1 += 1;
        }
        let mut counts: Vec<(&EntityId, usize, usize)> = on
            .into_iter()
            .map(|(e, (as_client, as_server))| (e, as_client + as_server, as_client.max(as_server)))
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let (top, n, one_side) = counts[0];
        let runner_up = counts.get(1).map_or(0, |c| c.1);
        (one_side >= 2 && 3 * n >= 2 * links.len() && n > runner_up).then(|| top.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        entity::{EdgeId, SubjectClass},
        incident::evidence::FeatureEvidence,
    };

    fn edge(a: &str, b: &str) -> Subject {
        Subject::Edge(EdgeId::new(a.into(), b.into()))
    }

    fn anomaly(subject: Subject, rises: &[(&str, f64, f64)]) -> AnomalyEvidence {
        AnomalyEvidence {
            entity: subject,
            class: SubjectClass::Edge,
            window: 1,
            time_unix_ns: 0,
            score: 0.9,
            tier: 1,
            features: rises
                .iter()
                .map(|(f, median, value)| FeatureEvidence {
                    feature: (*f).into(),
                    value: *value,
                    median: *median,
                    z: 10.0,
                    score: 0.9,
                    crossed: true,
                    fired: true,
                })
                .collect(),
            forest: None,
        }
    }

    #[test]
    fn a_dependency_a_little_slower_beside_a_broken_caller_does_not_explain_it() {
        let mut c = Changes::default();
        // The partition: web's calls into app time out (2.1 s, all failing); app's calls to
        // postgres are 26 ms slower.
        c.record(&anomaly(
            edge("web", "app"),
            &[("request_p99_us", 17e3, 2.1e6), ("error_ratio", 0.0, 1.0)],
        ));
        c.record(&anomaly(
            edge("app", "postgres"),
            &[("request_p99_us", 8.4e3, 34e3)],
        ));
        let share = c.explains(&"app".into(), &"postgres".into());
        assert!(share < 0.2, "{share}");
        // A database 200 ms slower behind an app 210 ms slower explains it fully.
        let mut slow_db = Changes::default();
        slow_db.record(&anomaly(
            edge("web", "app"),
            &[("request_p99_us", 17e3, 227e3)],
        ));
        slow_db.record(&anomaly(
            edge("app", "postgres"),
            &[("request_p99_us", 8e3, 208e3)],
        ));
        assert_eq!(slow_db.explains(&"app".into(), &"postgres".into()), 1.0);
        // Errors below explain errors above; a refusing dependency explains anything.
        let mut refused = Changes::default();
        refused.record(&anomaly(edge("web", "app"), &[("error_ratio", 0.0, 1.0)]));
        refused.record(&anomaly(
            edge("app", "redis"),
            &[("connect_failures_per_s", 0.0, 30.0)],
        ));
        assert_eq!(refused.explains(&"app".into(), &"redis".into()), 1.0);
        // Failing calls below explain slower calls above (retries).
        let mut retries = Changes::default();
        retries.record(&anomaly(
            edge("web", "app"),
            &[("request_p99_us", 17e3, 400e3)],
        ));
        retries.record(&anomaly(edge("app", "redis"), &[("error_ratio", 0.0, 0.3)]));
        assert_eq!(retries.explains(&"app".into(), &"redis".into()), 1.0);
        // Nothing measured on the call: no sizes to judge by.
        assert_eq!(c.explains(&"app".into(), &"redis".into()), 1.0);
    }

    #[test]
    fn a_server_other_callers_reach_as_usual_is_not_the_one_at_fault() {
        let edges = [
            EdgeId::new("app1".into(), "redis".into()),
            EdgeId::new("app2".into(), "redis".into()),
        ];
        let mut c = Changes::default();
        // app1's firewall drops its SYNs; app2 talks to redis as always.
        c.record(&anomaly(
            edge("app1", "redis"),
            &[("connect_failures_per_s", 0.0, 2.0)],
        ));
        let active: BTreeSet<Subject> = edges.iter().cloned().map(Subject::Edge).collect();
        let out = c.exonerated(&edges, &active);
        // A caller that carried no traffic just now is no witness.
        assert!(c.exonerated(&edges, &BTreeSet::new()).is_empty());
        assert_eq!(
            out.get(&EntityId::from("redis")),
            Some(&vec!["app1".into()])
        );
        // Both callers failing on it, or redis itself anomalous: redis stays a suspect.
        let mut both = c.clone();
        both.record(&anomaly(
            edge("app2", "redis"),
            &[("connect_failures_per_s", 0.0, 2.0)],
        ));
        assert!(both.exonerated(&edges, &active).is_empty());
        // A caller whose requests fail where another's succeed: no verdict on the server.
        let mut requests = Changes::default();
        requests.record(&anomaly(
            edge("app1", "redis"),
            &[("error_ratio", 0.0, 1.0)],
        ));
        assert!(requests.exonerated(&edges, &active).is_empty());
        let mut own = c.clone();
        own.record(&anomaly(
            Subject::Workload("redis".into()),
            &[("syscall_errors_space_per_s", 0.0, 9.0)],
        ));
        assert!(own.exonerated(&edges, &active).is_empty());
    }

    #[test]
    fn the_endpoint_most_slow_links_share_is_the_link_suspect() {
        let mut c = Changes::default();
        // web's interface is capped: every link through it is slower.
        for (a, b) in [("load", "web"), ("web", "app1"), ("web", "app2")] {
            c.record(&anomaly(edge(a, b), &[("rtt_us", 20.0, 60e3)]));
        }
        c.record(&anomaly(
            edge("web", "app1"),
            &[("request_p99_us", 17e3, 90e3)],
        ));
        assert_eq!(c.link_suspect(), Some("web".into()));
        // One slow link has two ends and no suspect; request latency alone is no link's.
        let mut one = Changes::default();
        one.record(&anomaly(edge("app", "redis"), &[("rtt_us", 20.0, 200e3)]));
        one.record(&anomaly(
            edge("web", "app"),
            &[("request_p99_us", 17e3, 1e6)],
        ));
        assert_eq!(one.link_suspect(), None);
        // A chain A → B → C with both links slow: B is on one side of each, no suspect.
        let mut chain = Changes::default();
        chain.record(&anomaly(edge("a", "b"), &[("rtt_us", 20.0, 40e3)]));
        chain.record(&anomaly(edge("b", "c"), &[("rtt_us", 20.0, 40e3)]));
        assert_eq!(chain.link_suspect(), None);
        // Two unrelated slow links: no endpoint on both.
        let mut two = Changes::default();
        two.record(&anomaly(edge("a", "b"), &[("rtt_us", 20.0, 200e3)]));
        two.record(&anomaly(edge("c", "d"), &[("retransmits_per_s", 0.0, 5.0)]));
        assert_eq!(two.link_suspect(), None);
    }
}
