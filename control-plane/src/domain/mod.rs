//! Domain logic: no transport, no database, no Kubernetes. Depends only on `crate::ports`.

pub mod event;
pub mod incident;
pub mod ingest;
pub mod rules;
