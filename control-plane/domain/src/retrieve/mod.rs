//! Retrieval, the memory of the loop: runbooks (what to do for a class of fault) and
//! postmortems (what happened last time) found for an incident and cited by id, and the
//! "learn" step that writes a postmortem draft when an incident resolves, so the next one
//! like it finds it.
//!
//! - `model`: documents, queries and hits;
//! - `ports`: the corpus (a full-text index by default; embeddings optionally);
//! - `service`: what to look up for a diagnosis, and the citations it gets;
//! - `postmortem`: the draft a resolved incident leaves behind.

pub mod model;
pub mod ports;
pub mod postmortem;
pub mod service;

pub use model::{DocKind, Document, Hit, RetrievalQuery};
pub use service::Retriever;
