//! Playbooks: for a fault class, the actions that remedy it, with their parameters and the
//! preconditions under which each is proposed. Loaded from YAML by an adapter; checked here
//! (a parameter an action does not take, or out of its safe range, is refused at load).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::action::{ActionClass, ActionRequest};
use crate::{
    diagnose::{model::Diagnosis, taxonomy::FaultClass},
    incident::{Incident, Severity},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub class: FaultClass,
    #[serde(default)]
    pub description: String,
    pub actions: Vec<Step>,
}

/// One action of a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: ActionClass,
    /// Replicas it disrupts at once (restarts, evictions); 0 for one that disrupts none.
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub when: When,
}

/// When a step is proposed at all (the policy's guardrails judge it after).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct When {
    /// The diagnosis is at least this sure (above the policy's gate, for a riskier action).
    pub min_confidence: Option<f64>,
    pub min_severity: Option<Severity>,
    /// The target's id starts with this (`k8s-pod/`: only where a cluster runs it).
    pub entity_prefix: Option<String>,
}

/// A parameter an action takes: its name and the range it must fall in.
struct Param {
    name: &'static str,
    min: f64,
    max: f64,
    required: bool,
}

const fn param(name: &'static str, min: f64, max: f64, required: bool) -> Param {
    Param {
        name,
        min,
        max,
        required,
    }
}

/// What each action class takes. Ranges are what Vigil will do without a person: a limit
/// raised at most 4×, at most ten replicas added.
fn params(class: ActionClass) -> &'static [Param] {
    const FACTOR_MEMORY: [Param; 2] = [
        param("factor", 1.01, 4.0, true),
        param("max_bytes", 1.0, 1e15, false),
    ];
    const FACTOR_CPU: [Param; 1] = [param("factor", 1.01, 8.0, true)];
    const FACTOR_BANDWIDTH: [Param; 1] = [param("factor", 1.01, 8.0, true)];
    const BY: [Param; 1] = [param("by", 1.0, 10.0, true)];
    const KEEP: [Param; 1] = [param("keep_mib", 0.0, 1e6, false)];
    match class {
        ActionClass::RaiseMemoryLimit | ActionClass::PatchLimits => &FACTOR_MEMORY,
        ActionClass::ChangeCpuQuota => &FACTOR_CPU,
        ActionClass::RaiseBandwidthLimit => &FACTOR_BANDWIDTH,
        ActionClass::AddReplica | ActionClass::Scale => &BY,
        ActionClass::RotateLog => &KEEP,
        _ => &[],
    }
}

impl Step {
    /// Whether the parameters fit the action, naming the first that does not.
    pub fn check(&self) -> Result<(), String> {
        let known = params(self.action);
        for (name, value) in &self.params {
            let Some(p) = known.iter().find(|p| p.name == name) else {
                let takes: Vec<&str> = known.iter().map(|p| p.name).collect();
                return Err(format!(
                    "{} takes no parameter {name:?} (it takes: {})",
                    self.action.as_str(),
                    if takes.is_empty() {
                        "none".to_string()
                    } else {
                        takes.join(", ")
                    }
                ));
            };
            let Some(v) = value.as_f64() else {
                return Err(format!("{}.{name} must be a number", self.action.as_str()));
            };
            if !(p.min..=p.max).contains(&v) {
                return Err(format!(
                    "{}.{name} is {v}; it must be within {}..={}",
                    self.action.as_str(),
                    p.min,
                    p.max
                ));
            }
        }
        if let Some(p) = known
            .iter()
            .find(|p| p.required && !self.params.contains_key(p.name))
        {
            return Err(format!(
                "{} needs the parameter {:?}",
                self.action.as_str(),
                p.name
            ));
        }
        if self.action.disrupts() && self.replicas == 0 {
            return Err(format!(
                "{} takes replicas out of service: say how many at once (replicas: 1)",
                self.action.as_str()
            ));
        }
        Ok(())
    }

    /// A number parameter (checked at load).
    pub fn number(&self, name: &str) -> Option<f64> {
        self.params.get(name).and_then(Value::as_f64)
    }
}

/// Every playbook, by class.
#[derive(Debug, Clone, Default)]
pub struct Playbooks {
    by_class: BTreeMap<FaultClass, Playbook>,
}

/// A proposed action and the step that proposed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub step: Step,
    pub request: ActionRequest,
}

impl Playbooks {
    /// The playbooks, each checked; two for one class are refused (which would win?).
    pub fn new(list: Vec<(String, Playbook)>) -> Result<Self, String> {
        let mut by_class: BTreeMap<FaultClass, (String, Playbook)> = BTreeMap::new();
        for (origin, p) in list {
            for s in &p.actions {
                s.check().map_err(|e| format!("{origin}: {e}"))?;
            }
            if let Some((first, _)) = by_class.get(&p.class) {
                return Err(format!(
                    "{origin}: a second playbook for {} (the first is {first}); merge them",
                    p.class.id()
                ));
            }
            by_class.insert(p.class, (origin, p));
        }
        Ok(Self {
            by_class: by_class.into_iter().map(|(c, (_, p))| (c, p)).collect(),
        })
    }

    pub fn get(&self, class: FaultClass) -> Option<&Playbook> {
        self.by_class.get(&class)
    }

    pub fn all(&self) -> impl Iterator<Item = &Playbook> {
        self.by_class.values()
    }

    /// What the diagnosis's playbook proposes for the incident's root cause: its steps whose
    /// preconditions hold, in order, on the workload the evidence places the fault in (the
    /// diagnosis's subject, else the incident's).
    pub fn propose(&self, incident: &Incident, diagnosis: &Diagnosis) -> Vec<Proposal> {
        let Some(p) = diagnosis.class.and_then(|c| self.by_class.get(&c)) else {
            return Vec::new();
        };
        let target = diagnosis.subject.as_ref().unwrap_or(&incident.workload_key);
        p.actions
            .iter()
            .filter(|s| {
                s.when
                    .min_confidence
                    .is_none_or(|m| diagnosis.confidence >= m)
            })
            .filter(|s| s.when.min_severity.is_none_or(|m| incident.severity >= m))
            .filter(|s| {
                s.when
                    .entity_prefix
                    .as_deref()
                    .is_none_or(|pre| target.as_str().starts_with(pre))
            })
            .map(|s| Proposal {
                step: s.clone(),
                request: ActionRequest {
                    incident: incident.id,
                    class: s.action,
                    target: target.clone(),
                    replicas: s.replicas,
                    confidence: diagnosis.confidence,
                    severity: incident.severity,
                },
            })
            .collect()
    }
}
