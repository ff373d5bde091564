//! Who an event belongs to: pid → cgroup path → workload identity.

pub mod cgroup_index;
pub mod listeners;
pub mod procfs;
pub mod table;
pub mod tcp_table;
pub mod workload;

pub use cgroup_index::CgroupIndex;
pub use table::{Attribution, ProcessTable};
pub use workload::{Workload, WorkloadKind};
