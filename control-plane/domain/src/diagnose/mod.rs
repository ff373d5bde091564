//! Diagnosis, the "orient" step: what failed, why, on which evidence, how sure Vigil is, and
//! what to do. Remediation acts only on its output.
//!
//! - `taxonomy`: the fault classes, with the ids used everywhere;
//! - `evidence`: what a tool is asked (`Scope`) and answers (`ToolOutput`, its votes);
//! - `tool` and `tools/`: read-only evidence tools, one file each, in one registry;
//! - `call`: one tool called by name with JSON arguments (the LLM loop, MCP);
//! - `llm`: the optional LLM second opinion, bounded and checked against the evidence;
//! - `detector`: the voice of the rule or baseline that opened the incident;
//! - `feedback`: the operator's confirmation or correction, checked against the diagnosis;
//! - `related`: earlier incidents of the same episode, as witnesses;
//! - `votes`: from votes to a class and a confidence (agreement of independent voters);
//! - `service`: the use case, run for every incident that opened or changed;
//! - `ports`: what it reads (kernel events, samples, the graph, logs) and where it keeps
//!   diagnoses.

pub mod call;
pub mod detector;
pub mod evidence;
pub mod feedback;
pub mod llm;
pub mod model;
pub mod ports;
pub mod related;
pub mod service;
pub mod taxonomy;
pub mod tool;
pub mod tools;
pub mod votes;
mod window;

pub use model::{Ballot, Citation, Diagnosis, Route};
pub use service::{DiagnosisParts, DiagnosisPolicy, DiagnosisService};
pub use taxonomy::FaultClass;
