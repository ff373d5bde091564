//! Vigil control plane: the adapters that implement the domain's ports (`adapters`: SQLite,
//! gRPC, HTTP, Prometheus, OTLP, Kubernetes), the wiring that builds and runs them (`app`),
//! the configuration, and the offline evaluations. The domain itself — incidents, rules,
//! graph, detection, alerts and their ports — is the `vigil-domain` crate, re-exported here
//! as `domain`; it depends on none of this crate's adapters.

pub mod adapters;
pub mod app;
pub mod config;
pub mod eval;

pub use vigil_domain as domain;
