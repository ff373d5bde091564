//! Vigil's control-plane domain: what the control plane knows and decides, with no transport,
//! database or Kubernetes client in sight. Its own crate, so "the domain imports no adapter" is
//! checked by the compiler rather than by review.
//!
//! The incident is the shared core (`incident`); each capability has a folder with its model,
//! its use case and the ports it needs (`ports.rs`), which the `control-plane` crate's adapters
//! implement:
//!
//! - `ingest`: kernel events stored once, kernel-event rules (OOM kill, crash loop);
//! - `interval`: the agents' metric intervals, stored once and fanned out;
//! - `graph`: the live service graph built from flows;
//! - `detection`: baselines, isolation forests, correlation and root-cause ranking;
//! - `diagnose`: the fault taxonomy, evidence tools, votes and the diagnosis of incidents;
//! - `audit`: the tamper-evident log of every step taken on an incident;
//! - `alerts`: alerts raised elsewhere (Alertmanager, IncidentReports) as incidents;
//! - `certs`: the certificates TLS endpoints serve, checked before they lapse;
//! - `pressure`: resource readings (memory near its limit, CPU throttling) against fixed limits;
//! - `remediate`: the guardrails and phases every proposed action is judged by;
//! - `rca`: graph-free root-cause ranking of recorded cases (replays, public datasets);
//! - `scoring`: anomaly scores comparable across metrics and services.
//!
//! Shared vocabulary sits at the top: typed identities (`entity`), the clock, store errors,
//! kernel events, nodes and what Vigil reports about its own work (`observe`).

pub mod access;
pub mod alerts;
pub mod audit;
pub mod certs;
pub mod clock;
pub mod detection;
pub mod diagnose;
pub mod entity;
pub mod event;
pub mod graph;
pub mod incident;
pub mod ingest;
pub mod interval;
pub mod node;
pub mod observe;
pub mod pressure;
pub mod rca;
pub mod remediate;
pub mod retrieve;
pub mod scoring;
pub mod store;
pub mod synthetic;
#[cfg(test)]
mod testing;
