//! Vigil node agent: eBPF probes → attribution → gRPC stream to the control plane.

pub mod app;
pub mod attribution;
pub mod clock;
pub mod config;
pub mod enrich;
pub mod exporter;
pub mod governor;
pub mod kernel;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod stream;
