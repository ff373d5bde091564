//! Each action class's verified record: how often it was decided, ran, and what its
//! verification found. Promotion from observe to assist to autonomous is explicit config;
//! this is what an operator weighs before making it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    action::ActionClass,
    policy::{Phase, Policy},
    record::{ActionRecord, ActionState},
};

/// How one action class has fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassRecord {
    pub class: ActionClass,
    /// Its phase now.
    pub phase: Phase,
    pub decided: u64,
    /// Refused by a guardrail or the runtime, denied, or expired: never ran.
    pub held_back: u64,
    /// Observe phase: decided and logged only.
    pub observed: u64,
    pub ran: u64,
    pub recovered: u64,
    pub escalated: u64,
    pub rolled_back: u64,
    /// Ran and then failed (the runtime, or the rollback).
    pub failed: u64,
    /// Recovered over every ran action whose verification has ended; none judged yet: `None`.
    pub success_rate: Option<f64>,
}

impl ClassRecord {
    fn new(class: ActionClass, phase: Phase) -> Self {
        Self {
            class,
            phase,
            decided: 0,
            held_back: 0,
            observed: 0,
            ran: 0,
            recovered: 0,
            escalated: 0,
            rolled_back: 0,
            failed: 0,
            success_rate: None,
        }
    }

    fn count(&mut self, a: &ActionRecord) {
        self.decided += 1;
        let ran = a.executed_unix_ns.is_some();
        self.ran += u64::from(ran);
        match a.state {
            ActionState::Observed => self.observed += 1,
            ActionState::Refused | ActionState::Denied | ActionState::Expired => {
                self.held_back += 1
            }
            ActionState::Recovered => self.recovered += 1,
            ActionState::Escalated => self.escalated += 1,
            ActionState::RolledBack => self.rolled_back += 1,
            ActionState::Failed if ran => self.failed += 1,
            // A runtime that refused before acting: nothing ran.
            ActionState::Failed => self.held_back += 1,
            ActionState::PendingApproval | ActionState::Verifying => {}
        }
    }
}

/// Every class of `policy` or of `actions`, with what `actions` show of it.
pub fn track_record(actions: &[ActionRecord], policy: &Policy) -> Vec<ClassRecord> {
    let mut by_class: BTreeMap<ActionClass, ClassRecord> = ActionClass::ALL
        .iter()
        .map(|&c| (c, ClassRecord::new(c, policy.phase(c))))
        .collect();
    for a in actions {
        by_class
            .entry(a.request.class)
            .or_insert_with(|| ClassRecord::new(a.request.class, policy.phase(a.request.class)))
            .count(a);
    }
    by_class
        .into_values()
        .map(|mut r| {
            let judged = r.recovered + r.escalated + r.rolled_back + r.failed;
            r.success_rate = (judged > 0).then(|| r.recovered as f64 / judged as f64);
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        entity::EntityId,
        incident::{IncidentId, Severity},
        remediate::{
            action::ActionRequest, engine::Verdict, playbook::When, record::ActionId, Step,
        },
    };

    fn action(class: ActionClass, state: ActionState, ran: bool) -> ActionRecord {
        ActionRecord {
            fault_class: None,
            id: ActionId(1),
            request: ActionRequest {
                incident: IncidentId(1),
                class,
                target: EntityId::new("cgroup/app"),
                replicas: 0,
                confidence: 0.9,
                severity: Severity::Critical,
            },
            step: Step {
                action: class,
                replicas: 0,
                params: BTreeMap::new(),
                when: When::default(),
            },
            phase: Phase::Autonomous,
            verdict: Verdict::Execute,
            state,
            decided_unix_ns: 1,
            expires_unix_ns: None,
            approved_by: None,
            executed_unix_ns: ran.then_some(2),
            applied: None,
            occurrences_at_action: 0,
            outcome: String::new(),
        }
    }

    #[test]
    fn each_class_counts_what_ran_and_how_its_verification_ended() {
        use ActionState::*;
        let memory = ActionClass::RaiseMemoryLimit;
        let actions = [
            action(memory, Recovered, true),
            action(memory, Recovered, true),
            action(memory, Recovered, true),
            action(memory, RolledBack, true),
            action(memory, Verifying, true),
            action(memory, Refused, false),
            // The runtime said no before acting: held back, not a failure of the action.
            action(memory, Failed, false),
            action(ActionClass::RestartProcess, Observed, false),
        ];
        let mut policy = Policy::default();
        policy.phases.insert(memory, Phase::Assist);
        let record = track_record(&actions, &policy);
        assert_eq!(
            record.len(),
            ActionClass::ALL.len(),
            "every class is listed"
        );
        let m = record.iter().find(|r| r.class == memory).expect("listed");
        assert_eq!(m.phase, Phase::Assist);
        assert_eq!(
            (
                m.decided,
                m.ran,
                m.recovered,
                m.rolled_back,
                m.held_back,
                m.failed
            ),
            (7, 5, 3, 1, 2, 0)
        );
        assert_eq!(m.success_rate, Some(0.75), "3 of the 4 judged");
        let r = record
            .iter()
            .find(|r| r.class == ActionClass::RestartProcess)
            .expect("listed");
        assert_eq!((r.observed, r.ran, r.success_rate), (1, 0, None));
        let never = record
            .iter()
            .find(|r| r.class == ActionClass::CordonNode)
            .expect("listed");
        assert_eq!((never.decided, never.phase), (0, Phase::Observe));
    }
}
