//! Runtimes that carry out remediation actions, each recording how to undo what it did.

pub mod kube;
pub mod local;

pub use self::{kube::KubeRuntime, local::LocalRuntime};
