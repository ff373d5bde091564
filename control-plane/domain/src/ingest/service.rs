//! The ingest use case: store a node's batch once, run the kernel-event rules on what is new,
//! and open or update incidents.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tracing::{info, instrument, warn};

use super::rules::KernelRules;
use crate::{
    clock::Clock,
    event::{
        ports::{EventStore, InsertOutcome},
        KernelEvent,
    },
    incident::{
        ports::{IncidentQuery, IncidentStore},
        Finding, Incident, IncidentId, Stage,
    },
    node::{ports::NodeStore, AgentStats, NodeInfo},
    observe::{NoObserver, Observer},
    store::StoreError,
};

/// A validated batch from one node.
#[derive(Debug, Clone)]
pub struct Batch {
    pub node: String,
    pub events: Vec<KernelEvent>,
    pub stats: Option<AgentStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: InsertOutcome,
    pub incidents_opened: Vec<IncidentId>,
    pub incidents_updated: Vec<IncidentId>,
}

pub struct IngestService {
    events: Arc<dyn EventStore>,
    incidents: Arc<dyn IncidentStore>,
    nodes: Arc<dyn NodeStore>,
    /// Also serialises incident writes: find-open-then-create must not race.
    rules: Mutex<KernelRules>,
    observer: Arc<dyn Observer>,
    clock: Arc<dyn Clock>,
}

/// What ingest is built from.
pub struct IngestParts {
    pub events: Arc<dyn EventStore>,
    pub incidents: Arc<dyn IncidentStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub rules: KernelRules,
    pub clock: Arc<dyn Clock>,
}

impl IngestService {
    pub fn new(parts: IngestParts) -> Self {
        let IngestParts {
            events,
            incidents,
            nodes,
            rules,
            clock,
        } = parts;
        Self {
            events,
            incidents,
            nodes,
            rules: Mutex::new(rules),
            observer: Arc::new(NoObserver),
            clock,
        }
    }

    /// Reports what is ingested to `observer` (exporters).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Records a node's hello; returns the last sequence number stored for it.
    #[instrument(skip_all, fields(node = %node.name))]
    pub fn hello(&self, node: &NodeInfo) -> Result<u64, StoreError> {
        self.nodes.record_hello(node)?;
        let last = self.events.last_seq(&node.name)?;
        info!(node = %node.name, kernel = %node.kernel_release, agent = %node.agent_version, last_seq = last, "node connected");
        Ok(last)
    }

    #[instrument(skip_all, fields(node = %batch.node, events = batch.events.len()))]
    pub fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        let received = self.clock.now_unix_ns();
        // A batch starting past the next expected number: the numbers between were never
        // stored and never will be (an agent resends what it numbered until acknowledged,
        // and a restarted one skips the numbers of what it lost), so they are counted loss.
        let gap = match batch.events.first() {
            Some(first) => first
                .seq
                .saturating_sub(self.events.last_seq(&batch.node)?.saturating_add(1)),
            None => 0,
        };
        let stored = self.events.insert_batch(&batch.events, received)?;
        if gap > 0 {
            warn!(node = %batch.node, missing = gap, first = batch.events.first().map_or(0, |e| e.seq),
                "sequence gap: the agent lost events before sending them (counted in vigil_ingest_sequence_gap_events_total)");
            self.observer.sequence_gap(&batch.node, gap);
        }
        if let Some(stats) = &batch.stats {
            self.nodes.record_stats(&batch.node, stats, received)?;
        }
        let mut outcome = IngestOutcome {
            stored,
            ..Default::default()
        };
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        // Events are evaluated once: retried duplicates were evaluated when first stored.
        let fresh = batch
            .events
            .iter()
            .filter(|e| outcome.stored.inserted.binary_search(&e.seq).is_ok());
        let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
        for event in fresh {
            *by_kind.entry(event.kind.name()).or_default() += 1;
            for finding in rules.observe(event) {
                let finding = with_rule_stages(finding, event, received, self.clock.now_unix_ns());
                let (incident, created) = self.apply(&finding, rules.episode_gap())?;
                if created {
                    info!(id = %incident.id, kind = incident.kind.as_str(), workload = %incident.workload_key, "incident opened: {}", incident.title);
                    outcome.incidents_opened.push(incident.id);
                } else {
                    outcome.incidents_updated.push(incident.id);
                }
            }
        }
        rules.prune(received);
        for (kind, count) in by_kind {
            self.observer.events_ingested(&batch.node, kind, count);
        }
        Ok(outcome)
    }

    /// Opens an incident for `finding`, or merges it into the open one for the same kind,
    /// node and workload when it repeats within `episode_gap` of that one's last occurrence.
    /// A later finding is a new episode: a service killed again minutes after it came back
    /// is a new incident (with its own diagnosis), not a repeat of the first kill. The old
    /// incident resolves when its episode ended.
    fn apply(
        &self,
        finding: &Finding,
        episode_gap: Duration,
    ) -> Result<(Incident, bool), StoreError> {
        let gap_ns = i64::try_from(episode_gap.as_nanos()).unwrap_or(i64::MAX);
        let open = self.incidents.find_open(
            finding.kind(),
            &finding.node,
            finding.workload_key.as_str(),
        )?;
        match open {
            Some(o) if finding.time_unix_ns - o.updated_unix_ns <= gap_ns => {
                Ok((self.incidents.add_occurrence(o.id, finding)?, false))
            }
            Some(over) => {
                let ended = over
                    .updated_unix_ns
                    .saturating_add(gap_ns)
                    .min(self.clock.now_unix_ns());
                self.incidents.resolve(over.id, ended)?;
                info!(id = %over.id, "incident resolved, its episode over before a new one began: {}", over.title);
                Ok((self.incidents.create(finding)?, true))
            }
            None => Ok((self.incidents.create(finding)?, true)),
        }
    }

    /// Resolves open incidents with no new finding for `quiet_ns`. Returns their ids.
    #[instrument(skip(self))]
    pub fn resolve_quiet(&self, quiet_ns: i64) -> Result<Vec<IncidentId>, StoreError> {
        let now_unix_ns = self.clock.now_unix_ns();
        let _serialise = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let open = self.incidents.list(&IncidentQuery::open(usize::MAX))?;
        let mut resolved = Vec::new();
        // Anomaly incidents resolve when detection sees their signals back at baseline, alert
        // incidents when Alertmanager says so (it repeats firing alerts only every few hours).
        for incident in open
            .into_iter()
            .filter(|i| i.kind.is_kernel_rule())
            .filter(|i| now_unix_ns - i.updated_unix_ns >= quiet_ns)
        {
            self.incidents.resolve(incident.id, now_unix_ns)?;
            info!(
                id = %incident.id,
                "incident resolved after a quiet period: {}", incident.title
            );
            resolved.push(incident.id);
        }
        Ok(resolved)
    }
}

/// A kernel rule's pipeline: the kernel saw the event (detect: from the event to its arrival
/// here), the rule matched it against the workload's recent history (correlate), and the
/// kernel's own cgroup attribution names the workload (localize: nothing to infer).
fn with_rule_stages(
    finding: Finding,
    event: &KernelEvent,
    received_unix_ns: i64,
    judged: i64,
) -> Finding {
    let stages = [
        Stage::new("detect", event.time_unix_ns, received_unix_ns)
            .with("event", event.kind.name())
            .with("node", event.node.clone()),
        Stage::new("correlate", received_unix_ns, judged)
            .with("rule", finding.kind().as_str())
            .with("evidence", finding.evidence.len()),
        Stage::new("localize", judged, judged)
            .with("method", "kernel cgroup attribution")
            .with("root_cause", &finding.workload_key),
    ];
    finding.with_stages(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        clock::ManualClock,
        event::{ports::EventQuery, StoredEvent},
        synthetic::oom_kill,
        testing::MemoryIncidents,
    };

    /// Stores events in memory; every event is new.
    #[derive(Default)]
    struct Events(Mutex<Vec<KernelEvent>>);

    impl EventStore for Events {
        fn insert_batch(
            &self,
            events: &[KernelEvent],
            _: i64,
        ) -> Result<InsertOutcome, StoreError> {
            let mut stored = self.0.lock().unwrap_or_else(|p| p.into_inner());
            stored.extend(events.iter().cloned());
            Ok(InsertOutcome {
                inserted: events.iter().map(|e| e.seq).collect(),
                duplicates: 0,
            })
        }
        fn last_seq(&self, _: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn list_events(&self, _: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
            Ok(Vec::new())
        }
        fn get_event(&self, _: &str, _: u64) -> Result<Option<StoredEvent>, StoreError> {
            Ok(None)
        }
    }

    struct Nodes;

    impl NodeStore for Nodes {
        fn record_hello(&self, _: &NodeInfo) -> Result<(), StoreError> {
            Ok(())
        }
        fn record_stats(&self, _: &str, _: &AgentStats, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
        fn list_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_rules_stages_are_timed_by_the_clock() {
        // Each reading of the clock moves it 5 ms: received at 10 s, judged 5 ms later.
        let clock = Arc::new(ManualClock::at(10_000_000_000).stepping(5_000_000));
        let findings = Arc::new(MemoryIncidents::default());
        let service = IngestService::new(IngestParts {
            events: Arc::new(Events::default()),
            incidents: findings.clone(),
            nodes: Arc::new(Nodes),
            rules: KernelRules::new(super::super::CrashLoopPolicy::default()),
            clock,
        });
        let batch = Batch {
            node: "n1".into(),
            events: vec![oom_kill(1, 9_990_000_000, "cgroup/a")],
            stats: None,
        };
        let opened = service.ingest(&batch).expect("ingest");
        assert_eq!(opened.incidents_opened.len(), 1);
        let found = findings.findings();
        let times: Vec<(&str, i64, i64)> = found[0]
            .stages
            .iter()
            .map(|s| (s.stage.as_str(), s.start_unix_ns, s.end_unix_ns))
            .collect();
        assert_eq!(
            times,
            [
                ("detect", 9_990_000_000, 10_000_000_000),
                ("correlate", 10_000_000_000, 10_005_000_000),
                ("localize", 10_005_000_000, 10_005_000_000),
            ]
        );
        assert_eq!(found[0].detection_seconds(), Some(0.01));
    }
}
