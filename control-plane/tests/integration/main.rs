//! The control plane's integration tests, in one test binary.
//!
//! Each file here used to be its own test binary, and each linked the control plane, polars,
//! kube and tonic again: 25 copies of ~280 MB filled CI's disk on a clean build (the linker
//! died with SIGBUS). One binary links them once; nextest still runs every test in its own
//! process, so no test sees state another left behind.

mod support;

mod alertmanager;
mod api_limits;
mod audit;
mod cert_manager;
mod console;
mod detection_pipeline;
mod diagnosis;
mod eval_cli;
mod feedback;
mod gitops_runtime;
mod incident_lifecycle;
mod kube_cluster;
mod kube_evidence;
mod kube_fleet;
mod kube_report_remediation;
mod kube_resolver;
mod kube_runtime;
mod kube_target_lock;
mod llm;
mod manifests;
mod mcp;
mod metrics_store;
mod remediation;
mod report_retry;
mod retrieval;
mod secrets;
mod slack;
mod startup_errors;
mod store_corruption;
mod tls;
