//! Remediation's decisions: which proposed action may run, wait for an approver, only be
//! logged, or is refused — every guardrail evaluated and explained (blast radius over a
//! workload's replicas and over the fleet, the last healthy endpoint of dependents, rate limit,
//! per-target cooldown, one remediation per target, allow- and deny-lists, confidence and
//! severity gates), then the phase of the action's class (observe, assist, autonomous).
//!
//! Runtimes, playbooks, approvals and verification build on this; nothing here acts.

pub mod action;
pub mod engine;
pub mod fleet;
pub mod guardrails;
pub mod policy;

#[cfg(test)]
mod tests;

pub use action::{ActionClass, ActionRequest};
pub use engine::{decide, plan, Decision, Verdict};
pub use fleet::{Executed, Workload, World};
pub use policy::{Phase, Policy, Scope};
