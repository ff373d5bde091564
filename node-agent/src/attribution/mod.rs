//! Who an event belongs to: pid → cgroup path → workload identity.

pub mod procfs;
pub mod table;
pub mod workload;

pub use table::{Attribution, ProcessTable};
pub use workload::{Workload, WorkloadKind};
