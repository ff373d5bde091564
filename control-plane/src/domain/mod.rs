//! Domain logic: no transport, no database, no Kubernetes. Depends only on `crate::ports`.

pub mod detect;
pub mod detection;
pub mod event;
pub mod graph;
pub mod incident;
pub mod ingest;
pub mod metrics;
pub mod rules;
pub mod telemetry;
