//! The ingest use case: store a node's batch once, run tier-1 rules on what is new, and open
//! or update incidents.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tracing::info;

use super::{
    event::KernelEvent,
    incident::{Finding, Incident, Stage},
    rules::Tier1Rules,
};
use crate::ports::{
    AgentStats, EventStore, IncidentQuery, IncidentStore, InsertOutcome, NoObserver, NodeInfo,
    NodeStore, Observer, StoreError,
};

/// Current Unix time in nanoseconds.
pub fn now_unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

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
    pub incidents_opened: Vec<i64>,
    pub incidents_updated: Vec<i64>,
}

pub struct IngestService {
    events: Arc<dyn EventStore>,
    incidents: Arc<dyn IncidentStore>,
    nodes: Arc<dyn NodeStore>,
    /// Also serialises incident writes: find-open-then-create must not race.
    rules: Mutex<Tier1Rules>,
    observer: Arc<dyn Observer>,
}

impl IngestService {
    pub fn new(
        events: Arc<dyn EventStore>,
        incidents: Arc<dyn IncidentStore>,
        nodes: Arc<dyn NodeStore>,
        rules: Tier1Rules,
    ) -> Self {
        Self {
            events,
            incidents,
            nodes,
            rules: Mutex::new(rules),
            observer: Arc::new(NoObserver),
        }
    }

    /// Reports what is ingested to `observer` (exporters).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Records a node's hello; returns the last sequence number stored for it.
    pub fn hello(&self, node: &NodeInfo) -> Result<u64, StoreError> {
        self.nodes.record_hello(node)?;
        let last = self.events.last_seq(&node.name)?;
        info!(node = %node.name, kernel = %node.kernel_release, agent = %node.agent_version, last_seq = last, "node connected");
        Ok(last)
    }

    pub fn ingest(&self, batch: &Batch) -> Result<IngestOutcome, StoreError> {
        let received = now_unix_ns();
        let stored = self.events.insert_batch(&batch.events, received)?;
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
                let finding = with_rule_stages(finding, event, received);
                let (incident, created) = self.apply(&finding)?;
                if created {
                    info!(id = incident.id, kind = incident.kind.as_str(), workload = %incident.workload_key, "incident opened: {}", incident.title);
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

    /// Opens an incident for `finding`, or merges it into the open one for the same
    /// kind, node and workload.
    fn apply(&self, finding: &Finding) -> Result<(Incident, bool), StoreError> {
        match self
            .incidents
            .find_open(finding.kind, &finding.node, &finding.workload_key)?
        {
            Some(open) => Ok((self.incidents.add_occurrence(open.id, finding)?, false)),
            None => Ok((self.incidents.create(finding)?, true)),
        }
    }

    /// Resolves open incidents with no new finding for `quiet_ns`. Returns their ids.
    pub fn resolve_quiet(&self, now_unix_ns: i64, quiet_ns: i64) -> Result<Vec<i64>, StoreError> {
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
                id = incident.id,
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
fn with_rule_stages(finding: Finding, event: &KernelEvent, received_unix_ns: i64) -> Finding {
    let judged = now_unix_ns();
    let stages = [
        Stage::new("detect", event.time_unix_ns, received_unix_ns)
            .with("event", event.kind.name())
            .with("node", event.node.clone()),
        Stage::new("correlate", received_unix_ns, judged)
            .with("rule", finding.kind.as_str())
            .with("evidence", finding.evidence.len()),
        Stage::new("localize", judged, judged)
            .with("method", "kernel cgroup attribution")
            .with("root_cause", finding.workload_key.clone()),
    ];
    finding.with_stages(&stages)
}
