//! In-kernel aggregates → metric batches: the kernel adds into maps, this module drains them
//! each interval as deltas, folds connections into per-edge samples and attributes them.

mod batch;
pub mod collector;
pub mod delta;
pub mod filesystems;
pub mod flows;
pub mod kernel_maps;
pub mod names;
pub mod notices;
pub mod queue;
pub mod requests;
pub mod resources;
pub mod tls_sockets;
