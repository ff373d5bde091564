//! Test support shared by several integration tests; each uses only part of it.
#![allow(dead_code)]

pub mod apiserver;
pub mod cli;
pub mod config;
pub mod diagnosis_lab;
pub mod http;
pub mod ingest;
pub mod pgvector;
pub mod plane;
pub mod rbac;
pub mod reports;
pub mod running;
pub mod shop;
pub mod time;
