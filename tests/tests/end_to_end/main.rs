//! Vigil's end-to-end tests (real agent, real eBPF, real servers), in one test binary.
//!
//! Each file here used to be its own test binary, and each linked the agent and the control
//! plane again: 18 copies of ~280 MB filled CI's disk on a clean build (the linker died with
//! SIGBUS). One binary links them once; nextest still runs every test in its own process, so no
//! test sees state another left behind.

mod edge_requests;

mod agent_errors;
mod bad_input;
mod certificates;
mod console;
mod crash_safety;
mod crashes;
mod detection;
mod disk_full;
mod dns_and_errors;
mod latency_and_cardinality;
mod loss_accounting;
mod mutual_tls;
mod observability;
mod oom_kill;
mod otlp_export;
mod reconnect;
mod remediation_local;
mod requests;
mod requests_encrypted;
mod resource_pressure;
mod self_protection;
mod service_graph;
mod short_lived;
