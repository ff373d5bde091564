//! Runtimes that carry out remediation actions, each recording how to undo what it did.

pub mod gitops;
pub mod kube;
pub mod local;

pub use self::{gitops::GitOpsRuntime, kube::KubeRuntime, local::LocalRuntime};
