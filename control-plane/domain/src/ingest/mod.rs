//! Ingest: a node's batch of kernel events stored once, the kernel-event rules run on what is
//! new (`rules`: an OOM kill, a crash loop), and incidents opened or updated.

pub mod rules;
pub mod service;

pub use rules::{CrashLoopPolicy, KernelRules};
pub use service::{Batch, IngestOutcome, IngestParts, IngestService};
