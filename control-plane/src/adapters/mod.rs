//! Adapters: the domain's ports implemented over SQLite, gRPC (tonic), HTTP (axum),
//! Prometheus, OTLP, Slack and the Kubernetes API, and the outside formats (Alertmanager's webhook,
//! Graphviz) translated to and from the domain's types.

pub mod access;
pub mod actions_api;
pub mod alertmanager;
pub mod audit_key;
pub mod console;
pub mod corpus;
pub mod dot;
pub mod grpc;
pub mod http;
pub mod kube;
pub mod limits;
pub mod llm;
pub mod logs;
pub mod mcp;
pub mod otlp;
pub mod outbound;
pub mod pgvector;
pub mod playbooks;
pub mod private_file;
pub mod prometheus;
pub mod refusal;
pub mod runtime;
pub mod slack;
pub mod sqlite;
pub mod tls;
pub mod tls_probe;
pub mod wire;
