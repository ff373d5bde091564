//! Runtimes that carry out remediation actions, each recording how to undo what it did.

pub mod local;

pub use local::LocalRuntime;
