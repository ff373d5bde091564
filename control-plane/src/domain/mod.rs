//! Domain logic: no transport, no database, no Kubernetes. Depends only on `crate::ports`.

pub mod alerts;
pub mod detect;
pub mod detection;
pub mod event;
pub mod graph;
pub mod incident;
pub mod ingest;
pub mod metrics;
pub mod observed;
pub mod rules;
pub mod telemetry;
