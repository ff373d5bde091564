//! Remediation's decisions: which proposed action may run, wait for an approver, only be
//! logged, or is refused — every guardrail evaluated and explained (blast radius over a
//! workload's replicas and over the fleet, the last healthy endpoint of dependents, rate limit,
//! per-target cooldown, one remediation per target, allow- and deny-lists, confidence and
//! severity gates), then the phase of the action's class (observe, assist, autonomous).
//!
//! The service proposes a diagnosis's playbook actions, runs what may run through a runtime
//! (its inverse recorded), holds what needs an approver until it expires, and verifies each
//! run action against its incident's signals, undoing it when they got worse.

pub mod action;
pub mod engine;
pub mod fleet;
pub mod graph_fleet;
pub mod guardrails;
pub mod playbook;
pub mod policy;
pub mod ports;
pub mod record;
pub mod service;
pub mod supervisor;
pub mod track_record;

#[cfg(test)]
mod tests;

pub use action::{ActionClass, ActionRequest};
pub use engine::{decide, plan, Decision, Verdict};
pub use fleet::{Executed, Workload, World};
pub use graph_fleet::GraphFleet;
pub use playbook::{Playbook, Playbooks, Proposal, Step};
pub use policy::{Phase, Policy, Scope};
pub use record::{ActionId, ActionRecord, ActionState, Applied};
pub use service::{RemediationError, RemediationParts, RemediationService, TickReport};
pub use track_record::{track_record, ClassRecord};
