//! Adapters: the ports implemented over SQLite, gRPC (tonic) and HTTP (axum).

pub mod grpc;
pub mod http;
pub mod sqlite;
pub mod wire;
