//! Adapters: the ports implemented over SQLite, gRPC (tonic) and HTTP (axum).

pub mod grpc;
pub mod http;
pub mod kube;
pub mod otlp;
pub mod prometheus;
pub mod sqlite;
pub mod sqlite_telemetry;
pub mod wire;
