//! Vigil control plane. `domain` holds the logic and depends only on `ports`; `adapters`
//! implement the ports over SQLite, gRPC and HTTP; `app` wires them.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod eval;
pub mod ports;
