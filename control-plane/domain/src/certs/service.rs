//! The certificate use case: learn the TLS server endpoints from the requests Vigil sees,
//! check what each serves, keep the latest, and open (or update) a certificate incident for
//! each one near or past its end.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tracing::{info, warn};

use super::{
    model::{date, CertPolicy, ServedCertificate},
    ports::CertificateProbe,
};
use crate::{
    clock::Clock,
    detection::ports::GraphView,
    entity::EntityId,
    incident::{
        details::CertificateDetails,
        ports::{open_or_update, IncidentStore},
        Details, Finding, Severity,
    },
    interval::{ports::IntervalSink, Endpoint, FlowRole, MetricInterval},
};

pub struct CertificateParts {
    pub probe: Arc<dyn CertificateProbe>,
    pub incidents: Arc<dyn IncidentStore>,
    pub graph: Arc<dyn GraphView>,
    pub clock: Arc<dyn Clock>,
    pub policy: CertPolicy,
    /// Endpoints to check besides those seen serving TLS (`host:port`).
    pub configured: Vec<String>,
    /// Most endpoints remembered (learned ones beyond it are not checked).
    pub max_endpoints: usize,
}

/// The result of one round of checks.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    pub checked: usize,
    pub failed: usize,
    pub warned: usize,
}

pub struct CertificateService {
    parts: CertificateParts,
    /// Endpoint → (node, endpoint) where TLS requests to it were seen.
    learned: Mutex<BTreeMap<String, (String, Endpoint)>>,
    served: Mutex<BTreeMap<String, ServedCertificate>>,
}

impl CertificateService {
    pub fn new(parts: CertificateParts) -> Self {
        Self {
            parts,
            learned: Mutex::new(BTreeMap::new()),
            served: Mutex::new(BTreeMap::new()),
        }
    }

    /// The latest certificate of every endpoint checked, by endpoint.
    pub fn certificates(&self) -> Vec<ServedCertificate> {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every endpoint to check: configured ones, then learned ones, with who serves them.
    fn endpoints(&self) -> Vec<(String, String, EntityId)> {
        let mut out: Vec<(String, String, EntityId)> = self
            .parts
            .configured
            .iter()
            .map(|e| {
                (
                    e.clone(),
                    String::new(),
                    EntityId::new(format!("endpoint/{e}")),
                )
            })
            .collect();
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        for (key, (node, ep)) in learned.iter() {
            if !self.parts.configured.contains(key) {
                out.push((
                    key.clone(),
                    node.clone(),
                    self.parts.graph.server_entity(node, ep),
                ));
            }
        }
        out
    }

    /// Checks every endpoint once.
    pub fn check(&self) -> CheckOutcome {
        let mut outcome = CheckOutcome::default();
        for (endpoint, node, server) in self.endpoints() {
            outcome.checked += 1;
            let peer = match self.parts.probe.served(&endpoint) {
                Ok(p) => p,
                Err(e) => {
                    outcome.failed += 1;
                    let error: &(dyn std::error::Error + 'static) = &e;
                    warn!(error, %endpoint, "certificate check failed");
                    continue;
                }
            };
            let now = self.parts.clock.now_unix_ns();
            let cert = ServedCertificate {
                endpoint: endpoint.clone(),
                server,
                subject: peer.subject,
                issuer: peer.issuer,
                not_after_unix: peer.not_after_unix,
                checked_unix_ns: now,
            };
            if let Some(severity) = cert.judge(now, &self.parts.policy) {
                outcome.warned += 1;
                self.report(&cert, &node, severity, now);
            }
            self.served
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(endpoint, cert);
        }
        outcome
    }

    fn report(&self, cert: &ServedCertificate, node: &str, severity: Severity, now: i64) {
        let left = cert.seconds_left(now);
        let until = date(cert.not_after_unix);
        let title = if left <= 0 {
            format!(
                "Certificate expired: {} ({}) serves {} expired on {until}",
                cert.endpoint, cert.server, cert.subject
            )
        } else {
            format!(
                "Certificate expires in {} days: {} ({}) serves {} until {until}",
                left / 86_400,
                cert.endpoint,
                cert.server,
                cert.subject
            )
        };
        let finding = Finding {
            severity,
            node: node.to_string(),
            workload_key: cert.server.clone(),
            summary: format!(
                "{title}; issued by {}. Clients that check validity fail the handshake once it lapses.",
                cert.issuer
            ),
            title,
            time_unix_ns: now,
            evidence: Vec::new(),
            details: Details::CertificateExpiry(CertificateDetails {
                endpoint: cert.endpoint.clone(),
                subject: cert.subject.clone(),
                issuer: cert.issuer.clone(),
                not_after_unix: cert.not_after_unix,
                not_after: until,
                days_left: left as f64 / 86_400.0,
            }),
            stages: Vec::new(),
        };
        match open_or_update(self.parts.incidents.as_ref(), &finding) {
            Ok((incident, true)) => {
                info!(id = %incident.id, endpoint = %cert.endpoint, "incident opened: {}", incident.title)
            }
            Ok(_) => {}
            Err(e) => {
                let error: &(dyn std::error::Error + 'static) = &e;
                warn!(error, endpoint = %cert.endpoint, "could not record a certificate finding");
            }
        }
    }
}

impl IntervalSink for CertificateService {
    /// Learns the servers that clients reach over TLS.
    fn accept(&self, interval: &MetricInterval) {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        for r in interval
            .requests
            .iter()
            .filter(|r| r.tls && r.role == FlowRole::Client && r.remote.port != 0)
        {
            let key = r.remote.to_string();
            if learned.len() < self.parts.max_endpoints || learned.contains_key(&key) {
                learned.insert(key, (interval.node.clone(), r.remote));
            }
        }
    }
}
